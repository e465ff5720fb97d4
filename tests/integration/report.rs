//! Readiness reporting against a real HTTP orchestrator in the test process: refused
//! connections, 503 with Retry-After, 500, a request that hangs past the timeout, 401;
//! every event delivered once and in order, nothing lost across agent restarts, the token
//! sent and never printed.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::fixtures::*;

const TOKEN: &str = "orchestrator-token-s3cr3t";

#[derive(Clone, Copy)]
enum Answer {
    Status(u16, Option<u64>),
    Hang,
}

#[derive(Default)]
struct Seen {
    /// (event_id, phase, state, authorization, answered status)
    requests: Vec<(String, String, String, String, u16)>,
    /// The events as sent.
    bodies: Vec<serde_json::Value>,
}

/// Answers from the script, then 200 for everything.
fn orchestrator(l: TcpListener, script: Vec<Answer>) -> Arc<Mutex<Seen>> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = seen.clone();
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in l.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                continue;
            }
            let (mut len, mut auth) = (0usize, String::new());
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                let lower = h.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("authorization:") {
                    auth = h["authorization:".len()..].trim().to_string();
                }
            }
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            let ev: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let answer = script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Answer::Status(200, None));
            let mut s = stream;
            let status = match answer {
                Answer::Hang => {
                    held.push(s);
                    0
                }
                Answer::Status(code, retry) => {
                    let extra = retry
                        .map(|r| format!("Retry-After: {r}\r\n"))
                        .unwrap_or_default();
                    let _ = write!(
                        s,
                        "HTTP/1.1 {code} X\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    code
                }
            };
            s2.lock().unwrap().bodies.push(ev.clone());
            s2.lock().unwrap().requests.push((
                ev["event_id"].as_str().unwrap_or("").into(),
                ev["phase"].as_str().unwrap_or("").into(),
                ev["state"].as_str().unwrap_or("").into(),
                auth,
                status,
            ));
        }
    });
    seen
}

/// The Debian fixture configured to report to a fresh orchestrator answering `script`.
fn old_os_reporting(dir: &std::path::Path, script: Vec<Answer>) -> (Tree, Arc<Mutex<Seen>>, u16) {
    let old = old_debian(&dir.join("old"));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = orchestrator(listener, script);
    configure(&old, port);
    (old, seen, port)
}

fn configure(t: &Tree, port: u16) {
    t.file_mode("/etc/carryover/token", &format!("{TOKEN}\n"), 0o600);
    t.file(
        "/etc/carryover/config.toml",
        &format!("[report]\nurl = \"http://127.0.0.1:{port}/api\"\nsend_timeout_seconds = 3\nrequest_timeout_ms = 500\n"),
    );
}

#[test]
fn events_survive_an_outage_and_arrive_once_in_order() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener); // nobody listens: connections are refused
    configure(&old, port);
    let store = t.path().join("store");
    let o = Cmd::new("capture")
        .root(&old.dir)
        .store(&store)
        .json()
        .run();
    assert_exit!(o, Some(0));
    let id = json(&o)["snapshot_id"].as_str().unwrap().to_string();
    assert!(stderr(&o).contains("outbox"), "{}", stderr(&o));
    // a second event while still down: a hand-sent one
    let o = Cmd::new("report")
        .root(&old.dir)
        .args(&["--event", "check:succeeded"])
        .run();
    assert_exit!(o, Some(1));
    let st = json(&Cmd::new("status").root(&old.dir).json().run());
    // capture's started and succeeded, and the hand-sent one
    assert_eq!(st["outbox"]["pending"].as_array().unwrap().len(), 3);

    // the orchestrator comes back, unsteady at first
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let seen = orchestrator(
        listener,
        vec![
            Answer::Status(503, Some(1)),
            Answer::Status(500, None),
            Answer::Hang,
        ],
    );
    let o = Cmd::new("report")
        .root(&old.dir)
        .args(&["--wait", "30"])
        .run();
    assert_exit!(o, Some(0));
    for out in [stdout(&o), stderr(&o)] {
        assert!(!out.contains(TOKEN), "the token was printed");
    }
    let seen = seen.lock().unwrap();
    let accepted: Vec<_> = seen.requests.iter().filter(|r| r.4 == 200).collect();
    let got: Vec<(&str, &str)> = accepted
        .iter()
        .map(|r| (r.1.as_str(), r.2.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("capture", "started"),
            ("capture", "succeeded"),
            ("check", "succeeded")
        ],
        "{:?}",
        seen.requests
    );
    assert_ne!(accepted[0].0, accepted[1].0);
    assert!(
        seen.requests
            .iter()
            .all(|r| r.3 == format!("Bearer {TOKEN}"))
    );
    assert!(
        seen.requests
            .iter()
            .filter(|r| r.4 != 200)
            .all(|r| r.0 == accepted[0].0),
        "retries are of the first event: in order"
    );
    drop(seen);
    let st = json(&Cmd::new("status").root(&old.dir).json().run());
    assert!(st["outbox"]["pending"].as_array().unwrap().is_empty());
    let _ = id;
}

#[test]
fn a_401_is_set_aside_not_retried_forever_and_restore_reports_ready() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = orchestrator(listener, vec![Answer::Status(401, None)]);
    configure(&old, port);
    let store = t.path().join("store");
    let o = Cmd::new("capture").root(&old.dir).store(&store).run();
    assert_exit!(o, Some(0));
    std::thread::sleep(Duration::from_millis(100));
    {
        // capture/started got the 401 and was set aside, never retried; the next one went
        let seen = seen.lock().unwrap();
        let got: Vec<(&str, &str, u16)> = seen
            .requests
            .iter()
            .map(|r| (r.1.as_str(), r.2.as_str(), r.4))
            .collect();
        assert_eq!(
            got,
            vec![("capture", "started", 401), ("capture", "succeeded", 200)],
            "a 401 is not retried"
        );
    }
    let st = json(&Cmd::new("status").root(&old.dir).json().run());
    assert_eq!(
        st["outbox"]["failed"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f.as_str().unwrap().ends_with(".json"))
            .count(),
        1
    );
    assert!(st["outbox"]["pending"].as_array().unwrap().is_empty());

    let new = new_ubuntu(&t.path().join("new"));
    configure(&new, port);
    let o = restore(&new.dir, &store, &[], &[]);
    assert_exit!(o, Some(0));
    std::thread::sleep(Duration::from_millis(100));
    let seen = seen.lock().unwrap();
    let last = seen.requests.last().unwrap();
    assert_eq!(
        (last.1.as_str(), last.2.as_str(), last.4),
        ("restore", "succeeded", 200)
    );
}

#[test]
fn the_token_travels_in_the_snapshot_not_in_user_data() {
    let t = tempfile::tempdir().unwrap();
    let (old, seen, port) = old_os_reporting(t.path(), vec![]);
    let store = t.path().join("store");
    capture(&old.dir, &store);
    // the new OS has the orchestrator's URL (from the user-data) but no token
    let new = new_ubuntu(&t.path().join("new"));
    new.file(
        "/etc/carryover/config.toml",
        &format!("[report]\nurl = \"http://127.0.0.1:{port}/api\"\nsend_timeout_seconds = 3\n"),
    );
    let o = restore(&new.dir, &store, &[], &[]);
    assert_exit!(o, Some(0));
    assert!(!stdout(&o).contains(TOKEN) && !stderr(&o).contains(TOKEN));
    let token = new.p("/etc/carryover/token");
    assert_eq!(
        std::fs::read_to_string(&token).unwrap(),
        format!("{TOKEN}\n")
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&token).unwrap().permissions().mode() & 0o777,
        0o600
    );
    std::thread::sleep(Duration::from_millis(100));
    let seen = seen.lock().unwrap();
    let last = seen.requests.last().unwrap();
    assert_eq!((last.1.as_str(), last.2.as_str()), ("restore", "succeeded"));
    assert_eq!(last.3, format!("Bearer {TOKEN}"));
    // a token the new OS already has is kept
    std::fs::write(&token, "new-os-token\n").unwrap();
    let o = restore(&new.dir, &store, &[], &[]);
    assert_exit!(o, Some(0));
    assert_eq!(std::fs::read_to_string(&token).unwrap(), "new-os-token\n");
}

#[test]
fn check_reports_its_findings() {
    let t = tempfile::tempdir().unwrap();
    let (old, seen, _) = old_os_reporting(t.path(), vec![]);
    let root = old.dir.to_str().unwrap();
    let o = Cmd::new("check")
        .root(root)
        .args(&["--target", "windows"])
        .run();
    assert_exit!(o, Some(3));
    let o = Cmd::new("check")
        .root(root)
        .args(&["--target", "linux"])
        .run();
    assert_exit!(o, Some(0));
    std::thread::sleep(Duration::from_millis(100));
    let seen = seen.lock().unwrap();
    let got: Vec<(&str, &str)> = seen
        .requests
        .iter()
        .map(|r| (r.1.as_str(), r.2.as_str()))
        .collect();
    assert_eq!(got, vec![("check", "blocked"), ("check", "succeeded")]);
}

/// A new OS set up by the Change OS user-data (`[restore] expected`) reporting to the
/// orchestrator; no token yet (it comes from the snapshot).
fn new_os_expecting_restore(dir: &std::path::Path, port: u16, store: &std::path::Path) -> Tree {
    let new = new_ubuntu(dir);
    new.file(
        "/etc/carryover/config.d/50-user-data.toml",
        &format!(
            "[store]\nurl = \"{}\"\n[report]\nurl = \"http://127.0.0.1:{port}/api\"\nsend_timeout_seconds = 3\nrequest_timeout_ms = 500\n[restore]\nexpected = true\n",
            store.display()
        ),
    );
    new
}

fn events(seen: &Arc<Mutex<Seen>>) -> Vec<(String, String)> {
    std::thread::sleep(Duration::from_millis(100));
    seen.lock()
        .unwrap()
        .requests
        .iter()
        .map(|r| (r.1.clone(), r.2.clone()))
        .collect()
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

#[test]
fn a_restore_that_fails_before_its_plan_still_reaches_the_orchestrator() {
    let t = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = orchestrator(listener, vec![]);

    // the store's disk did not mount: the boot unit's restore fails, and says so
    let missing = t.path().join("not-mounted/carryover");
    let new = new_os_expecting_restore(&t.path().join("new"), port, &missing);
    let o = Cmd::new("restore --if-due").root(&new.dir).run();
    assert_exit!(o, Some(1));
    assert_eq!(events(&seen), vec![pair("restore", "failed")]);
    let outbox_failed = seen.lock().unwrap().requests.len();

    // a store without a snapshot of this instance: failed, not "nothing due"
    let other = old_debian(&t.path().join("other"));
    other.file(
        "/sys/class/dmi/id/product_uuid",
        "11111111-2222-3333-4444-555555555555\n",
    );
    let store = t.path().join("store");
    assert_exit!(
        Cmd::new("capture").root(&other.dir).store(&store).run(),
        Some(0)
    );
    let new2 = new_os_expecting_restore(&t.path().join("new2"), port, &store);
    let o = Cmd::new("restore --if-due").root(&new2.dir).run();
    assert_exit!(o, Some(2));
    assert!(
        stderr(&o).contains("no snapshot of instance"),
        "{}",
        stderr(&o)
    );
    let got = events(&seen);
    assert_eq!(
        got[outbox_failed..].to_vec(),
        vec![pair("restore", "failed")]
    );
    let n = got.len();

    // a broken config file: what the other files name still carries the failure
    new2.file(
        "/etc/carryover/config.d/60-broken.toml",
        "[store\nurl = 1\n",
    );
    assert_exit!(Cmd::new("restore --if-due").root(&new2.dir).run(), Some(2));
    let got = events(&seen);
    assert_eq!(got[n..].to_vec(), vec![pair("restore", "failed")]);
    let n = got.len();

    // a plain install where no restore is expected and no store is set: quiet
    let plain = new_ubuntu(&t.path().join("plain"));
    plain.file(
        "/etc/carryover/config.toml",
        &format!("[report]\nurl = \"http://127.0.0.1:{port}/api\"\nsend_timeout_seconds = 3\n"),
    );
    assert_exit!(Cmd::new("restore --if-due").root(&plain.dir).run(), Some(0));
    assert_eq!(events(&seen).len(), n, "nothing sent");
}

/// An outbox that cannot keep events (a file planted at its folder's name; a full or
/// read-only system disk does the same): every event of the restore still reaches the
/// orchestrator, sent from memory.
#[test]
fn events_reach_the_orchestrator_when_the_outbox_cannot_keep_them() {
    let t = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = orchestrator(listener, vec![]);
    let old = old_debian(&t.path().join("old"));
    let store = t.path().join("store");
    capture(&old.dir, &store);
    let new = new_os_expecting_restore(&t.path().join("new"), port, &store);
    new.file("/var/lib/carryover/outbox", "not a folder\n");
    let o = Cmd::new("restore --if-due").root(&new.dir).run();
    assert_exit!(o, Some(0));
    assert!(
        stderr(&o).contains("sending it without it"),
        "{}",
        stderr(&o)
    );
    let got = events(&seen);
    assert_eq!(got.last(), Some(&pair("restore", "succeeded")), "{got:?}");
}

#[test]
fn a_capture_that_fails_reaches_the_orchestrator() {
    let t = tempfile::tempdir().unwrap();
    let (old, seen, _) = old_os_reporting(t.path(), vec![]);
    old.file_mode(
        "/etc/carryover/hooks/pre-capture.d/10-quiesce-db",
        "#!/bin/sh\necho 'the database did not stop' >&2\nexit 3\n",
        0o755,
    );
    let store = t.path().join("store");
    assert_exit!(
        Cmd::new("capture").root(&old.dir).store(&store).run(),
        Some(1)
    );
    assert_eq!(
        events(&seen),
        vec![pair("capture", "started"), pair("capture", "failed")]
    );
}

/// #19.1: the orchestrator's event carries what the report on disk says (bounded): why
/// the restore is not ready, and per step its changes old → new, warnings and what needs
/// a person.
#[test]
fn a_degraded_restore_tells_the_orchestrator_why() {
    let t = tempfile::tempdir().unwrap();
    let old = old_ubuntu(&t.path().join("old"));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = orchestrator(listener, vec![]);
    configure(&old, port);
    let store = t.path().join("store");
    capture(&old.dir, &store);
    // the image's own `debian` (1000) is not the old OS's `debian` (1003): a conflict
    let new = new_debian(&t.path().join("new"));
    configure(&new, port);
    let o = restore(&new.dir, &store, &[], &[]);
    assert_exit!(o, Some(4));
    std::thread::sleep(Duration::from_millis(100));
    let seen = seen.lock().unwrap();
    let ev = seen
        .bodies
        .iter()
        .rev()
        .find(|b| b["phase"] == "restore" && b["state"] == "degraded")
        .unwrap_or_else(|| panic!("no degraded restore event: {:?}", seen.bodies));
    let reasons = ev["reasons"].to_string();
    assert!(
        reasons.contains("accounts:") && reasons.contains("debian"),
        "{ev}"
    );
    let step = |name: &str| {
        ev["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in {ev}"))
    };
    assert!(
        !step("accounts")["attention"].as_array().unwrap().is_empty(),
        "{ev}"
    );
    // what changed, by path only: no line of a file leaves the server
    assert_eq!(
        step("hostname")["changes"],
        serde_json::json!(["/etc/hostname"]),
        "{ev}"
    );
}

/// One restore at a time on a system: while the boot unit's restore runs (here: right
/// after its `hostname` step), a restore started by hand is refused with a clear error,
/// and a second boot-unit run waits for it and then, finding it finished, ends as not
/// due — neither reports anything, nor changes the running one's outcome; after it, a
/// restore by hand runs again.
#[test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "needs the after-step hook: cargo test --features test-hooks"
)]
fn a_second_restore_is_refused_or_waits_while_one_runs() {
    let t = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = orchestrator(listener, vec![]);
    let old = old_debian(&t.path().join("old"));
    configure(&old, port);
    let store = t.path().join("store");
    capture(&old.dir, &store);
    let before = events(&seen).len();
    let new = new_os_expecting_restore(&t.path().join("new"), port, &store);
    let out = t.path().join("second");
    let argv: Vec<String> = runner_argv(&agent_bin())
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let agent = argv.join(" ");
    let root = new.dir.display();
    let o = out.display();
    // the boot unit's second run in the background (it waits), holding none of the
    // first run's pipes
    let during = format!(
        "hostname:{agent} restore --root {root} --format json > {o}.json 2> {o}.err; echo $? > {o}.code; \
         ( {agent} restore --if-due --root {root}; echo $? > {o}.due-code.tmp; mv {o}.due-code.tmp {o}.due-code ) \
         > {o}.due 2>&1 < /dev/null &"
    );
    let first = Cmd::new("restore --if-due")
        .root(&new.dir)
        .json()
        .env("CARRYOVER_TEST_AFTER_STEP", &during)
        .run();
    assert_exit!(first, Some(0));
    assert_eq!(json(&first)["state"], "ready", "{}", stdout(&first));
    let read = |ext: &str| std::fs::read_to_string(format!("{o}.{ext}")).unwrap();
    assert_eq!(read("code").trim(), "1", "{}{}", read("json"), read("err"));
    let err: serde_json::Value = serde_json::from_str(&read("json")).unwrap();
    let msg = err["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("a restore is running on this system already (process ")
            && msg.contains("carryover status --wait"),
        "{err}"
    );
    let due_code = out.with_extension("due-code");
    for _ in 0..600 {
        if due_code.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(read("due-code").trim(), "0", "{}", read("due"));
    let due = read("due");
    assert!(
        due.contains("waiting for it to end") && due.contains("a restore ran here already"),
        "{due}"
    );
    // the orchestrator heard of one restore: started, then succeeded (ready)
    assert_eq!(
        events(&seen)[before..].to_vec(),
        vec![pair("restore", "started"), pair("restore", "succeeded")]
    );
    // the lock went with the restore that held it
    let again = Cmd::new("restore").root(&new.dir).json().run();
    assert_exit!(again, Some(0));
}
