//! Mounts: the fstab entries of a server as `capture` records them, and its LVM volume
//! groups. The parsing and the merge into a new OS's fstab live in `disks::fstab`.

use serde::{Deserialize, Serialize};

use super::Gather;
pub use crate::disks::fstab::MountEntry;
use crate::disks::fstab::parse_fstab;

/// Volume groups and their volumes, read from the PVs by disk discovery.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Lvm {
    pub volume_groups: Vec<crate::disks::probe::lvm::VolumeGroup>,
}

/// The fstab of the system being captured (none: no entries).
pub fn gather(g: &Gather) -> Vec<MountEntry> {
    g.read("/etc/fstab")
        .map(|t| parse_fstab(&t))
        .unwrap_or_default()
}
