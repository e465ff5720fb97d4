//! Hostile and broken data snapshots, planted in a store through the library: traversal
//! names, paths through a planted symlink, absurd sizes, content that lies about its
//! size, hard links out of the tree, entries out of order, truncated packs. Restore must
//! refuse each, name it, write nothing outside its target, and not panic.

use std::path::Path;
use std::sync::{Arc, Mutex};

use carryover::config::Config;
use carryover::data::node::{Kind, Node};
use carryover::data::repo::{self, Index, PackWriter, Sealed};
use carryover::data::tree::TreeWriter;
use carryover::data::{DataManifest, DataRoot};
use carryover::store::{Manifest, Store};

use super::fixtures::*;

fn node(path: &[u8], kind: Kind) -> Node {
    Node {
        mode: if kind == Kind::Dir { 0o755 } else { 0o644 },
        mtime: 1_600_000_000,
        ..Node::bare(path.to_vec(), kind)
    }
}

fn file(path: &[u8], content: &[u8]) -> (Node, Option<Vec<u8>>) {
    let mut n = node(path, Kind::File);
    n.size = content.len() as u64;
    (n, Some(content.to_vec()))
}

/// Writes `entries` as the tree of data path `root_path` into a new snapshot.
fn plant(store_dir: &Path, root_path: &str, entries: Vec<(Node, Option<Vec<u8>>)>) -> String {
    plant_claiming(store_dir, root_path, entries, None)
}

/// `plant`, with every data blob's index entry claiming `raw_length` bytes when given.
fn plant_claiming(
    store_dir: &Path,
    root_path: &str,
    entries: Vec<(Node, Option<Vec<u8>>)>,
    claim: Option<u32>,
) -> String {
    let store = Store::open(store_dir.to_str().unwrap(), &Config::default(), true, None).unwrap();
    let index = Arc::new(Mutex::new(Index::default()));
    let mut pw = PackWriter::new(store.clone(), index.clone());
    let mut z = repo::compressor().unwrap();
    let mut seal = |pw: &mut PackWriter, raw: &[u8], claim: Option<u32>| {
        let id = store.blob_id(raw);
        let (data, compressed) = repo::encode(raw.to_vec(), &mut z).unwrap();
        pw.add(Sealed {
            id,
            data,
            raw_length: claim.unwrap_or(raw.len() as u32),
            compressed,
        })
        .unwrap();
        id
    };
    let mut tree = TreeWriter::new(store.clone());
    for (mut n, content) in entries {
        if let Some(c) = content.filter(|c| !c.is_empty()) {
            let id = seal(&mut pw, &c, claim);
            n.chunks.push(id);
        }
        if let Some((_, raw)) = tree.push(&n).unwrap() {
            seal(&mut pw, &raw, None);
        }
    }
    let (ids, last) = tree.finish().unwrap();
    if let Some((_, raw)) = last {
        seal(&mut pw, &raw, None);
    }
    pw.flush().unwrap();
    let id = carryover::store::new_snapshot_id();
    let m = Manifest {
        id: id.clone(),
        instance_id: Some(INSTANCE.into()),
        data: Some(DataManifest {
            roots: vec![DataRoot {
                path: root_path.into(),
                tree: ids,
                files: 0,
                bytes: 0,
            }],
            ..DataManifest::default()
        }),
        ..Manifest::default()
    };
    store.commit(&m).unwrap();
    id
}

fn restore(new: &Path, store: &Path, id: &str) -> serde_json::Value {
    let o = Cmd::new("restore")
        .root(new)
        .store(store)
        .arg("--snapshot")
        .arg(id)
        .json()
        .run();
    assert_exit!(o, Some(4));
    json(&o)
}

#[test]
fn a_hostile_tree_is_refused_entry_by_entry() {
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let store = t.path().join("store");
    let mut esc = node(b"a/esc", Kind::Symlink);
    esc.target = outside.to_str().unwrap().as_bytes().to_vec();
    let mut huge = node(b"a/huge", Kind::File);
    huge.size = 1 << 60;
    let (mut liar, liar_c) = file(b"a/liar", b"abc");
    liar.size = 10;
    let mut shadow = node(b"a/link-out", Kind::Hardlink);
    shadow.target = b"../../etc/shadow".to_vec();
    let mut through = node(b"a/link-through", Kind::Hardlink);
    through.target = b"a/esc/target".to_vec();
    let mut holes = node(b"a/sparse-lie", Kind::File);
    holes.size = 100;
    holes.extents = Some(vec![(90, 50)]);
    let id = plant(
        &store,
        "/srv",
        vec![
            (node(b"", Kind::Dir), None),
            file(b"../escape", b"x"),
            (node(b"a", Kind::Dir), None),
            (esc, None),
            file(b"a/esc/pwned", b"x"),
            (huge, None),
            (liar, liar_c),
            (shadow, None),
            (through, None),
            file(b"a/ok", b"fine"),
            file(b"a/ok", b"again"),
            (holes, Some(b"0123456789".to_vec())),
            file(b"b/orphan", b"x"),
            file(b"/abs", b"x"),
        ],
    );
    let new = Tree::new(&t.path().join("new"));
    new.file("/etc/shadow", "root:*:1::::::\n");
    let v = restore(&new.dir, &store, &id);
    let failed = v["failed_files"].to_string();
    for name in [
        "escape",
        "a/esc/pwned",
        "a/huge",
        "a/liar",
        "a/link-out",
        "a/link-through",
        "a/sparse-lie",
        "b/orphan",
        "abs",
    ] {
        assert!(failed.contains(name), "{name} not named: {failed}");
    }
    assert!(
        failed.contains("out-of-order"),
        "the duplicate a/ok: {failed}"
    );
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "written outside the target"
    );
    assert_eq!(new.read("/etc/shadow"), "root:*:1::::::\n");
    assert_eq!(new.read("/srv/a/ok"), "fine");
    assert!(
        !new.p("/escape").exists()
            && !new.p("/srv/a/huge").exists()
            && !new.p("/srv/a/liar").exists()
    );
    assert_eq!(
        std::fs::read_link(new.p("/srv/a/esc")).unwrap(),
        outside,
        "the symlink itself is restored, never followed"
    );
}

#[test]
fn a_data_path_that_climbs_out_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let id = plant(
        &store,
        "/../../outside",
        vec![(node(b"", Kind::Dir), None), file(b"x", b"x")],
    );
    let new = Tree::new(&t.path().join("new"));
    let v = restore(&new.dir, &store, &id);
    assert!(
        v["failed_files"]
            .to_string()
            .contains("not a valid data path"),
        "{}",
        v["failed_files"]
    );
    assert!(!t.path().join("outside").exists());
}

#[test]
fn truncated_packs_fail_their_files_without_a_panic() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let big: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let id = plant(
        &store,
        "/srv",
        vec![
            (node(b"", Kind::Dir), None),
            file(b"big", &big),
            file(b"small", b"tiny"),
        ],
    );
    for e in walkdir::WalkDir::new(store.join("packs"))
        .into_iter()
        .filter_map(|e| e.ok())
    {
        if e.file_type().is_file() {
            let len = std::fs::metadata(e.path()).unwrap().len();
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(e.path())
                .unwrap();
            f.set_len(len / 2).unwrap();
        }
    }
    let new = Tree::new(&t.path().join("new"));
    let o = Cmd::new("restore")
        .root(&new.dir)
        .store(&store)
        .arg("--snapshot")
        .arg(&id)
        .json()
        .run();
    assert!(
        matches!(o.status.code(), Some(1) | Some(4)),
        "{}\n{}",
        stdout(&o),
        stderr(&o)
    );
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    let v = carryover(&["snapshots", "verify", "--store", store.to_str().unwrap()]);
    assert_exit!(v, Some(1));
    assert!(
        stdout(&v).contains("truncated") || stdout(&v).contains("shorter"),
        "{}",
        stdout(&v)
    );
}

/// #16.8: a 160 KB crafted store whose index claims 1 GiB blobs drove restore to 3.9 GB of
/// memory: a blob claiming more than the format ever makes is refused before allocating.
#[test]
fn a_blob_claiming_a_gigabyte_is_refused_without_allocating_it() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let mut entries = vec![(node(b"", Kind::Dir), None)];
    for i in 0..8 {
        entries.push(file(
            format!("bomb{i}").as_bytes(),
            format!("tiny {i}").as_bytes(),
        ));
    }
    let id = plant_claiming(&store, "/srv", entries, Some(1 << 30));
    let new = Tree::new(&t.path().join("new"));
    let o = Cmd::new("restore")
        // 512 MiB of address space is far more than a restore needs, far less than a bomb
        .under(&["sh", "-c", "ulimit -v 524288; exec \"$@\"", "sh"])
        .root(&new.dir)
        .store(&store)
        .args(&["--snapshot", &id])
        .json()
        .run();
    assert_exit!(o, Some(4));
    let v = json(&o);
    assert!(
        v["failed_files"]
            .to_string()
            .contains("more than the format ever makes"),
        "{v}"
    );
}
