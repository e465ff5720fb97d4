//! Store upkeep through the CLI: forget and prune free the space of what no snapshot
//! needs while what remains verifies and restores byte for byte; the newest snapshot of
//! an instance is never forgotten; a prune killed at its dangerous moments leaves a
//! consistent store; `latest` and id prefixes resolve, an ambiguous prefix is an error.

use std::path::Path;

use super::data::{
    capture_paths, captured, data_tree, new_root, restores_identically, snapshot_ids, verify,
};
use super::fixtures::*;

/// The bytes of the store's packs and indexes.
fn pack_bytes(store: &Path) -> u64 {
    ["packs", "index"]
        .iter()
        .flat_map(|d| walkdir::WalkDir::new(store.join(d)))
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

/// True when some pack holds these bytes as they are.
fn packs_hold(store: &Path, needle: &[u8]) -> bool {
    walkdir::WalkDir::new(store.join("packs"))
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .any(|e| {
            std::fs::read(e.path())
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle)
        })
}

/// A snapshot of `old`, then `old` with random.bin replaced by another 3 MiB that does
/// not compress, and a second snapshot: the first's random.bin is dead once it is
/// forgotten.
fn two_snapshots(old: &Tree, store: &Path) -> (String, String) {
    let first = captured(&capture_paths(&old.dir, store, &[]));
    std::fs::remove_file(old.p("/srv/app/random.bin")).unwrap();
    std::fs::write(old.p("/srv/app/second.bin"), random_bytes(2, 3 << 20)).unwrap();
    let second = captured(&capture_paths(&old.dir, store, &[]));
    (first, second)
}

fn run(args: &[&str], store: &Path) -> std::process::Output {
    let mut a = args.to_vec();
    a.extend(["--store", store.to_str().unwrap()]);
    carryover(&a)
}

fn prune(store: &Path) -> serde_json::Value {
    let o = run(&["snapshots", "prune", "--format", "json"], store);
    assert_exit!(o, Some(0));
    json(&o)
}

#[test]
fn forget_and_prune_free_the_space_and_keep_what_remains() {
    let t = tempfile::tempdir().unwrap();
    let old = data_tree(&t.path().join("old"));
    let store = t.path().join("store");
    let gone = std::fs::read(old.p("/srv/app/random.bin")).unwrap();
    let (first, second) = two_snapshots(&old, &store);
    std::fs::remove_file(old.p("/srv/app/second.bin")).unwrap();
    std::fs::write(old.p("/srv/app/third.bin"), random_bytes(3, 3 << 20)).unwrap();
    let third = captured(&capture_paths(&old.dir, &store, &[]));

    let o = run(
        &[
            "snapshots",
            "forget",
            "--keep-last",
            "1",
            "--format",
            "json",
        ],
        &store,
    );
    assert_exit!(o, Some(0));
    assert_eq!(
        json(&o)["forgotten"],
        serde_json::json!([first.clone(), second.clone()])
    );
    assert_eq!(snapshot_ids(&store), vec![third.clone()]);
    assert!(
        store.join(format!("objects/{first}")).exists(),
        "until prune"
    );

    let before = pack_bytes(&store);
    let r = prune(&store);
    assert_eq!(r["snapshots"], 1);
    // each capture filled a pack of large chunks (random.bin, second.bin: all dead now)
    // and one of small blobs (the small files the first holds and the later ones share,
    // the trees): the large ones go, the small ones are mostly dead and rewritten
    assert_eq!(r["packs_removed"], 2, "{r}");
    assert_eq!(
        r["packs_rewritten"], 2,
        "the small-blob packs are mostly dead: {r}"
    );
    let after = pack_bytes(&store);
    assert!(
        after + (5 << 20) < before,
        "two 3 MiB files freed: {before} -> {after}"
    );
    assert!(!packs_hold(&store, &gone[1 << 20..(1 << 20) + 64]));
    for id in [&first, &second] {
        assert!(!store.join(format!("objects/{id}")).exists());
    }
    let v = verify(&store, &[]);
    assert_exit!(v, Some(0));
    let new = new_root(&t.path().join("new"));
    restores_identically(&old, &new, &store, &[]);

    // nothing left to do: a second prune changes nothing
    let r = prune(&store);
    assert_eq!(
        (r["packs_removed"].as_u64(), r["packs_rewritten"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(pack_bytes(&store), after);
}

#[test]
fn the_newest_snapshot_of_an_instance_is_never_forgotten() {
    let t = tempfile::tempdir().unwrap();
    let old = data_tree(&t.path().join("old"));
    let store = t.path().join("store");
    let (first, second) = two_snapshots(&old, &store);
    let root = old.dir.to_str().unwrap();
    for spec in ["latest", second.as_str()] {
        let o = Cmd::new("snapshots forget")
            .root(root)
            .args(&[&first, spec])
            .store(&store)
            .run();
        assert_exit!(o, Some(2));
        assert!(
            stderr(&o).contains(&format!("{second} is the newest of instance {INSTANCE}")),
            "{}",
            stderr(&o)
        );
    }
    assert_eq!(snapshot_ids(&store), vec![first.clone(), second.clone()]);
    let o = run(&["snapshots", "forget", "--keep-last", "0"], &store);
    assert_exit!(o, Some(2));
    let o = run(&["snapshots", "forget", &first], &store);
    assert_exit!(o, Some(0));
    assert_eq!(snapshot_ids(&store), vec![second]);
}

#[test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "needs the crash hook: cargo test --features test-hooks"
)]
fn a_prune_killed_midway_leaves_a_consistent_store() {
    for point in ["written", "index-deleted"] {
        let t = tempfile::tempdir().unwrap();
        let old = data_tree(&t.path().join("old"));
        let store = t.path().join("store");
        let (first, second) = two_snapshots(&old, &store);
        let o = run(&["snapshots", "forget", &first], &store);
        assert_exit!(o, Some(0));
        let before = pack_bytes(&store);
        let o = carryover_env(
            &["snapshots", "prune", "--store", store.to_str().unwrap()],
            &[("CARRYOVER_TEST_CRASH_IN_PRUNE", point)],
        );
        assert!(
            stderr(&o).contains(&format!("aborting at {point}")) && !o.status.success(),
            "{point}: {}",
            stderr(&o)
        );
        let v = verify(&store, &[]);
        assert_exit!(v, Some(0));
        let new = new_root(&t.path().join("new"));
        restores_identically(&old, &new, &store, &["--snapshot", &second]);

        // the next prune finishes the job (the killed one's lock is stale)
        prune(&store);
        let v = verify(&store, &[]);
        assert_exit!(v, Some(0));
        let again = new_root(&t.path().join("again"));
        restores_identically(&old, &again, &store, &[]);
        let after = pack_bytes(&store);
        assert!(after + (2 << 20) < before, "{point}: {before} -> {after}");
    }
}

#[test]
fn snapshot_ids_resolve_by_prefix_and_latest() {
    let t = tempfile::tempdir().unwrap();
    let old = data_tree(&t.path().join("old"));
    let store = t.path().join("store");
    let (first, second) = two_snapshots(&old, &store);
    let root = old.dir.to_str().unwrap();
    let show = |spec: &str| {
        Cmd::new("snapshots show")
            .arg(spec)
            .root(root)
            .store(&store)
            .json()
            .run()
    };
    let o = show("latest");
    assert_exit!(o, Some(0));
    assert_eq!(json(&o)["manifest"]["id"], second.as_str());

    let common = first
        .bytes()
        .zip(second.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    let o = run(&["snapshots", "verify", &first[..common]], &store);
    assert_exit!(o, Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("is the start of 2 snapshot ids")
            && err.contains(&first)
            && err.contains(&second),
        "{err}"
    );
    let unique = &first[..common + 1];
    assert_eq!(json(&show(unique))["manifest"]["id"], first.as_str());
    let o = run(&["snapshots", "verify", unique], &store);
    assert_exit!(o, Some(0));
    let new = new_root(&t.path().join("new"));
    let o = restore(&new.dir, &store, &["--dry-run", "--snapshot", unique], &[]);
    assert_eq!(json(&o)["snapshot_id"], first.as_str());
    let o = show("19990101");
    assert_exit!(o, Some(1));
    assert!(
        stderr(&o).contains("no snapshot '19990101'"),
        "{}",
        stderr(&o)
    );
}

/// Review of #12: a manifest that cannot be read is named by `verify` (exit 1) and by
/// restore's "no snapshot" error, never silence.
#[test]
fn a_damaged_manifest_is_named_not_hidden() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let store = t.path().join("store");
    let id = capture(&old.dir, &store);
    std::fs::write(store.join(format!("snapshots/{id}.json")), "{ damaged").unwrap();
    let o = Cmd::new("snapshots verify").store(&store).run();
    assert_exit!(o, Some(1));
    assert!(
        stdout(&o).contains(&id) && stdout(&o).contains("DAMAGED"),
        "{}",
        stdout(&o)
    );
    let new = new_ubuntu(&t.path().join("new"));
    let o = restore(&new.dir, &store, &[], &[]);
    assert!(
        stderr(&o).contains("1 snapshot manifests cannot be read"),
        "{}",
        stderr(&o)
    );
}
