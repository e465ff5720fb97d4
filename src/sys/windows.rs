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

use windows_sys::Win32::Foundation::{CloseHandle, STILL_ACTIVE};
use windows_sys::Win32::Storage::FileSystem::{
    FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAG_OPEN_REPARSE_POINT, GetDiskFreeSpaceExW,
};
use windows_sys::Win32::System::SystemInformation::{
    ComputerNameDnsHostname, ComputerNamePhysicalDnsHostname, GetComputerNameExW,
    SetComputerNameExW,
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

pub(super) fn open_mode(_opts: &mut std::fs::OpenOptions, _mode: u32) {}

/// Windows has no permission bits: a mode without any write bit sets the read-only
/// attribute, any other clears it. (Access control is by security descriptor.)
pub fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    let mut p = std::fs::metadata(path)?.permissions();
    p.set_readonly(mode & 0o222 == 0);
    std::fs::set_permissions(path, p)
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

pub fn owner_of(_meta: &std::fs::Metadata) -> (u32, u32) {
    (0, 0)
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

/// Extended attributes are not captured on Windows.
pub fn xattrs_of(_path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    Ok(Vec::new())
}

pub fn set_xattr(_path: &Path, _name: &[u8], _value: &[u8]) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "extended attributes are not restored on Windows",
    ))
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
pub fn create_new_nofollow(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)
}

/// File identity is not available from stable std on Windows: never assumed equal.
pub fn same_file(_a: &std::fs::Metadata, _b: &std::fs::Metadata) -> bool {
    false
}

/// Windows flushes each file as it is closed after `sync_all`; nothing global to do.
pub fn sync_all_filesystems() {}

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
    let mut buf = [0u16; 256];
    let mut len = buf.len() as u32;
    // SAFETY: `buf` has `len` UTF-16 units of room.
    let ok = unsafe { GetComputerNameExW(ComputerNameDnsHostname, buf.as_mut_ptr(), &mut len) };
    if ok == 0 {
        return std::env::var("COMPUTERNAME").unwrap_or_default();
    }
    String::from_utf16_lossy(&buf[..len as usize])
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

use crate::state::windows::{AdapterDns, WinService};

/// A NUL-terminated UTF-16 string.
///
/// # Safety
/// `p` is null or points to a NUL-terminated UTF-16 string.
unsafe fn from_wide(p: *const u16) -> String {
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

/// The DNS servers and suffix of each adapter (GetAdaptersAddresses).
pub fn dns_by_adapter() -> io::Result<Vec<AdapterDns>> {
    use windows_sys::Win32::NetworkManagement::IpHelper::{
        GAA_FLAG_SKIP_ANYCAST, GAA_FLAG_SKIP_MULTICAST, GAA_FLAG_SKIP_UNICAST,
        GetAdaptersAddresses, IP_ADAPTER_ADDRESSES_LH,
    };
    use windows_sys::Win32::Networking::WinSock::{
        AF_INET, AF_INET6, AF_UNSPEC, SOCKADDR_IN, SOCKADDR_IN6,
    };
    let flags = GAA_FLAG_SKIP_UNICAST | GAA_FLAG_SKIP_ANYCAST | GAA_FLAG_SKIP_MULTICAST;
    let mut size: u32 = 16 * 1024;
    let mut buf: Vec<u64> = Vec::new();
    for _ in 0..4 {
        buf = vec![0u64; (size as usize).div_ceil(8)];
        // SAFETY: `buf` has `size` bytes, 8-aligned.
        let r = unsafe {
            GetAdaptersAddresses(
                AF_UNSPEC as u32,
                flags,
                std::ptr::null(),
                buf.as_mut_ptr() as *mut IP_ADAPTER_ADDRESSES_LH,
                &mut size,
            )
        };
        match r {
            0 => break,
            111 => continue, // ERROR_BUFFER_OVERFLOW: `size` says how much
            232 => return Ok(Vec::new()), // ERROR_NO_DATA: no adapters
            e => return Err(io::Error::from_raw_os_error(e as i32)),
        }
    }
    let mut out = Vec::new();
    let mut p = buf.as_ptr() as *const IP_ADAPTER_ADDRESSES_LH;
    // SAFETY: the list and its strings live in `buf`, as GetAdaptersAddresses built them.
    unsafe {
        while !p.is_null() {
            let a = &*p;
            let mut servers = Vec::new();
            let mut d = a.FirstDnsServerAddress;
            while !d.is_null() {
                let sa = (*d).Address.lpSockaddr;
                if !sa.is_null() {
                    match (*sa).sa_family {
                        AF_INET => {
                            let v4 = &*(sa as *const SOCKADDR_IN);
                            let b = v4.sin_addr.S_un.S_addr.to_ne_bytes();
                            servers.push(std::net::Ipv4Addr::from(b).to_string());
                        }
                        AF_INET6 => {
                            let v6 = &*(sa as *const SOCKADDR_IN6);
                            servers.push(std::net::Ipv6Addr::from(v6.sin6_addr.u.Byte).to_string());
                        }
                        _ => {}
                    }
                }
                d = (*d).Next;
            }
            let suffix = from_wide(a.DnsSuffix);
            out.push(AdapterDns {
                adapter: from_wide(a.FriendlyName),
                servers,
                suffix: (!suffix.is_empty()).then_some(suffix),
            });
            p = a.Next;
        }
    }
    Ok(out)
}

/// Every Win32 service with its start type, binary and account.
pub fn services() -> io::Result<Vec<WinService>> {
    use windows_sys::Win32::System::Services::{
        CloseServiceHandle, ENUM_SERVICE_STATUS_PROCESSW, EnumServicesStatusExW, OpenSCManagerW,
        OpenServiceW, QUERY_SERVICE_CONFIGW, QueryServiceConfigW, SC_ENUM_PROCESS_INFO,
        SC_MANAGER_CONNECT, SC_MANAGER_ENUMERATE_SERVICE, SERVICE_QUERY_CONFIG, SERVICE_RUNNING,
        SERVICE_STATE_ALL, SERVICE_WIN32,
    };
    // SAFETY: plain SCM calls; buffers are sized as the SCM asks and outlive the reads;
    // every handle opened is closed.
    unsafe {
        let scm = OpenSCManagerW(
            std::ptr::null(),
            std::ptr::null(),
            SC_MANAGER_CONNECT | SC_MANAGER_ENUMERATE_SERVICE,
        );
        if scm.is_null() {
            return Err(io::Error::last_os_error());
        }
        let mut out = Vec::new();
        let mut resume = 0u32;
        loop {
            let (mut needed, mut count) = (0u32, 0u32);
            let mut buf = vec![0u64; 8 * 1024];
            let ok = EnumServicesStatusExW(
                scm,
                SC_ENUM_PROCESS_INFO,
                SERVICE_WIN32,
                SERVICE_STATE_ALL,
                buf.as_mut_ptr() as *mut u8,
                (buf.len() * 8) as u32,
                &mut needed,
                &mut count,
                &mut resume,
                std::ptr::null(),
            );
            let more = ok == 0 && io::Error::last_os_error().raw_os_error() == Some(234);
            if ok == 0 && !more {
                let e = io::Error::last_os_error();
                CloseServiceHandle(scm);
                return Err(e);
            }
            let list = std::slice::from_raw_parts(
                buf.as_ptr() as *const ENUM_SERVICE_STATUS_PROCESSW,
                count as usize,
            );
            for s in list {
                let name = from_wide(s.lpServiceName);
                let mut svc = WinService {
                    display_name: from_wide(s.lpDisplayName),
                    start_type: String::new(),
                    binary_path: String::new(),
                    account: String::new(),
                    running: s.ServiceStatusProcess.dwCurrentState == SERVICE_RUNNING,
                    name,
                };
                let w = wide(std::ffi::OsStr::new(&svc.name));
                let h = OpenServiceW(scm, w.as_ptr(), SERVICE_QUERY_CONFIG);
                if !h.is_null() {
                    let mut cfg = vec![0u64; 1024];
                    let mut need = 0u32;
                    if QueryServiceConfigW(
                        h,
                        cfg.as_mut_ptr() as *mut QUERY_SERVICE_CONFIGW,
                        (cfg.len() * 8) as u32,
                        &mut need,
                    ) != 0
                    {
                        let c = &*(cfg.as_ptr() as *const QUERY_SERVICE_CONFIGW);
                        svc.start_type = match c.dwStartType {
                            0 => "boot",
                            1 => "system",
                            2 => "auto",
                            3 => "demand",
                            4 => "disabled",
                            _ => "unknown",
                        }
                        .into();
                        svc.binary_path = from_wide(c.lpBinaryPathName);
                        svc.account = from_wide(c.lpServiceStartName);
                    }
                    CloseServiceHandle(h);
                }
                out.push(svc);
            }
            if !more {
                break;
            }
        }
        CloseServiceHandle(scm);
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}
