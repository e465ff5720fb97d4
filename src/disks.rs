//! Disk discovery: which disks a server has, which of them is the system disk (deleted by
//! the Change OS) and which are data disks (kept), what is on each device and where it is
//! mounted, and the LVM volume groups read from the PVs themselves. Everything is read
//! under the root — `/sys/block`, `/proc/self/mountinfo`, `/dev/*` — so discovery runs on
//! fixture trees as on the live system.
//!
//! `layout` is pure: it takes the block nodes, the mount table and what the devices hold.
//! Beside it: `probe` (what a device holds, read from its signatures), `mounts` (the live
//! mount table) and `fstab` (the configured mounts and their merge into a new OS).

pub mod fstab;
pub mod mounts;
pub mod probe;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::sys::Root;
use fstab::MountEntry;
pub use mounts::{MOUNT_TABLE, Mount, mount_of, mount_table, parse_mountinfo};
use probe::{Signature, lvm::VolumeGroup};

/// Mountpoints that belong to the operating system: the disks under them are system disks.
pub const SYSTEM_MOUNTPOINTS: &[&str] = &["/", "/boot", "/boot/efi", "/efi", "/usr"];

/// Whether `p` lies on a system disk by the live mount table: through the discovered
/// disks when they are known (another partition or LV of the system disk counts), else
/// "on the root filesystem". `None` when the mount table does not hold `p` at all.
pub fn in_mount_table_on_system_disk(mounts: &[Mount], layout: &Layout, p: &Path) -> Option<bool> {
    let m = mount_of(mounts, p)?;
    Some(match layout.device_of_mount(m) {
        Some(d) if !layout.system_disks.is_empty() => layout.on_system_disk(d),
        _ => m.mountpoint == Path::new("/"),
    })
}

/// Whether `p` lies on a system disk: by the live mount table when there is one, else by
/// fstab (the entry with the longest mountpoint that holds it; none: the root filesystem).
pub fn on_system_disk(mounts: &[Mount], layout: &Layout, fstab: &[MountEntry], p: &Path) -> bool {
    in_mount_table_on_system_disk(mounts, layout, p).unwrap_or_else(|| {
        fstab
            .iter()
            .filter(|e| !e.swap && !e.pseudo && p.starts_with(&e.mountpoint))
            .max_by_key(|e| e.mountpoint.len())
            .is_none_or(|e| !e.is_data())
    })
}

/// One block device as `/sys/block` shows it (not a snapshot's `data::node::Node`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockNode {
    pub name: String,
    /// `disk`, `part` or `dm`.
    pub kind: String,
    pub dev: String,
    pub size_bytes: u64,
    /// The partition's disk, or the devices a dm device is made of (`slaves/`).
    pub parents: Vec<String>,
    /// The device-mapper name (`datavg-lvdata`).
    pub dm_name: Option<String>,
}

/// A block device in the recorded layout.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BlockDevice {
    pub name: String,
    pub kind: String,
    pub dev: String,
    pub size_bytes: u64,
    /// The whole disks this device lives on (itself for a disk; through dm/LVM for a volume).
    pub disks: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dm_name: Option<String>,
    /// What the device holds, as `probe` reads it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fstype: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub mountpoints: Vec<String>,
    /// Free bytes of its mounted filesystem (live system only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub free_bytes: Option<u64>,
}

/// The disks of a server, as `capture` records them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Layout {
    /// False when `/sys/block` could not be read: nothing below is known.
    pub discovered: bool,
    pub devices: Vec<BlockDevice>,
    /// The disks under /, /boot, /boot/efi and /usr: deleted by the Change OS.
    pub system_disks: Vec<String>,
    /// The other disks: kept.
    pub data_disks: Vec<String>,
}

impl Layout {
    pub fn device(&self, name: &str) -> Option<&BlockDevice> {
        self.devices.iter().find(|d| d.name == name)
    }

    /// The device a mount-table or fstab source names (`/dev/vdb1`, `/dev/mapper/x`,
    /// `/dev/VG/LV`).
    pub fn device_of_source(&self, source: &str) -> Option<&BlockDevice> {
        position_of_source(&self.devices, source).map(|i| &self.devices[i])
    }

    /// The device of a mount of the live mount table.
    pub fn device_of_mount(&self, m: &Mount) -> Option<&BlockDevice> {
        position_of_mount(&self.devices, m).map(|i| &self.devices[i])
    }

    /// The device mounted at `mountpoint`.
    pub fn device_at(&self, mountpoint: &str) -> Option<&BlockDevice> {
        self.devices
            .iter()
            .find(|d| d.mountpoints.iter().any(|m| m == mountpoint))
    }

    /// True when the device lives (partly) on a system disk.
    pub fn on_system_disk(&self, d: &BlockDevice) -> bool {
        d.disks.iter().any(|x| self.system_disks.contains(x))
    }
}

/// Where in `devices` the device a source names is (`/dev/vdb1`, `/dev/mapper/x`,
/// `/dev/VG/LV`).
fn position_of_source(devices: &[BlockDevice], source: &str) -> Option<usize> {
    let rest = source.strip_prefix("/dev/")?;
    let dm = if let Some(dm) = rest.strip_prefix("mapper/") {
        dm.to_string()
    } else if let Some((vg, lv)) = rest.split_once('/') {
        format!("{}-{}", vg.replace('-', "--"), lv.replace('-', "--"))
    } else {
        return devices.iter().position(|d| d.name == rest);
    };
    devices
        .iter()
        .position(|d| d.dm_name.as_deref() == Some(dm.as_str()))
}

/// Where in `devices` a mount's device is: by `major:minor`, else by its source name
/// (btrfs and FUSE mounts show an anonymous device number).
fn position_of_mount(devices: &[BlockDevice], m: &Mount) -> Option<usize> {
    devices
        .iter()
        .position(|d| !d.dev.is_empty() && d.dev == m.dev)
        .or_else(|| position_of_source(devices, &m.source))
}

/// Names under /sys/block that are never disks of a server.
fn ignored(name: &str) -> bool {
    ["ram", "zram", "sr", "fd", "nbd"]
        .iter()
        .any(|p| name.starts_with(p) && name[p.len()..].chars().all(|c| c.is_ascii_digit()))
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Reads the block nodes from `/sys/block` under the root.
pub fn read_sys(root: &Root) -> std::io::Result<Vec<BlockNode>> {
    let dir = root.follow("/sys/block");
    let mut out = Vec::new();
    for entry in crate::sys::list_dir(&dir)? {
        let Some(name) = entry
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if ignored(&name) {
            continue;
        }
        let d = root.follow(format!("/sys/block/{name}"));
        let size = |p: &Path| {
            read_trim(&p.join("size"))
                .and_then(|s| s.parse::<u64>().ok())
                .map_or(0, |s| s * 512)
        };
        let size_bytes = size(&d);
        if size_bytes == 0 {
            continue; // an unused loop device, an empty drive
        }
        let dm_name = read_trim(&d.join("dm/name"));
        let slaves: Vec<String> = crate::sys::list_dir(&d.join("slaves"))
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect();
        out.push(BlockNode {
            kind: if dm_name.is_some() { "dm" } else { "disk" }.into(),
            dev: read_trim(&d.join("dev")).unwrap_or_default(),
            size_bytes,
            parents: slaves,
            dm_name,
            name: name.clone(),
        });
        for sub in crate::sys::list_dir(&d).unwrap_or_default() {
            if !sub.join("partition").is_file() {
                continue;
            }
            let Some(part) = sub.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            out.push(BlockNode {
                name: part.to_string(),
                kind: "part".into(),
                dev: read_trim(&sub.join("dev")).unwrap_or_default(),
                size_bytes: size(&sub),
                parents: vec![name.clone()],
                dm_name: None,
            });
        }
    }
    Ok(out)
}

/// The whole disks under `name`, following partitions to their disk and dm devices to the
/// devices they are made of.
fn disks_of(
    nodes: &BTreeMap<&str, &BlockNode>,
    name: &str,
    depth: u32,
    out: &mut BTreeSet<String>,
) {
    let Some(n) = nodes.get(name) else {
        return;
    };
    if n.kind == "disk" {
        out.insert(n.name.clone());
        return;
    }
    if depth > 16 {
        return;
    }
    for p in &n.parents {
        disks_of(nodes, p, depth + 1, out);
    }
}

/// Builds the layout from the nodes, the mount table and what each device holds.
pub fn layout(
    nodes: &[BlockNode],
    mounts: &[Mount],
    signature: &dyn Fn(&BlockNode) -> Option<Signature>,
) -> (Layout, Vec<VolumeGroup>) {
    let by_name: BTreeMap<&str, &BlockNode> = nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    let mut devices: Vec<BlockDevice> = nodes
        .iter()
        .map(|n| {
            let mut disks = BTreeSet::new();
            disks_of(&by_name, &n.name, 0, &mut disks);
            BlockDevice {
                name: n.name.clone(),
                kind: n.kind.clone(),
                dev: n.dev.clone(),
                size_bytes: n.size_bytes,
                disks: disks.into_iter().collect(),
                dm_name: n.dm_name.clone(),
                ..BlockDevice::default()
            }
        })
        .collect();
    for m in mounts {
        let i = position_of_mount(&devices, m);
        if let Some(i) = i {
            let mp = m.mountpoint.display().to_string();
            if !devices[i].mountpoints.contains(&mp) {
                devices[i].mountpoints.push(mp);
            }
        }
    }
    let mut system = BTreeSet::new();
    for d in &devices {
        if d.mountpoints
            .iter()
            .any(|m| SYSTEM_MOUNTPOINTS.contains(&m.as_str()))
        {
            system.extend(d.disks.iter().cloned());
        }
    }
    let mut groups: BTreeMap<String, VolumeGroup> = BTreeMap::new();
    let mut pv_disks: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (d, n) in devices.iter_mut().zip(nodes) {
        let Some(sig) = signature(n) else { continue };
        d.fstype = sig.kind;
        d.uuid = sig.uuid;
        d.label = sig.label;
        if let Some(vg) = sig.lvm {
            pv_disks.insert(vg.this_pv.clone(), d.disks.clone());
            let keep = groups.get(&vg.uuid).is_none_or(|g| g.seqno < vg.seqno);
            if keep {
                groups.insert(vg.uuid.clone(), vg);
            }
        }
    }
    let vgs = groups
        .into_values()
        .map(|mut vg| {
            for pv in vg.pvs.iter_mut() {
                pv.disks = pv_disks.get(&pv.uuid).cloned().unwrap_or_else(|| {
                    // not found on any device: LVM's own hint of where it last was
                    let hint = pv.device.as_deref().and_then(|p| p.strip_prefix("/dev/"));
                    let mut out = BTreeSet::new();
                    if let Some(h) = hint {
                        disks_of(&by_name, h, 0, &mut out);
                    }
                    out.into_iter().collect()
                });
            }
            vg
        })
        .collect();
    let data_disks = devices
        .iter()
        .filter(|d| d.kind == "disk" && !system.contains(&d.name))
        .map(|d| d.name.clone())
        .collect();
    (
        Layout {
            discovered: true,
            devices,
            system_disks: system.into_iter().collect(),
            data_disks,
        },
        vgs,
    )
}

/// What discovery found, and what it could not read.
#[derive(Debug, Default)]
pub struct Discovery {
    pub layout: Layout,
    pub volume_groups: Vec<VolumeGroup>,
    pub mounts: Option<Vec<Mount>>,
    /// Why parts of it are unknown (`/sys/block` or the mount table absent).
    pub notes: Vec<String>,
}

/// Discovers the disks of the system under the root.
pub fn discover(root: &Root) -> Discovery {
    let mut notes = Vec::new();
    let mounts = match mount_table(root) {
        Ok(t) => Some(t),
        Err(e) => {
            notes.push(format!("{MOUNT_TABLE} cannot be read: {e}"));
            None
        }
    };
    let nodes = match read_sys(root) {
        Ok(n) => n,
        Err(e) => {
            notes.push(format!("/sys/block cannot be read: {e}"));
            return Discovery {
                mounts,
                notes,
                ..Discovery::default()
            };
        }
    };
    let signature =
        |n: &BlockNode| probe::probe_path(&root.follow(format!("/dev/{}", n.name))).ok();
    let (mut layout, volume_groups) =
        self::layout(&nodes, mounts.as_deref().unwrap_or(&[]), &signature);
    if root.is_live() {
        for d in layout.devices.iter_mut() {
            if let Some(mp) = d.mountpoints.first() {
                d.free_bytes = crate::sys::free_bytes(Path::new(mp));
            }
        }
    }
    Discovery {
        layout,
        volume_groups,
        mounts,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use probe::lvm::{LogicalVolume, PhysicalVolume};

    fn node(name: &str, kind: &str, dev: &str, parents: &[&str], dm: Option<&str>) -> BlockNode {
        BlockNode {
            name: name.into(),
            kind: kind.into(),
            dev: dev.into(),
            size_bytes: 1 << 30,
            parents: parents.iter().map(|s| s.to_string()).collect(),
            dm_name: dm.map(str::to_string),
        }
    }

    /// An ECS: vda (system, root on an LV of sysvg on vda2), vdb (a PV of datavg),
    /// vdc (NTFS on vdc1).
    fn ecs() -> Vec<BlockNode> {
        vec![
            node("vda", "disk", "253:0", &[], None),
            node("vda1", "part", "253:1", &["vda"], None),
            node("vda2", "part", "253:2", &["vda"], None),
            node("vdb", "disk", "253:16", &[], None),
            node("vdc", "disk", "253:32", &[], None),
            node("vdc1", "part", "253:33", &["vdc"], None),
            node("dm-0", "dm", "254:0", &["vda2"], Some("sysvg-root")),
            node("dm-1", "dm", "254:1", &["vdb"], Some("datavg-lvdata")),
        ]
    }

    fn vg(name: &str, uuid: &str, this: &str, pvs: &[(&str, &str)]) -> VolumeGroup {
        VolumeGroup {
            name: name.into(),
            uuid: uuid.into(),
            seqno: 2,
            this_pv: this.into(),
            pvs: pvs
                .iter()
                .map(|(n, u)| PhysicalVolume {
                    name: n.to_string(),
                    uuid: u.to_string(),
                    device: None,
                    disks: vec![],
                })
                .collect(),
            lvs: vec![LogicalVolume {
                name: "lv".into(),
                uuid: "l".into(),
                pvs: vec!["pv0".into()],
            }],
        }
    }

    #[test]
    fn system_disk_is_found_through_lvm_and_data_disks_are_the_rest() {
        let mounts = parse_mountinfo(
            "22 1 254:0 / / rw - ext4 /dev/mapper/sysvg-root rw\n23 22 253:1 / /boot rw - ext4 /dev/vda1 rw\n95 22 254:1 / /mnt/data rw - ext4 /dev/mapper/datavg-lvdata rw\n96 22 0:50 / /mnt/win rw - fuseblk /dev/vdc1 rw\n",
        );
        let sig = |n: &BlockNode| match n.name.as_str() {
            "vda2" => Some(Signature {
                kind: Some("LVM2_member".into()),
                lvm: Some(vg("sysvg", "S", "P1", &[("pv0", "P1")])),
                ..Signature::default()
            }),
            "vdb" => Some(Signature {
                kind: Some("LVM2_member".into()),
                lvm: Some(vg("datavg", "D", "P2", &[("pv0", "P2")])),
                ..Signature::default()
            }),
            "vdc1" => Some(Signature {
                kind: Some("ntfs".into()),
                uuid: Some("5F1E3C2B4A596D70".into()),
                ..Signature::default()
            }),
            _ => None,
        };
        let (l, vgs) = layout(&ecs(), &mounts, &sig);
        assert_eq!(l.system_disks, vec!["vda"]);
        assert_eq!(l.data_disks, vec!["vdb", "vdc"]);
        assert_eq!(l.device_at("/mnt/win").unwrap().name, "vdc1", "by source");
        assert_eq!(l.device_at("/mnt/data").unwrap().disks, vec!["vdb"]);
        assert_eq!(
            l.device_of_source("/dev/datavg/lvdata").unwrap().name,
            "dm-1"
        );
        assert!(l.on_system_disk(l.device_at("/").unwrap()));
        assert_eq!(vgs.len(), 2);
        let data = vgs.iter().find(|v| v.name == "datavg").unwrap();
        assert_eq!(data.pvs[0].disks, vec!["vdb"]);
    }

    #[test]
    fn a_vg_spanning_disks_is_merged_by_uuid_keeping_the_newest() {
        let sig = |n: &BlockNode| {
            let pvs = [("pv0", "P1"), ("pv1", "P2")];
            match n.name.as_str() {
                "vda2" => Some(Signature {
                    lvm: Some(vg("sysvg", "S", "P1", &pvs)),
                    ..Signature::default()
                }),
                "vdb" => {
                    let mut v = vg("sysvg", "S", "P2", &pvs);
                    v.seqno = 3;
                    Some(Signature {
                        lvm: Some(v),
                        ..Signature::default()
                    })
                }
                _ => None,
            }
        };
        let (_, vgs) = layout(&ecs(), &[], &sig);
        assert_eq!(vgs.len(), 1);
        assert_eq!(vgs[0].seqno, 3);
        assert_eq!(vgs[0].pvs[0].disks, vec!["vda"]);
        assert_eq!(vgs[0].pvs[1].disks, vec!["vdb"]);
    }

    #[test]
    fn loops_in_the_holder_graph_end() {
        let nodes = vec![
            node("dm-0", "dm", "254:0", &["dm-1"], Some("a")),
            node("dm-1", "dm", "254:1", &["dm-0"], Some("b")),
        ];
        let (l, _) = layout(&nodes, &[], &|_| None);
        assert!(l.devices.iter().all(|d| d.disks.is_empty()));
    }
}
