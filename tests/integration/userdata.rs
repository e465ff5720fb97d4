//! The Change OS user-data: for a store on a real (loop-mounted) data disk it finds the
//! filesystem by the UUID blkid sees, installs the agent capture kept in the store, runs
//! restore; it is valid YAML under 32 KB and carries no secret.

use std::path::PathBuf;
use std::process::Command;

use super::fixtures::*;

struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn user_data_mounts_the_store_disk_by_uuid_and_runs_restore() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("data.img");
    let mnt = t.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "truncate -s 1G {0} && mkfs.ext4 -q -F {0} && mount -o loop {0} {1}",
            img.display(),
            mnt.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    let _u = Unmount(mnt.clone());
    let old = old_debian(&t.path().join("old"));
    let store = mnt.join("fleet/carryover");
    capture(&old.dir, &store);
    let kept = std::fs::read(store.join("agent/carryover")).unwrap();
    assert_eq!(
        kept,
        std::fs::read(env!("CARGO_BIN_EXE_carryover")).unwrap(),
        "capture keeps the agent in the store"
    );

    let o = carryover_env(
        &["userdata", "--store", store.to_str().unwrap()],
        &[("AWS_SECRET_ACCESS_KEY", "PLANTED-SECRET")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.starts_with("#cloud-config\n") && text.len() < 32 * 1024);
    assert!(!text.contains("PLANTED-SECRET"));
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).unwrap();
    let script = docs[0]["runcmd"][0][2].as_str().unwrap().to_string();
    let uuid = String::from_utf8(
        Command::new("blkid")
            .args(["-p", "-s", "UUID", "-o", "value"])
            .arg(&img)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        script.contains(&format!("mount UUID={} /run/carryover-store", uuid.trim())),
        "{script}"
    );
    assert!(script.contains("install -m 0755 '/run/carryover-store/fleet/carryover/agent/carryover' /usr/local/bin/carryover"), "{script}");
    assert!(
        script.contains("[store]\nurl = \"/run/carryover-store/fleet/carryover\"\n"),
        "{script}"
    );
    assert!(script.contains("systemctl start --no-block carryover-restore.service"));
}

#[test]
fn a_store_on_the_system_disk_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let df = String::from_utf8(
        Command::new("findmnt")
            .args(["-n", "-o", "TARGET", "-T"])
            .arg(t.path())
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    if df.trim() != "/" {
        // this machine keeps temporary files on another filesystem: nothing to check here
        return;
    }
    let o = carryover(&["userdata", "--store", t.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("root filesystem"), "{}", stderr(&o));
}
