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
}

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
    pub state: String,
}

impl LocalState {
    pub fn load(root: &Root) -> Result<LocalState> {
        match crate::sys::read_opt(&root.follow(FILE))? {
            None => Ok(LocalState::default()),
            Some(b) => serde_json::from_slice(&b)
                .with_context(|| format!("{} is damaged", root.follow(FILE).display())),
        }
    }

    pub fn save(&self, root: &Root) -> Result<()> {
        let dir: PathBuf = root.path(STATE_DIR);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        crate::sys::set_mode(&dir, 0o700)?;
        crate::sys::write_atomic(&root.path(FILE), &serde_json::to_vec_pretty(self)?, 0o600)?;
        Ok(())
    }
}
