//! Preflight: what would make this Change OS lose data or fail, as findings with stable
//! keys, a severity, the evidence and what to do. `capture` runs it first and stops on a
//! blocker that was not acknowledged (`--ack KEY`, `[check] ack`).
//!
//! `findings` is pure (its input is gathered once by `gather`), so every key is tested on
//! plain values.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::Target;
use crate::state::mounts::MountEntry;
use crate::userdata::Mount;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub key: String,
    /// `blocker`, `warning` or `info`.
    pub severity: String,
    pub message: String,
    pub evidence: String,
    pub remediation: String,
}

fn finding(
    key: &str,
    severity: &str,
    message: String,
    evidence: String,
    remediation: &str,
) -> Finding {
    Finding {
        key: key.into(),
        severity: severity.into(),
        message,
        evidence,
        remediation: remediation.into(),
    }
}

/// Everything the findings are decided from.
#[derive(Debug, Default, Clone)]
pub struct Input {
    pub target: Option<Target>,
    pub fstab: Vec<MountEntry>,
    /// The live mount table (`/proc/self/mountinfo`), when there is one.
    pub mounts: Vec<Mount>,
    /// Targets of /etc/crypttab.
    pub crypttab: Vec<String>,
    pub instance_type: Option<String>,
    pub data_paths: Vec<PathBuf>,
    /// The store's directory when it is local.
    pub store_dir: Option<PathBuf>,
    /// Free bytes where the store is, and what the capture will need at most.
    pub store_free: Option<u64>,
    pub estimate: Option<u64>,
}

/// The mount that holds `p` (the longest mountpoint prefix).
fn mount_of<'a>(mounts: &'a [Mount], p: &Path) -> Option<&'a Mount> {
    mounts
        .iter()
        .filter(|m| p.starts_with(&m.mountpoint))
        .max_by_key(|m| m.mountpoint.as_os_str().len())
}

/// Instance families that cannot change OS (Huawei Cloud: H2).
fn flavor_blocked(ty: &str) -> bool {
    ty.to_ascii_lowercase().starts_with("h2.")
}

pub fn findings(i: &Input) -> Vec<Finding> {
    let mut out = Vec::new();
    let target = i.target.unwrap_or(Target::Linux);
    let root_source = mount_of(&i.mounts, Path::new("/")).map(|m| m.source.clone());
    let on_system_disk = |p: &Path| -> bool {
        match (mount_of(&i.mounts, p), &root_source) {
            (Some(m), Some(_)) => m.mountpoint == Path::new("/"),
            _ => false,
        }
    };

    if let Some(dir) = &i.store_dir
        && on_system_disk(dir)
    {
        out.push(finding(
                "store-on-system-disk",
                "blocker",
                format!("the store {} is on the system disk, which the Change OS deletes", dir.display()),
                format!("{} is on the root filesystem ({})", dir.display(), root_source.clone().unwrap_or_default()),
                "put the store on a data disk (e.g. /mnt/data/carryover) or in S3-compatible object storage",
            ));
    }
    for p in &i.data_paths {
        if on_system_disk(p) {
            out.push(finding(
                "data-path-on-system-disk",
                "info",
                format!(
                    "{} is on the system disk: it is captured and restored from the store",
                    p.display()
                ),
                format!("{} is on the root filesystem", p.display()),
                "nothing to do; keep it in [data] paths",
            ));
        }
    }
    if let (Some(free), Some(need)) = (i.store_free, i.estimate)
        && need > free
    {
        out.push(finding(
                "store-too-small",
                "blocker",
                format!("the capture may need {} MB; the store has {} MB free", need / 1_000_000, free / 1_000_000),
                format!("data paths total {need} bytes before compression; {free} bytes free where the store is"),
                "free space on the store's disk, a larger disk, or an S3 store",
            ));
    }
    if let Some(ty) = &i.instance_type
        && flavor_blocked(ty)
    {
        out.push(finding(
            "flavor-cannot-change-os",
            "blocker",
            format!("instance type {ty} cannot change OS"),
            format!("metadata instance-type = {ty}"),
            "resize to a flavor that supports Change OS first, or migrate instead",
        ));
    }
    for m in i.fstab.iter().filter(|m| m.is_data()) {
        let where_ = if m.swap {
            "swap".to_string()
        } else {
            m.mountpoint.clone()
        };
        if m.spec_kind == "device" {
            out.push(finding(
                "fstab-device-name-unstable",
                "warning",
                format!("{where_} is named by device ({}) in fstab", m.spec),
                format!("fstab: {} {} {}", m.spec, where_, m.fstype),
                "use UUID= (see `carryover probe`): device names can change after the Change OS; restore writes what was captured",
            ));
        }
        if m.swap {
            out.push(finding(
                "swap-on-data-disk",
                "info",
                format!("swap on a data disk ({}) is carried to the new OS", m.spec),
                format!("fstab: {} none swap", m.spec),
                "nothing to do, or `--ack swap-on-data-disk`",
            ));
        }
        let lvm = m.spec_kind == "lvm";
        let luks = m.spec.starts_with("/dev/mapper/")
            && i.crypttab
                .iter()
                .any(|c| m.spec.ends_with(&format!("/{c}")));
        if luks {
            out.push(finding(
                "luks-key-needed",
                "warning",
                format!("{where_} is an encrypted (LUKS) volume"),
                format!("fstab: {}; /etc/crypttab names it", m.spec),
                "make sure its key or passphrase reaches the new OS; carryover does not carry keys",
            ));
        }
        match target {
            Target::Windows => {
                if lvm && !luks {
                    out.push(finding(
                        "lvm-to-windows",
                        "blocker",
                        format!("{where_} is an LVM volume: Windows cannot read LVM, the data would be unreachable"),
                        format!("fstab: {} {}", m.spec, m.fstype),
                        "move the data to a plain NTFS disk (or into the store) before changing to Windows",
                    ));
                } else if ["ext2", "ext3", "ext4", "xfs", "btrfs"].contains(&m.fstype.as_str()) {
                    out.push(finding(
                        "linux-fs-to-windows",
                        "warning",
                        format!("{where_} is {}: Windows cannot read it without Ext2Fsd or similar (xfs and btrfs not at all)", m.fstype),
                        format!("fstab: {} {} {}", m.spec, where_, m.fstype),
                        "install a reader on the new Windows, or copy the data to NTFS first",
                    ));
                }
            }
            Target::Linux => {
                if m.fstype == "ntfs" || m.fstype == "ntfs-3g" || m.fstype == "ntfs3" {
                    out.push(finding(
                        "ntfs-needs-ntfs3g",
                        "info",
                        format!("{where_} is NTFS: the new Linux needs ntfs-3g"),
                        format!("fstab: {} {} {}", m.spec, where_, m.fstype),
                        "nothing to do: the user-data installs ntfs-3g when the store is on NTFS; install it for other NTFS disks",
                    ));
                }
            }
        }
    }
    out
}

/// The keys of blockers not acknowledged.
pub fn unacknowledged(found: &[Finding], ack: &[String]) -> Vec<String> {
    found
        .iter()
        .filter(|f| f.severity == "blocker" && !ack.contains(&f.key))
        .map(|f| f.key.clone())
        .collect()
}

/// Reads /etc/crypttab's target names.
pub fn parse_crypttab(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| crate::state::words(l).first().map(|s| s.to_string()))
        .collect()
}

/// Reads what the findings need from the system under the root.
pub fn gather(
    root: &crate::sys::Root,
    state: &crate::state::SystemState,
    target: Option<Target>,
    data_paths: &[PathBuf],
    store_url: Option<&str>,
) -> (Input, Vec<Finding>) {
    let mut notes = Vec::new();
    let mounts = match std::fs::read_to_string(root.follow("/proc/self/mountinfo")) {
        Ok(t) => crate::userdata::parse_mountinfo(&t),
        Err(_) => {
            notes.push(finding(
                "mount-table-unavailable",
                "info",
                "no mount table under the root: the disk checks are based on fstab only".into(),
                "/proc/self/mountinfo cannot be read".into(),
                "run carryover on the live system (--root /) for the full check",
            ));
            Vec::new()
        }
    };
    let crypttab = crate::sys::read_opt(&root.follow("/etc/crypttab"))
        .ok()
        .flatten()
        .map(|b| parse_crypttab(&String::from_utf8_lossy(&b)))
        .unwrap_or_default();
    let local = store_url.and_then(crate::store::local_dir);
    let store_dir = local.map(|p| {
        let abs = existing_ancestor(p);
        let canon = std::fs::canonicalize(&abs).unwrap_or(abs);
        if canon.starts_with(root.dir()) {
            root.inner(&canon)
        } else {
            canon
        }
    });
    let store_free = local
        .map(existing_ancestor)
        .and_then(|p| nix::sys::statvfs::statvfs(&p).ok())
        .map(|s| s.blocks_available() * s.fragment_size());
    // A store that already holds snapshots gets an incremental capture: only changed
    // content is stored, so the full size would overstate the need (and the walk would be
    // work done twice). The first capture is measured.
    let incremental = local
        .map(|d| d.join("snapshots"))
        .is_some_and(|d| crate::sys::list_dir(&d).is_ok_and(|l| !l.is_empty()));
    let estimate = (!data_paths.is_empty() && store_free.is_some() && !incremental).then(|| {
        data_paths
            .iter()
            .map(|p| crate::data::capture::estimate_bytes(&root.follow(p)))
            .sum()
    });
    (
        Input {
            target,
            fstab: state.mounts.clone(),
            mounts,
            crypttab,
            instance_type: state.identity.instance_type.clone(),
            data_paths: data_paths.to_vec(),
            store_dir,
            store_free,
            estimate,
        },
        notes,
    )
}

fn existing_ancestor(p: &Path) -> PathBuf {
    let mut p = p.to_path_buf();
    while !p.exists() {
        if !p.pop() {
            return PathBuf::from("/");
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::mounts::parse_fstab;

    fn mounts() -> Vec<Mount> {
        crate::userdata::parse_mountinfo(
            "22 1 254:1 / / rw - ext4 /dev/vda1 rw\n95 22 254:16 / /mnt/data rw - ext4 /dev/mapper/datavg-lvdata rw\n96 22 8:33 / /mnt/win rw - fuseblk /dev/vdc1 rw\n",
        )
    }

    fn keys(f: &[Finding]) -> Vec<&str> {
        f.iter().map(|x| x.key.as_str()).collect()
    }

    #[test]
    fn each_key_fires_when_it_should() {
        let fstab = parse_fstab(
            "UUID=r / ext4 defaults 0 1\n/dev/mapper/datavg-lvdata /mnt/data ext4 defaults 0 2\n/dev/vdc1 /mnt/win ntfs-3g defaults 0 0\n/dev/vdd1 none swap sw 0 0\n/dev/mapper/secret /mnt/secret ext4 defaults 0 0\n",
        );
        let base = Input {
            target: Some(Target::Linux),
            fstab,
            mounts: mounts(),
            crypttab: vec!["secret".into()],
            instance_type: Some("h2.3xlarge.10".into()),
            data_paths: vec![PathBuf::from("/srv"), PathBuf::from("/mnt/data/app")],
            store_dir: Some(PathBuf::from("/var/backups/carryover")),
            store_free: Some(1_000),
            estimate: Some(2_000),
        };
        let f = findings(&base);
        let k = keys(&f);
        for key in [
            "store-on-system-disk",
            "data-path-on-system-disk",
            "store-too-small",
            "flavor-cannot-change-os",
            "fstab-device-name-unstable",
            "swap-on-data-disk",
            "luks-key-needed",
            "ntfs-needs-ntfs3g",
        ] {
            assert!(k.contains(&key), "{key} missing: {k:?}");
        }
        assert_eq!(
            f.iter()
                .filter(|x| x.key == "data-path-on-system-disk")
                .count(),
            1,
            "only /srv"
        );
        assert!(!k.contains(&"lvm-to-windows"));
        let win = findings(&Input {
            target: Some(Target::Windows),
            ..base.clone()
        });
        let k = keys(&win);
        assert!(
            k.contains(&"lvm-to-windows") && k.contains(&"linux-fs-to-windows"),
            "{k:?}"
        );
        assert!(!k.contains(&"ntfs-needs-ntfs3g"));
        let mut blockers = unacknowledged(&f, &["store-too-small".into()]);
        blockers.sort();
        assert_eq!(
            blockers,
            vec!["flavor-cannot-change-os", "store-on-system-disk"]
        );
    }

    #[test]
    fn a_clean_server_has_no_findings() {
        let i = Input {
            target: Some(Target::Linux),
            fstab: parse_fstab("UUID=r / ext4 defaults 0 1\nUUID=d /mnt/data ext4 defaults 0 2\n"),
            mounts: mounts(),
            store_dir: Some(PathBuf::from("/mnt/data/carryover")),
            instance_type: Some("s6.large.2".into()),
            store_free: Some(10),
            estimate: Some(5),
            ..Input::default()
        };
        assert!(findings(&i).is_empty(), "{:?}", findings(&i));
    }
}
