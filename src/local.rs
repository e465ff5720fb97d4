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

    pub fn save(&self, root: &Root) -> Result<()> {
        private_dir(root, STATE_DIR)?;
        crate::sys::write_atomic(&root.path(FILE), &serde_json::to_vec_pretty(self)?, 0o600)?;
        Ok(())
    }
}

/// Marks a restore running on this machine (`/var/lib/carryover/restore.running` with
/// its pid) for `status --wait`; removed when dropped. A marker whose process is gone
/// is stale (a crash): `restore_running` ignores it.
pub struct RunMarker(PathBuf);

const RUNNING: &str = "restore.running";

impl RunMarker {
    pub fn start(root: &Root) -> Result<RunMarker> {
        let dir = private_dir(root, STATE_DIR)?;
        let p = dir.join(RUNNING);
        crate::sys::write_atomic(&p, std::process::id().to_string().as_bytes(), 0o600)?;
        Ok(RunMarker(p))
    }
}

impl Drop for RunMarker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The pid of a restore running on this machine, if one is.
pub fn restore_running(root: &Root) -> Option<u32> {
    let p = root.path(format!("{STATE_DIR}/{RUNNING}"));
    let pid: u32 = std::fs::read_to_string(p).ok()?.trim().parse().ok()?;
    crate::sys::process_alive(pid).then_some(pid)
}
