//! What the main commands print, text and JSON, pinned as `insta` snapshots (the `.snap`
//! files in `snapshots/` beside this file): a change of wording or shape shows up in review
//! as a diff. Everything that varies between runs or machines is replaced before the
//! comparison: the temporary directory, snapshot ids, times, durations, stored sizes, the
//! version.

use std::path::Path;

use super::compat::{FIXTURE_ID, fixture_store};
use super::fixtures::*;

/// `text` with what varies replaced: the test's directory `dir` (as given and as the OS
/// resolves it), snapshot ids, RFC 3339 times, durations, stored sizes.
fn snap(name: &str, dir: &Path, text: &str) {
    let mut s = insta::Settings::clone_current();
    s.set_prepend_module_to_snapshot(false);
    s.set_omit_expression(true);
    let real = std::fs::canonicalize(dir).unwrap();
    for d in [real.as_path(), dir] {
        s.add_filter(&regex_escape(d.to_str().unwrap()), "[TMP]");
    }
    s.add_filter(r"\d{8}T\d{9}Z-[0-9a-f]{8}", "[SNAPSHOT]");
    s.add_filter(
        r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?( ?(Z|UTC|[+-]\d{2}:?\d{2}))?",
        "[TIME]",
    );
    s.add_filter(r"\b\d+(\.\d+)? ?(ms|s)\b", "[DURATION]");
    // what a capture stores depends on zstd's output and the state object's size
    s.add_filter(r#""stored_bytes": \d+"#, r#""stored_bytes": "[SIZE]""#);
    s.add_filter(r"stored bytes( +)[\d.]+ [KMG]?i?B", "stored bytes$1[SIZE]");
    s.add_filter(&regex_escape(env!("CARGO_PKG_VERSION")), "[VERSION]");
    s.bind(|| insta::assert_snapshot!(name, text));
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Both formats of one command line.
fn both(cmd: impl Fn() -> Cmd, code: i32, name: &str, dir: &Path) {
    let text = cmd().run();
    assert_exit!(text, Some(code));
    snap(&format!("{name}.txt"), dir, &stdout(&text));
    let json = cmd().json().run();
    assert_exit!(json, Some(code));
    snap(&format!("{name}.json"), dir, &stdout(&json));
}

#[test]
fn check_and_inspect_print_the_same_every_time() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    both(|| Cmd::new("check").root(&old.dir), 0, "check", t.path());
    both(
        || Cmd::new("inspect").root(&old.dir),
        0,
        "inspect",
        t.path(),
    );
}

#[test]
fn capture_restore_and_status_print_the_same_every_time() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    old.file("/srv/app/config.toml", "[app]\nport = 8080\n")
        .file("/srv/app/notes: 2026.txt", "a name with a colon\n");
    let store = t.path().join("store");
    let capture = |json: bool| {
        let c = Cmd::new("capture")
            .root(&old.dir)
            .store(&store)
            .args(&["--path", "/srv"]);
        if json { c.json() } else { c }.run()
    };
    let o = capture(false);
    assert_exit!(o, Some(0));
    snap("capture.txt", t.path(), &stdout(&o));
    let o = capture(true);
    assert_exit!(o, Some(0));
    snap("capture.json", t.path(), &stdout(&o));

    let new = new_ubuntu(&t.path().join("new"));
    let o = Cmd::new("restore").root(&new.dir).store(&store).run();
    assert_exit!(o, Some(0));
    snap("restore.txt", t.path(), &stdout(&o));
    // the same restore onto another fresh image, as JSON (the report an orchestrator's
    // tooling reads)
    let other = new_ubuntu(&t.path().join("new-json"));
    let o = Cmd::new("restore")
        .root(&other.dir)
        .store(&store)
        .json()
        .run();
    assert_exit!(o, Some(0));
    snap("restore.json", t.path(), &stdout(&o));
    both(|| Cmd::new("status").root(&new.dir), 0, "status", t.path());
}

#[test]
fn snapshots_list_and_show_print_the_same_every_time() {
    let t = tempfile::tempdir().unwrap();
    let store = fixture_store(t.path());
    both(
        || Cmd::new("snapshots list").store(&store),
        0,
        "snapshots-list",
        t.path(),
    );
    both(
        || Cmd::new("snapshots show").arg(FIXTURE_ID).store(&store),
        0,
        "snapshots-show",
        t.path(),
    );
}
