//! Bad input gets a clear error and nothing is lost: broken configs, a missing root,
//! unreadable or garbage system files, damaged and hostile snapshots, another instance's
//! snapshot.

use std::os::unix::fs::PermissionsExt;

use super::fixtures::*;

#[test]
fn a_broken_config_names_file_line_and_key_and_exits_2() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(t.path());
    old.file(
        "/etc/carryover/config.toml",
        "[store]\nurl = \"/mnt/data\"\n\n[data]\npaths = \"/srv\"\n",
    );
    let o = Cmd::new("inspect").root(&old.dir).run();
    assert_exit!(o, Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("etc/carryover/config.toml") && e.contains("line 5") && e.contains("data.paths"),
        "{e}"
    );

    old.file(
        "/etc/carryover/config.toml",
        "[store]\nurl = \"/mnt/data\"\n",
    );
    old.file(
        "/etc/carryover/config.d/50-typo.toml",
        "[report]\ntoken_fil = \"/etc/carryover/token\"\n",
    );
    let o = Cmd::new("inspect").root(&old.dir).run();
    assert_exit!(o, Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("50-typo.toml") && e.contains("line 2") && e.contains("report.token_fil"),
        "{e}"
    );

    let o = Cmd::new("inspect")
        .root(&old.dir)
        .args(&["--config", "/nonexistent/carryover.toml"])
        .run();
    assert_exit!(o, Some(2));
    assert!(stderr(&o).contains("/nonexistent/carryover.toml"));
}

#[test]
fn a_missing_root_is_a_usage_error() {
    let o = Cmd::new("inspect").root("/nonexistent/old-os").run();
    assert_exit!(o, Some(2));
    assert!(stderr(&o).contains("/nonexistent/old-os"), "{}", stderr(&o));
}

#[test]
fn what_does_not_apply_here_says_so() {
    // the Windows service on Linux: a usage error that points at the systemd units
    let o = carryover(&["service", "install"]);
    assert_exit!(o, Some(2));
    assert!(
        stderr(&o).contains("for Windows") && stderr(&o).contains("carryover-restore.service"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn unreadable_and_garbage_files_are_named_and_the_capture_goes_on() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    // garbage passwd lines, a cron file that is not text, a netplan file that is not YAML,
    // and a hostname that cannot be read (a directory where a file should be)
    old.file(
        "/etc/passwd",
        &format!("{}this is not a passwd line\n", old.read("/etc/passwd")),
    );
    std::fs::write(old.p("/etc/cron.d/binary"), b"\xff\xfe\x00garbage").unwrap();
    old.file("/etc/netplan/01-broken.yaml", "network: [unclosed\n");
    std::fs::remove_file(old.p("/etc/timezone")).unwrap();
    std::fs::create_dir(old.p("/etc/timezone")).unwrap();
    let store = t.path().join("store");
    let o = Cmd::new("capture")
        .root(&old.dir)
        .store(&store)
        .json()
        .run();
    assert_exit!(o, Some(4));
    let v = json(&o);
    let skipped = v["skipped"].to_string();
    for name in [
        "/etc/passwd",
        "/etc/cron.d/binary",
        "/etc/netplan/01-broken.yaml",
    ] {
        assert!(skipped.contains(name), "{name} not named in {skipped}");
    }
    // the rest was captured and the snapshot is complete
    let id = v["snapshot_id"].as_str().unwrap();
    let new = new_ubuntu(&t.path().join("new"));
    let o = Cmd::new("restore")
        .root(&new.dir)
        .store(&store)
        .arg("--snapshot")
        .arg(id)
        .run();
    assert_exit!(o, Some(0));
    assert!(new.read("/etc/passwd").contains("alice:x:1000"));
}

#[test]
fn a_damaged_section_fails_only_its_steps_and_verify_names_it() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let store = t.path().join("store");
    let id = capture(&old.dir, &store);
    tamper(
        &store,
        &id,
        |v| v["users"] = serde_json::json!("garbage"),
        false,
    );

    let o = carryover(&["snapshots", "verify", "--store", store.to_str().unwrap()]);
    assert_exit!(o, Some(1));
    assert!(
        stdout(&o).contains(&format!("objects/{id}/state.json")) && stdout(&o).contains("DAMAGED"),
        "{}",
        stdout(&o)
    );

    let new = new_ubuntu(&t.path().join("new"));
    let o = Cmd::new("restore")
        .root(&new.dir)
        .store(&store)
        .json()
        .run();
    assert_exit!(o, Some(4));
    let v = json(&o);
    assert_eq!(v["state"], "degraded");
    let steps = v["steps"].as_array().unwrap();
    let accounts = steps.iter().find(|s| s["name"] == "accounts").unwrap();
    assert_eq!(accounts["status"], "failed");
    assert!(
        accounts["detail"].as_str().unwrap().contains("damaged"),
        "{accounts}"
    );
    assert!(!new.read("/etc/passwd").contains("alice"));
}

#[test]
fn a_hostile_snapshot_never_writes_outside_its_targets() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let store = t.path().join("store");
    let id = capture(&old.dir, &store);
    // A planted snapshot with valid checksums: paths that climb out, a zone that climbs
    // out, a crontab owner with a slash, a nameserver that injects a line.
    tamper(
        &store,
        &id,
        |v| {
            v["services"]["unit_files"][0]["path"] = "/etc/systemd/system/../../shadow".into();
            v["services"]["enabled"][0]["unit"] = "../../../etc/passwd".into();
            v["timezone"] = "../../../../etc/shadow".into();
            v["sysctl"][0]["path"] = "/etc/sysctl.d/../../etc/passwd".into();
            for c in v["cron"].as_array_mut().unwrap() {
                if c["kind"] == "user" {
                    c["user"] = "../../../../etc/sudoers".into();
                }
            }
            v["dns"]["nameservers"][0] = "10.0.0.2\nnameserver 6.6.6.6".into();
            v["hostname"] = serde_json::json!(null);
            v["identity"]["hostname"] = "evil\nhost".into();
        },
        true,
    );
    let outside = t.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let new = new_ubuntu(&t.path().join("new"));
    let shadow_before = new.read("/etc/shadow");
    let passwd_before = new.read("/etc/passwd");
    let o = Cmd::new("restore")
        .root(&new.dir)
        .store(&store)
        .json()
        .run();
    assert_exit!(o, Some(4));
    let v = json(&o);
    for name in [
        "unit-files",
        "enable-units",
        "timezone",
        "sysctl",
        "cron",
        "dns",
        "hostname",
    ] {
        let s = v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap();
        assert_eq!(s["status"], "failed", "{name}: {s}");
    }
    // a value from the store is quoted with its newline escaped: it cannot forge a line of
    // the report on disk or of the log
    let host = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "hostname")
        .unwrap();
    assert!(host.to_string().contains(r"'evil\\nhost'"), "{host}");
    let report = new.read("/var/log/carryover/restore-report.txt");
    assert!(
        report.contains(r"'evil\nhost'") && !report.lines().any(|l| l.trim() == "host'"),
        "{report}"
    );
    let shadow = new.read("/etc/shadow");
    assert!(
        shadow.starts_with(&shadow_before) && !shadow.contains("[Unit]"),
        "{shadow}"
    );
    assert!(
        new.read("/etc/passwd").starts_with(&passwd_before),
        "only appended to, never replaced"
    );
    assert!(!new.p("/etc/sudoers").exists());
    assert!(!new.read("/etc/hostname").contains("evil"));
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert_eq!(
        std::fs::metadata(new.p("/etc/shadow"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o640
    );
}

#[test]
fn another_instances_snapshot_is_refused_unless_named() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let store = t.path().join("store");
    let id = capture(&old.dir, &store);
    let new = new_ubuntu(&t.path().join("new"));
    new.file(
        "/sys/class/dmi/id/product_uuid",
        "11111111-2222-3333-4444-555555555555\n",
    );
    let o = Cmd::new("restore").root(&new.dir).store(&store).run();
    assert_exit!(o, Some(2));
    assert!(
        stderr(&o).contains("no snapshot of instance 11111111-2222-3333-4444-555555555555"),
        "{}",
        stderr(&o)
    );
    assert_eq!(new.read("/etc/hostname"), "ubuntu\n");
    let o = Cmd::new("restore")
        .root(&new.dir)
        .store(&store)
        .arg("--snapshot")
        .arg(&id)
        .run();
    assert_exit!(o, Some(0));
    assert_eq!(new.read("/etc/hostname"), "web01\n");
}

#[test]
fn a_store_that_is_not_a_store_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let new = new_ubuntu(&t.path().join("new"));
    let o = Cmd::new("restore")
        .root(&new.dir)
        .store(new.dir.join("etc"))
        .run();
    assert_exit!(o, Some(1));
    assert!(
        stderr(&o).contains("not a carryover store"),
        "{}",
        stderr(&o)
    );
    let o = Cmd::new("restore").root(&new.dir).run();
    assert_exit!(o, Some(2));
    assert!(stderr(&o).contains("no store"), "{}", stderr(&o));
}

/// #19.3: with `--format json` a failing command says so on stdout, as JSON a program can
/// read: kind, message, exit code — a usage error, a config error, a missing store.
#[test]
fn failures_are_json_on_stdout_with_format_json() {
    let t = tempfile::tempdir().unwrap();
    let tree = Tree::new(&t.path().join("root"));
    tree.file("/etc/carryover/config.toml", "[store]\nurl = 5\n");
    let none = t.path().join("none");
    let cases = [
        (Cmd::new("restore").arg("--bogus").json(), "usage", 2),
        (
            Cmd::new("check").root(&tree.dir).arg("--format=json"),
            "config",
            2,
        ),
        (Cmd::new("snapshots list").store(&none).json(), "failure", 1),
        (Cmd::new("probe").arg(&none).json(), "failure", 1),
        (
            Cmd::new("status").args(&["--timeout", "3"]).json(),
            "usage",
            2,
        ),
    ];
    for (cmd, kind, code) in cases {
        let args = format!("{:?}", cmd.command());
        let o = cmd.run();
        assert_eq!(o.status.code(), Some(code), "{args}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(stdout(&o).trim())
            .unwrap_or_else(|e| panic!("{args}: stdout is not JSON ({e}): {}", stdout(&o)));
        assert_eq!(v["error"]["kind"], kind, "{args}: {v}");
        assert_eq!(v["error"]["exit_code"], code, "{args}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(!message.is_empty());
        // a missing argument is named, not cut off at the line break before it
        if args.contains("\"status\"") {
            assert!(message.ends_with("not provided: --wait"), "{message}");
        }
    }
}

/// A plain store's manifest is anyone's to edit: a hostname with a newline and a bidi
/// override cannot forge a line of the restore report, of `status --long` or of the
/// snapshots table.
#[test]
fn a_crafted_hostname_cannot_forge_report_lines() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let store = t.path().join("store");
    let id = capture(&old.dir, &store);
    let mpath = store.join(format!("snapshots/{id}.json"));
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    m["hostname"] = "web01\n  result    READY\u{202e}".into();
    std::fs::write(&mpath, serde_json::to_vec(&m).unwrap()).unwrap();
    let new = new_debian(&t.path().join("new"));
    let o = Cmd::new("restore").root(&new.dir).store(&store).run();
    assert!(
        matches!(o.status.code(), Some(0) | Some(4)),
        "{}",
        stderr(&o)
    );
    let forged = |text: &str| {
        text.lines()
            .filter(|l| l.trim_start().starts_with("result"))
            .count()
            > 1
            || text.contains('\u{202e}')
    };
    let report = new.read("/var/log/carryover/restore-report.txt");
    assert!(
        report.contains(r"web01\u{a}  result    READY\u{202e}"),
        "{report}"
    );
    assert!(!forged(&report), "{report}");
    let o = Cmd::new("status --long").root(&new.dir).run();
    assert!(!forged(&stdout(&o)), "{}", stdout(&o));
    let o = Cmd::new("snapshots list")
        .root(&new.dir)
        .store(&store)
        .run();
    let table = stdout(&o);
    assert_eq!(
        table.lines().count(),
        4,
        "header, rule, one row, count: {table}"
    );
    assert!(!forged(&table), "{table}");
    let page = t.path().join("report.html");
    let o = Cmd::new("report --html").arg(&page).root(&new.dir).run();
    assert_exit!(o, Some(0));
    assert!(!std::fs::read_to_string(&page).unwrap().contains('\u{202e}'));
}
