//! Accounts across the change (#13): the same ids where free, no cascade when one is
//! taken, files on the surviving data disks re-owned with a moved id, and a same-name
//! account of the new image never handed the old user's groups.

use std::os::unix::fs::{MetadataExt, chown};

use super::fixtures::*;

fn owner(t: &Tree, abs: &str) -> (u32, u32) {
    let m = std::fs::symlink_metadata(t.p(abs)).unwrap();
    (m.uid(), m.gid())
}

#[test]
fn ids_stay_where_free_and_files_on_the_data_disk_keep_their_owner() {
    let t = tempfile::tempdir().unwrap();
    let old = old_ubuntu(&t.path().join("old"));
    let store = t.path().join("store");
    capture(&old.dir, &store);

    // the data disk survives the change: /data (an fstab data mount) with files owned by
    // numbers, as the old OS left them; the new OS mounts it where it was
    let new = new_debian(&t.path().join("new"));
    for (path, id) in [
        ("/data/alice/db.sqlite", 1001),
        ("/data/ubuntu/notes.txt", 1000),
        ("/data/deploy/app.tar", 1002),
    ] {
        new.file(path, "data\n");
        chown(new.p(path), Some(id), Some(id)).unwrap();
        chown(new.p(path).parent().unwrap(), Some(id), Some(id)).unwrap();
    }
    // a symlink pointing at the image user's file: never followed
    new.link("/data/ubuntu/escape", "/home/debian/.bashrc");
    std::os::unix::fs::lchown(new.p("/data/ubuntu/escape"), Some(1000), Some(1000)).unwrap();

    let o = restore(&new.dir, &store, &[], &[]);
    let v = json(&o);
    let passwd = new.read("/etc/passwd");
    // alice and deploy keep their ids; only ubuntu (1000 is the image's debian) moves, to
    // an id no captured account had
    assert_eq!(uid_in(&passwd, "alice"), 1001, "{passwd}");
    assert_eq!(uid_in(&passwd, "deploy"), 1002, "{passwd}");
    let ubuntu = uid_in(&passwd, "ubuntu");
    assert!(ubuntu > 1003, "{passwd}");
    // the image's debian stays as it is; the old debian (1003) is not merged into it
    assert_eq!(uid_in(&passwd, "debian"), 1000);
    assert!(!passwd.contains(":1003:"), "{passwd}");
    let group = new.read("/etc/group");
    assert!(group.contains("devs:x:2000:alice,deploy\n"), "{group}");
    assert!(
        group.contains("sudo:x:27:debian,ubuntu\n") || group.contains("sudo:x:27:debian\n"),
        "{group}"
    );

    // files on the data disk: alice's and deploy's unchanged, ubuntu's moved with it
    assert_eq!(owner(&new, "/data/alice/db.sqlite"), (1001, 1001));
    assert_eq!(owner(&new, "/data/deploy/app.tar"), (1002, 1002));
    assert_eq!(owner(&new, "/data/ubuntu/notes.txt"), (ubuntu, ubuntu));
    assert_eq!(owner(&new, "/data/ubuntu"), (ubuntu, ubuntu));
    assert_eq!(
        owner(&new, "/data/ubuntu/escape"),
        (ubuntu, ubuntu),
        "the link itself"
    );
    assert_eq!(
        owner(&new, "/home/debian/.bashrc"),
        (1000, 1000),
        "not followed"
    );

    let step = |name: &str| {
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap()
    };
    let reown = step("reown");
    assert_eq!(reown["status"], "changed", "{reown}");
    assert!(
        reown["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("uid 1000→{ubuntu}")),
        "{reown}"
    );
    // the same-name account is something a person must decide: degraded
    let acc = step("accounts");
    assert!(
        acc["attention"].to_string().contains("user debian"),
        "{acc}"
    );
    assert_eq!(v["state"], "degraded", "{v}");
    assert_exit!(o, Some(4));

    // a second restore moves nothing more
    let v = json(&restore(&new.dir, &store, &[], &[]));
    let reown = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "reown")
        .cloned()
        .unwrap();
    assert_eq!(reown["status"], "unchanged", "{reown}");
    assert_eq!(owner(&new, "/data/alice/db.sqlite"), (1001, 1001));
}

/// #13.2 and #13.3 for restored files: a file of `mysql` (112:118, package not installed
/// on the new OS, where 112 is sshd and 118 ssl-cert) gets a system account of its own
/// name, never sshd's; a file of the old `debian` (1003) is never given to the image's
/// sudo user `debian`.
#[test]
fn restored_files_never_belong_to_another_named_account() {
    let t = tempfile::tempdir().unwrap();
    let old = old_ubuntu(&t.path().join("old"));
    let passwd =
        old.read("/etc/passwd") + "mysql:x:112:118:MySQL Server,,,:/nonexistent:/bin/false\n";
    let group = old.read("/etc/group") + "mysql:x:118:\n";
    old.file("/etc/passwd", &passwd).file("/etc/group", &group);
    old.file("/var/lib/mysql/ibdata1", "innodb\n")
        .file("/srv/share/debian.txt", "the old debian's\n");
    chown(old.p("/var/lib/mysql/ibdata1"), Some(112), Some(118)).unwrap();
    chown(old.p("/var/lib/mysql"), Some(112), Some(118)).unwrap();
    chown(old.p("/srv/share/debian.txt"), Some(1003), Some(1003)).unwrap();
    let store = t.path().join("store");
    let o = Cmd::new("capture")
        .root(&old.dir)
        .store(&store)
        .args(&["--path", "/var/lib/mysql", "--path", "/srv/share"])
        .run();
    assert_exit!(o, Some(0));

    let new = new_debian(&t.path().join("new"));
    let passwd = new.read("/etc/passwd") + "sshd:x:112:65534::/run/sshd:/usr/sbin/nologin\n";
    let group = new.read("/etc/group") + "ssl-cert:x:118:\n";
    new.file("/etc/passwd", &passwd).file("/etc/group", &group);
    let o = restore(&new.dir, &store, &[], &[]);
    let v = json(&o);
    let passwd = new.read("/etc/passwd");
    let mysql = uid_in(&passwd, "mysql");
    assert_ne!(mysql, 112, "{passwd}");
    assert!(
        passwd.contains(&format!("mysql:x:{mysql}:")) && passwd.contains("/usr/sbin/nologin"),
        "{passwd}"
    );
    let (uid, gid) = owner(&new, "/var/lib/mysql/ibdata1");
    assert_eq!(uid, mysql, "owned by a mysql account, not sshd");
    let group = new.read("/etc/group");
    assert!(group.contains(&format!("mysql:x:{gid}:")), "{group}");
    assert_ne!(gid, 118);
    // the old debian's file: a bare id that no account of the new OS has
    let (uid, _) = owner(&new, "/srv/share/debian.txt");
    assert_eq!(uid, 1003);
    assert!(!passwd.contains(":1003:"));
    let data = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "data")
        .cloned()
        .unwrap();
    assert!(
        data["warnings"]
            .to_string()
            .contains("user mysql did not exist"),
        "{data}"
    );
    assert!(
        data["attention"].to_string().contains("old user debian"),
        "{data}"
    );
    assert_eq!(v["state"], "degraded");
}
