//! The settings half of the Change-OS cycle: capture on an old-OS tree, restore on a
//! fresh new-OS tree, every setting checked, a second restore a no-op, a crash resumed.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::fixtures::*;

/// Every path below `dir` with its kind, content, mode, owner and mtime.
fn snapshot_tree(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
        // the agent's own record, its log and report of the run (rewritten by each run)
        if rel.starts_with("var/lib/carryover/state.json")
            || rel.starts_with("var/lib/carryover/restore.running")
            || rel.starts_with("var/log/carryover")
        {
            continue;
        }
        let m = e.path().symlink_metadata().unwrap();
        let what = if m.file_type().is_symlink() {
            format!("link {}", std::fs::read_link(e.path()).unwrap().display())
        } else if m.is_file() {
            format!("file {:?}", std::fs::read(e.path()).unwrap())
        } else {
            "dir".into()
        };
        out.insert(
            rel,
            format!(
                "{what} {:o} {}:{} {}",
                m.permissions().mode(),
                m.uid(),
                m.gid(),
                if m.is_dir() { 0 } else { m.mtime_nsec() }
            ),
        );
    }
    out
}

#[test]
fn debian_to_ubuntu_carries_every_setting() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let new = new_ubuntu(&t.path().join("new"));
    let store = t.path().join("store");
    let id = capture(&old.dir, &store);

    let o = restore(&new.dir, &store, &[], &[]);
    assert_exit!(o, Some(0));
    let v = json(&o);
    assert_eq!(v["snapshot_id"], id.as_str());
    assert_eq!(v["state"], "ready");
    assert!(v["failed_files"].as_array().unwrap().is_empty());

    // identity
    assert_eq!(new.read("/etc/hostname"), "web01\n");
    let guard = new.read("/etc/cloud/cloud.cfg.d/99-carryover.cfg");
    assert!(guard.contains("preserve_hostname: true"));
    assert!(guard.contains("ssh_deletekeys: false"));
    let hosts = new.read("/etc/hosts");
    assert!(
        hosts.contains("127.0.1.1\tweb01.prod.example.com web01\n"),
        "{hosts}"
    );
    assert!(hosts.contains("10.0.0.5\tdb01.internal db01\n"));
    assert!(hosts.contains("127.0.0.1 localhost\n") && hosts.contains("ff02::2 ip6-allrouters"));
    assert!(!hosts.contains("ubuntu"));

    // DNS through systemd-resolved, not by overwriting the stub
    let resolved = new.read("/etc/systemd/resolved.conf.d/90-carryover.conf");
    assert!(resolved.contains("DNS=10.0.0.2 10.0.0.3\n"), "{resolved}");
    assert!(resolved.contains("Domains=prod.example.com\n"));
    assert!(
        std::fs::read_link(new.p("/etc/resolv.conf")).is_ok(),
        "the stub link stays"
    );
    assert!(
        step(&v, "dns")["detail"]
            .as_str()
            .unwrap()
            .contains("systemd-resolved")
    );

    // accounts: same names and ids, memberships, homes
    let passwd = new.read("/etc/passwd");
    assert!(
        passwd.contains("alice:x:1000:1000:Alice Ops,,,:/home/alice:/bin/bash\n"),
        "{passwd}"
    );
    assert!(passwd.contains("bob:x:1001:1001::/home/bob:/bin/sh\n"));
    assert!(
        passwd.contains("systemd-timesync:x:104:105"),
        "the new OS's own users stay"
    );
    let group = new.read("/etc/group");
    assert!(group.contains("sudo:x:27:alice\n"));
    assert!(group.contains("devs:x:2000:alice,bob\n"));
    assert!(group.contains("alice:x:1000:\n"));
    let shadow = new.read("/etc/shadow");
    assert!(
        shadow.contains("\nalice:!:"),
        "hashes not carried unless asked: {shadow}"
    );
    assert_eq!(
        std::fs::metadata(new.p("/etc/shadow"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o640,
        "mode of the new OS's shadow kept"
    );
    assert!(new.read("/etc/gshadow").contains("devs:!::alice,bob"));
    let home = std::fs::metadata(new.p("/home/alice")).unwrap();
    assert_eq!((home.uid(), home.gid()), (1000, 1000));

    // data disks in fstab, by their stable names, nofail; never the old system disk
    let fstab = new.read("/etc/fstab");
    assert!(
        fstab.contains("LABEL=cloudimg-rootfs"),
        "the new root stays"
    );
    assert!(
        fstab.contains(
            "UUID=aaaaaaaa-1111-4222-8333-bbbbbbbbbbbb\t/srv\text4\tdefaults,nofail\t0 2"
        ),
        "{fstab}"
    );
    assert!(fstab.contains("/dev/mapper/datavg-lvdata\t/data\text4\tdefaults,noatime,nofail\t0 2"));
    assert!(fstab.contains("UUID=5F1E3C2B4A596D70\t/mnt/win\tntfs-3g\tdefaults,uid=1000,nofail"));
    assert!(fstab.contains("/dev/vdc2\tnone\tswap\tsw,nofail"));
    assert!(
        !fstab.contains("0a1b2c3d") && !fstab.contains("7E1F-1A2B") && !fstab.contains("tmpfs")
    );
    assert!(new.p("/srv").is_dir() && new.p("/data").is_dir() && new.p("/mnt/win").is_dir());
    assert!(
        step(&v, "fstab")["warnings"]
            .to_string()
            .contains("/dev/vdc2"),
        "device names are flagged"
    );

    // SSH host keys: the old ones, private 0600; the image's kept as a backup
    assert_eq!(new.read("/etc/ssh/ssh_host_ed25519_key"), ED25519_KEY);
    assert_eq!(
        std::fs::metadata(new.p("/etc/ssh/ssh_host_ed25519_key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(
        new.read("/etc/ssh/ssh_host_ed25519_key.pub"),
        format!("{ED25519_PUB}\n")
    );
    let backup = format!("/var/lib/carryover/backup/{id}/etc/ssh/ssh_host_ed25519_key");
    assert_eq!(new.read(&backup), "IMAGE-KEY\n");

    // systemd
    assert!(
        new.read("/etc/systemd/system/app.service")
            .contains("ExecStart=/srv/app/bin/app")
    );
    assert!(
        new.read("/etc/systemd/system/nginx.service.d/override.conf")
            .contains("LimitNOFILE=65536")
    );
    let link = |p: &str| std::fs::read_link(new.p(p)).unwrap().display().to_string();
    assert_eq!(
        link("/etc/systemd/system/multi-user.target.wants/app.service"),
        "/etc/systemd/system/app.service"
    );
    assert_eq!(
        link("/etc/systemd/system/timers.target.wants/backup.timer"),
        "/etc/systemd/system/backup.timer"
    );
    assert_eq!(
        link("/etc/systemd/system/multi-user.target.wants/ssh.service"),
        "/usr/lib/systemd/system/ssh.service"
    );
    assert_eq!(
        link("/etc/systemd/system/getty.target.wants/getty@tty1.service"),
        "/usr/lib/systemd/system/getty@.service"
    );
    assert_eq!(link("/etc/systemd/system/apt-daily.service"), "/dev/null");
    assert_eq!(
        link("/etc/systemd/system/sshd.service"),
        "/lib/systemd/system/ssh.service"
    );
    assert!(
        !new.p("/etc/systemd/system/multi-user.target.wants/networking.service")
            .exists()
    );
    let warnings = step(&v, "enable-units")["warnings"].to_string();
    assert!(
        warnings.contains("networking.service") && warnings.contains("chrony.service"),
        "{warnings}"
    );

    // cron
    let crontab = new.read("/etc/crontab");
    assert!(crontab.contains("30 2 * * * root /usr/local/bin/rotate-app-logs"));
    assert_eq!(
        crontab
            .matches("run-parts --report /etc/cron.hourly")
            .count(),
        1
    );
    assert!(new.read("/etc/cron.d/app-backup").contains("backup.sh"));
    assert!(
        !new.p("/etc/cron.d/e2scrub_all").exists(),
        "a package's cron file comes with the package"
    );
    assert_eq!(
        std::fs::metadata(new.p("/etc/cron.daily/app-report"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    let tab = std::fs::metadata(new.p("/var/spool/cron/crontabs/alice")).unwrap();
    assert_eq!(
        (tab.uid(), tab.gid(), tab.permissions().mode() & 0o777),
        (1000, 107, 0o600)
    );

    // time
    assert_eq!(
        link("/etc/localtime"),
        "../usr/share/zoneinfo/Asia/Shanghai"
    );
    assert_eq!(new.read("/etc/timezone"), "Asia/Shanghai\n");
    let ntp = new.read("/etc/systemd/timesyncd.conf.d/90-carryover.conf");
    assert!(ntp.contains("NTP=ntp.myhuaweicloud.com\n"), "{ntp}");
    assert!(
        !ntp.contains("debian.pool"),
        "the distribution's pool is not carried"
    );

    // sysctl
    assert!(
        new.read("/etc/sysctl.d/60-app.conf")
            .contains("somaxconn = 4096")
    );
    assert!(
        new.read("/etc/sysctl.d/90-carryover-sysctl.conf")
            .contains("vm.swappiness = 10")
    );
    assert!(
        new.read("/etc/sysctl.d/10-network-security.conf")
            .contains("rp_filter")
    );

    // packages compared
    assert!(
        step(&v, "packages")["detail"]
            .as_str()
            .unwrap()
            .contains("nginx")
    );
    assert!(
        v["health"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["ok"] == true),
        "{}",
        v["health"]
    );

    // A second restore changes nothing.
    let before = snapshot_tree(&new.dir);
    let o = restore(&new.dir, &store, &[], &[]);
    assert_exit!(o, Some(0));
    let v2 = json(&o);
    for s in v2["steps"].as_array().unwrap() {
        assert!(
            ["unchanged", "skipped"].contains(&s["status"].as_str().unwrap()),
            "second run changed {s}"
        );
    }
    assert_eq!(
        snapshot_tree(&new.dir),
        before,
        "a second restore changed the tree"
    );
}

/// #12.3: the old and the new hosts file both had `127.0.0.1 runsc`, the old one also
/// `127.0.0.1 vm`; the merge left only `127.0.0.1 vm` and the restore said ready.
#[test]
fn hosts_merge_keeps_every_name_of_an_address_regression_12_3() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    old.file(
        "/etc/hosts",
        "127.0.0.1\tlocalhost\n127.0.0.1 runsc\n127.0.0.1 vm\n127.0.1.1\tweb01.prod.example.com\tweb01\n",
    );
    let new = new_ubuntu(&t.path().join("new"));
    new.file(
        "/etc/hosts",
        "127.0.0.1 localhost\n127.0.0.1 runsc\n127.0.1.1 ubuntu\n::1 ip6-localhost ip6-loopback\n",
    );
    let store = t.path().join("store");
    capture(&old.dir, &store);
    let o = restore(&new.dir, &store, &[], &[]);
    assert_exit!(o, Some(0));
    assert_eq!(json(&o)["state"], "ready");
    let expected = "127.0.0.1 localhost\n127.0.0.1 runsc\n127.0.1.1\tweb01.prod.example.com web01\n::1 ip6-localhost ip6-loopback\n# restored by carryover\n127.0.0.1\tvm\n";
    assert_eq!(new.read("/etc/hosts"), expected);
    let o = restore(&new.dir, &store, &[], &[]);
    assert_eq!(step(&json(&o), "hosts")["status"], "unchanged");
    assert_eq!(new.read("/etc/hosts"), expected);
}

/// #12.9: with no NTP client on the new OS the ntp step failed, while cron in the same
/// situation writes the jobs for when it is. Now the servers are written for the old
/// OS's client (chrony: sources.d on Debian's family, chrony.conf on Red Hat's;
/// timesyncd: its drop-in) and the step says so.
#[test]
fn ntp_without_a_client_is_written_for_the_old_client_regression_12_9() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let store = t.path().join("store");
    capture(&old.dir, &store);
    let ubuntu = new_ubuntu(&t.path().join("ubuntu"));
    for p in [
        "/usr/lib/systemd/system/systemd-timesyncd.service",
        "/etc/systemd/system/sysinit.target.wants/systemd-timesyncd.service",
    ] {
        std::fs::remove_file(ubuntu.p(p)).unwrap();
    }
    let rocky = new_rocky(&t.path().join("rocky"));
    for p in [
        "/usr/lib/systemd/system/chronyd.service",
        "/etc/chrony.conf",
    ] {
        std::fs::remove_file(rocky.p(p)).unwrap();
    }
    for (new, file) in [
        (&ubuntu, "/etc/chrony/sources.d/carryover.sources"),
        (&rocky, "/etc/chrony.conf"),
    ] {
        let o = restore(&new.dir, &store, &[], &[]);
        assert_exit!(o, Some(0));
        let v = json(&o);
        assert_eq!(v["state"], "ready");
        let ntp = step(&v, "ntp");
        assert_eq!(ntp["status"], "changed", "{ntp}");
        let detail = ntp["detail"].as_str().unwrap();
        assert!(
            detail.contains(file)
                && detail.contains("written for chrony, which is not installed yet"),
            "{detail}"
        );
        assert!(
            ntp["warnings"].to_string().contains("no NTP client"),
            "{ntp}"
        );
        assert!(
            new.read(file)
                .contains("server ntp.myhuaweicloud.com iburst\n"),
            "{}",
            new.read(file)
        );
        let again = json(&restore(&new.dir, &store, &[], &[]));
        assert_eq!(step(&again, "ntp")["status"], "unchanged");
    }

    // an old OS on systemd-timesyncd: its drop-in
    let old = old_debian(&t.path().join("old-timesyncd"));
    std::fs::remove_file(old.p("/etc/systemd/system/multi-user.target.wants/chrony.service"))
        .unwrap();
    std::fs::remove_file(old.p("/etc/chrony/chrony.conf")).unwrap();
    old.file(
        "/etc/systemd/timesyncd.conf",
        "[Time]\nNTP=ntp.myhuaweicloud.com\n",
    );
    let store = t.path().join("store-timesyncd");
    capture(&old.dir, &store);
    let rocky = new_rocky(&t.path().join("rocky-timesyncd"));
    std::fs::remove_file(rocky.p("/usr/lib/systemd/system/chronyd.service")).unwrap();
    let v = json(&restore(&rocky.dir, &store, &[], &[]));
    assert_eq!(v["state"], "ready");
    let ntp = step(&v, "ntp");
    assert!(
        ntp["detail"]
            .as_str()
            .unwrap()
            .contains("written for systemd-timesyncd, which is not installed yet"),
        "{ntp}"
    );
    assert!(
        rocky
            .read("/etc/systemd/timesyncd.conf.d/90-carryover.conf")
            .contains("NTP=ntp.myhuaweicloud.com\n")
    );
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let new = new_ubuntu(&t.path().join("new"));
    let store = t.path().join("store");
    capture(&old.dir, &store);
    let before = snapshot_tree(&new.dir);
    let o = restore(&new.dir, &store, &["--dry-run"], &[]);
    assert_exit!(o, Some(0));
    let v = json(&o);
    assert_eq!(v["state"], "planned");
    assert_eq!(step(&v, "hostname")["status"], "would-change");
    assert_eq!(snapshot_tree(&new.dir), before);
    let text = Cmd::new("restore")
        .root(&new.dir)
        .store(&store)
        .arg("--dry-run")
        .run();
    let text = stdout(&text);
    assert!(
        text.contains("hostname") && text.contains("would-change") && text.contains("planned"),
        "{text}"
    );
}

#[test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "needs the crash hook: cargo test --features test-hooks"
)]
fn a_restore_killed_between_steps_resumes_to_the_same_end_state() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let store = t.path().join("store");
    capture(&old.dir, &store);

    // Reference: an uninterrupted restore on one fresh tree (with its own store copy so the
    // journals do not meet).
    let reference = new_ubuntu(&t.path().join("reference"));
    let ref_store = t.path().join("ref-store");
    copy_dir(&store, &ref_store);
    let o = restore(&reference.dir, &ref_store, &[], &[]);
    assert_exit!(o, Some(0));

    for crash_after in ["1", "5", "9", "14"] {
        let new = new_ubuntu(&t.path().join(format!("new-{crash_after}")));
        let s = t.path().join(format!("store-{crash_after}"));
        copy_dir(&store, &s);
        let o = restore(
            &new.dir,
            &s,
            &[],
            &[("CARRYOVER_TEST_CRASH_AFTER_STEP", crash_after)],
        );
        assert_ne!(o.status.code(), Some(0), "the crash hook did not fire");
        assert!(o.status.code().is_none(), "killed by a signal, as a crash");
        let o = restore(&new.dir, &s, &[], &[]);
        assert_exit!(o, Some(0));
        let v = json(&o);
        assert_eq!(v["resumed"], true);
        assert_eq!(v["state"], "ready");
        let a = snapshot_tree(&reference.dir);
        let b = snapshot_tree(&new.dir);
        let keys_a: Vec<_> = a.keys().collect();
        let keys_b: Vec<_> = b.keys().collect();
        assert_eq!(
            keys_a, keys_b,
            "crash after step {crash_after}: other files"
        );
        for (k, va) in &a {
            // mtimes differ between the two runs; content, mode and owner must not
            let strip = |s: &str| s.rsplit_once(' ').map(|x| x.0.to_string()).unwrap();
            assert_eq!(
                strip(va),
                strip(&b[k]),
                "crash after step {crash_after}: {k}"
            );
        }
    }
}

#[test]
fn ubuntu_to_rocky_uses_network_manager_chrony_and_free_ids() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let new = new_rocky(&t.path().join("new"));
    let store = t.path().join("store");
    capture(&old.dir, &store);
    let o = restore(&new.dir, &store, &[], &[]);
    assert_exit!(o, Some(0));
    let v = json(&o);
    let nm = new.read("/etc/NetworkManager/conf.d/90-carryover-dns.conf");
    assert!(
        nm.contains("servers=10.0.0.2,10.0.0.3") && nm.contains("searches=prod.example.com"),
        "{nm}"
    );
    assert!(nm.contains("options=timeout:2"));
    let chrony = new.read("/etc/chrony.conf");
    assert!(
        chrony.contains("pool 2.rocky.pool.ntp.org iburst"),
        "the new OS's own line stays"
    );
    assert!(
        chrony.contains("server ntp.myhuaweicloud.com iburst\n# END carryover"),
        "{chrony}"
    );
    // uid 1000 belongs to the image's user: bob keeps his 1001, alice gets the first id
    // no captured account wants, and it is said.
    let passwd = new.read("/etc/passwd");
    assert!(passwd.contains("rocky:x:1000:1000"));
    assert!(passwd.contains("alice:x:1002:1002:"), "{passwd}");
    assert!(passwd.contains("bob:x:1001:1001:"), "{passwd}");
    assert!(
        step(&v, "accounts")["warnings"]
            .to_string()
            .contains("uid 1000 is taken")
    );
    // #13.5: Debian's sudo is Rocky's wheel
    assert!(
        step(&v, "accounts")["warnings"]
            .to_string()
            .contains("the admin group sudo is wheel on the new OS")
    );
    assert!(
        new.read("/etc/group").contains("wheel:x:10:rocky,alice\n"),
        "{}",
        new.read("/etc/group")
    );
    // Red Hat's cron spool, owned by alice's new uid
    let tab = std::fs::metadata(new.p("/var/spool/cron/alice")).unwrap();
    assert_eq!((tab.uid(), tab.permissions().mode() & 0o777), (1002, 0o600));
    // the old OS's hostname, the hosts entry it used
    assert_eq!(new.read("/etc/hostname"), "web01\n");
    assert!(
        new.read("/etc/hosts")
            .contains("127.0.1.1\tweb01.prod.example.com web01")
    );
    assert_eq!(
        std::fs::metadata(new.p("/etc/shadow"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o000
    );
    assert_eq!(step(&v, "cloud-init-guard")["status"], "skipped");
    assert!(
        step(&v, "packages")["status"] == "skipped",
        "dpkg vs rpm are not compared"
    );
}

#[test]
fn inspect_prints_every_section() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(t.path());
    let o = Cmd::new("inspect").root(&old.dir).json().run();
    assert_exit!(o, Some(0));
    let v = json(&o);
    for k in [
        "identity",
        "dns",
        "hosts",
        "mounts",
        "lvm",
        "users",
        "groups",
        "services",
        "cron",
        "ssh_host_keys",
        "timezone",
        "packages",
    ] {
        assert!(v.get(k).is_some(), "inspect lacks {k}");
    }
    for k in ["hostname", "fqdn", "instance_id", "os"] {
        assert!(v["identity"].get(k).is_some(), "identity lacks {k}");
    }
    for k in ["manager", "nameservers", "search", "options"] {
        assert!(v["dns"].get(k).is_some(), "dns lacks {k}");
    }
    assert_eq!(v["identity"]["fqdn"], "web01.prod.example.com");
    assert_eq!(v["dns"]["manager"], "file");
    assert_eq!(v["ssh_host_keys"][0]["fingerprint"], ED25519_FP);
    assert_eq!(v["timezone"], "Asia/Shanghai");
    assert_eq!(v["packages"]["manager"], "dpkg");
    assert_eq!(
        v["packages"]["names"],
        serde_json::json!(["bash", "chrony", "nginx"])
    );
    assert!(v["services"]["enabled"].is_array() && v["services"]["unit_files"].is_array());
    let text = serde_json::to_string(&v).unwrap();
    assert!(
        !text.contains("OLD-OS-HOST-KEY-MATERIAL"),
        "a private key in inspect output"
    );
    assert!(
        !text.contains("HASHEDPASSWORD"),
        "a password hash in inspect output"
    );
    let human = stdout(&Cmd::new("inspect").root(&old.dir).run());
    assert!(
        human.contains("web01") && human.contains("10.0.0.2"),
        "{human}"
    );
}

#[test]
fn private_material_is_stored_root_only_and_hashes_only_when_asked() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    old.file(
        "/etc/carryover/config.toml",
        "[capture]\npassword_hashes = true\n",
    );
    let store = t.path().join("store");
    let id = capture(&old.dir, &store);
    let secrets = store.join(format!("objects/{id}/secrets.json"));
    assert_eq!(
        std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let state = std::fs::read_to_string(store.join(format!("objects/{id}/state.json"))).unwrap();
    assert!(!state.contains("OLD-OS-HOST-KEY-MATERIAL") && !state.contains("HASHEDPASSWORD"));
    assert!(
        std::fs::read_to_string(&secrets)
            .unwrap()
            .contains("HASHEDPASSWORD")
    );
    let local = old.p("/var/lib/carryover");
    assert_eq!(
        std::fs::metadata(&local).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let new = new_ubuntu(&t.path().join("new"));
    let o = restore(&new.dir, &store, &[], &[]);
    assert_exit!(o, Some(0));
    assert!(
        new.read("/etc/shadow")
            .contains("alice:$6$rounds=5000$salt$HASHEDPASSWORD:19750")
    );
    assert!(!stdout(&o).contains("HASHEDPASSWORD"));
}

#[test]
fn snapshots_list_show_verify_and_status() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let store = t.path().join("store");
    let a = capture(&old.dir, &store);
    let b = capture(&old.dir, &store);
    let s = store.to_str().unwrap();
    let list = json(&carryover(&[
        "snapshots",
        "list",
        "--store",
        s,
        "--format",
        "json",
    ]));
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&a.as_str()) && ids.contains(&b.as_str()));
    let show = json(&carryover(&[
        "snapshots",
        "show",
        &a,
        "--store",
        s,
        "--format",
        "json",
    ]));
    assert_eq!(show["state"]["identity"]["hostname"], "web01");
    let o = carryover(&["snapshots", "verify", "--store", s]);
    assert_exit!(o, Some(0));
    let st = Cmd::new("status").root(&old.dir).store(s).json().run();
    let st = json(&st);
    assert_eq!(st["last_capture"]["snapshot_id"], b.as_str());
    assert_eq!(st["snapshots"], 2);
}

fn copy_dir(from: &Path, to: &Path) {
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn restore_if_due_runs_once_on_the_new_os_and_never_on_the_old() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let new = new_ubuntu(&t.path().join("new"));
    let store = t.path().join("store");
    let id = capture(&old.dir, &store);

    // the old OS rebooting: it took the snapshot, nothing to restore
    let o = restore(&old.dir, &store, &["--if-due"], &[]);
    assert_exit!(o, Some(0));
    let v = json(&o);
    assert_eq!(v["state"], "not-due");
    assert!(v["reason"].as_str().unwrap().contains("old OS"), "{v}");

    // no store configured: quiet
    let o = Cmd::new("restore").root(&new.dir).arg("--if-due").run();
    assert_exit!(o, Some(0));
    assert!(stdout(&o).contains("no store is configured"));

    // the new OS: due once
    let o = restore(&new.dir, &store, &["--if-due"], &[]);
    assert_exit!(o, Some(0));
    let v = json(&o);
    assert_eq!(v["state"], "ready", "{v}");
    assert_eq!(v["snapshot_id"], id.as_str());
    let before = snapshot_tree(&new.dir);
    let o = restore(&new.dir, &store, &["--if-due"], &[]);
    let v = json(&o);
    assert_eq!(v["state"], "not-due");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("a restore ran here already")
    );
    assert_eq!(snapshot_tree(&new.dir), before, "nothing touched");

    // an interrupted restore is due again and resumes
    let other = new_ubuntu(&t.path().join("other"));
    let o = restore(
        &other.dir,
        &store,
        &["--if-due"],
        &[("CARRYOVER_TEST_CRASH_AFTER_STEP", "4")],
    );
    assert_ne!(o.status.code(), Some(0));
    let o = restore(&other.dir, &store, &["--if-due"], &[]);
    let v = json(&o);
    assert_eq!(v["state"], "ready", "{v}");
    assert_eq!(v["resumed"], true, "{v}");
}

/// #12.1: a capture killed right after its snapshot was sealed (its post-capture step
/// never ran) left an old OS that the boot unit restored over newer data.
#[test]
fn the_old_os_is_never_restored_onto_whatever_happened_after_sealing() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let store = t.path().join("store");
    // the post-capture hook kills the capture: the snapshot is sealed, nothing after it ran
    old.file_mode(
        "/etc/carryover/hooks/post-capture.d/10-crash",
        "#!/bin/sh\nkill -9 $PPID\n",
        0o755,
    );
    let o = Cmd::new("capture").root(&old.dir).store(&store).run();
    assert_exit!(o, None);
    std::fs::remove_file(old.p("/etc/carryover/hooks/post-capture.d/10-crash")).unwrap();
    let o = Cmd::new("snapshots list").store(&store).json().run();
    let id = json(&o)[0]["id"].as_str().unwrap().to_string();

    // newer data and a new hostname on the old OS after the capture
    old.file("/etc/hostname", "web01-renamed\n");
    let before = snapshot_tree(&old.dir);
    let o = restore(&old.dir, &store, &["--if-due"], &[]);
    assert_exit!(o, Some(0));
    let v = json(&o);
    assert_eq!(v["state"], "not-due", "{v}");
    assert!(v["reason"].as_str().unwrap().contains("old OS"), "{v}");
    assert_eq!(snapshot_tree(&old.dir), before, "nothing touched");

    // its own record lost: the marker in the manifest (machine-id) still says so
    std::fs::remove_file(old.p("/var/lib/carryover/state.json")).unwrap();
    let o = restore(&old.dir, &store, &["--if-due"], &[]);
    let v = json(&o);
    assert_eq!(v["state"], "not-due", "{v}");
    assert!(
        v["reason"].as_str().unwrap().contains("this very system"),
        "{v}"
    );
    // a restore by hand is refused too, unless the snapshot is named
    let o = restore(&old.dir, &store, &[], &[]);
    assert_exit!(o, Some(2));
    assert!(stderr(&o).contains("--snapshot"), "{}", stderr(&o));
    assert_eq!(snapshot_tree(&old.dir), before, "nothing touched");
    let o = restore(&old.dir, &store, &["--snapshot", &id], &[]);
    assert_eq!(json(&o)["state"], "ready", "{}", stderr(&o));
    assert_eq!(
        old.read("/etc/hostname"),
        "web01\n",
        "rolled back when asked to"
    );
}

/// #12.1: a final capture into another store than the configured one: the configured
/// store's older snapshot is still this system's own.
#[test]
fn the_old_os_never_restores_an_older_snapshot_from_its_configured_store() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let configured = t.path().join("store-a");
    old.file(
        "/etc/carryover/config.toml",
        &format!("[store]\nurl = \"{}\"\n", configured.display()),
    );
    capture(&old.dir, &configured);
    capture(&old.dir, &t.path().join("store-b"));
    old.file("/etc/hostname", "web01-renamed\n");
    let before = snapshot_tree(&old.dir);
    let o = Cmd::new("restore --if-due").root(&old.dir).json().run();
    let v = json(&o);
    assert_eq!(v["state"], "not-due", "{v}");
    assert_eq!(snapshot_tree(&old.dir), before, "nothing touched");
}

/// #12.6: the dry run predicts what the real run does — later steps see what earlier ones
/// would have written (the accounts cron needs, the unit files enable-units links) — and
/// shows old → new values.
#[test]
fn dry_run_tells_the_truth_with_old_and_new_values() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let store = t.path().join("store");
    capture(&old.dir, &store);
    let new = new_ubuntu(&t.path().join("new"));
    let before = snapshot_tree(&new.dir);
    let plan = json(&restore(&new.dir, &store, &["--dry-run"], &[]));
    assert_eq!(plan["state"], "planned", "{plan}");
    assert_eq!(snapshot_tree(&new.dir), before, "a dry run changes nothing");
    let real = json(&restore(&new.dir, &store, &[], &[]));
    let steps = |v: &serde_json::Value| -> Vec<(String, String)> {
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_string(),
                    s["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    for ((name, planned), (_, done)) in steps(&plan).into_iter().zip(steps(&real)) {
        let expected = match done.as_str() {
            "changed" => "would-change",
            other => other,
        };
        assert_eq!(
            (name.as_str(), planned.as_str()),
            (name.as_str(), expected),
            "the plan said {planned}, the run did {done}:\n{plan}\n{real}"
        );
    }
    let changes = |v: &serde_json::Value, step: &str| {
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == step)
            .map(|s| s["changes"].to_string())
            .unwrap_or_default()
    };
    assert!(
        changes(&plan, "hostname").contains("/etc/hostname: ubuntu → web01"),
        "{}",
        changes(&plan, "hostname")
    );
    assert!(changes(&plan, "hosts").contains("/etc/hosts: + "), "{plan}");
    assert!(changes(&plan, "dns").contains("DNS="), "{plan}");
    // the same lines in the real run's report; no secret in either
    for step in ["hostname", "hosts", "dns", "accounts", "cron"] {
        assert_eq!(changes(&plan, step), changes(&real, step), "{step}");
    }
    assert!(
        changes(&plan, "hosts").contains("- 127.0.1.1 ubuntu"),
        "{}",
        changes(&plan, "hosts")
    );
    for v in [&plan, &real] {
        assert!(!v.to_string().contains("HASHEDPASSWORD"), "{v}");
        assert!(!v.to_string().contains("OLD-OS-HOST-KEY"), "{v}");
    }
}

/// Review of #12: the boot unit restores once per system — not again after a later
/// restore by hand, not again when the system's own record is lost (the store's journal
/// says where it was restored) — and `--snapshot latest` is guarded like no name at all.
#[test]
fn the_boot_unit_restores_once_per_system_whatever_happens_after() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let store = t.path().join("store");
    let first = capture(&old.dir, &store);
    old.file("/etc/hostname", "web01-final\n");
    capture(&old.dir, &store);
    let new = new_ubuntu(&t.path().join("new"));
    new.file("/etc/machine-id", "fedcba9876543210fedcba9876543210\n");
    assert_eq!(
        json(&restore(&new.dir, &store, &["--if-due"], &[]))["state"],
        "ready"
    );
    assert_eq!(new.read("/etc/hostname"), "web01-final\n");
    // a restore of the older snapshot by hand, then newer work on the new OS
    let o = restore(&new.dir, &store, &["--snapshot", &first], &[]);
    assert_eq!(json(&o)["state"], "ready", "{}", stderr(&o));
    new.file("/etc/hostname", "new-os-work\n");
    let v = json(&restore(&new.dir, &store, &["--if-due"], &[]));
    assert_eq!(v["state"], "not-due", "{v}");
    assert_eq!(new.read("/etc/hostname"), "new-os-work\n");
    // the new OS lost its own record: the journal in the store still knows
    std::fs::remove_dir_all(new.p("/var/lib/carryover")).unwrap();
    let v = json(&restore(&new.dir, &store, &["--if-due"], &[]));
    assert_eq!(v["state"], "not-due", "{v}");
    assert!(v["reason"].as_str().unwrap().contains("journal"), "{v}");
    assert_eq!(new.read("/etc/hostname"), "new-os-work\n");

    // on the old OS, `latest` is refused like no name; only the id rolls it back
    old.file("/etc/hostname", "old-after\n");
    let o = restore(&old.dir, &store, &["--snapshot", "latest"], &[]);
    assert_exit!(o, Some(2));
    assert_eq!(old.read("/etc/hostname"), "old-after\n");
}

/// Review of #12: a data path that is a place of the OS itself is a blocker; a snapshot
/// naming one is refused by restore.
#[test]
fn system_locations_are_never_data_paths() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    for p in ["/etc", "/var/lib", "/usr", "/", "/var/lib/carryover"] {
        let o = Cmd::new("check")
            .root(&old.dir)
            .json()
            .args(&["--path", p])
            .run();
        assert_exit!(o, Some(3));
        assert!(
            json(&o)["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["key"] == "data-path-is-system"),
            "{p}"
        );
    }
    // acknowledged anyway: restore still refuses to lay the old /etc over the new one
    let store = t.path().join("store");
    let o = Cmd::new("capture")
        .root(&old.dir)
        .store(&store)
        .args(&["--path", "/etc", "--ack", "data-path-is-system"])
        .run();
    assert_exit!(o, Some(0));
    let new = new_ubuntu(&t.path().join("new"));
    let fstab = new.read("/etc/fstab");
    let v = json(&restore(&new.dir, &store, &[], &[]));
    assert_eq!(v["state"], "degraded", "{v}");
    assert!(
        v["failed_files"]
            .to_string()
            .contains("never restored as data"),
        "{v}"
    );
    assert!(
        new.read("/etc/fstab").starts_with(&fstab[..20]),
        "the new fstab stays"
    );
    assert!(!new.read("/etc/os-release").contains("bookworm"));
}

/// Review of #12: a snapshot whose state cannot be read restores nothing: `failed`, not
/// `degraded`.
#[test]
fn a_restore_where_every_step_failed_is_failed() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let store = t.path().join("store");
    let id = capture(&old.dir, &store);
    std::fs::write(store.join(format!("objects/{id}/state.json")), "garbage").unwrap();
    let new = new_ubuntu(&t.path().join("new"));
    let o = restore(&new.dir, &store, &[], &[]);
    assert_eq!(json(&o)["state"], "failed", "{}", stdout(&o));
    assert_exit!(o, Some(1));
}
