//! The Unix side of the platform layer: modes, owners, directory fsync and the few calls
//! that change the running system (only ever made when the root is `/`).

use std::fs::File;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

mod dir;
pub use dir::Dir;

/// The raw SMBIOS table: Linux has it as files under /sys (read under the root).
pub fn smbios_table() -> Option<Vec<u8>> {
    None
}

/// The volume of a path as Windows names it: Linux finds filesystems through the mount
/// table instead.
pub fn volume_of(_path: &Path) -> Option<(std::path::PathBuf, String, String)> {
    None
}

/// A canonical path as tools take it (nothing to change on Unix).
pub fn plain_path(p: std::path::PathBuf) -> std::path::PathBuf {
    p
}

/// How a restored file's temporary name starts (hidden, as dotfiles are).
pub const TEMP_LEAD: &str = ".";

/// The root as given: `/` is the running system.
pub fn default_root(given: &Path) -> std::path::PathBuf {
    given.to_path_buf()
}

/// The Windows service's name (no service on Linux: systemd units do its work).
pub const SERVICE_NAME: &str = "carryover";

fn no_service() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "the carryover service is for Windows; on Linux the package installs the systemd units (carryover-restore.service)",
    )
}

/// See the Windows side: there is no Windows service here.
pub fn install_service(_exe: &Path) -> io::Result<()> {
    Err(no_service())
}

/// See the Windows side: there is no Windows service here.
pub fn uninstall_service() -> io::Result<bool> {
    Err(no_service())
}

/// See the Windows side: there is no Windows service here.
pub fn service_state() -> io::Result<Option<String>> {
    Err(no_service())
}

/// See the Windows side: there is no Windows service here.
pub fn run_service(_work: fn(&dyn Fn() -> bool) -> i32) -> io::Result<()> {
    Err(no_service())
}

/// How to run an operator's hook: an executable file runs as it is; anything else is
/// not a hook.
/// Why a file that decides what carryover runs as root (a hook, a config file, their
/// folders) must not be trusted, as sshd judges its own: writable by group or others, or
/// owned by someone other than root (or the user carryover runs as).
pub fn untrusted(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    let me = nix::unistd::geteuid().as_raw();
    if m.uid() != 0 && m.uid() != me {
        return Some(format!(
            "{} is owned by uid {}, not by root",
            path.display(),
            m.uid()
        ));
    }
    if m.mode() & 0o022 != 0 {
        return Some(format!(
            "{} is writable by {} (mode {:o})",
            path.display(),
            if m.mode() & 0o002 != 0 {
                "everyone"
            } else {
                "its group"
            },
            m.mode() & 0o7777
        ));
    }
    None
}

/// A hook's environment: only what a program needs to run (`PATH`, `HOME`, the locale,
/// …), never the agent's own (an `AWS_SECRET_ACCESS_KEY` stays with the agent).
pub fn clean_env(cmd: &mut Command) {
    const KEEP: &[&str] = &[
        "HOME", "LANG", "LANGUAGE", "LC_ALL", "LOGNAME", "USER", "TERM", "TZ", "TMPDIR",
    ];
    cmd.env_clear();
    cmd.env(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    );
    for k in KEEP {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
}

pub fn hook_command(path: &Path) -> Option<Command> {
    let m = std::fs::metadata(path).ok()?;
    (m.is_file() && m.permissions().mode() & 0o111 != 0).then(|| Command::new(path))
}

/// Sets the permission bits of a path by its name — chmod(2), which FOLLOWS a symlink at
/// the last component: only for a path nobody else can put a link at (an entry the
/// caller has just checked in a folder only root writes, a file in a private folder). A
/// directory's mode is set with `set_dir_mode`, which never follows one.
pub fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Sets a directory's permission bits on the directory opened with `O_DIRECTORY |
/// O_NOFOLLOW`: a symlink (or a file) in its place is refused, never followed.
pub fn set_dir_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let d = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)?;
    d.set_permissions(std::fs::Permissions::from_mode(mode))
}

/// The permission bits of a path, without following a symlink.
pub fn mode_of(meta: &std::fs::Metadata) -> u32 {
    meta.permissions().mode() & 0o7777
}

/// Changes the owner of a path without following a symlink.
pub fn lchown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
}

/// The owner (uid, gid) of a path's metadata.
pub fn owner_of(meta: &std::fs::Metadata) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    (meta.uid(), meta.gid())
}

/// How many names a file has (a hard-linked file is another file's too).
pub fn link_count(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.nlink()
}

/// Makes a directory entry durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates a symlink.
pub fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

/// Sets the running kernel's hostname (live root only).
pub fn set_live_hostname(name: &str) -> io::Result<()> {
    nix::unistd::sethostname(name).map_err(io::Error::from)
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
    /// Bytes allocated on disk (512-byte blocks × 512).
    pub allocated: u64,
}

pub fn file_meta(m: &std::fs::Metadata) -> FileMeta {
    use std::os::unix::fs::MetadataExt;
    FileMeta {
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        size: m.size(),
        mtime: m.mtime(),
        mtime_ns: m.mtime_nsec() as u32,
        ctime: m.ctime(),
        ctime_ns: m.ctime_nsec() as u32,
        ino: m.ino(),
        dev: m.dev(),
        nlink: m.nlink(),
        rdev: m.rdev(),
        allocated: m.blocks() * 512,
    }
}

/// Is this a FIFO, character device, block device or socket?
pub fn special_kind(ft: &std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        Some("fifo")
    } else if ft.is_char_device() {
        Some("char")
    } else if ft.is_block_device() {
        Some("block")
    } else if ft.is_socket() {
        Some("socket")
    } else {
        None
    }
}

/// Sets access and modification time of a path without following a symlink.
pub fn set_times_nofollow(path: &Path, secs: i64, nsecs: u32) -> io::Result<()> {
    use nix::sys::stat::{UtimensatFlags, utimensat};
    use nix::sys::time::TimeSpec;
    let ts = TimeSpec::new(secs, nsecs as i64);
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &ts,
        &ts,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(io::Error::from)
}

/// The extended attributes of a path (not followed), names and values as bytes.
pub fn xattrs_of(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    let names = match xattr::list(path) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(nix::libc::ENOTSUP) => return Ok(out),
        Err(e) => return Err(e),
    };
    for name in names {
        if let Some(v) = xattr::get(path, &name)? {
            out.push((name.as_bytes().to_vec(), v));
        }
    }
    out.sort();
    Ok(out)
}

/// An entry whose metadata is read and set on what was opened, never by its name again:
/// opened with `O_PATH | O_NOFOLLOW`, so a symlink in its place is the symlink itself, and
/// a name swapped for a link afterwards (by a user who owns the folder) changes nothing
/// outside. Regular files and directories are reopened for real through the descriptor
/// (fchown, fchmod, fsetxattr, futimens); FIFOs and device nodes are never opened, only
/// reached through `/proc/self/fd`, which names the opened inode, as glibc's `lchmod`
/// does. A symlink's owner is set on its descriptor; its xattrs and times by name with the
/// calls that do not follow it (Linux has no descriptor calls for them), and its mode never.
pub struct Entry {
    fd: File,
    how: Handle,
    /// What a symlink's times and attributes are set through (its own name; through the
    /// opened folder's descriptor when opened in one: `Dir::entry`).
    name: std::path::PathBuf,
    /// That folder's descriptor, held while `name` goes through it.
    _at: Option<File>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Handle {
    /// A descriptor open for reading or writing: every f* call works on it.
    Open,
    /// An `O_PATH` descriptor of a FIFO or device node.
    Special,
    /// An `O_PATH` descriptor of the symlink itself.
    Link,
}

impl Entry {
    /// Opens the entry at `path` without following a symlink (nor opening a device).
    pub fn open(path: &Path) -> io::Result<Entry> {
        use std::os::unix::fs::OpenOptionsExt;
        let fd = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_PATH | nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(path)?;
        Entry::of_path_fd(fd, path.to_path_buf(), None)
    }

    /// The entry opened `O_PATH|O_NOFOLLOW` as `fd`: a regular file or directory is
    /// opened again for real through it; `at`: the folder it was opened in (by `name`).
    fn of_path_fd(fd: File, path: std::path::PathBuf, at: Option<&Dir>) -> io::Result<Entry> {
        use nix::libc::{O_CLOEXEC, O_NOCTTY, O_NONBLOCK};
        use std::os::unix::fs::OpenOptionsExt;
        let ft = fd.metadata()?.file_type();
        let (fd, how) = if ft.is_file() || ft.is_dir() {
            let real = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
                .open(proc_fd(&fd))?;
            (real, Handle::Open)
        } else if ft.is_symlink() {
            (fd, Handle::Link)
        } else {
            (fd, Handle::Special)
        };
        let (name, at) = match (how, at) {
            (Handle::Link, Some(d)) => {
                let held = d.dup()?;
                let name = proc_fd(&held).join(path.file_name().unwrap_or_default());
                (name, Some(held))
            }
            _ => (path, None),
        };
        Ok(Entry {
            fd,
            how,
            name,
            _at: at,
        })
    }

    /// A file this process created and still holds open (a temporary file).
    pub fn of_file(f: File, path: &Path) -> Entry {
        Entry {
            fd: f,
            how: Handle::Open,
            name: path.to_path_buf(),
            _at: None,
        }
    }

    /// The metadata of what was opened (a symlink's own).
    pub fn metadata(&self) -> io::Result<std::fs::Metadata> {
        self.fd.metadata()
    }

    pub fn set_owner(&self, uid: u32, gid: u32) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        if self.how == Handle::Open {
            return std::os::unix::fs::fchown(&self.fd, Some(uid), Some(gid));
        }
        // SAFETY: a valid descriptor and a NUL-terminated empty path; AT_EMPTY_PATH makes
        // the call act on the descriptor's inode (the symlink itself for a link).
        let r = unsafe {
            nix::libc::fchownat(
                self.fd.as_raw_fd(),
                c"".as_ptr(),
                uid,
                gid,
                nix::libc::AT_EMPTY_PATH | nix::libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Sets the permission bits (a symlink has none to set: refused).
    pub fn set_mode(&self, mode: u32) -> io::Result<()> {
        let perm = std::fs::Permissions::from_mode(mode);
        match self.how {
            Handle::Open => self.fd.set_permissions(perm),
            Handle::Special => std::fs::set_permissions(proc_fd(&self.fd), perm),
            Handle::Link => Err(io::Error::from(io::ErrorKind::Unsupported)),
        }
    }

    /// True when the entry already has the extended attribute with this value, or when it
    /// is not one this platform sets (as `xattr_is`).
    pub fn xattr_is(&self, name: &[u8], value: &[u8]) -> bool {
        use std::os::unix::ffi::OsStrExt;
        use xattr::FileExt as _;
        let n = std::ffi::OsStr::from_bytes(name);
        if name.starts_with(crate::data::winmeta::PREFIX) {
            return true;
        }
        let got = match self.how {
            Handle::Open => self.fd.get_xattr(n),
            Handle::Special => xattr::get_deref(proc_fd(&self.fd), n),
            Handle::Link => xattr::get(&self.name, n),
        };
        got.is_ok_and(|v| v.as_deref() == Some(value))
    }

    /// Sets one extended attribute (as `set_xattr`).
    pub fn set_xattr(&self, name: &[u8], value: &[u8]) -> io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        use xattr::FileExt as _;
        let n = std::ffi::OsStr::from_bytes(name);
        if name.starts_with(crate::data::winmeta::PREFIX) {
            return Ok(());
        }
        match self.how {
            Handle::Open => self.fd.set_xattr(n, value),
            Handle::Special => xattr::set_deref(proc_fd(&self.fd), n, value),
            Handle::Link => xattr::set(&self.name, n, value),
        }
    }

    /// Sets access and modification time.
    pub fn set_times(&self, secs: i64, nsecs: u32) -> io::Result<()> {
        use nix::sys::stat::{UtimensatFlags, futimens, utimensat};
        let ts = nix::sys::time::TimeSpec::new(secs, nsecs as i64);
        match self.how {
            Handle::Open => futimens(&self.fd, &ts, &ts).map_err(io::Error::from),
            Handle::Special => utimensat(
                nix::fcntl::AT_FDCWD,
                &proc_fd(&self.fd),
                &ts,
                &ts,
                UtimensatFlags::FollowSymlink,
            )
            .map_err(io::Error::from),
            Handle::Link => set_times_nofollow(&self.name, secs, nsecs),
        }
    }
}

/// How many folders deep `chown_beneath` goes (one descriptor held per level): a deeper
/// subtree is named once and left as it is.
const CHOWN_DEPTH: usize = 256;

/// Visits every entry below `dir` (`dir` itself included) on `dir`'s filesystem and
/// gives it the owner `visit(path, uid, gid)` returns, never by a name: each entry is
/// opened `O_PATH|O_NOFOLLOW` from its folder's descriptor, `visit` sees what that
/// descriptor's `fstat` says, and the owner is set on that same descriptor (`fchownat`
/// `AT_EMPTY_PATH`, a symlink's own owner); a folder is entered through it. An entry
/// swapped meanwhile (a folder for a symlink to `/etc`, a file for another) is at worst
/// left as it is — no owner ever lands outside the tree or on something `visit` did not
/// see. `failed` gets what could not be read or set.
pub fn chown_beneath(
    dir: &Path,
    visit: &mut super::OwnerVisit<'_>,
    failed: &mut dyn FnMut(&Path, io::Error),
) {
    use nix::fcntl::{AT_FDCWD, OFlag, openat};
    use nix::sys::stat::Mode;
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    match openat(AT_FDCWD, dir, flags | OFlag::O_DIRECTORY, Mode::empty()) {
        Ok(fd) => chown_entry(&File::from(fd), dir, None, 0, visit, failed),
        Err(e) => failed(dir, e.into()),
    }
}

/// One entry of `chown_beneath`, opened as `fd` (`O_PATH`), then what is in it; `dev`:
/// the walk's filesystem (`None` at its start: this entry's).
fn chown_entry(
    fd: &File,
    path: &Path,
    dev: Option<u64>,
    depth: usize,
    visit: &mut super::OwnerVisit<'_>,
    failed: &mut dyn FnMut(&Path, io::Error),
) {
    use nix::fcntl::{AtFlags, OFlag, openat};
    use nix::sys::stat::Mode;
    use std::os::unix::fs::MetadataExt;
    let m = match fd.metadata() {
        Ok(m) => m,
        Err(e) => return failed(path, e),
    };
    if let Some((uid, gid)) = visit(path, m.uid(), m.gid())
        && let Err(e) = nix::unistd::fchownat(
            fd,
            "",
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
            AtFlags::AT_EMPTY_PATH | AtFlags::AT_SYMLINK_NOFOLLOW,
        )
    {
        failed(path, e.into());
    }
    let dev = dev.unwrap_or(m.dev());
    if !m.is_dir() || m.dev() != dev {
        return;
    }
    if depth >= CHOWN_DEPTH {
        return failed(
            path,
            io::Error::other(format!(
                "more than {CHOWN_DEPTH} folders deep: what is below not walked"
            )),
        );
    }
    // the names first, the listing closed: one descriptor held per level below
    let mut names = Vec::new();
    match std::fs::read_dir(proc_fd(fd)) {
        Ok(rd) => {
            for entry in rd {
                match entry {
                    Ok(e) => names.push(e.file_name()),
                    Err(e) => failed(path, e),
                }
            }
        }
        Err(e) => return failed(path, e),
    }
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    for name in names {
        let child = path.join(&name);
        match openat(fd, name.as_os_str(), flags, Mode::empty()) {
            Ok(c) => chown_entry(&File::from(c), &child, Some(dev), depth + 1, visit, failed),
            // gone meanwhile: nothing to re-own
            Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => failed(&child, e.into()),
        }
    }
}

/// True when the symlink at `link`, met on the way to a data path, may be followed: it and
/// the folder holding it belong to root (or to whoever runs carryover), and nobody else
/// can write to that folder — or it is sticky, so nobody else can rename what is there. A
/// link a user planted, or one in a folder a user can write, is never followed.
pub fn may_follow(link: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid().as_raw();
    let trusted = |uid: u32| uid == 0 || uid == me;
    let (Ok(l), Some(Ok(p))) = (
        std::fs::symlink_metadata(link),
        link.parent().map(std::fs::symlink_metadata),
    ) else {
        return false;
    };
    trusted(l.uid()) && trusted(p.uid()) && (p.mode() & 0o022 == 0 || p.mode() & 0o1000 != 0)
}

/// The `/proc` name of a descriptor: it resolves to the opened inode, whatever is at the
/// entry's name now.
fn proc_fd(f: &File) -> std::path::PathBuf {
    use std::os::fd::AsRawFd;
    std::path::PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()))
}

/// True when `meta` belongs to uid:gid (nothing for `lchown` to do).
pub fn owner_matches(meta: &std::fs::Metadata, uid: u32, gid: u32) -> bool {
    owner_of(meta) == (uid, gid)
}

/// True when the permission bits of `meta` are `mode`'s (nothing for `set_mode` to do).
pub fn mode_matches(meta: &std::fs::Metadata, mode: u32) -> bool {
    mode_of(meta) == mode & 0o7777
}

/// True when a path (not followed) already has the extended attribute with this value,
/// or when the attribute is not one this platform sets (nothing for `set_xattr` to do).
pub fn xattr_is(path: &Path, name: &[u8], value: &[u8]) -> bool {
    use std::os::unix::ffi::OsStrExt;
    name.starts_with(crate::data::winmeta::PREFIX)
        || xattr::get(path, std::ffi::OsStr::from_bytes(name))
            .is_ok_and(|v| v.as_deref() == Some(value))
}

/// Sets one extended attribute on a path (not followed).
pub fn set_xattr(path: &Path, name: &[u8], value: &[u8]) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    if name.starts_with(crate::data::winmeta::PREFIX) {
        return Ok(()); // a Windows security descriptor or attributes: no meaning on Linux
    }
    xattr::set(path, std::ffi::OsStr::from_bytes(name), value)
}

/// Creates a FIFO or a device node.
pub fn make_special(path: &Path, kind: &str, mode: u32, rdev: u64) -> io::Result<()> {
    use nix::sys::stat::{Mode, SFlag, mknod};
    let perm = Mode::from_bits_truncate(mode & 0o7777);
    let r = match kind {
        "fifo" => nix::unistd::mkfifo(path, perm),
        "char" => mknod(path, SFlag::S_IFCHR, perm, rdev as nix::libc::dev_t),
        "block" => mknod(path, SFlag::S_IFBLK, perm, rdev as nix::libc::dev_t),
        other => return Err(io::Error::other(format!("cannot create a {other}"))),
    };
    r.map_err(io::Error::from)
}

/// The data regions of a file with holes (SEEK_DATA/SEEK_HOLE), or `None` when the file
/// is fully allocated (the common case, decided from the block count first).
pub fn data_extents(f: &File, meta: &FileMeta) -> io::Result<Option<Vec<(u64, u64)>>> {
    use nix::unistd::{Whence, lseek};
    if meta.allocated >= meta.size || meta.size == 0 {
        return Ok(None);
    }
    let mut out = Vec::new();
    let mut pos: i64 = 0;
    let size = meta.size as i64;
    while pos < size {
        let start = match lseek(f, pos, Whence::SeekData) {
            Ok(s) => s,
            Err(nix::errno::Errno::ENXIO) => break,
            Err(e) => return Err(e.into()),
        };
        let end = lseek(f, start, Whence::SeekHole).map_err(io::Error::from)?;
        if end > start {
            out.push((start as u64, (end - start) as u64));
        }
        pos = end;
    }
    lseek(f, 0, Whence::SeekSet).map_err(io::Error::from)?;
    Ok(Some(out))
}

/// Reads up to `buf.len()` bytes at `offset` (fewer at the end of the file).
pub fn pread(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    f.read_at(buf, offset)
}

/// A path component's bytes as the snapshot records them.
pub fn os_bytes(s: &std::ffi::OsStr) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    s.as_bytes().to_vec()
}

/// A path component from the bytes the snapshot recorded.
pub fn os_from_bytes(b: &[u8]) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(b).to_os_string()
}

/// Creates a new file exclusively, never through a symlink, with `mode` set on the open
/// file (not by the umask, not by path).
pub fn create_exclusive(path: &Path, mode: u32) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode & 0o777)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    Ok(f)
}

/// Makes one directory with `mode` set explicitly: on the directory opened without
/// following a symlink, so the umask decides nothing and a swapped-in link is refused.
pub fn mkdir_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(path)?;
    set_dir_mode(path, mode)
}

/// Creates a new file exclusively, never through a symlink, with the permission bits of
/// `mode` less the umask's (the caller checks the mode it needs and sets it when it
/// differs).
pub fn create_new_nofollow(path: &Path, mode: u32) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode & 0o777)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
}

/// True when two paths are the same file (device and inode).
pub fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.ino() == b.ino() && a.dev() == b.dev()
}

/// Flushes the dirty data and metadata of the one filesystem holding `dir` (syncfs(2)):
/// what a restore wrote there is on disk when it returns, without waiting for every other
/// filesystem's dirty pages as a global `sync()` would. `dir` is opened without following
/// a symlink.
pub fn sync_filesystem(dir: &Path) -> io::Result<()> {
    sync_opened(&open_filesystem(dir)?)
}

/// A directory opened to flush its filesystem (`sync_opened`), without following a
/// symlink.
pub fn open_filesystem(dir: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_NOFOLLOW)
        .open(dir)
}

/// Flushes the filesystem of a directory opened with `open_filesystem` (syncfs(2)).
pub fn sync_opened(d: &File) -> io::Result<()> {
    nix::unistd::syncfs(d).map_err(io::Error::from)
}

/// Starts writing a file's dirty pages to disk without waiting for them, so the
/// filesystem flush at the end of a restore finds most of the work done; durability still
/// comes from that flush (`sync_filesystem`), never from this.
pub fn start_writeback(f: &std::fs::File) {
    #[cfg(target_os = "linux")]
    let _ = sync_range(f, nix::libc::SYNC_FILE_RANGE_WRITE);
    #[cfg(not(target_os = "linux"))]
    let _ = f;
}

/// Writes a file's dirty pages to disk and waits for them (not its metadata): what was
/// written through the cache is on disk, and its blocks' allocation logged, before the
/// restore sets the file's mtime — the mark by which a rerun takes a file as in place.
pub fn write_back_and_wait(f: &File) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    return sync_range(
        f,
        nix::libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | nix::libc::SYNC_FILE_RANGE_WRITE
            | nix::libc::SYNC_FILE_RANGE_WAIT_AFTER,
    );
    #[cfg(not(target_os = "linux"))]
    f.sync_data()
}

/// `sync_file_range` over the whole file.
#[cfg(target_os = "linux")]
fn sync_range(f: &File, how: std::ffi::c_uint) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for as long as `f` is borrowed; no memory is passed.
    match unsafe { nix::libc::sync_file_range(f.as_raw_fd(), 0, 0, how) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Free bytes for an unprivileged writer on the filesystem holding `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    nix::sys::statvfs::statvfs(path)
        .ok()
        .map(|s| s.blocks_available() * s.fragment_size())
}

/// This machine's host name.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// True while a process with this id exists (also when it belongs to another user).
pub fn process_alive(pid: u32) -> bool {
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

/// Reads exactly `buf.len()` bytes at `offset`.
pub fn read_at(f: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    f.read_exact_at(buf, offset)
}

/// Looks at the entries of a tree one folder after another: each folder is opened once
/// (a tree's entries come grouped by folder) and its entries are looked at relative to
/// it, not by walking their whole path again. The last component is not followed (as
/// `symlink_metadata`).
#[derive(Default)]
pub struct FolderStat {
    dir: Option<(std::path::PathBuf, File)>,
}

impl FolderStat {
    /// The size of the regular file at `path` (`None`: something else is there).
    pub fn file_size(&mut self, path: &Path) -> io::Result<Option<u64>> {
        use nix::sys::stat::{SFlag, fstatat};
        use std::os::unix::fs::OpenOptionsExt;
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            let m = std::fs::symlink_metadata(path)?;
            return Ok(m.is_file().then_some(m.len()));
        };
        let d = match &mut self.dir {
            Some((p, d)) if p == parent => d,
            dir => {
                *dir = None;
                let d = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_PATH | nix::libc::O_CLOEXEC)
                    .open(parent)?;
                &dir.insert((parent.to_path_buf(), d)).1
            }
        };
        let st = fstatat(d, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)?;
        let regular =
            SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFREG;
        Ok(regular.then_some(st.st_size as u64))
    }
}

/// Reads exactly `len` bytes at `offset` into `buf` (its content replaced), straight into
/// its spare capacity: a buffer of megabytes is not cleared first only to be overwritten.
pub fn read_at_into(f: &File, buf: &mut Vec<u8>, len: usize, offset: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    buf.clear();
    buf.reserve(len);
    while buf.len() < len {
        let done = buf.len();
        let want = len - done;
        // SAFETY: the destination is the vector's spare capacity (at least `want` bytes,
        // reserved above); pread writes at most `want` bytes there, and only the bytes it
        // reports written are added to the vector's length.
        let n = unsafe {
            nix::libc::pread(
                f.as_raw_fd(),
                buf.as_mut_ptr().add(done).cast(),
                want,
                (offset + done as u64) as nix::libc::off_t,
            )
        };
        match n {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            // SAFETY: pread initialised these `n` bytes (n ≤ want)
            n => unsafe { buf.set_len(done + n as usize) },
        }
    }
    Ok(())
}

/// The alignment of a read that bypasses the page cache (offset, length and memory): a
/// page, a multiple of every device's logical block size in use.
const DIRECT_ALIGN: usize = 4096;
/// The largest read around the page cache (a store's ranges are a few MiB).
const MAX_DIRECT: usize = 1 << 30;

/// Opens a regular file of the store to read, never through a symlink and never waiting
/// (a FIFO planted in its place would block an open until a writer came): anything but a
/// regular file is refused. `direct`: around the page cache (`O_DIRECT`; `Unsupported`
/// where the filesystem cannot: tmpfs, some network filesystems).
pub fn open_store_file(path: &Path, direct: bool) -> io::Result<File> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file (planted in the store?)",
        ));
    }
    // a regular file: reads block as usual (and go around the cache where asked)
    let flags = if direct {
        OFlag::O_DIRECT
    } else {
        OFlag::empty()
    };
    match fcntl(&f, FcntlArg::F_SETFL(flags)) {
        Ok(_) => Ok(f),
        Err(e) if direct && e == nix::errno::Errno::EINVAL => {
            Err(io::Error::new(io::ErrorKind::Unsupported, e))
        }
        Err(e) => Err(e.into()),
    }
}

/// Reads `len` bytes at `offset` from a file opened with `open_store_file(.., true)` into `buf` (its
/// content replaced) and returns where they start in it: the read covers whole aligned
/// blocks, into an aligned place of the buffer. The disk's data comes into the buffer
/// without a copy through the page cache (a restore reads each byte of the store once:
/// caching it only costs memory and a copy). `InvalidInput` when the file cannot be read
/// that way after all (the caller reads it through the cache).
pub fn read_direct_into(f: &File, buf: &mut Vec<u8>, len: usize, offset: u64) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let from = offset & !(DIRECT_ALIGN as u64 - 1);
    let shift = (offset - from) as usize;
    // a length no store has (a range is megabytes): refused, never a wrapped size
    let (need, total) = match shift.checked_add(len).filter(|n| *n <= MAX_DIRECT) {
        Some(need) => (need, need.div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN),
        None => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a read too large",
            ));
        }
    };
    buf.clear();
    buf.reserve(total + DIRECT_ALIGN);
    let pad = buf.as_ptr().align_offset(DIRECT_ALIGN);
    if pad > DIRECT_ALIGN {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    // the bytes before the aligned place are in the vector's length too: cleared, never
    // left as they were (uninitialised, or another range's)
    // SAFETY: `pad` ≤ DIRECT_ALIGN bytes, within the capacity reserved above
    unsafe { std::ptr::write_bytes(buf.as_mut_ptr(), 0, pad) };
    let mut done = 0usize;
    while done < need {
        // SAFETY: the destination is inside the vector's spare capacity (`pad + total`
        // bytes are reserved, `done < total`); pread writes at most `total - done` bytes
        // there, and only bytes it reported written are ever added to the length.
        let n = unsafe {
            nix::libc::pread(
                f.as_raw_fd(),
                buf.as_mut_ptr().add(pad + done).cast(),
                total - done,
                (from + done as u64) as nix::libc::off_t,
            )
        };
        match n {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n if n < 0 => {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(nix::libc::EINTR) => continue,
                    Some(nix::libc::EINVAL) => return Err(io::ErrorKind::InvalidInput.into()),
                    _ => return Err(e),
                }
            }
            n => {
                done += n as usize;
                // a short read ends at the end of the file (unaligned: no read can follow)
                if !done.is_multiple_of(DIRECT_ALIGN) && done < need {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
        }
    }
    // SAFETY: pread initialised `done` bytes from `pad` on (pad + done ≤ the capacity)
    unsafe { buf.set_len(pad + done) };
    Ok(pad + shift)
}

/// A second descriptor of the open file `f` that writes past the page cache (`O_DIRECT`),
/// for the large contents of a restore: reopened through `/proc/self/fd` (the kernel's
/// own link to that open file, never a name in a folder someone else could swap), checked
/// to be the same inode; `None` where the filesystem has no direct I/O or `/proc` is not
/// mounted (the content then goes through the cache).
pub fn reopen_direct(f: &File) -> Option<File> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let d = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_DIRECT | nix::libc::O_NOCTTY)
            .open(proc_fd(f))
            .ok()?;
        let (a, b) = (d.metadata().ok()?, f.metadata().ok()?);
        (a.is_file() && (a.dev(), a.ino()) == (b.dev(), b.ino())).then_some(d)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = f;
        None
    }
}

/// Reserves the blocks of `len` bytes at `offset` of a file being restored (Linux
/// `fallocate`; the size grows to cover them): the large content written there directly
/// then overwrites blocks the file has (several writers of one file at once, without
/// each taking the inode's lock to allocate). Best effort: where the filesystem cannot,
/// the writes allocate as they go.
pub fn preallocate(f: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    if let (Ok(o), Ok(l)) = (i64::try_from(offset), i64::try_from(len))
        && l > 0
    {
        let _ = nix::fcntl::fallocate(f, nix::fcntl::FallocateFlags::empty(), o, l);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (f, offset, len);
}

/// Writes all of `buf` at `offset`.
pub fn write_at(f: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    f.write_all_at(buf, offset)
}

/// Starts a command in its own process group, so a timeout can stop all it started.
pub fn own_process_group(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
}

/// Kills a process group (a hook that ran past its timeout, with its children).
pub fn kill_group(pid: u32) {
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

#[cfg(test)]
mod create_tests {
    use super::*;

    /// Owners move by descriptor: a folder swapped for a symlink to a folder outside
    /// right after it was looked at (done here from inside `visit`, the worst moment) is
    /// walked as what was opened; nothing outside changes owner; a symlink's own owner
    /// moves, never its target's.
    #[test]
    fn owners_move_only_on_what_was_opened() {
        use std::os::unix::fs::MetadataExt;
        if !nix::unistd::geteuid().is_root() {
            return; // owners to move: root's
        }
        let t = tempfile::tempdir().unwrap();
        let (tree, outside) = (t.path().join("tree"), t.path().join("outside"));
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::fs::create_dir(&outside).unwrap();
        for f in [tree.join("a"), tree.join("sub/b"), outside.join("b")] {
            std::fs::write(&f, "x").unwrap();
            std::os::unix::fs::lchown(&f, Some(1000), Some(1000)).unwrap();
        }
        std::os::unix::fs::lchown(tree.join("sub"), Some(1000), Some(1000)).unwrap();
        std::os::unix::fs::symlink(outside.join("b"), tree.join("link")).unwrap();
        std::os::unix::fs::lchown(tree.join("link"), Some(1000), Some(1000)).unwrap();
        std::fs::write(outside.join("c"), "only outside").unwrap();
        let mut seen = Vec::new();
        let mut visit = |p: &Path, uid: u32, gid: u32| {
            seen.push(p.to_path_buf());
            if p == tree.join("sub") {
                std::fs::rename(tree.join("sub"), tree.join("moved")).unwrap();
                std::os::unix::fs::symlink(&outside, tree.join("sub")).unwrap();
            }
            (uid == 1000).then_some((2000, gid + 1))
        };
        let mut errors = Vec::new();
        chown_beneath(&tree, &mut visit, &mut |p, e| {
            errors.push(format!("{}: {e}", p.display()))
        });
        assert!(errors.is_empty(), "{errors:?}");
        let owner = |p: &Path| {
            let m = std::fs::symlink_metadata(p).unwrap();
            (m.uid(), m.gid())
        };
        assert_eq!(owner(&tree.join("a")), (2000, 1001));
        assert_eq!(owner(&tree.join("moved")), (2000, 1001));
        assert_eq!(
            owner(&tree.join("moved/b")),
            (2000, 1001),
            "walked as opened"
        );
        assert_eq!(owner(&tree.join("link")), (2000, 1001), "the link itself");
        assert_eq!(owner(&outside.join("b")), (1000, 1000), "nothing outside");
        assert!(seen.contains(&tree.join("sub/b")), "{seen:?}");
        assert!(
            !seen.contains(&tree.join("sub/c")),
            "never listed by name: {seen:?}"
        );
    }

    /// A tree deeper than the walk goes is named once, not walked below, and the rest
    /// is done.
    #[test]
    fn a_tree_too_deep_is_named_once() {
        let t = tempfile::tempdir().unwrap();
        let mut deep = t.path().join("tree");
        for _ in 0..CHOWN_DEPTH + 5 {
            deep.push("d");
        }
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(t.path().join("tree/top"), "x").unwrap();
        let mut seen = 0usize;
        let mut errors = Vec::new();
        chown_beneath(
            &t.path().join("tree"),
            &mut |_, _, _| {
                seen += 1;
                None
            },
            &mut |p, e| errors.push((p.to_path_buf(), e.to_string())),
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].1.contains("folders deep"), "{errors:?}");
        // the top folder, `top`, and CHOWN_DEPTH folders below it
        assert_eq!(seen, CHOWN_DEPTH + 2);
    }

    /// What a health check sees, folder by folder: a file's size; a link (never followed),
    /// a folder, nothing — each for what it is.
    #[test]
    fn folder_stat_sees_each_entry_as_symlink_metadata_does() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        std::fs::create_dir_all(a.join("sub")).unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(a.join("f"), "12345").unwrap();
        std::fs::write(b.join("f"), "1").unwrap();
        std::os::unix::fs::symlink(a.join("f"), b.join("link")).unwrap();
        let mut s = FolderStat::default();
        assert_eq!(s.file_size(&a.join("f")).unwrap(), Some(5));
        assert_eq!(s.file_size(&a.join("sub")).unwrap(), None);
        assert!(s.file_size(&a.join("gone")).is_err());
        assert_eq!(s.file_size(&b.join("f")).unwrap(), Some(1));
        assert_eq!(s.file_size(&b.join("link")).unwrap(), None);
        assert_eq!(s.file_size(&a.join("f")).unwrap(), Some(5));
        assert!(s.file_size(&t.path().join("none/f")).is_err());
    }

    #[test]
    fn an_exclusive_create_never_follows_a_planted_link() {
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let planted = t.path().join(".x.carryover-tmp-1");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        assert!(create_exclusive(&planted, 0o600).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        // and the mode is what was asked for, whatever the umask
        let f = t.path().join("f");
        drop(create_exclusive(&f, 0o644).unwrap());
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let d = t.path().join("a/b");
        crate::sys::create_dirs(&d, 0o755).unwrap();
        assert_eq!(
            std::fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o755
        );
    }

    #[test]
    fn an_entry_sets_metadata_on_what_was_opened_never_through_a_link() {
        let t = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let victim = t.path().join("victim");
        std::fs::write(&victim, "x").unwrap();
        set_mode(&victim, 0o600).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        // the link itself: no mode to set, times and owner on the link, not its target
        let e = Entry::open(&link).unwrap();
        assert!(e.metadata().unwrap().file_type().is_symlink());
        assert!(e.set_mode(0o4755).is_err());
        e.set_owner(
            owner_of(&e.metadata().unwrap()).0,
            owner_of(&e.metadata().unwrap()).1,
        )
        .unwrap();
        e.set_times(1_000_000, 0).unwrap();
        assert_ne!(
            file_meta(&std::fs::metadata(&victim).unwrap()).mtime,
            1_000_000
        );
        assert_eq!(mode(&victim), 0o600);
        // a file opened, then its name swapped for a link: the opened file changes
        let f = t.path().join("f");
        std::fs::write(&f, "").unwrap();
        let e = Entry::open(&f).unwrap();
        std::fs::rename(&f, t.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(&victim, &f).unwrap();
        e.set_mode(0o4755).unwrap();
        e.set_times(1_000_000, 0).unwrap();
        assert_eq!(mode(&victim), 0o600);
        assert_eq!(mode(&t.path().join("moved")), 0o4755);
        assert_eq!(e.metadata().unwrap().permissions().mode() & 0o7777, 0o4755);
    }

    #[test]
    fn a_directory_mode_is_never_set_through_a_link() {
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim");
        std::fs::create_dir(&victim).unwrap();
        set_mode(&victim, 0o755).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(set_dir_mode(&link, 0o700).is_err());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&victim), 0o755);
        set_dir_mode(&victim, 0o700).unwrap();
        assert_eq!(mode(&victim), 0o700);
    }
}
