//! What restore steps write with: idempotent file and link installs under the target
//! root that keep a copy of anything of the new OS they replace, and a dry-run mode that
//! only says what would change.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Problem;
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
    /// Files that could not be restored.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "crate::error::problem_lines"
    )]
    pub failed_files: Vec<Problem>,
    /// What a person must look at although the step did its work (the restore ends
    /// `degraded`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attention: Vec<String>,
    /// What changed (or would change), old → new: `/etc/hostname: ecs-1a2b → web01`,
    /// `/etc/hosts: + 10.1.2.3 db01`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
}

impl Outcome {
    pub fn skipped(detail: impl Into<String>) -> Outcome {
        Outcome {
            status: Status::Skipped,
            detail: detail.into(),
            warnings: Vec::new(),
            failed_files: Vec::new(),
            attention: Vec::new(),
            changes: Vec::new(),
        }
    }

    pub fn failed(detail: impl Into<String>) -> Outcome {
        Outcome {
            status: Status::Failed,
            detail: detail.into(),
            warnings: Vec::new(),
            failed_files: Vec::new(),
            attention: Vec::new(),
            changes: Vec::new(),
        }
    }
}

/// The target of a restore and the tools to change it.
pub struct Apply<'a> {
    pub root: &'a Root,
    pub snapshot_id: &'a str,
    pub dry_run: bool,
    /// The operator's `[restore]` settings.
    pub options: crate::restore::Options,
    changed: std::cell::Cell<bool>,
    /// A dry run's writes, so that later steps see what earlier ones would have done
    /// (the accounts a cron step needs, the unit files enable-units links).
    planned: std::cell::RefCell<std::collections::HashMap<String, Planned>>,
    /// The current step's changes, old → new, for the report.
    changes: std::cell::RefCell<Vec<String>>,
    /// What the current step left running, to be waited for before it is taken as done
    /// (`finish_later`).
    pending: std::cell::RefCell<Vec<Pending>>,
}

/// Work a step left running; what could not be done.
type Pending = Box<dyn FnOnce() -> Vec<Problem>>;

/// What a dry run would have put at a path.
#[derive(Debug, Clone)]
enum Planned {
    File(Vec<u8>),
    Link(String),
    Dir,
    /// Removed.
    Gone,
}

/// How many changed lines of one file the report lists.
const MAX_LINES_SHOWN: usize = 20;

/// Where the copies of replaced files go, in-root.
pub use crate::paths::BACKUP_DIR;

impl<'a> Apply<'a> {
    pub fn new(root: &'a Root, snapshot_id: &'a str, dry_run: bool) -> Self {
        Apply {
            root,
            snapshot_id,
            dry_run,
            options: Default::default(),
            changed: std::cell::Cell::new(false),
            planned: Default::default(),
            changes: Default::default(),
            pending: Default::default(),
        }
    }

    /// Leaves `wait` to the runner: it is called after the step's check and before the
    /// step is logged or journaled; what it returns fails the step. (The data step's final
    /// flush runs while its check looks at every file.)
    pub fn finish_later(&self, wait: impl FnOnce() -> Vec<Problem> + 'static) {
        self.pending.borrow_mut().push(Box::new(wait));
    }

    /// Waits for what the step left running (`finish_later`); what could not be done.
    pub fn finish_pending(&self) -> Vec<Problem> {
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        pending.into_iter().flat_map(|wait| wait()).collect()
    }

    /// The same target with the operator's `[restore]` settings.
    pub fn with_options(mut self, options: crate::restore::Options) -> Self {
        self.options = options;
        self
    }

    /// Starts a step: forgets whether anything changed.
    pub fn begin(&self) {
        self.changed.set(false);
        self.changes.borrow_mut().clear();
    }

    /// Notes one change for the report (`/etc/hostname: ecs-1a2b → web01`).
    pub fn note_change(&self, what: impl Into<String>) {
        self.changes.borrow_mut().push(what.into());
    }

    fn planned(&self, abs: &str) -> Option<Planned> {
        self.planned.borrow().get(abs).cloned()
    }

    fn plan(&self, abs: &str, p: Planned) {
        if self.dry_run {
            self.planned.borrow_mut().insert(abs.to_string(), p);
        }
    }

    /// A file's current bytes: what a dry run planned for it, else what is on disk.
    fn current_bytes(&self, abs: &str) -> Option<Vec<u8>> {
        match self.planned(abs) {
            Some(Planned::File(b)) => Some(b),
            Some(_) => None,
            None => crate::sys::read_opt(&self.root.follow(abs)).ok().flatten(),
        }
    }

    /// Notes what replacing `old` with `new` at `abs` changes: one-line files as
    /// `old → new`, others line by line (`+ line`, `- line`); private files only by size.
    fn note_file_change(&self, abs: &str, old: Option<&[u8]>, new: &[u8], mode: u32) {
        // private as capture judges it: not readable by others, a key by its name or its
        // content (its lines never reach a report, the orchestrator or a page)
        let key_block = |b: &[u8]| String::from_utf8_lossy(b).contains("PRIVATE KEY");
        let private = mode & 0o004 == 0
            || ["/etc/shadow", "/etc/gshadow"].contains(&abs)
            || abs.contains("token")
            || abs.ends_with(".key")
            || abs.ends_with(".pem")
            || key_block(new)
            || old.is_some_and(key_block);
        let text = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_string);
        let (old_t, new_t) = (old.and_then(text), text(new));
        match (private, old_t, new_t) {
            (true, _, _) | (false, _, None) => self.note_change(match old {
                Some(_) => format!("{abs}: replaced ({} bytes)", new.len()),
                None => format!("{abs}: created ({} bytes)", new.len()),
            }),
            (false, old_t, Some(new_t)) => {
                let old_t = old_t.unwrap_or_default();
                let (ol, nl): (Vec<&str>, Vec<&str>) =
                    (old_t.lines().collect(), new_t.lines().collect());
                if ol.len() <= 1 && nl.len() <= 1 {
                    let o = ol.first().copied().unwrap_or("(none)");
                    let n = nl.first().copied().unwrap_or("(empty)");
                    self.note_change(format!("{abs}: {o} → {n}"));
                    return;
                }
                let added: Vec<&&str> = nl.iter().filter(|l| !ol.contains(l)).collect();
                let removed: Vec<&&str> = ol.iter().filter(|l| !nl.contains(l)).collect();
                let total = added.len() + removed.len();
                for l in removed.iter().take(MAX_LINES_SHOWN) {
                    self.note_change(format!("{abs}: - {l}"));
                }
                for l in added
                    .iter()
                    .take(MAX_LINES_SHOWN.saturating_sub(removed.len()))
                {
                    self.note_change(format!("{abs}: + {l}"));
                }
                if total > MAX_LINES_SHOWN {
                    self.note_change(format!(
                        "{abs}: … {} more changed lines",
                        total - MAX_LINES_SHOWN
                    ));
                }
                if total == 0 {
                    self.note_change(format!("{abs}: mode or owner set"));
                }
            }
        }
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
            changes: self.changes.borrow_mut().drain(..).collect(),
        }
    }

    /// The new OS's version of a file as it was before this snapshot's restore changed it
    /// (its first backup), else as it is.
    pub fn original(&self, abs: &str) -> Option<String> {
        crate::sys::read_opt(&self.backup_path(abs))
            .ok()
            .flatten()
            .or_else(|| crate::sys::read_opt(&self.root.follow(abs)).ok().flatten())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Reads a text file of the new OS (`None` when absent or unreadable); in a dry run,
    /// as the earlier steps would have left it.
    pub fn read(&self, abs: &str) -> Option<String> {
        self.current_bytes(abs)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    pub fn exists(&self, abs: &str) -> bool {
        match self.planned(abs) {
            Some(Planned::Gone) => false,
            Some(_) => true,
            None => std::fs::symlink_metadata(self.root.path(abs)).is_ok(),
        }
    }

    pub fn is_dir(&self, abs: &str) -> bool {
        match self.planned(abs) {
            Some(Planned::Dir) => true,
            Some(Planned::Gone) => false,
            _ => self.root.follow(abs).is_dir(),
        }
    }

    /// True when `abs` is (or, in a dry run, would be) a file or a link to one.
    pub fn is_file(&self, abs: &str) -> bool {
        match self.planned(abs) {
            Some(Planned::File(_)) => true,
            Some(Planned::Link(t)) => self.is_file(&t),
            Some(Planned::Dir) | Some(Planned::Gone) => false,
            None => self.root.follow(abs).is_file(),
        }
    }

    /// True when a folder on the way to `abs` is (or, in a dry run, would be) a symbolic
    /// link: a write there would land wherever the link points, outside the place the
    /// path names.
    pub fn through_link(&self, abs: &str) -> bool {
        let mut at = String::new();
        let parts: Vec<&str> = abs.trim_start_matches('/').split('/').collect();
        for c in &parts[..parts.len().saturating_sub(1)] {
            at.push('/');
            at.push_str(c);
            if matches!(self.planned(&at), Some(Planned::Link(_)))
                || std::fs::symlink_metadata(self.root.path(&at))
                    .is_ok_and(|m| m.file_type().is_symlink())
            {
                return true;
            }
        }
        false
    }

    /// The new OS's file at `abs` as bytes with its mode — never through a symlink (a
    /// link there gives `None`); in a dry run as the earlier steps would have left it.
    pub fn file_bytes(&self, abs: &str) -> Option<(Vec<u8>, u32)> {
        match self.planned(abs) {
            Some(Planned::File(b)) => return Some((b, 0o644)),
            Some(_) => return None,
            None => {}
        }
        let host = self.root.path(abs);
        let meta = std::fs::symlink_metadata(&host).ok()?;
        if !meta.is_file() {
            return None;
        }
        Some((
            std::fs::read(&host).ok()?,
            crate::sys::mode_of(&meta) & 0o7777,
        ))
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

    /// The new OS's users and groups (in a dry run, with the accounts the accounts step
    /// would have created).
    pub fn accounts(&self) -> (Vec<accounts::PasswdLine>, Vec<accounts::Group>) {
        (
            accounts::parse_passwd(&self.read("/etc/passwd").unwrap_or_default()).0,
            accounts::parse_group(&self.read("/etc/group").unwrap_or_default()).0,
        )
    }

    /// A user's uid on the new OS, by name.
    pub fn uid_of(&self, name: &str) -> Option<u32> {
        let (users, _) = self.accounts();
        users.into_iter().find(|u| u.name == name).map(|u| u.uid)
    }

    /// A group's gid on the new OS, by name.
    pub fn gid_of(&self, name: &str) -> Option<u32> {
        let (_, groups) = self.accounts();
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
        if let Some(planned) = self.planned(abs) {
            if matches!(&planned, Planned::File(c) if c == content) {
                return Ok(false);
            }
        } else if let Ok(meta) = std::fs::symlink_metadata(&host)
            && meta.is_file()
            && crate::sys::mode_of(&meta) == mode
            && owner.is_none_or(|o| crate::sys::owner_of(&meta) == o)
            && std::fs::read(&host).is_ok_and(|c| c == content)
        {
            return Ok(false);
        }
        self.changed.set(true);
        // what is replaced, never read through a link (a link to /etc/shadow stays unread)
        let old = self.file_bytes(abs).map(|(b, _)| b);
        self.note_file_change(abs, old.as_deref(), content, mode);
        if self.dry_run {
            self.plan(abs, Planned::File(content.to_vec()));
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
        if let Some(planned) = self.planned(abs) {
            if matches!(&planned, Planned::Link(t) if t == target) {
                return Ok(false);
            }
        } else if std::fs::read_link(&host).is_ok_and(|t| t == Path::new(target)) {
            return Ok(false);
        }
        self.changed.set(true);
        match std::fs::read_link(&host) {
            Ok(old) => self.note_change(format!("{abs} → {target} (was → {})", old.display())),
            Err(_) => self.note_change(format!("{abs} → {target}")),
        }
        if self.dry_run {
            self.plan(abs, Planned::Link(target.to_string()));
            return Ok(true);
        }
        self.backup(abs)?;
        if let Some(dir) = host.parent() {
            crate::sys::create_dirs(dir, 0o755)?;
        }
        let tmp = host.with_file_name(crate::sys::temp_name(host.file_name().unwrap_or_default()));
        crate::sys::symlink(Path::new(target), &tmp)?;
        std::fs::rename(&tmp, &host)?;
        if let Some(dir) = host.parent() {
            crate::sys::sync_dir(dir)?;
        }
        Ok(true)
    }

    /// Removes the file or link at `abs` (never a directory), keeping it in the backup
    /// folder; a no-op when there is none.
    pub fn remove(&self, abs: &str) -> io::Result<bool> {
        if !self.exists(abs) || self.is_dir(abs) && !self.is_link(abs) {
            return Ok(false);
        }
        self.changed.set(true);
        self.note_change(format!("{abs}: removed (kept in the backup folder)"));
        if self.dry_run {
            self.plan(abs, Planned::Gone);
            return Ok(true);
        }
        self.backup(abs)?;
        let host = self.root.path(abs);
        std::fs::remove_file(&host)?;
        if let Some(dir) = host.parent() {
            crate::sys::sync_dir(dir)?;
        }
        Ok(true)
    }

    /// True when `abs` is (or would be) a symbolic link.
    pub fn is_link(&self, abs: &str) -> bool {
        match self.planned(abs) {
            Some(Planned::Link(_)) => true,
            Some(_) => false,
            None => std::fs::symlink_metadata(self.root.path(abs))
                .is_ok_and(|m| m.file_type().is_symlink()),
        }
    }

    /// Creates a directory (and parents) with a mode and owner, if it does not exist.
    pub fn mkdir(&self, abs: &str, mode: u32, owner: Option<(u32, u32)>) -> io::Result<bool> {
        let host = self.root.path(abs);
        if host.is_dir() || matches!(self.planned(abs), Some(Planned::Dir)) {
            return Ok(false);
        }
        self.changed.set(true);
        self.note_change(format!("{abs}/ created"));
        if self.dry_run {
            self.plan(abs, Planned::Dir);
            return Ok(true);
        }
        if let Some(parent) = host.parent() {
            crate::sys::create_dirs(parent, 0o755)?;
        }
        crate::sys::create_dirs(&host, mode)?;
        if let Some((u, g)) = owner {
            crate::sys::lchown(&host, u, g)?;
        }
        Ok(true)
    }

    /// `ensure_dir` for a folder below one a user owns (`~/.ssh` in a home), reached and
    /// set on descriptors (`Root::open_dir_strict`, `sys::Dir`), never through a link a
    /// user could swap in meanwhile; the folder, opened. Not for a dry run (`ensure_dir`).
    pub fn ensure_dir_at(
        &self,
        abs: &str,
        mode: u32,
        owner: (u32, u32),
    ) -> io::Result<crate::sys::Dir> {
        let (parent, name) = abs
            .rsplit_once('/')
            .filter(|(_, n)| !n.is_empty())
            .ok_or_else(|| io::Error::other(format!("{abs}: not a folder's path")))?;
        let parent = self
            .root
            .open_dir_strict(if parent.is_empty() { "/" } else { parent }, None)?;
        let name = std::ffi::OsStr::new(name);
        let (dir, created) = match parent.open_beneath(name.as_encoded_bytes()) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => (parent.mkdir(name, mode)?, true),
            r => (
                r.map_err(|e| io::Error::new(e.kind(), format!("{abs}: {e}")))?,
                false,
            ),
        };
        if created {
            self.changed.set(true);
            self.note_change(format!("{abs}/ created"));
        }
        let e = dir.entry_self()?;
        let meta = e.metadata()?;
        let (was_mode, was_owner) = (crate::sys::mode_of(&meta), crate::sys::owner_of(&meta));
        if (was_mode, was_owner) != (mode, owner) {
            if !created {
                self.changed.set(true);
                self.note_change(format!(
                    "{abs}/: mode {was_mode:04o} → {mode:04o}, owner {}:{} → {}:{}",
                    was_owner.0, was_owner.1, owner.0, owner.1
                ));
            }
            e.set_owner(owner.0, owner.1)?;
            e.set_mode(mode)?;
        }
        Ok(dir)
    }

    /// `install` for the file `abs` in the folder `dir` opened by `ensure_dir_at`: what is
    /// there (`old`: its content and metadata as `Dir::read_plain` gave them) is kept as
    /// the backup, the new content written and renamed through the folder's descriptor.
    pub fn install_at(
        &self,
        dir: &crate::sys::Dir,
        abs: &str,
        old: Option<&(Vec<u8>, std::fs::Metadata)>,
        content: &[u8],
        mode: u32,
        owner: (u32, u32),
    ) -> io::Result<bool> {
        let name = std::ffi::OsStr::new(abs.rsplit('/').next().unwrap_or(abs));
        if let Some((b, m)) = old
            && b == content
            && crate::sys::mode_of(m) == mode
            && crate::sys::owner_of(m) == owner
        {
            return Ok(false);
        }
        let old = old.map(|(b, _)| b.as_slice());
        self.changed.set(true);
        self.note_file_change(abs, old, content, mode);
        if let Some(old) = old {
            let dest = self.backup_path(abs);
            if std::fs::symlink_metadata(&dest).is_err() {
                crate::sys::write_atomic(&dest, old, 0o600)?;
            }
        }
        dir.write_atomic(name, content, mode, Some(owner))?;
        Ok(true)
    }

    /// Makes `abs` a directory with exactly this mode and owner: created when absent,
    /// corrected when it differs (`~/.ssh` must be 0700 and its user's for sshd). Anything
    /// else there — a symlink, a file — is refused, never followed.
    pub fn ensure_dir(&self, abs: &str, mode: u32, owner: (u32, u32)) -> io::Result<bool> {
        if matches!(self.planned(abs), Some(Planned::Dir)) {
            return Ok(false);
        }
        let host = self.root.path(abs);
        let meta = match std::fs::symlink_metadata(&host) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return self.mkdir(abs, mode, Some(owner));
            }
            Err(e) => return Err(e),
            Ok(m) if !m.is_dir() => {
                return Err(io::Error::other(format!(
                    "{abs} is not a directory (a symlink or a file): refused"
                )));
            }
            Ok(m) => m,
        };
        let (was_mode, was_owner) = (crate::sys::mode_of(&meta), crate::sys::owner_of(&meta));
        if was_mode == mode && was_owner == owner {
            return Ok(false);
        }
        self.changed.set(true);
        self.note_change(format!(
            "{abs}/: mode {was_mode:04o} → {mode:04o}, owner {}:{} → {}:{}",
            was_owner.0, was_owner.1, owner.0, owner.1
        ));
        if self.dry_run {
            return Ok(true);
        }
        crate::sys::lchown(&host, owner.0, owner.1)?;
        crate::sys::set_dir_mode(&host, mode)?;
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
            crate::sys::create_dirs(dir, 0o700)?;
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

    /// A user's `~/.ssh` is reached and written through descriptors: swapped for a link to
    /// /etc between the check and the write (the user logged in meanwhile), the keys land
    /// in the folder that was checked, wherever it now is — never in /etc; a link there
    /// from the start, or a hard link at the file, is refused.
    #[test]
    #[cfg(unix)]
    fn a_users_folder_swapped_for_a_link_gets_nothing_written_through_it() {
        use std::os::unix::fs::MetadataExt;
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path()).unwrap();
        let (home, etc) = (t.path().join("home/alice"), t.path().join("etc"));
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&etc).unwrap();
        std::os::unix::fs::chown(&home, Some(1000), Some(1000)).unwrap();
        let a = Apply::new(&root, "snap1", false);
        let ssh = a
            .ensure_dir_at("/home/alice/.ssh", 0o700, (1000, 1000))
            .unwrap();
        std::fs::rename(home.join(".ssh"), home.join(".ssh-moved")).unwrap();
        std::os::unix::fs::symlink(&etc, home.join(".ssh")).unwrap();
        let key = b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB k\n";
        let file = "/home/alice/.ssh/authorized_keys";
        assert!(
            a.install_at(&ssh, file, None, key, 0o600, (1000, 1000))
                .unwrap()
        );
        assert!(!etc.join("authorized_keys").exists());
        let placed = home.join(".ssh-moved/authorized_keys");
        assert_eq!(std::fs::read(&placed).unwrap(), key);
        let m = std::fs::metadata(&placed).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1000, 1000, 0o600));
        let d = std::fs::metadata(home.join(".ssh-moved")).unwrap();
        assert_eq!((d.uid(), d.mode() & 0o7777), (1000, 0o700));
        let e = a
            .ensure_dir_at("/home/alice/.ssh", 0o700, (1000, 1000))
            .err()
            .unwrap();
        assert!(e.to_string().contains("symlink"), "{e}");
        // a hard link to a file of the system at the keys' name is never read
        std::fs::write(etc.join("shadow"), "root:secret\n").unwrap();
        std::fs::hard_link(etc.join("shadow"), home.join(".ssh-moved/other")).unwrap();
        let moved = root
            .open_dir_strict("/home/alice/.ssh-moved", None)
            .unwrap();
        let e = moved
            .read_plain(std::ffi::OsStr::new("other"), 1 << 20)
            .unwrap_err();
        assert!(e.to_string().contains("not a plain file"), "{e}");
        // a home that is root's link to a folder elsewhere (`/home/bob -> /data/bob`)
        std::fs::create_dir_all(t.path().join("data/bob")).unwrap();
        std::os::unix::fs::chown(t.path().join("data/bob"), Some(1001), Some(1001)).unwrap();
        std::os::unix::fs::symlink("/data/bob", t.path().join("home/bob")).unwrap();
        let ssh = a
            .ensure_dir_at("/home/bob/.ssh", 0o700, (1001, 1001))
            .unwrap();
        let file = "/home/bob/.ssh/authorized_keys";
        assert!(
            a.install_at(&ssh, file, None, key, 0o600, (1001, 1001))
                .unwrap()
        );
        assert_eq!(
            std::fs::read(t.path().join("data/bob/.ssh/authorized_keys")).unwrap(),
            key
        );
    }

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
