//! The platform layer: every call that touches the filesystem or the running system in a
//! platform-specific way lives here, so the logic above it stays portable and testable.

pub mod root;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::*;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::*;

use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use root::Root;

/// Runs a program (stdin closed, `env` added) and returns its output; the error names the
/// program when it cannot be started.
fn output(program: &str, args: &[&str], env: &[(&str, &str)]) -> io::Result<std::process::Output> {
    std::process::Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("running {program} {}: {e}", args.join(" ")),
            )
        })
}

/// Runs a command of the running system and returns its stdout; the error names the
/// command and carries its stderr.
pub fn run(program: &str, args: &[&str]) -> io::Result<String> {
    run_env(program, args, &[])
}

/// Runs a program with extra environment variables (`DEBIAN_FRONTEND=noninteractive`);
/// its stdout, or an error naming the program and the tail of its stderr.
pub fn run_env(program: &str, args: &[&str], env: &[(&str, &str)]) -> io::Result<String> {
    let out = output(program, args, env)?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.trim().lines().rev().take(8).collect();
        return Err(io::Error::other(format!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a program whose exit status is itself an answer (`rpm -V` exits 1 when a file
/// differs): its stdout whatever the status, an error only when it cannot be run.
pub fn run_any(program: &str, args: &[&str]) -> io::Result<String> {
    Ok(String::from_utf8_lossy(&output(program, args, &[])?.stdout).into_owned())
}

/// Opens a file to append to, created with `mode` when absent, never through a symlink.
pub fn open_append(path: &Path, mode: u32) -> io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(mode).custom_flags(nix::libc::O_NOFOLLOW);
    }
    #[cfg(not(unix))]
    let _ = mode;
    o.open(path)
}

/// What `chown_beneath` asks of each entry: from its path, uid and gid, the owner to give
/// it (`None`: left as it is).
pub type OwnerVisit<'a> = dyn FnMut(&Path, u32, u32) -> Option<(u32, u32)> + 'a;

/// Opens (or creates, with `mode`) a file to hold a lock on, never through a symlink and
/// never waiting (a FIFO at its name); anything but a regular file is refused. Its
/// content is left as it is.
pub fn open_lock(path: &Path, mode: u32) -> io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(mode)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let f = o.open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok(f)
}

/// This boot's id (Linux: `/proc/sys/kernel/random/boot_id`, a UUID new at every boot;
/// `None` elsewhere or when it cannot be read). Tells "before this boot" without the
/// wall clock, which can step.
pub fn boot_id() -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let id = text.trim();
        (id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
            .then(|| id.to_string())
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// When the process `pid` started (`None`: no such process, or the system does not say),
/// from sysinfo on every platform: in whole seconds.
pub fn process_started(pid: u32) -> Option<std::time::SystemTime> {
    let mut sys = sysinfo::System::new().ok()?;
    let pid = sysinfo::Pid::from_u32(pid);
    sys.refresh_processes(sysinfo::ProcessesToUpdate::Some(&[pid]), false);
    let secs = sys.process(pid)?.start_time();
    (secs > 0).then(|| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

/// Reads a file, `Ok(None)` when it does not exist.
pub fn read_opt(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.raw_os_error() == Some(20) => Ok(None), // ENOTDIR: a parent is a file
        Err(e) => Err(e),
    }
}

/// Writes a file so that a reader (or a crash) sees either the old or the new content:
/// a temporary file in the same directory, fsync, rename over the target, fsync the
/// directory. Parent directories are created (0755, whatever the umask). The temporary
/// is created exclusively and never through a symlink (one planted at its name makes the
/// write fail, it never redirects it), its mode set on the open file; a symlink at the
/// target is replaced, never followed.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other(format!("{} has no parent", path.display())))?;
    create_dirs(dir, 0o755)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other(format!("{} has no file name", path.display())))?;
    let tmp = dir.join(temp_name(name));
    let result = (|| {
        let mut f = create_exclusive(&tmp, mode)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))
}

/// A fresh temporary name beside `name`: `.NAME.carryover-tmp-PID-RANDOM`.
pub fn temp_name(name: &std::ffi::OsStr) -> std::ffi::OsString {
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(format!(
        ".carryover-tmp-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    tmp
}

/// Creates a directory and every missing parent, each with `mode` set explicitly (the
/// umask decides nothing). An existing directory is left as it is.
pub fn create_dirs(path: &Path, mode: u32) -> io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        create_dirs(parent, mode)?;
    }
    match mkdir_mode(path, mode) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        r => r,
    }
}

impl Dir {
    /// `create_new`, but a file left at `name` (a temporary one of a run that stopped, or
    /// anything planted there: removed, never followed) is removed first.
    pub fn create_replacing(&self, name: &std::ffi::OsStr, mode: u32) -> io::Result<std::fs::File> {
        match self.create_new(name, mode) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.remove_file(name)?;
                self.create_new(name, mode)
            }
            r => r,
        }
    }
}

/// The error of a hard link's target that is not the file the restore wrote
/// (`Dir::link_beneath`).
pub fn not_the_file_restored() -> io::Error {
    io::Error::other(
        "the file to link to is not the one restored (another owner, size or time); refused",
    )
}

/// Creates a directory and its parents (0700: the store's and the agent's own), then
/// fsyncs the parent so the entry is durable.
pub fn create_dir_durable(path: &Path) -> io::Result<()> {
    create_dirs(path, 0o700)?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// The temporary-file siblings `write_atomic` leaves behind when killed mid-write.
pub fn is_temp_name(name: &str) -> bool {
    (name.starts_with('.') || name.starts_with(TEMP_LEAD)) && name.contains(".carryover-tmp-")
}

/// All regular entries of a directory, sorted by name; an absent directory is empty.
pub fn list_dir(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) if e.raw_os_error() == Some(20) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in rd {
        out.push(entry?.path());
    }
    out.sort();
    Ok(out)
}

/// Installs the TLS crypto provider (ring) once per process.
pub fn tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
