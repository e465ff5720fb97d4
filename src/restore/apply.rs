//! What restore steps write with: idempotent file and link installs under the target
//! root that keep a copy of anything of the new OS they replace, and a dry-run mode that
//! only says what would change.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::state::accounts;
use crate::state::identity::{self, OsRelease};
use crate::sys::Root;

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Changed,
    Unchanged,
    /// Dry run: the step would change something.
    WouldChange,
    Skipped,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Changed => "changed",
            Status::Unchanged => "unchanged",
            Status::WouldChange => "would-change",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
        }
    }
}

/// The result of one step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub status: Status,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Files that could not be restored (`path: reason`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_files: Vec<String>,
    /// What a person must look at although the step did its work (the restore ends
    /// `degraded`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attention: Vec<String>,
}

impl Outcome {
    pub fn skipped(detail: impl Into<String>) -> Outcome {
        Outcome {
            status: Status::Skipped,
            detail: detail.into(),
            warnings: Vec::new(),
            failed_files: Vec::new(),
            attention: Vec::new(),
        }
    }

    pub fn failed(detail: impl Into<String>) -> Outcome {
        Outcome {
            status: Status::Failed,
            detail: detail.into(),
            warnings: Vec::new(),
            failed_files: Vec::new(),
            attention: Vec::new(),
        }
    }
}

/// The target of a restore and the tools to change it.
pub struct Apply<'a> {
    pub root: &'a Root,
    pub snapshot_id: &'a str,
    pub dry_run: bool,
    changed: std::cell::Cell<bool>,
}

/// Where the copies of replaced files go, in-root.
pub use crate::paths::BACKUP_DIR;

impl<'a> Apply<'a> {
    pub fn new(root: &'a Root, snapshot_id: &'a str, dry_run: bool) -> Self {
        Apply {
            root,
            snapshot_id,
            dry_run,
            changed: std::cell::Cell::new(false),
        }
    }

    /// Starts a step: forgets whether anything changed.
    pub fn begin(&self) {
        self.changed.set(false);
    }

    /// Notes a change made (or, in a dry run, one that would be made) other than through
    /// the file helpers: a package installed, a volume group activated.
    pub fn mark_changed(&self) {
        self.changed.set(true);
    }

    /// The outcome of a step that did not fail: changed/unchanged (or would-change).
    pub fn finish(&self, detail: impl Into<String>, warnings: Vec<String>) -> Outcome {
        let status = match (self.changed.get(), self.dry_run) {
            (false, _) => Status::Unchanged,
            (true, true) => Status::WouldChange,
            (true, false) => Status::Changed,
        };
        Outcome {
            status,
            detail: detail.into(),
            warnings,
            failed_files: Vec::new(),
            attention: Vec::new(),
        }
    }

    /// The new OS's version of a file as it was before this snapshot's restore changed it
    /// (its first backup), else as it is.
    pub fn original(&self, abs: &str) -> Option<String> {
        crate::sys::read_opt(&self.backup_path(abs))
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .or_else(|| self.read(abs))
    }

    /// Reads a text file of the new OS (`None` when absent or unreadable).
    pub fn read(&self, abs: &str) -> Option<String> {
        crate::sys::read_opt(&self.root.follow(abs))
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    pub fn exists(&self, abs: &str) -> bool {
        std::fs::symlink_metadata(self.root.path(abs)).is_ok()
    }

    pub fn is_dir(&self, abs: &str) -> bool {
        self.root.follow(abs).is_dir()
    }

    /// True when one of `tools` is a program of the new OS.
    pub fn has_tool(&self, tools: &[&str]) -> bool {
        const BIN_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];
        tools.iter().any(|t| {
            BIN_DIRS
                .iter()
                .any(|d| self.root.follow(format!("{d}/{t}")).is_file())
        })
    }

    /// The new OS's os-release.
    pub fn os(&self) -> OsRelease {
        self.read("/etc/os-release")
            .or_else(|| self.read("/usr/lib/os-release"))
            .map(|t| identity::parse_os_release(&t))
            .unwrap_or_default()
    }

    /// A user's uid on the new OS, by name.
    pub fn uid_of(&self, name: &str) -> Option<u32> {
        let (users, _) = accounts::load(self.root);
        users.into_iter().find(|u| u.name == name).map(|u| u.uid)
    }

    /// A group's gid on the new OS, by name.
    pub fn gid_of(&self, name: &str) -> Option<u32> {
        let (_, groups) = accounts::load(self.root);
        groups.into_iter().find(|g| g.name == name).map(|g| g.gid)
    }

    /// Installs a file with content, mode and owner; a no-op when it is already so. What
    /// it replaces is copied to the backup folder first (once per snapshot).
    pub fn install(
        &self,
        abs: &str,
        content: &[u8],
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> io::Result<bool> {
        let host = self.root.path(abs);
        if let Ok(meta) = std::fs::symlink_metadata(&host)
            && meta.is_file()
            && crate::sys::mode_of(&meta) == mode
            && owner.is_none_or(|o| crate::sys::owner_of(&meta) == o)
            && std::fs::read(&host).is_ok_and(|c| c == content)
        {
            return Ok(false);
        }
        self.changed.set(true);
        if self.dry_run {
            return Ok(true);
        }
        self.backup(abs)?;
        crate::sys::write_atomic(&host, content, mode)?;
        if let Some((uid, gid)) = owner {
            crate::sys::lchown(&host, uid, gid)?;
        }
        Ok(true)
    }

    /// Replaces a file's content keeping its mode and owner (for /etc/passwd and friends).
    pub fn rewrite(&self, abs: &str, content: &str) -> io::Result<bool> {
        let host = self.root.path(abs);
        let (mode, owner) = match std::fs::metadata(&host) {
            Ok(m) => (crate::sys::mode_of(&m), Some(crate::sys::owner_of(&m))),
            Err(_) => (0o644, None),
        };
        self.install(abs, content.as_bytes(), mode, owner)
    }

    /// Makes `abs` a symlink to `target`; a no-op when it already is.
    pub fn link(&self, abs: &str, target: &str) -> io::Result<bool> {
        let host = self.root.path(abs);
        if std::fs::read_link(&host).is_ok_and(|t| t == Path::new(target)) {
            return Ok(false);
        }
        self.changed.set(true);
        if self.dry_run {
            return Ok(true);
        }
        self.backup(abs)?;
        if let Some(dir) = host.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = host.with_file_name(format!(
            ".{}.carryover-tmp-{}",
            host.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&tmp);
        crate::sys::symlink(Path::new(target), &tmp)?;
        std::fs::rename(&tmp, &host)?;
        if let Some(dir) = host.parent() {
            crate::sys::sync_dir(dir)?;
        }
        Ok(true)
    }

    /// Creates a directory (and parents) with a mode and owner, if it does not exist.
    pub fn mkdir(&self, abs: &str, mode: u32, owner: Option<(u32, u32)>) -> io::Result<bool> {
        let host = self.root.path(abs);
        if host.is_dir() {
            return Ok(false);
        }
        self.changed.set(true);
        if self.dry_run {
            return Ok(true);
        }
        std::fs::create_dir_all(&host)?;
        crate::sys::set_mode(&host, mode)?;
        if let Some((u, g)) = owner {
            crate::sys::lchown(&host, u, g)?;
        }
        Ok(true)
    }

    /// Copies what is at `abs` to the backup folder, unless a copy is there already.
    fn backup(&self, abs: &str) -> io::Result<()> {
        let host = self.root.path(abs);
        let Ok(meta) = std::fs::symlink_metadata(&host) else {
            return Ok(());
        };
        let dest = self.backup_path(abs);
        if std::fs::symlink_metadata(&dest).is_ok() {
            return Ok(());
        }
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if meta.file_type().is_symlink() {
            crate::sys::symlink(&std::fs::read_link(&host)?, &dest)
        } else if meta.is_file() {
            std::fs::copy(&host, &dest).map(|_| ())
        } else {
            Ok(())
        }
    }

    /// Where the copy of `abs` is kept.
    pub fn backup_path(&self, abs: &str) -> PathBuf {
        let rel = abs.trim_start_matches('/');
        self.root
            .path(format!("{BACKUP_DIR}/{}", self.snapshot_id))
            .join(rel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_is_idempotent_and_keeps_a_backup() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path()).unwrap();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        std::fs::write(t.path().join("etc/hostname"), "debian\n").unwrap();
        let a = Apply::new(&root, "snap1", false);
        assert!(a.install("/etc/hostname", b"web01\n", 0o644, None).unwrap());
        assert!(!a.install("/etc/hostname", b"web01\n", 0o644, None).unwrap());
        assert_eq!(
            std::fs::read_to_string(a.backup_path("/etc/hostname")).unwrap(),
            "debian\n"
        );
        assert!(a.install("/etc/hostname", b"web02\n", 0o644, None).unwrap());
        assert_eq!(
            std::fs::read_to_string(a.backup_path("/etc/hostname")).unwrap(),
            "debian\n",
            "the first original is kept"
        );
        let dry = Apply::new(&root, "snap1", true);
        dry.begin();
        assert!(dry.install("/etc/hostname", b"x\n", 0o644, None).unwrap());
        assert_eq!(dry.finish("", vec![]).status, Status::WouldChange);
        assert_eq!(
            std::fs::read_to_string(t.path().join("etc/hostname")).unwrap(),
            "web02\n"
        );
    }
}
