//! Which system took a snapshot: the old-system marker that keeps the restore unit from
//! ever restoring onto the system that took the snapshot (the old OS rebooting, a clone of
//! it), and the rule that decides whether a restore is due here.
//!
//! The marker is a hash of the machine-id and the root filesystem's UUID (on Windows the
//! system volume's serial): both are on the system disk, so a Change OS changes them,
//! while a reboot of the old OS keeps them. The root filesystem's UUID is also kept in
//! plain, so restore can tell "the system disk really changed" on its own.

use serde::{Deserialize, Serialize};

use crate::local::LocalState;
use crate::state::SystemState;
use crate::sys::Root;

/// Where a snapshot was taken, as its manifest records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Origin {
    /// BLAKE3 of the machine-id and the root filesystem's UUID (hex, 32 digits); `None`
    /// when neither is known.
    pub marker: Option<String>,
    /// The root filesystem's UUID (on Windows the system volume's serial).
    pub root_fs_uuid: Option<String>,
}

impl Origin {
    /// The origin of the system under `root`, from the state capture recorded.
    pub fn of(root: &Root, state: &SystemState) -> Origin {
        let root_fs_uuid = state
            .disks
            .device_at("/")
            .and_then(|d| d.uuid.clone())
            .or_else(|| {
                state.windows.as_ref().and_then(|w| {
                    w.volumes
                        .iter()
                        .find(|v| v.system && !v.serial.is_empty())
                        .map(|v| v.serial.clone())
                })
            });
        Origin::from_parts(machine_id(root).as_deref(), root_fs_uuid)
    }

    /// The origin of the system that runs now under `root` (what restore compares with).
    pub fn here(root: &Root) -> Origin {
        #[cfg(windows)]
        let root_fs_uuid = crate::sys::win::volumes()
            .ok()
            .and_then(|v| v.into_iter().find(|v| v.system && !v.serial.is_empty()))
            .map(|v| v.serial);
        #[cfg(not(windows))]
        let root_fs_uuid = crate::disks::discover(root)
            .layout
            .device_at("/")
            .and_then(|d| d.uuid.clone());
        Origin::from_parts(machine_id(root).as_deref(), root_fs_uuid)
    }

    pub fn from_parts(machine_id: Option<&str>, root_fs_uuid: Option<String>) -> Origin {
        let marker = (machine_id.is_some() || root_fs_uuid.is_some()).then(|| {
            let mut h = blake3::Hasher::new();
            h.update(b"carryover-origin\0");
            h.update(machine_id.unwrap_or("").as_bytes());
            h.update(b"\0");
            h.update(root_fs_uuid.as_deref().unwrap_or("").as_bytes());
            hex::encode(&h.finalize().as_bytes()[..16])
        });
        Origin {
            marker,
            root_fs_uuid,
        }
    }
}

/// The machine-id (systemd's; an image ships it empty and the first boot makes one).
fn machine_id(root: &Root) -> Option<String> {
    crate::sys::read_opt(&root.follow("/etc/machine-id"))
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .filter(|s| !s.is_empty() && s != "uninitialized")
}

/// Why a restore of a snapshot must not run here without being asked for by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotHere {
    /// This system's own record says it took the snapshot.
    TakenHere(String),
    /// The manifest's marker is this system's (same machine-id and root filesystem).
    SameSystem(String),
}

impl NotHere {
    pub fn reason(&self) -> &str {
        match self {
            NotHere::TakenHere(r) | NotHere::SameSystem(r) => r,
        }
    }
}

/// Decides whether `snapshot` (taken at `taken_at`) was taken by the system that runs now
/// (`here`): then restore refuses unless the snapshot is named explicitly, and the boot
/// unit never restores it.
pub fn taken_by_this_system(
    local: &LocalState,
    snapshot: &str,
    taken_at: Option<&Origin>,
    here: &Origin,
) -> Option<NotHere> {
    if local.took(snapshot) {
        return Some(NotHere::TakenHere(format!(
            "this system took snapshot {snapshot}: it is the old OS"
        )));
    }
    let taken_at = taken_at?;
    if taken_at.marker.is_some() && taken_at.marker == here.marker {
        return Some(NotHere::SameSystem(format!(
            "snapshot {snapshot} was taken on this very system (same machine-id and root filesystem): it is the old OS or a clone of it"
        )));
    }
    None
}

/// A root filesystem with the UUID the snapshot was taken on, on a system whose marker
/// differs (another machine-id): a new OS from the very image build the old one came from
/// (cloud images keep a fixed UUID) — restored, with this said in the report. Refusing it
/// would leave a real Change OS without its restore; the old OS itself has the same
/// marker or its own record.
pub fn same_root_filesystem(taken_at: Option<&Origin>, here: &Origin) -> Option<String> {
    let (then, now) = (
        taken_at?.root_fs_uuid.as_ref()?,
        here.root_fs_uuid.as_ref()?,
    );
    then.eq_ignore_ascii_case(now).then(|| {
        format!(
            "the root filesystem has the UUID the snapshot was taken on ({now}) but another machine-id: taken as a new OS from the same image build"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local_with(taken: &[&str]) -> LocalState {
        let mut l = LocalState::default();
        for t in taken {
            l.record_taken(t);
        }
        l
    }

    #[test]
    fn the_old_system_is_recognised_by_record_marker_or_disk() {
        let old = Origin::from_parts(Some("m-old"), Some("uuid-old".into()));
        let new = Origin::from_parts(Some("m-new"), Some("uuid-new".into()));
        let none = LocalState::default();
        // a fresh system disk: due
        assert_eq!(taken_by_this_system(&none, "s1", Some(&old), &new), None);
        // the old OS: by its own record, even without a marker in the manifest
        assert!(matches!(
            taken_by_this_system(&local_with(&["s1"]), "s1", None, &old),
            Some(NotHere::TakenHere(_))
        ));
        // the old OS whose record was lost, or a clone: by the marker
        assert!(matches!(
            taken_by_this_system(&none, "s1", Some(&old), &old),
            Some(NotHere::SameSystem(_))
        ));
        // a new machine-id on the same root filesystem: a new OS from the same image build
        // (restored, and said)
        let same_disk = Origin::from_parts(Some("m-fresh"), Some("UUID-OLD".into()));
        assert_eq!(
            taken_by_this_system(&none, "s1", Some(&old), &same_disk),
            None
        );
        assert!(same_root_filesystem(Some(&old), &same_disk).is_some());
        assert!(same_root_filesystem(Some(&old), &new).is_none());
        // nothing known on either side: the record is all there is
        let unknown = Origin::default();
        assert_eq!(unknown.marker, None);
        assert_eq!(
            taken_by_this_system(&none, "s1", Some(&unknown), &unknown),
            None
        );
        // a record of another snapshot says nothing about this one
        assert_eq!(
            taken_by_this_system(&local_with(&["s0"]), "s1", Some(&old), &new),
            None
        );
    }

    #[test]
    fn the_marker_hides_the_machine_id() {
        let o = Origin::from_parts(Some("0123456789abcdef0123456789abcdef"), None);
        let m = o.marker.unwrap();
        assert_eq!(m.len(), 32);
        assert!(!m.contains("0123456789abcdef"));
        assert_ne!(
            Some(m),
            Origin::from_parts(Some("0123456789abcdef0123456789abcdee"), None).marker
        );
    }
}
