//! Disk discovery on an ECS-shaped root built from real parts: a `/sys/block` tree
//! (vda system disk with root on vda1 and /srv on vda3, vdb and vdd LVM PVs, vdc with an
//! NTFS partition and swap, dm-0 the data LV), a mount table, and in `/dev` real images —
//! PVs made by pvcreate/vgcreate on loop devices, mkntfs, mkswap and mkfs.ext4 output.
//! `inspect` reports the layout and the volume groups, `check` fires
//! `lvm-vg-spans-system-disk` and `mount-on-system-disk`, and a restore into a new OS
//! writes the device-named swap by UUID.

use std::path::Path;
use std::process::Command;

use super::fixtures::*;

fn sh(cmd: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Loop devices and volume groups removed when the test ends, whatever happens.
struct Cleanup {
    loops: Vec<String>,
    vgs: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for vg in &self.vgs {
            let _ = Command::new("vgremove").args(["-f", vg]).output();
        }
        for l in &self.loops {
            let _ = Command::new("losetup").args(["-d", l]).status();
        }
    }
}

fn blank(path: &Path, mib: u64) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(mib << 20).unwrap();
}

const SWAP_UUID: &str = "5a1e0d1c-0000-4000-8000-0000000000c2";
const LV_UUID: &str = "da7a0000-1111-4222-8333-444455556666";

/// Writes `/sys/block/NAME` (and a partition under a disk) as the kernel shows them.
fn sys_disk(t: &Tree, name: &str, dev: &str, mib: u64) {
    t.file(&format!("/sys/block/{name}/dev"), &format!("{dev}\n"));
    t.file(
        &format!("/sys/block/{name}/size"),
        &format!("{}\n", mib * 2048),
    );
}

fn sys_part(t: &Tree, disk: &str, name: &str, dev: &str, mib: u64) {
    let base = format!("/sys/block/{disk}/{name}");
    t.file(&format!("{base}/dev"), &format!("{dev}\n"));
    t.file(&format!("{base}/size"), &format!("{}\n", mib * 2048));
    t.file(&format!("{base}/partition"), "1\n");
}

fn ecs_with_disks(dir: &Path, images: &Path, c: &mut Cleanup) -> Tree {
    let t = old_debian(dir);
    let pid = std::process::id();
    let (span, data) = (format!("cospan{pid}"), format!("codata{pid}"));
    // three PVs on loop devices: spanvg over vda2 + vdb, datavg on vdd
    let mut loops = Vec::new();
    for name in ["vda2", "vdb", "vdd"] {
        let img = images.join(format!("{name}.img"));
        blank(&img, 16);
        let dev = sh(&format!("losetup -f --show {}", img.display()));
        c.loops.push(dev.clone());
        loops.push(dev);
    }
    sh(&format!(
        "pvcreate -q -f {a} {b} {d} && vgcreate -q {span} {a} {b} && vgcreate -q {data} {d}",
        a = loops[0],
        b = loops[1],
        d = loops[2]
    ));
    c.vgs.push(span.clone());
    c.vgs.push(data.clone());
    for name in ["vda2", "vdb", "vdd"] {
        std::fs::copy(
            images.join(format!("{name}.img")),
            t.p(&format!("/dev/{name}")),
        )
        .map(|_| ())
        .or_else(|_| {
            t.dir("/dev");
            std::fs::copy(
                images.join(format!("{name}.img")),
                t.p(&format!("/dev/{name}")),
            )
            .map(|_| ())
        })
        .unwrap();
    }
    let dev = |n: &str| t.p(&format!("/dev/{n}")).display().to_string();
    blank(&t.p("/dev/vdc1"), 8);
    sh(&format!(
        "mkntfs -q -F -f -L WINDATA {} >/dev/null",
        dev("vdc1")
    ));
    blank(&t.p("/dev/vdc2"), 4);
    sh(&format!("mkswap -q -U {SWAP_UUID} {}", dev("vdc2")));
    blank(&t.p("/dev/dm-0"), 8);
    sh(&format!("mkfs.ext4 -q -F -U {LV_UUID} {}", dev("dm-0")));
    blank(&t.p("/dev/vda1"), 8);
    sh(&format!("mkfs.ext4 -q -F {}", dev("vda1")));
    blank(&t.p("/dev/vda3"), 8);
    sh(&format!("mkfs.ext4 -q -F {}", dev("vda3")));

    sys_disk(&t, "vda", "253:0", 40);
    sys_part(&t, "vda", "vda1", "253:1", 8);
    sys_part(&t, "vda", "vda2", "253:2", 16);
    sys_part(&t, "vda", "vda3", "253:3", 8);
    sys_disk(&t, "vdb", "253:16", 16);
    sys_disk(&t, "vdc", "253:32", 16);
    sys_part(&t, "vdc", "vdc1", "253:33", 8);
    sys_part(&t, "vdc", "vdc2", "253:34", 4);
    sys_disk(&t, "vdd", "253:48", 16);
    sys_disk(&t, "dm-0", "254:0", 8);
    t.file("/sys/block/dm-0/dm/name", "datavg-lvdata\n");
    t.dir("/sys/block/dm-0/slaves/vdd");
    sys_disk(&t, "loop7", "7:7", 0); // an unused loop device: not a disk
    t.file(
        "/proc/self/mountinfo",
        "22 1 253:1 / / rw,relatime - ext4 /dev/vda1 rw\n23 22 253:3 / /srv rw - ext4 /dev/vda3 rw\n95 22 254:0 / /data rw - ext4 /dev/mapper/datavg-lvdata rw\n96 22 0:50 / /mnt/win rw - fuseblk /dev/vdc1 rw\n",
    );
    t.dir("/data/carryover");
    t
}

fn keys(v: &serde_json::Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn discovery_findings_and_restore_by_uuid() {
    let t = tempfile::tempdir().unwrap();
    let mut c = Cleanup {
        loops: vec![],
        vgs: vec![],
    };
    let images = t.path().join("images");
    std::fs::create_dir(&images).unwrap();
    let old = ecs_with_disks(&t.path().join("old"), &images, &mut c);
    let root = old.dir.to_str().unwrap();
    let pid = std::process::id();

    let o = Cmd::new("inspect").root(root).json().run();
    let v = json(&o);
    let disks = &v["disks"];
    assert_eq!(disks["discovered"], true);
    assert_eq!(disks["system_disks"], serde_json::json!(["vda"]));
    assert_eq!(
        disks["data_disks"],
        serde_json::json!(["vdb", "vdc", "vdd"]),
        "dm-0 is a volume, loop7 is empty: {disks}"
    );
    let dev = |name: &str| {
        disks["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {disks}"))
            .clone()
    };
    assert_eq!(dev("dm-0")["disks"], serde_json::json!(["vdd"]));
    assert_eq!(dev("dm-0")["uuid"], LV_UUID);
    assert_eq!(dev("dm-0")["mountpoints"], serde_json::json!(["/data"]));
    assert_eq!(dev("vdc1")["type"], serde_json::Value::Null);
    assert_eq!(dev("vdc1")["fstype"], "ntfs");
    assert_eq!(dev("vdc1")["label"], "WINDATA");
    assert_eq!(dev("vdc2")["uuid"], SWAP_UUID);
    assert_eq!(dev("vdb")["fstype"], "LVM2_member");
    let vgs = v["lvm"]["volume_groups"].as_array().unwrap();
    let vg = |name: String| {
        vgs.iter()
            .find(|g| g["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} in {vgs:?}"))
            .clone()
    };
    let span = vg(format!("cospan{pid}"));
    let mut on: Vec<String> = span["pvs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["disks"][0].as_str().unwrap().to_string())
        .collect();
    on.sort();
    assert_eq!(on, vec!["vda", "vdb"]);
    assert_eq!(vg(format!("codata{pid}"))["pvs"][0]["disks"][0], "vdd");
    let text = stdout(&Cmd::new("inspect").root(root).run());
    assert!(
        text.contains("system disk") && text.contains("vda"),
        "{text}"
    );

    // check: the VG over vda2+vdb and /srv on vda3 are blockers; the store on the LV is fine
    let store = old.p("/data/carryover");
    let store_s = store.to_str().unwrap();
    let o = Cmd::new("check").root(root).store(store_s).json().run();
    assert_exit!(o, Some(3));
    let k = keys(&json(&o));
    assert!(k.contains(&"lvm-vg-spans-system-disk".into()), "{k:?}");
    assert!(k.contains(&"mount-on-system-disk".into()), "{k:?}");
    assert!(!k.contains(&"store-on-system-disk".into()), "{k:?}");
    assert!(!k.contains(&"disks-unavailable".into()), "{k:?}");
    let o = Cmd::new("check")
        .root(root)
        .store(old.p("/srv"))
        .args(&[
            "--ack",
            "lvm-vg-spans-system-disk",
            "--ack",
            "mount-on-system-disk",
        ])
        .json()
        .run();
    assert!(
        keys(&json(&o)).contains(&"store-on-system-disk".into()),
        "/srv is on vda3, a partition of the system disk"
    );
    // /srv in [data] paths: carried by the store, no longer a blocker
    let o = Cmd::new("check")
        .root(root)
        .store(store_s)
        .args(&["--path", "/srv"])
        .json()
        .run();
    let k = keys(&json(&o));
    assert!(!k.contains(&"mount-on-system-disk".into()), "{k:?}");

    // capture with the acks, restore into a new OS: the swap named /dev/vdc2 comes back by UUID
    let o = Cmd::new("capture")
        .root(root)
        .store(store_s)
        .args(&[
            "--ack",
            "lvm-vg-spans-system-disk",
            "--ack",
            "mount-on-system-disk",
        ])
        .run();
    assert_exit!(o, Some(0));
    let new = new_ubuntu(&t.path().join("new"));
    let o = Cmd::new("restore")
        .root(&new.dir)
        .store(store_s)
        .json()
        .run();
    let v = json(&o);
    let fstab = new.read("/etc/fstab");
    assert!(
        fstab.contains(&format!("UUID={SWAP_UUID}\tnone\tswap\tsw,nofail")),
        "{fstab}"
    );
    assert!(!fstab.contains("/dev/vdc2"), "{fstab}");
    assert!(
        fstab.contains("/dev/mapper/datavg-lvdata\t/data"),
        "{fstab}"
    );
    let steps = v["steps"].as_array().unwrap();
    let disks_step = steps.iter().find(|s| s["name"] == "disks").unwrap();
    let warnings = disks_step["warnings"].to_string();
    assert!(
        warnings.contains("lvm2 is not installed") && warnings.contains("ntfs-3g"),
        "{disks_step}"
    );
}
