//! The agent's own record on the machine (`/var/lib/carryover`, root-only): the last
//! capture and the last restore, for `status` and for the next boot.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::sys::Root;

use crate::paths::LOCAL_STATE as FILE;
pub use crate::paths::STATE_DIR;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LocalState {
    pub last_capture: Option<CaptureRecord>,
    pub last_restore: Option<RestoreRecord>,
    /// Every snapshot this system took (newest last), recorded before its manifest is
    /// committed: the restore unit never restores one of them here.
    pub taken: Vec<String>,
    /// The newest snapshot of each instance this system has seen (taken or restored):
    /// restore never picks an older one by itself (a store rolled back).
    pub newest_seen: std::collections::BTreeMap<String, String>,
    /// The last restore that failed before it could run its plan (no store, no snapshot):
    /// `status` names it instead of waiting for a restore that is not coming.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<FailureRecord>,
}

/// A restore that stopped before its plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailureRecord {
    pub at: String,
    pub error: String,
    /// The boot it happened in (`sys::boot_id`): one of an earlier boot is tried again by
    /// this boot's restore unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
}

/// How many snapshot ids `taken` keeps.
const TAKEN_KEPT: usize = 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaptureRecord {
    pub snapshot_id: String,
    pub store: String,
    pub at: String,
    pub exit: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestoreRecord {
    pub snapshot_id: String,
    pub store: String,
    pub at: String,
    pub state: crate::restore::RestoreState,
}

/// Makes a directory of the agent's own state (`/var/lib/carryover` or below): the state
/// directory and everything under it 0700, what is above it 0755 — whatever the umask.
pub fn private_dir(root: &Root, abs: &str) -> Result<PathBuf> {
    let state: PathBuf = root.path(STATE_DIR);
    if let Some(parent) = state.parent() {
        crate::sys::create_dirs(parent, 0o755)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let dir = root.path(abs);
    crate::sys::create_dirs(&dir, 0o700).with_context(|| format!("creating {}", dir.display()))?;
    // the state directory as the root resolves it (a link there stays inside the root),
    // its mode set through a descriptor, never by a name a link could redirect
    let state = root.follow(STATE_DIR);
    crate::sys::set_dir_mode(&state, 0o700)
        .with_context(|| format!("setting the mode of {}", state.display()))?;
    Ok(dir)
}

impl LocalState {
    /// True when this system took `snapshot`.
    pub fn took(&self, snapshot: &str) -> bool {
        self.taken.iter().any(|t| t == snapshot)
            || self
                .last_capture
                .as_ref()
                .is_some_and(|c| c.snapshot_id == snapshot)
    }

    /// True when this system has taken any snapshot: it is an old OS (a new one has a
    /// fresh system disk without this record).
    pub fn took_any(&self) -> bool {
        !self.taken.is_empty() || self.last_capture.is_some()
    }

    pub fn record_taken(&mut self, snapshot: &str) {
        if !self.took(snapshot) {
            self.taken.push(snapshot.to_string());
        }
        let extra = self.taken.len().saturating_sub(TAKEN_KEPT);
        self.taken.drain(..extra);
    }

    /// Records that `snapshot` of `instance` was seen (never lowering the record).
    pub fn see(&mut self, instance: Option<&str>, snapshot: &str) {
        let Some(instance) = instance else { return };
        let e = self.newest_seen.entry(instance.to_string()).or_default();
        if e.as_str() < snapshot {
            *e = snapshot.to_string();
        }
    }

    pub fn load(root: &Root) -> Result<LocalState> {
        match crate::sys::read_opt(&root.follow(FILE))? {
            None => Ok(LocalState::default()),
            Some(b) => serde_json::from_slice(&b)
                .with_context(|| format!("{} is damaged", root.follow(FILE).display())),
        }
    }

    /// The record to update: `load`, or — when it is damaged — an empty one, the damaged
    /// file moved aside first (`state.json.damaged-<time>`, warned about) so that the
    /// save that follows never destroys what an operator may still recover from it.
    pub fn load_for_update(root: &Root) -> LocalState {
        match LocalState::load(root) {
            Ok(l) => l,
            Err(e) => {
                let path = root.follow(FILE);
                let aside = path.with_file_name(format!(
                    "state.json.damaged-{}",
                    crate::store::now_rfc3339().replace(':', "")
                ));
                match std::fs::rename(&path, &aside) {
                    Ok(()) => tracing::warn!("{e:#}; moved aside to {}", aside.display()),
                    Err(r) => tracing::warn!("{e:#}; taken as empty (moving it aside: {r})"),
                }
                LocalState::default()
            }
        }
    }

    pub fn save(&self, root: &Root) -> Result<()> {
        private_dir(root, STATE_DIR)?;
        crate::sys::write_atomic(&root.path(FILE), &serde_json::to_vec_pretty(self)?, 0o600)?;
        Ok(())
    }
}

/// Marks a restore running on this machine (`/var/lib/carryover/restore.running` with
/// its pid) for `status --wait`, and holds the machine's restore lock
/// (`restore.lock`, an OS file lock the kernel releases when the process ends, crash or
/// not) so that a second restore — the boot unit's and one started by hand — cannot
/// run at the same time; both removed or released when dropped. A marker whose process
/// is gone is stale (a crash): `restore_running` ignores it.
pub struct RunMarker {
    marker: Option<PathBuf>,
    _lock: Option<std::fs::File>,
}

const RUNNING: &str = "restore.running";
const LOCK: &str = "restore.lock";

/// Another restore holds the lock (its pid, when its marker names a live one).
#[derive(Debug)]
pub struct Busy(pub Option<u32>);

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(pid) => write!(
                f,
                "a restore is running on this system already (process {pid})"
            ),
            None => write!(f, "a restore is running on this system already"),
        }?;
        write!(f, "; `carryover status --wait` waits for it to end")
    }
}

impl std::error::Error for Busy {}

impl RunMarker {
    /// Takes the lock and writes the marker. Another restore holding the lock is `Busy`
    /// — or, with `wait`, waited for. A lock that cannot be taken at all (a state
    /// directory that cannot be written, or one that leads out of the root: the rest of
    /// the restore warns about it too, and its record is not kept) is warned about and
    /// the restore goes on unlocked: two restores at once then need that broken state
    /// directory and two starts together. The marker is only for `status`.
    pub fn start(root: &Root, wait: bool) -> Result<RunMarker> {
        let unlocked = |e: anyhow::Error| {
            tracing::warn!("the restore lock cannot be taken: {e:#}; going on without it");
            Ok(RunMarker {
                marker: None,
                _lock: None,
            })
        };
        let dir = match private_dir(root, STATE_DIR) {
            Ok(d) => d,
            Err(e) => return unlocked(e),
        };
        let path = dir.join(LOCK);
        let lock = match crate::sys::open_lock(&path, 0o600) {
            Ok(f) => f,
            Err(e) => return unlocked(anyhow::anyhow!("{}: {e}", path.display())),
        };
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) if wait => {
                tracing::warn!("{}: waiting for it to end", Busy(restore_running(root)));
                if let Err(e) = lock.lock() {
                    return unlocked(anyhow::anyhow!("{}: {e}", path.display()));
                }
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Busy(restore_running(root)).into());
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return unlocked(anyhow::anyhow!("{}: {e}", path.display()));
            }
        }
        let p = dir.join(RUNNING);
        let marker =
            match crate::sys::write_atomic(&p, std::process::id().to_string().as_bytes(), 0o600) {
                Ok(()) => Some(p),
                Err(e) => {
                    tracing::warn!("marking the restore as running: {e}");
                    None
                }
            };
        Ok(RunMarker {
            marker,
            _lock: Some(lock),
        })
    }
}

impl Drop for RunMarker {
    fn drop(&mut self) {
        if let Some(p) = &self.marker {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The pid of a restore running on this machine, if one is: the marker (a regular file,
/// not followed if a link, a pid and nothing else) names a live process that was already
/// running when the marker was written. A marker left by a crash or a power cut can name
/// a pid the system has since handed to another process — after a reboot, one of the
/// daemons that start at the same point of every boot — which would have `status` report
/// a restore running and `status --wait` wait for it forever; that process started after
/// the marker was written, so it is not taken for the restore. Where a process's start
/// cannot be read, a live pid is enough.
pub fn restore_running(root: &Root) -> Option<u32> {
    use std::io::Read;
    let p = root.path(format!("{STATE_DIR}/{RUNNING}"));
    let f = crate::sys::open_store_file(&p, false).ok()?;
    let written = f.metadata().ok()?.modified().ok()?;
    let mut text = String::new();
    f.take(16).read_to_string(&mut text).ok()?;
    let pid = marker_pid(&text)?;
    let alive = crate::sys::process_alive(pid);
    (alive && !started_after(crate::sys::process_started(pid), written)).then_some(pid)
}

/// The pid a marker holds (decimal digits, a newline at most after them).
fn marker_pid(text: &str) -> Option<u32> {
    let digits = text.strip_suffix('\n').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&pid| pid > 0)
}

/// Whether a process that started at `started` (as the system tells it: whole seconds,
/// computed from the boot time) began after a marker written at `written` — with two
/// seconds' slack for that rounding, so the restore that wrote the marker is never
/// mistaken for a newer process.
fn started_after(started: Option<std::time::SystemTime>, written: std::time::SystemTime) -> bool {
    started.is_some_and(|s| s > written + std::time::Duration::from_secs(2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn a_marker_holds_a_pid_and_nothing_else() {
        assert_eq!(marker_pid("812"), Some(812));
        assert_eq!(marker_pid("812\n"), Some(812));
        for bad in [
            "",
            "\n",
            "0",
            "-1",
            "+5",
            " 812",
            "812 ",
            "812\n\n",
            "8x",
            "99999999999",
        ] {
            assert_eq!(marker_pid(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_process_started_after_its_marker_is_not_the_restore() {
        let written = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        // the restore itself: started before its marker, or within the rounding of it
        assert!(!started_after(
            Some(written - Duration::from_secs(30)),
            written
        ));
        assert!(!started_after(
            Some(written + Duration::from_secs(2)),
            written
        ));
        // a pid handed out again after a crash or a reboot
        assert!(started_after(
            Some(written + Duration::from_secs(3)),
            written
        ));
        assert!(started_after(
            Some(written + Duration::from_secs(86_400)),
            written
        ));
        // unknown: the live pid decides
        assert!(!started_after(None, written));
    }

    #[test]
    fn the_running_restore_is_recognised_by_its_marker() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path()).unwrap();
        assert_eq!(restore_running(&root), None);
        let marker = RunMarker::start(&root, false).unwrap();
        assert_eq!(restore_running(&root), Some(std::process::id()));
        // the same marker, dated before this process started: a reused pid
        let p = root.path(format!("{STATE_DIR}/{RUNNING}"));
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(365 * 86_400))
            .unwrap();
        assert_eq!(restore_running(&root), None);
        drop(marker);
        assert!(!p.exists());
    }
}
