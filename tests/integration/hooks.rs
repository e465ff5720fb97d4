//! Operator hooks: name order, environment, a failing pre-capture hook stops the capture,
//! a hook past its timeout is killed with its children, once per snapshot and phase.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use super::fixtures::*;

fn hook(t: &Tree, phase: &str, name: &str, body: &str) {
    t.file_mode(
        &format!("/etc/carryover/hooks/{phase}.d/{name}"),
        &format!("#!/bin/sh\n{body}\n"),
        0o755,
    );
}

#[test]
fn hooks_run_in_order_with_their_environment_once_per_snapshot() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let log = t.path().join("hooks.log");
    let l = log.display();
    let line = format!(
        "echo \"$(basename $0) $CARRYOVER_PHASE $CARRYOVER_SNAPSHOT_ID $CARRYOVER_ROOT $CARRYOVER_STORE\" >> {l}"
    );
    hook(&old, "pre-capture", "20-second", &line);
    hook(&old, "pre-capture", "10-first", &line);
    hook(&old, "post-capture", "10-after", &line);
    old.file(
        "/etc/carryover/hooks/pre-capture.d/30-not-executable",
        "#!/bin/sh\nexit 1\n",
    );
    let store = t.path().join("store");
    let id = capture(&old.dir, &store);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let root = std::fs::canonicalize(&old.dir).unwrap();
    assert_eq!(
        lines[0],
        format!(
            "10-first pre-capture {id} {} {}",
            root.display(),
            store.display()
        )
    );
    assert!(lines[1].starts_with("20-second pre-capture"));
    assert!(lines[2].starts_with(&format!("10-after post-capture {id}")));

    let new = new_ubuntu(&t.path().join("new"));
    hook(&new, "post-restore", "10-warm", &line);
    for _ in 0..2 {
        let o = Cmd::new("restore")
            .root(&new.dir)
            .store(&store)
            .json()
            .run();
        assert_exit!(o, Some(0));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.lines().filter(|l| l.contains("post-restore")).count(),
        1,
        "once per snapshot: {text}"
    );
}

#[test]
fn a_failing_pre_capture_hook_stops_the_capture() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    hook(
        &old,
        "pre-capture",
        "10-quiesce-db",
        "echo 'cannot lock the tables' >&2\nexit 3",
    );
    let store = t.path().join("store");
    let o = Cmd::new("capture").root(&old.dir).store(&store).run();
    assert_exit!(o, Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("10-quiesce-db") && e.contains("cannot lock the tables"),
        "{e}"
    );
    let list = json(&carryover(&[
        "snapshots",
        "list",
        "--store",
        store.to_str().unwrap(),
        "--format",
        "json",
    ]));
    assert_eq!(
        list.as_array().unwrap().len(),
        0,
        "no snapshot after a failed pre-capture hook"
    );
}

#[test]
fn a_hook_past_its_timeout_is_killed_with_its_children() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    old.file(
        "/etc/carryover/config.toml",
        "[hooks]\ntimeout_seconds = 1\n",
    );
    let pidfile = t.path().join("child.pid");
    hook(
        &old,
        "pre-capture",
        "10-hangs",
        &format!("sleep 60 &\necho $! > {}\nwait", pidfile.display()),
    );
    let store = t.path().join("store");
    let t0 = Instant::now();
    let o = Cmd::new("capture").root(&old.dir).store(&store).run();
    assert!(t0.elapsed() < Duration::from_secs(20));
    assert_exit!(o, Some(1));
    assert!(
        stderr(&o).contains("did not finish within 1 s"),
        "{}",
        stderr(&o)
    );
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let alive = std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ");
    assert!(!alive, "the hook's child survived");
    let _ = std::fs::metadata(&pidfile).unwrap().permissions().mode();
}

/// #16.9: a hook or a config file anyone may write is refused (as sshd refuses its own),
/// and hooks never see the agent's secrets in their environment.
#[test]
fn writable_hooks_and_configs_are_refused_and_hooks_get_a_clean_environment() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let store = t.path().join("store");
    let seen = t.path().join("env.txt");
    old.file_mode(
        "/etc/carryover/hooks/pre-capture.d/10-env",
        &format!("#!/bin/sh\nenv > {}\n", seen.display()),
        0o755,
    );
    let o = Cmd::new("capture")
        .root(&old.dir)
        .store(&store)
        .env("AWS_SECRET_ACCESS_KEY", "PLANTED-SECRET")
        .env("AWS_ACCESS_KEY_ID", "AKIAPLANTED")
        .run();
    assert_exit!(o, Some(0));
    let env = std::fs::read_to_string(&seen).unwrap();
    assert!(!env.contains("PLANTED"), "{env}");
    assert!(env.contains("CARRYOVER_PHASE=pre-capture"), "{env}");
    assert!(env.contains("PATH=/usr/local/sbin"), "{env}");

    // a hook anyone may write: refused, the capture stops
    let hook = old.p("/etc/carryover/hooks/pre-capture.d/10-env");
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = Cmd::new("capture").root(&old.dir).store(&store).run();
    assert_exit!(o, Some(1));
    assert!(
        stderr(&o).contains("writable by everyone"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_file(&hook).unwrap();

    // a config drop-in its group may write: a configuration error naming it
    old.file_mode(
        "/etc/carryover/config.d/50-x.toml",
        "[hooks]\ntimeout_seconds = 5\n",
        0o664,
    );
    let o = Cmd::new("check").root(&old.dir).run();
    assert_exit!(o, Some(2));
    assert!(
        stderr(&o).contains("50-x.toml") && stderr(&o).contains("writable by its group"),
        "{}",
        stderr(&o)
    );
}

/// A restore killed in its post-restore hook — after its steps, before its record and
/// its outcome (a power cut, the OOM killer, an operator rebooting while a long load
/// runs): the next boot's restore resumes and finishes it, records it, writes its report
/// and reports it, instead of taking the store's journal for a restore done; the boot
/// after that has nothing due.
#[test]
fn a_restore_killed_in_its_post_restore_hook_is_finished_by_the_next_boot() {
    use std::os::unix::process::ExitStatusExt;
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let store = t.path().join("store");
    let id = capture(&old.dir, &store);
    let new = new_ubuntu(&t.path().join("new"));
    // a system the store's journal can name (its origin marker)
    new.file("/etc/machine-id", "fedcba9876543210fedcba9876543210\n");
    let flag = t.path().join("killed-once");
    let f = flag.display();
    hook(
        &new,
        "post-restore",
        "10-crash",
        &format!("[ -e {f} ] || {{ touch {f}; kill -9 $PPID; sleep 5; }}"),
    );
    let o = restore(&new.dir, &store, &["--if-due"], &[]);
    assert_eq!(o.status.signal(), Some(9), "{}", stderr(&o));
    assert!(flag.exists());
    assert!(!new.p("/var/log/carryover/restore-report.json").exists());
    let o = restore(&new.dir, &store, &["--if-due"], &[]);
    assert_exit!(o, Some(0));
    let v = json(&o);
    assert_eq!(v["state"], "ready", "{}", stdout(&o));
    assert_eq!(v["snapshot_id"], id.as_str());
    assert!(new.p("/var/log/carryover/restore-report.json").exists());
    let o = restore(&new.dir, &store, &["--if-due"], &[]);
    assert_exit!(o, Some(0));
    assert_eq!(json(&o)["state"], "not-due", "{}", stdout(&o));
}
