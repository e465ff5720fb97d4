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

    // the image's own user (uid 1000, the number ubuntu had) makes a file on the data
    // disk after the restore: a second restore moves nothing more, that file included
    new.file("/data/shared/by-debian", "the image user's\n");
    chown(new.p("/data/shared/by-debian"), Some(1000), Some(1000)).unwrap();
    let v = json(&restore(&new.dir, &store, &[], &[]));
    let reown = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "reown")
        .cloned()
        .unwrap();
    assert_eq!(reown["status"], "skipped", "{reown}");
    assert_eq!(owner(&new, "/data/alice/db.sqlite"), (1001, 1001));
    assert_eq!(owner(&new, "/data/shared/by-debian"), (1000, 1000));
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
        // (a file named like InnoDB's marks a database: acknowledged, the test is about owners)
        .args(&[
            "--path",
            "/var/lib/mysql",
            "--path",
            "/srv/share",
            "--ack",
            "database-on-system-disk",
        ])
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

/// Review of #13: reown walks only where the new OS mounts the old data disk — a
/// mountpoint the new image uses for a filesystem of its own is its system disk.
#[test]
fn reown_never_walks_a_mountpoint_the_new_os_uses_for_its_own_disk() {
    let t = tempfile::tempdir().unwrap();
    let old = old_ubuntu(&t.path().join("old"));
    let store = t.path().join("store");
    capture(&old.dir, &store);
    let new = new_debian(&t.path().join("new"));
    // the image mounts its own /data (another filesystem); the old disk is elsewhere
    let fstab = new.read("/etc/fstab") + "LABEL=image-data /data ext4 defaults 0 2\n";
    new.file("/etc/fstab", &fstab);
    new.file("/data/image/file", "the image's\n");
    chown(new.p("/data/image/file"), Some(1000), Some(1000)).unwrap();
    let v = json(&restore(&new.dir, &store, &[], &[]));
    assert_eq!(owner(&new, "/data/image/file"), (1000, 1000), "{v}");
    let reown = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "reown")
        .cloned()
        .unwrap();
    assert!(
        reown["warnings"].to_string().contains("not walked"),
        "{reown}"
    );
}

/// Review of #13: nothing of the old same-name user reaches the image's account of that
/// name — not its group's members, not its crontab, not its home inside a `/home` data
/// path; a planted user named `ALL` (sudoers' everyone) and a home that is a place of the
/// OS are refused; `AllowGroups wheel` follows the admin group to `sudo`.
#[test]
fn the_old_same_name_user_reaches_nothing_of_the_image_account() {
    let t = tempfile::tempdir().unwrap();
    let old = old_ubuntu(&t.path().join("old"));
    let group = old
        .read("/etc/group")
        .replace("debian:x:1003:", "debian:x:1003:alice");
    old.file("/etc/group", &group);
    old.file_mode(
        "/var/spool/cron/crontabs/debian",
        "* * * * * /home/debian/job\n",
        0o600,
    );
    chown(
        old.p("/var/spool/cron/crontabs/debian"),
        Some(1003),
        Some(1003),
    )
    .unwrap();
    old.file("/home/debian/.ssh/authorized_keys", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIELFsTTm6AGMDspKDm0h2i3V9DvYKztJcBi8EG7O2iTP olddebian\n");
    old.file("/home/debian/notes.txt", "the old debian's\n");
    old.file("/home/alice/notes.txt", "alice's\n");
    let store = t.path().join("store");
    let o = Cmd::new("capture")
        .root(&old.dir)
        .store(&store)
        .args(&["--path", "/home"])
        .json()
        .run();
    assert_exit!(o, Some(0));
    let id = json(&o)["snapshot_id"].as_str().unwrap().to_string();
    // planted: a user named ALL, and deploy's home moved into sshd's drop-ins
    tamper(
        &store,
        &id,
        |v| {
            let users = v["users"].as_array_mut().unwrap();
            let mut all = users[0].clone();
            all["name"] = "ALL".into();
            all["uid"] = 1777.into();
            users.push(all);
            for u in users.iter_mut().filter(|u| u["name"] == "deploy") {
                u["home"] = "/etc/ssh/sshd_config.d".into();
            }
        },
        true,
    );
    let new = new_debian(&t.path().join("new"));
    let v = json(&restore(&new.dir, &store, &[], &[]));
    let group = new.read("/etc/group");
    assert!(
        group.contains("debian:x:1000:\n"),
        "alice not in the image's debian group: {group}"
    );
    assert!(!new.p("/var/spool/cron/crontabs/debian").exists());
    assert_eq!(new.read("/home/debian/.bashrc"), "# the image user's\n");
    assert!(!new.p("/home/debian/notes.txt").exists());
    assert_eq!(new.read("/home/alice/notes.txt"), "alice's\n");
    assert!(
        !new.read("/etc/passwd").contains("\nALL:"),
        "{}",
        new.read("/etc/passwd")
    );
    assert!(
        !new.p("/etc/ssh/sshd_config.d").exists() || owner(&new, "/etc/ssh/sshd_config.d").0 == 0
    );
    let all = v.to_string();
    assert!(
        all.contains("crontab of the old debian not installed"),
        "{all}"
    );
    assert!(all.contains("below /home/debian not restored"), "{all}");
    assert!(all.contains("refusing the user 'ALL'"), "{all}");
    // the others were restored all the same
    assert_eq!(uid_in(&new.read("/etc/passwd"), "alice"), 1001);
    assert_eq!(v["state"], "degraded");
}

/// Review of #13: `AllowGroups wheel` from Rocky follows the admin group to Ubuntu's
/// `sudo` (where the accounts step put wheel's members), never locking everyone out.
#[test]
fn sshd_allow_groups_follows_the_admin_group_across_families() {
    let t = tempfile::tempdir().unwrap();
    let old = old_rocky(&t.path().join("old"));
    old.file(
        "/etc/ssh/sshd_config",
        "PermitRootLogin no\nAllowGroups wheel ops\n",
    );
    let store = t.path().join("store");
    capture(&old.dir, &store);
    let new = new_ubuntu24(&t.path().join("new"));
    new.file(
        "/etc/ssh/sshd_config",
        "Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\n",
    );
    let v = json(&restore(&new.dir, &store, &[], &[]));
    let dropin = new.read("/etc/ssh/sshd_config.d/00-carryover.conf");
    assert!(dropin.contains("AllowGroups sudo ops"), "{dropin}\n{v}");
    assert!(!dropin.contains("wheel"), "{dropin}");
    assert!(
        new.read("/etc/group")
            .contains("sudo:x:27:ubuntu,rocky,alice"),
        "{}",
        new.read("/etc/group")
    );
}

/// Review of #13: files of a system account (`mysql` 112:118) on a surviving data disk,
/// where the new OS has `sshd` 112 and `ssl-cert` 118 and no mysql: they get a mysql of
/// their own, never sshd's number — once (a second restore moves nothing).
#[test]
fn system_accounts_files_on_the_data_disk_keep_their_owner_by_name() {
    let t = tempfile::tempdir().unwrap();
    let old = old_ubuntu(&t.path().join("old"));
    let passwd =
        old.read("/etc/passwd") + "mysql:x:112:118:MySQL Server,,,:/nonexistent:/bin/false\n";
    let group = old.read("/etc/group") + "mysql:x:118:\n";
    old.file("/etc/passwd", &passwd).file("/etc/group", &group);
    let store = t.path().join("store");
    capture(&old.dir, &store);
    let new = new_debian(&t.path().join("new"));
    let passwd = new.read("/etc/passwd") + "sshd:x:112:65534::/run/sshd:/usr/sbin/nologin\n";
    let group = new.read("/etc/group") + "ssl-cert:x:118:\n";
    new.file("/etc/passwd", &passwd).file("/etc/group", &group);
    new.file("/data/mysql/ibdata1", "innodb\n");
    chown(new.p("/data/mysql/ibdata1"), Some(112), Some(118)).unwrap();
    chown(new.p("/data/mysql"), Some(112), Some(118)).unwrap();
    let v = json(&restore(&new.dir, &store, &[], &[]));
    let passwd = new.read("/etc/passwd");
    let mysql = uid_in(&passwd, "mysql");
    assert_ne!(mysql, 112, "{passwd}");
    let (uid, gid) = owner(&new, "/data/mysql/ibdata1");
    assert_eq!(uid, mysql, "{v}");
    assert!(new.read("/etc/group").contains(&format!("mysql:x:{gid}:")));
    assert_ne!(gid, 118);
    // once: a second restore leaves the image's sshd (112) files alone
    new.file("/data/sshd-owned", "x\n");
    chown(new.p("/data/sshd-owned"), Some(112), Some(118)).unwrap();
    let _ = json(&restore(&new.dir, &store, &[], &[]));
    assert_eq!(owner(&new, "/data/sshd-owned"), (112, 118));
    assert_eq!(owner(&new, "/data/mysql/ibdata1"), (uid, gid));
}
