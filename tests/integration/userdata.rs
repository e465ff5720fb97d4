//! The Change OS user-data: for a store on a real (loop-mounted) data disk it finds the
//! filesystem by the UUID blkid sees, installs the agent capture kept in the store, runs
//! restore; it is valid YAML under 32 KB and carries no secret.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::fixtures::*;

struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A filesystem image made by `mkfs` and mounted by `mount` (`{img} {mnt}` appended),
/// unmounted when the guard drops.
fn mounted_disk(
    dir: &Path,
    name: &str,
    size: &str,
    mkfs: &str,
    mount: &str,
) -> (PathBuf, PathBuf, Unmount) {
    let img = dir.join(format!("{name}.img"));
    let mnt = dir.join(name);
    std::fs::create_dir(&mnt).unwrap();
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "truncate -s {size} {0} && {mkfs} {0} >/dev/null 2>&1 && {mount} {0} {1}",
            img.display(),
            mnt.display()
        ))
        .status()
        .unwrap();
    assert!(st.success(), "{mkfs} / {mount}");
    let guard = Unmount(mnt.clone());
    (img, mnt, guard)
}

/// The filesystem UUID blkid reads from an image.
fn blkid_uuid(img: &Path) -> String {
    let out = Command::new("blkid")
        .args(["-p", "-s", "UUID", "-o", "value"])
        .arg(img)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn user_data_mounts_the_store_disk_by_uuid_and_runs_restore() {
    let t = tempfile::tempdir().unwrap();
    let (img, mnt, _u) = mounted_disk(t.path(), "data", "1G", "mkfs.ext4 -q -F", "mount -o loop");
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
    let uuid = blkid_uuid(&img);
    assert!(
        script.contains(&format!("mount UUID={uuid} /run/carryover-store")),
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

#[test]
fn windows_user_data_finds_an_ntfs_store_by_serial_and_refuses_ext4() {
    let t = tempfile::tempdir().unwrap();
    let (img, mnt, _u) = mounted_disk(t.path(), "ntfs", "64M", "mkntfs -q -F -f", "ntfs-3g");
    let store = mnt.join("fleet/carryover");
    let old = old_debian(&t.path().join("old"));
    capture(&old.dir, &store);
    let exe = t.path().join("carryover.exe");
    std::fs::write(&exe, b"MZ the Windows agent").unwrap();

    // no Windows agent in the store yet: said so, with the way out
    let o = carryover(&[
        "userdata",
        "--os",
        "windows",
        "--store",
        store.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--agent"), "{}", stderr(&o));

    let o = carryover_env(
        &[
            "userdata",
            "--os",
            "windows",
            "--agent",
            exe.to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
        ],
        &[("AWS_SECRET_ACCESS_KEY", "PLANTED-SECRET")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let ps = stdout(&o);
    println!("{ps}");
    assert!(ps.starts_with("#ps1_sysnative\n") && ps.len() < 32 * 1024);
    assert!(!ps.contains("PLANTED-SECRET"));
    assert_eq!(
        std::fs::read(store.join("agent/carryover.exe")).unwrap(),
        b"MZ the Windows agent",
        "--agent puts the Windows agent into the store"
    );
    let uuid = blkid_uuid(&img);
    let serial = &uuid[uuid.len() - 8..];
    assert!(ps.contains(&format!("-eq '{serial}'")), "{serial}: {ps}");
    assert!(
        ps.contains("$store = Join-Path $store 'fleet\\carryover'"),
        "{ps}"
    );
    assert!(ps.contains("& $exe service install"));

    // an ext4 store cannot be read by Windows: refused, with the reason
    let (_, emnt, _e) = mounted_disk(t.path(), "ext", "64M", "mkfs.ext4 -q -F", "mount -o loop");
    let o = carryover(&[
        "userdata",
        "--os",
        "windows",
        "--agent",
        exe.to_str().unwrap(),
        "--store",
        emnt.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("Windows cannot read"), "{}", stderr(&o));
}
