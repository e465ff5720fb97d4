//! The Windows side of the platform layer: the same calls as the Unix side, mapped to
//! what Windows has — the read-only attribute for modes, FILETIMEs for times, the volume's
//! free space, the computer name, process groups for hooks — and explicit no-ops where
//! Windows has no counterpart (POSIX owners, xattrs, device nodes, directory fsync).

use std::fs::File;
use std::io;
use std::os::windows::ffi::OsStrExt as _;
use std::os::windows::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::process::Command;

mod dir;
pub use dir::Dir;

use windows_sys::Win32::Foundation::{CloseHandle, STILL_ACTIVE};
use windows_sys::Win32::Storage::FileSystem::{
    FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAG_OPEN_REPARSE_POINT, GetDiskFreeSpaceExW,
};
use windows_sys::Win32::System::SystemInformation::{
    ComputerNameDnsHostname, ComputerNamePhysicalDnsHostname, SetComputerNameExW,
};
use windows_sys::Win32::System::Threading::{
    CREATE_NEW_PROCESS_GROUP, GetExitCodeProcess, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION,
};

/// Seconds between 1601-01-01 (FILETIME) and 1970-01-01.
const EPOCH_DIFF_100NS: i64 = 116_444_736_000_000_000;
const FILE_ATTRIBUTE_READONLY: u32 = 0x1;
const FILE_ATTRIBUTE_DIRECTORY: u32 = 0x10;
const FILE_WRITE_ATTRIBUTES: u32 = 0x100;

fn wide(s: &std::ffi::OsStr) -> Vec<u16> {
    s.encode_wide().chain(std::iter::once(0)).collect()
}

/// Creates a new file exclusively (Windows: modes are ACLs, inherited from the folder).
pub fn create_exclusive(path: &Path, _mode: u32) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// Makes one directory (Windows: its ACL is inherited from the parent).
pub fn mkdir_mode(path: &Path, _mode: u32) -> io::Result<()> {
    std::fs::create_dir(path)
}

/// The raw SMBIOS table (GetSystemFirmwareTable `RSMB`).
pub fn smbios_table() -> Option<Vec<u8>> {
    use windows_sys::Win32::System::SystemInformation::GetSystemFirmwareTable;
    const RSMB: u32 = u32::from_be_bytes(*b"RSMB");
    // SAFETY: a null buffer asks for the size; then `buf` has that size.
    unsafe {
        let n = GetSystemFirmwareTable(RSMB, 0, std::ptr::null_mut(), 0);
        if n == 0 {
            return None;
        }
        let mut buf = vec![0u8; n as usize];
        let got = GetSystemFirmwareTable(RSMB, 0, buf.as_mut_ptr().cast(), n);
        (got == n).then_some(buf)
    }
}

/// A canonical path as other programs take it: `\\?\C:\x` → `C:\x`, `\\?\UNC\s\x` →
/// `\\s\x` (cmd.exe, for one, refuses the verbatim form).
pub fn plain_path(p: std::path::PathBuf) -> std::path::PathBuf {
    let s = p.to_string_lossy();
    if let Some(rest) = s.strip_prefix(r"\\?\UNC\") {
        return std::path::PathBuf::from(format!(r"\\{rest}"));
    }
    match s.strip_prefix(r"\\?\") {
        Some(rest) if rest.as_bytes().get(1) == Some(&b':') => std::path::PathBuf::from(rest),
        _ => p,
    }
}

/// How a restored file's temporary name starts: not a dot, which Wine takes for the
/// hidden attribute (and then drops the file's own on the rename into place).
pub const TEMP_LEAD: &str = "~";

/// The root `--root /` means: the system drive (`C:\`), wherever the command runs from.
pub fn default_root(given: &Path) -> std::path::PathBuf {
    if given == Path::new("/") {
        let drive = std::env::var("SystemDrive").unwrap_or_else(|_| "C:".into());
        return std::path::PathBuf::from(format!("{drive}\\"));
    }
    given.to_path_buf()
}

/// How to run an operator's hook, by its extension: `.exe`/`.com` directly, `.cmd`/`.bat`
/// through cmd.exe, `.ps1` through PowerShell (no profile, this script's execution
/// policy bypassed); anything else is not a hook.
/// Windows: files are protected by the ACLs of ProgramData (administrators only).
pub fn untrusted(_path: &Path) -> Option<String> {
    None
}

/// A hook's environment without the agent's secrets (Windows programs need the rest of
/// the system's environment: SystemRoot, ComSpec…).
pub fn clean_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        let up = k.to_string_lossy().to_ascii_uppercase();
        if up.starts_with("AWS_")
            || up.contains("SECRET")
            || up.contains("TOKEN")
            || up.contains("PASSWORD")
        {
            cmd.env_remove(&k);
        }
    }
}

pub fn hook_command(path: &Path) -> Option<Command> {
    if !std::fs::metadata(path).ok()?.is_file() {
        return None;
    }
    let ext = path.extension()?.to_string_lossy().to_ascii_lowercase();
    match ext.as_str() {
        "exe" | "com" => Some(Command::new(path)),
        "cmd" | "bat" => {
            let mut c = Command::new("cmd.exe");
            c.arg("/D").arg("/C").arg(path);
            Some(c)
        }
        "ps1" => {
            let mut c = Command::new("powershell.exe");
            c.args([
                "-NoProfile",
                "-NonInteractive",
                "-ExecutionPolicy",
                "Bypass",
                "-File",
            ])
            .arg(path);
            Some(c)
        }
        _ => None,
    }
}

/// Windows has no permission bits: a mode without any write bit sets the read-only
/// attribute, any other clears it. (Access control is by security descriptor.)
pub fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    let mut p = std::fs::metadata(path)?.permissions();
    p.set_readonly(mode & 0o222 == 0);
    std::fs::set_permissions(path, p)
}

/// A directory's mode (Windows: as `set_mode`, the read-only attribute; its access is the
/// ACL it inherits).
pub fn set_dir_mode(path: &Path, mode: u32) -> io::Result<()> {
    set_mode(path, mode)
}

/// The mode a Unix tool would show: directories 0755, files 0644, read-only 0444/0555.
pub fn mode_of(meta: &std::fs::Metadata) -> u32 {
    let dir = meta.file_attributes() & FILE_ATTRIBUTE_DIRECTORY != 0;
    let ro = meta.file_attributes() & FILE_ATTRIBUTE_READONLY != 0;
    match (dir, ro) {
        (true, false) => 0o755,
        (true, true) => 0o555,
        (false, false) => 0o644,
        (false, true) => 0o444,
    }
}

/// POSIX owners do not exist on Windows: nothing to change.
pub fn lchown(_path: &Path, _uid: u32, _gid: u32) -> io::Result<()> {
    Ok(())
}

/// POSIX owners do not exist on Windows: no entry has one to move.
pub fn chown_beneath(
    _dir: &Path,
    _visit: &mut super::OwnerVisit<'_>,
    _failed: &mut dyn FnMut(&Path, io::Error),
) {
}

pub fn owner_of(_meta: &std::fs::Metadata) -> (u32, u32) {
    (0, 0)
}

/// Hard links are not looked at on Windows (the callers guard POSIX homes).
pub fn link_count(_meta: &std::fs::Metadata) -> u64 {
    1
}

/// NTFS journals directory entries itself; a directory handle cannot be flushed without
/// backup privileges, so this is a no-op.
pub fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Creates a file or directory symlink (by what the target is, relative to the link).
pub fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    let resolved = link.parent().map(|p| p.join(target));
    if resolved.is_some_and(|r| r.is_dir()) {
        std::os::windows::fs::symlink_dir(target, link)
    } else {
        std::os::windows::fs::symlink_file(target, link)
    }
}

/// Sets the computer's DNS host name (takes effect at the next boot, as on Windows).
pub fn set_live_hostname(name: &str) -> io::Result<()> {
    let w = wide(std::ffi::OsStr::new(name));
    // SAFETY: `w` is a NUL-terminated UTF-16 string that outlives the call.
    let ok = unsafe { SetComputerNameExW(ComputerNamePhysicalDnsHostname, w.as_ptr()) };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The metadata of a file as the snapshot engine records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMeta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub mtime_ns: u32,
    pub ctime: i64,
    pub ctime_ns: u32,
    pub ino: u64,
    pub dev: u64,
    pub nlink: u64,
    pub rdev: u64,
    pub allocated: u64,
}

fn split_filetime(t: u64) -> (i64, u32) {
    let since_unix = t as i64 - EPOCH_DIFF_100NS;
    (
        since_unix.div_euclid(10_000_000),
        (since_unix.rem_euclid(10_000_000) * 100) as u32,
    )
}

pub fn file_meta(m: &std::fs::Metadata) -> FileMeta {
    let (mtime, mtime_ns) = split_filetime(m.last_write_time());
    FileMeta {
        mode: mode_of(m),
        uid: 0,
        gid: 0,
        size: m.file_size(),
        mtime,
        mtime_ns,
        // no change time in stable std: the write time stands in for it
        ctime: mtime,
        ctime_ns: mtime_ns,
        ino: 0,
        dev: 0,
        nlink: 1,
        rdev: 0,
        allocated: m.file_size(),
    }
}

/// Windows has no FIFOs, device nodes or sockets in the file tree.
pub fn special_kind(_ft: &std::fs::FileType) -> Option<&'static str> {
    None
}

/// Sets the modification time of a path without following a reparse point.
pub fn set_times_nofollow(path: &Path, secs: i64, nsecs: u32) -> io::Result<()> {
    let f = std::fs::OpenOptions::new()
        .access_mode(FILE_WRITE_ATTRIBUTES)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_BACKUP_SEMANTICS)
        .open(path)?;
    let t = if secs >= 0 {
        std::time::UNIX_EPOCH + std::time::Duration::new(secs as u64, nsecs)
    } else {
        std::time::UNIX_EPOCH - std::time::Duration::from_secs(secs.unsigned_abs())
            + std::time::Duration::from_nanos(nsecs as u64)
    };
    f.set_times(std::fs::FileTimes::new().set_modified(t).set_accessed(t))
}

/// On Windows the one "extended attribute" carried is the security descriptor.
pub fn xattrs_of(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    use crate::data::winmeta::{ATTRIBUTE_MASK, ATTRIBUTES, XATTR};
    // attributes first: restore sets them in this order, and a descriptor that leaves
    // the agent no write access must come last (times are set with backup semantics)
    let mut out = Vec::new();
    let attrs = std::fs::symlink_metadata(path)?.file_attributes() & ATTRIBUTE_MASK;
    if attrs != 0 {
        out.push((ATTRIBUTES.to_vec(), attrs.to_string().into_bytes()));
    }
    out.push((XATTR.to_vec(), security::security_of(path)?));
    Ok(out)
}

/// An entry whose metadata is set (the Unix side sets it through a descriptor; here by
/// name with the calls above, which do not follow a reparse point, as before).
pub struct Entry {
    name: std::path::PathBuf,
}

impl Entry {
    pub fn open(path: &Path) -> io::Result<Entry> {
        std::fs::symlink_metadata(path)?;
        Ok(Entry {
            name: path.to_path_buf(),
        })
    }

    /// A file this process created: closed first, so the calls by name can open it.
    pub fn of_file(f: File, path: &Path) -> Entry {
        drop(f);
        Entry {
            name: path.to_path_buf(),
        }
    }

    pub fn metadata(&self) -> io::Result<std::fs::Metadata> {
        std::fs::symlink_metadata(&self.name)
    }

    pub fn set_owner(&self, uid: u32, gid: u32) -> io::Result<()> {
        lchown(&self.name, uid, gid)
    }

    pub fn set_mode(&self, mode: u32) -> io::Result<()> {
        set_mode(&self.name, mode)
    }

    pub fn xattr_is(&self, name: &[u8], value: &[u8]) -> bool {
        xattr_is(&self.name, name, value)
    }

    pub fn set_xattr(&self, name: &[u8], value: &[u8]) -> io::Result<()> {
        set_xattr(&self.name, name, value)
    }

    pub fn set_times(&self, secs: i64, nsecs: u32) -> io::Result<()> {
        set_times_nofollow(&self.name, secs, nsecs)
    }
}

/// POSIX owners do not exist on Windows: nothing for `lchown` to do.
pub fn owner_matches(_meta: &std::fs::Metadata, _uid: u32, _gid: u32) -> bool {
    true
}

/// True when the read-only attribute is what `set_mode` would make of `mode`.
pub fn mode_matches(meta: &std::fs::Metadata, mode: u32) -> bool {
    meta.permissions().readonly() == (mode & 0o222 == 0)
}

/// True when a path already has the attribute's value, or when it is not one Windows
/// sets (nothing for `set_xattr` to do).
pub fn xattr_is(path: &Path, name: &[u8], value: &[u8]) -> bool {
    use crate::data::winmeta::{ATTRIBUTE_MASK, ATTRIBUTES, XATTR};
    if name == XATTR {
        return security::security_of(path).is_ok_and(|v| v == value);
    }
    if name == ATTRIBUTES {
        let want: Option<u32> = std::str::from_utf8(value)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        return std::fs::symlink_metadata(path).is_ok_and(|m| {
            Some(m.file_attributes() & ATTRIBUTE_MASK) == want.map(|w| w & ATTRIBUTE_MASK)
        });
    }
    true
}

/// The security descriptor (`windows.security`) is set; a Linux file's extended
/// attributes have no place on Windows and are left out.
pub fn set_xattr(path: &Path, name: &[u8], value: &[u8]) -> io::Result<()> {
    use crate::data::winmeta::{ATTRIBUTE_MASK, ATTRIBUTES, XATTR};
    use windows_sys::Win32::Storage::FileSystem::{GetFileAttributesW, SetFileAttributesW};
    if name == XATTR {
        return security::set_security(path, value);
    }
    if name == ATTRIBUTES {
        let want: u32 = std::str::from_utf8(value)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| io::Error::other("not a number of attributes"))?;
        let w = wide(path.as_os_str());
        // SAFETY: `w` is NUL-terminated.
        let now = unsafe { GetFileAttributesW(w.as_ptr()) };
        if now == u32::MAX {
            return Err(io::Error::last_os_error());
        }
        let new = (now & !ATTRIBUTE_MASK) | (want & ATTRIBUTE_MASK);
        // SAFETY: as above.
        if new != now && unsafe { SetFileAttributesW(w.as_ptr(), new) } == 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

pub fn make_special(_path: &Path, kind: &str, _mode: u32, _rdev: u64) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("a {kind} cannot be created on Windows"),
    ))
}

/// Sparse regions are not read on Windows: the file is read whole.
pub fn data_extents(_f: &File, _meta: &FileMeta) -> io::Result<Option<Vec<(u64, u64)>>> {
    Ok(None)
}

/// Reads up to `buf.len()` bytes at `offset` (fewer at the end of the file).
pub fn pread(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    f.seek_read(buf, offset)
}

/// A path component's bytes as the snapshot records them (WTF-8, UTF-8 for every valid
/// name).
pub fn os_bytes(s: &std::ffi::OsStr) -> Vec<u8> {
    s.as_encoded_bytes().to_vec()
}

/// A path component from the bytes the snapshot recorded (a name from a Unix system
/// that is not UTF-8 gets replacement characters).
pub fn os_from_bytes(b: &[u8]) -> std::ffi::OsString {
    String::from_utf8_lossy(b).into_owned().into()
}

/// Creates a new file exclusively; an existing link is never followed (create_new fails).
/// Windows has no mode bits to give it.
pub fn create_new_nofollow(path: &Path, _mode: u32) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)
}

/// Links on the way to a data path are followed on Windows (no POSIX owners to check).
pub fn may_follow(_link: &Path) -> bool {
    true
}

/// File identity is not available from stable std on Windows: never assumed equal.
pub fn same_file(_a: &std::fs::Metadata, _b: &std::fs::Metadata) -> bool {
    false
}

/// Windows flushes each file as it is closed after `sync_all`; nothing global to do.
pub fn sync_filesystem(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Nothing to flush along the way on Windows (see `sync_filesystem`).
pub fn open_filesystem(_dir: &Path) -> io::Result<File> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Never called: `open_filesystem` opens nothing here.
pub fn sync_opened(_d: &File) -> io::Result<()> {
    Ok(())
}

/// Nothing to start on Windows (see `sync_filesystem`).
pub fn start_writeback(_f: &std::fs::File) {}

/// Free bytes for this user on the volume holding `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let w = wide(path.as_os_str());
    let mut free = 0u64;
    // SAFETY: `w` is NUL-terminated; the out pointers are valid or null.
    let ok = unsafe {
        GetDiskFreeSpaceExW(
            w.as_ptr(),
            &mut free,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    (ok != 0).then_some(free)
}

/// The computer's DNS host name.
pub fn hostname() -> String {
    let name = settings::name_of(ComputerNameDnsHostname);
    if name.is_empty() {
        return std::env::var("COMPUTERNAME").unwrap_or_default();
    }
    name
}

/// True while a process with this id runs.
pub fn process_alive(pid: u32) -> bool {
    // SAFETY: plain Win32 calls on a handle we own and close.
    unsafe {
        let h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid);
        if h.is_null() {
            // access denied means it exists
            return io::Error::last_os_error().raw_os_error() == Some(5);
        }
        let mut code = 0u32;
        let ok = GetExitCodeProcess(h, &mut code);
        CloseHandle(h);
        ok != 0 && code == STILL_ACTIVE as u32
    }
}

/// Reads exactly `buf.len()` bytes at `offset`.
pub fn read_at(f: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match f.seek_read(&mut buf[done..], offset + done as u64)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => done += n,
        }
    }
    Ok(())
}

/// Looks at the entries of a tree one after another (by name here: `symlink_metadata`).
#[derive(Default)]
pub struct FolderStat;

impl FolderStat {
    /// The size of the regular file at `path` (`None`: something else is there).
    pub fn file_size(&mut self, path: &Path) -> io::Result<Option<u64>> {
        let m = std::fs::symlink_metadata(path)?;
        Ok(m.is_file().then_some(m.len()))
    }
}

/// Reads exactly `len` bytes at `offset` into `buf` (its content replaced).
pub fn read_at_into(f: &File, buf: &mut Vec<u8>, len: usize, offset: u64) -> io::Result<()> {
    buf.clear();
    buf.resize(len, 0);
    read_at(f, buf, offset)
}

/// Opens a regular file of the store to read (anything else is refused); reads around
/// the cache are not done here (`direct`: `Unsupported`; every read goes through
/// `read_at_into`).
pub fn open_store_file(path: &Path, direct: bool) -> io::Result<File> {
    if direct {
        return Err(io::ErrorKind::Unsupported.into());
    }
    let f = File::open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file (planted in the store?)",
        ));
    }
    Ok(f)
}

/// Never called: `open_store_file` opens nothing to read around the cache here.
pub fn read_direct_into(
    _f: &File,
    _buf: &mut Vec<u8>,
    _len: usize,
    _offset: u64,
) -> io::Result<usize> {
    Err(io::ErrorKind::InvalidInput.into())
}

/// Direct (unbuffered) writes are not used on Windows: the restore writes through the
/// cache.
pub fn reopen_direct(_f: &File) -> Option<File> {
    None
}

/// Writes a file's data to disk and waits for it.
pub fn write_back_and_wait(f: &File) -> io::Result<()> {
    f.sync_data()
}

/// Blocks are not reserved ahead on Windows (the writes allocate as they go).
pub fn preallocate(_f: &File, _offset: u64, _len: u64) {}

/// Writes all of `buf` at `offset`.
pub fn write_at(f: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match f.seek_write(&buf[done..], offset + done as u64)? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => done += n,
        }
    }
    Ok(())
}

/// Starts a command in its own process group, so a timeout can stop all it started.
pub fn own_process_group(cmd: &mut Command) {
    use std::os::windows::process::CommandExt;
    cmd.creation_flags(CREATE_NEW_PROCESS_GROUP);
}

/// Kills a process and everything it started (a hook that ran past its timeout).
pub fn kill_group(pid: u32) {
    let _ = Command::new("taskkill")
        .args(["/T", "/F", "/PID", &pid.to_string()])
        .output();
}

/// A NUL-terminated UTF-16 string.
///
/// # Safety
/// `p` is null or points to a NUL-terminated UTF-16 string.
pub(crate) unsafe fn from_wide(p: *const u16) -> String {
    if p.is_null() {
        return String::new();
    }
    let mut n = 0;
    // SAFETY: the caller promises a terminator.
    unsafe {
        while *p.add(n) != 0 {
            n += 1;
        }
        String::from_utf16_lossy(std::slice::from_raw_parts(p, n))
    }
}

/// A UTF-16 buffer up to its first NUL.
fn from_wide_slice(units: &[u16]) -> String {
    let n = units.iter().position(|&u| u == 0).unwrap_or(units.len());
    String::from_utf16_lossy(&units[..n])
}

fn wide_str(s: &str) -> Vec<u16> {
    wide(std::ffi::OsStr::new(s))
}

/// Turns on a privilege the process holds but has disabled (SeTimeZonePrivilege, …);
/// a failure shows up in the call that needed it.
fn enable_privilege(name: &str) {
    use windows_sys::Win32::Security::{
        AdjustTokenPrivileges, LUID_AND_ATTRIBUTES, LookupPrivilegeValueW, SE_PRIVILEGE_ENABLED,
        TOKEN_ADJUST_PRIVILEGES, TOKEN_PRIVILEGES,
    };
    use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};
    let n = wide_str(name);
    // SAFETY: plain token calls on our own process; the handle is closed.
    unsafe {
        let mut token = std::ptr::null_mut();
        if OpenProcessToken(GetCurrentProcess(), TOKEN_ADJUST_PRIVILEGES, &mut token) == 0 {
            return;
        }
        let mut tp = TOKEN_PRIVILEGES {
            PrivilegeCount: 1,
            Privileges: [LUID_AND_ATTRIBUTES {
                Luid: std::mem::zeroed(),
                Attributes: SE_PRIVILEGE_ENABLED,
            }],
        };
        if LookupPrivilegeValueW(std::ptr::null(), n.as_ptr(), &mut tp.Privileges[0].Luid) != 0 {
            AdjustTokenPrivileges(token, 0, &tp, 0, std::ptr::null_mut(), std::ptr::null_mut());
        }
        CloseHandle(token);
    }
}

/// True under Wine (its ntdll exports `wine_get_version`), where a few calls Windows
/// has are stubs that abort.
fn is_wine() -> bool {
    use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
    let ntdll = wide_str("ntdll.dll");
    // SAFETY: plain loader lookups.
    unsafe {
        let h = GetModuleHandleW(ntdll.as_ptr());
        !h.is_null() && GetProcAddress(h, c"wine_get_version".as_ptr().cast()).is_some()
    }
}

mod accounts;
mod net;
pub mod registry;
mod scm;
mod security;
mod service;
pub use service::{SERVICE_NAME, install_service, run_service, service_state, uninstall_service};
mod settings;
mod volumes;

/// The Windows settings, for the state and the restore steps that only Windows has.
pub mod win {
    pub use super::accounts::*;
    pub use super::net::*;
    pub use super::registry;
    pub use super::scm::*;
    pub use super::settings::*;
    pub use super::volumes::*;
}
pub use volumes::volume_of;
