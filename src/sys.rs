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

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use root::Root;

/// Runs a command of the running system and returns its stdout; the error names the
/// command and carries its stderr.
pub fn run(program: &str, args: &[&str]) -> io::Result<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("running {program} {}: {e}", args.join(" ")),
            )
        })?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
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
/// directory. Parent directories are created (0755). A symlink at the target is replaced,
/// never followed.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other(format!("{} has no parent", path.display())))?;
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other(format!("{} has no file name", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".carryover-tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = create_with_mode(&tmp, mode)?;
        f.write_all(data)?;
        set_mode(&tmp, mode)?;
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

/// Creates a directory and its parents, then fsyncs the parent so the entry is durable.
pub fn create_dir_durable(path: &Path) -> io::Result<()> {
    std::fs::create_dir_all(path)?;
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

fn create_with_mode(path: &Path, mode: u32) -> io::Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    open_mode(&mut opts, mode);
    opts.open(path)
}

/// Installs the TLS crypto provider (ring) once per process.
pub fn tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
