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

    let o = Cmd::new("check").root(root).store(&on_data).json().run();
    assert_exit!(o, Some(0));
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
    let o = Cmd::new("check").root(root).store(&on_system).run();
    assert_exit!(o, Some(3));
    assert!(stdout(&o).contains("store-on-system-disk"));
    let o = Cmd::new("capture").root(root).store(&on_system).run();
    assert_exit!(o, Some(3));
    assert!(stderr(&o).contains("store-on-system-disk"));
    assert!(!on_system.join("snapshots").exists());
    let o = Cmd::new("capture")
        .root(root)
        .store(&on_system)
        .args(&["--ack", "store-on-system-disk"])
        .json()
        .run();
    assert_exit!(o, Some(0));
    assert!(
        json(&o)["findings"]
            .to_string()
            .contains("store-on-system-disk")
    );

    // to Windows: the LVM volume is a blocker, ext4 a warning; [check] ack accepts
    let o = Cmd::new("check")
        .root(root)
        .args(&["--target", "windows"])
        .store(&on_data)
        .json()
        .run();
    assert_exit!(o, Some(3));
    let text = stdout(&o);
    assert!(
        text.contains("lvm-to-windows") && text.contains("linux-fs-to-windows"),
        "{text}"
    );
    old.file(
        "/etc/carryover/config.toml",
        "[check]\ntarget = \"windows\"\nack = [\"lvm-to-windows\"]\n",
    );
    let o = Cmd::new("check").root(root).store(&on_data).run();
    assert_exit!(o, Some(0));
    assert!(stdout(&o).contains("(acknowledged)"));
}

/// #12.7: mistakes `check` must catch while the old disk still exists.
#[test]
fn set_up_mistakes_are_caught_before_the_change() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    old.file("/srv/app/index.html", "hello\n");
    // no DMI product UUID and no metadata service: the id comes from machine-id
    std::fs::remove_file(old.p("/sys/class/dmi/id/product_uuid")).unwrap();
    old.file(
        "/etc/carryover/config.toml",
        "[data]\npaths = [\"/srv/app\", \"/srv/ap\"]\n[check]\nack = [\"swap-on-data-dsk\"]\n",
    );
    let o = Cmd::new("check").root(&old.dir).json().run();
    assert_exit!(o, Some(3));
    let v = json(&o);
    let find = |key: &str| {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["key"] == key)
            .cloned()
            .unwrap_or_else(|| panic!("no {key} in {v}"))
    };
    let missing = find("data-path-missing");
    assert_eq!(missing["severity"], "blocker");
    assert!(
        missing["message"].as_str().unwrap().contains("/srv/ap "),
        "{missing}"
    );
    assert!(!v.to_string().contains("/srv/app does not exist"), "{v}");
    let typo = find("ack-unknown-key");
    assert!(
        typo["remediation"]
            .as_str()
            .unwrap()
            .contains("swap-on-data-disk"),
        "{typo}"
    );
    assert_eq!(find("store-not-configured")["severity"], "warning");
    assert_eq!(find("report-not-configured")["severity"], "warning");
    let hashes = find("password-hashes-not-captured");
    assert!(hashes["evidence"].as_str().unwrap().contains("alice"));
    assert!(
        !hashes["evidence"].as_str().unwrap().contains("bob"),
        "bob's is locked"
    );
    assert!(
        !v.to_string().contains("HASHEDPASSWORD"),
        "no hash in the output"
    );
    find("instance-id-from-machine-id");

    // set up right: none of these
    old.file(
        "/etc/carryover/config.toml",
        "[store]\nurl = \"/mnt/store\"\n[data]\npaths = [\"/srv\"]\n[capture]\npassword_hashes = true\n[report]\nurl = \"https://orchestrator.invalid/api\"\nsend_timeout_seconds = 1\n",
    );
    old.file_mode("/etc/carryover/token", "t0ken\n", 0o600);
    old.file("/sys/class/dmi/id/product_uuid", &format!("{INSTANCE}\n"));
    let v = json(&Cmd::new("check").root(&old.dir).json().run());
    for key in [
        "data-path-missing",
        "ack-unknown-key",
        "store-not-configured",
        "report-not-configured",
        "report-token-missing",
        "password-hashes-not-captured",
        "instance-id-from-machine-id",
    ] {
        assert!(
            !v["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["key"] == key),
            "{key} in {v}"
        );
    }

    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["key"] == "store-not-encrypted" && f["severity"] == "info"),
        "{v}"
    );
    // a token over plain http to another host
    old.file(
        "/etc/carryover/config.toml",
        "[store]\nurl = \"/mnt/store\"\n[capture]\npassword_hashes = true\n[report]\nurl = \"http://orchestrator.invalid/api\"\nsend_timeout_seconds = 1\n",
    );
    let v = json(&Cmd::new("check").root(&old.dir).json().run());
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["key"] == "report-token-over-http"),
        "{v}"
    );

    // the capture stops on the missing path before touching the store
    let store = t.path().join("store");
    let o = Cmd::new("capture")
        .root(&old.dir)
        .store(&store)
        .args(&["--path", "/srv/typo"])
        .run();
    assert_exit!(o, Some(3));
    assert!(stderr(&o).contains("data-path-missing"), "{}", stderr(&o));
    assert!(!store.exists());
}

/// `check` and `capture` read `--path` the same way: one that is not absolute would be
/// relative to where carryover was started, and both refuse it (exit 2) before reading.
#[test]
fn check_refuses_a_relative_data_path_as_capture_does() {
    let t = tempfile::tempdir().unwrap();
    let old = ecs(&t.path().join("old"));
    let store = old.p("/data/carryover");
    for command in ["check", "capture"] {
        let o = Cmd::new(command)
            .root(&old.dir)
            .store(&store)
            .args(&["--path", "srv/app"])
            .run();
        assert_exit!(o, Some(2));
        assert!(
            stderr(&o).contains("--path srv/app: not an absolute path"),
            "{command}: {}",
            stderr(&o)
        );
    }
    assert!(
        std::fs::read_dir(&store).unwrap().next().is_none(),
        "nothing written to the store"
    );
}
