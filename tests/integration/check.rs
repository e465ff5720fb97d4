//! Preflight through the CLI on an ECS-shaped root (vda system disk, LVM on vdb, a device
//! name in fstab): findings JSON, exit 3 on a blocker, `--ack` and `[check] ack`.

use super::fixtures::*;

fn ecs(dir: &std::path::Path) -> Tree {
    let t = old_debian(dir);
    t.file(
        "/proc/self/mountinfo",
        "22 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw\n95 22 253:0 / /data rw - ext4 /dev/mapper/datavg-lvdata rw\n96 22 254:17 / /srv rw - ext4 /dev/vdb1 rw\n",
    );
    t.dir("/var/backups/carryover");
    t.dir("/data/carryover");
    t
}

#[test]
fn findings_exit_codes_and_acks() {
    let t = tempfile::tempdir().unwrap();
    let old = ecs(&t.path().join("old"));
    let root = old.dir.to_str().unwrap();
    let on_system = old.p("/var/backups/carryover");
    let on_data = old.p("/data/carryover");

    let o = carryover(&[
        "check",
        "--root",
        root,
        "--store",
        on_data.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let v = json(&o);
    assert_eq!(v["target"], "linux");
    let keys: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert!(
        keys.contains(&"fstab-device-name-unstable"),
        "/dev/vdc2 swap: {keys:?}"
    );
    assert!(keys.contains(&"swap-on-data-disk"));
    assert!(keys.contains(&"ntfs-needs-ntfs3g"), "{keys:?}");
    assert!(!keys.contains(&"store-on-system-disk"));
    for f in v["findings"].as_array().unwrap() {
        for k in ["key", "severity", "message", "evidence", "remediation"] {
            assert!(f[k].is_string(), "{f}");
        }
    }

    // the store on the system disk: a blocker, capture stops with 3 and writes nothing
    let o = carryover(&[
        "check",
        "--root",
        root,
        "--store",
        on_system.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stdout(&o).contains("store-on-system-disk"));
    let o = carryover(&[
        "capture",
        "--root",
        root,
        "--store",
        on_system.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("store-on-system-disk"));
    assert!(!on_system.join("snapshots").exists());
    let o = carryover(&[
        "capture",
        "--root",
        root,
        "--store",
        on_system.to_str().unwrap(),
        "--ack",
        "store-on-system-disk",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        json(&o)["findings"]
            .to_string()
            .contains("store-on-system-disk")
    );

    // to Windows: the LVM volume is a blocker, ext4 a warning; [check] ack accepts
    let o = carryover(&[
        "check",
        "--root",
        root,
        "--target",
        "windows",
        "--store",
        on_data.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(3));
    let text = stdout(&o);
    assert!(
        text.contains("lvm-to-windows") && text.contains("linux-fs-to-windows"),
        "{text}"
    );
    old.file(
        "/etc/carryover/config.toml",
        "[check]\ntarget = \"windows\"\nack = [\"lvm-to-windows\"]\n",
    );
    let o = carryover(&[
        "check",
        "--root",
        root,
        "--store",
        on_data.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("(acknowledged)"));
}
