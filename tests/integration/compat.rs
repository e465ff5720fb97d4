//! Stores written by an earlier carryover still read: a format-2 store made by the binary
//! of commit 6ed5452 (before ids and keys were types) is checked in under
//! `tests/fixtures/store-format2` (its agent binary left out) and read by this one.

use std::path::{Path, PathBuf};

use carryover::config::Config;
use carryover::store::Store;

use super::data::new_root;
use super::fixtures::*;

pub(super) const FIXTURE_ID: &str = "20261201T205950588Z-80d0a3eb";

/// A copy of the checked-in store (commands take the store's lock, which writes).
pub(super) fn fixture_store(dir: &Path) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-format2");
    let to = dir.join("store");
    for e in walkdir::WalkDir::new(&from) {
        let e = e.unwrap();
        let dest = to.join(e.path().strip_prefix(&from).unwrap());
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
    to
}

#[test]
fn a_store_written_before_typed_ids_reads_verifies_and_restores() {
    let t = tempfile::tempdir().unwrap();
    let store = fixture_store(t.path());

    // the manifest parses into typed ids and writes back byte for byte (its MAC, in an
    // encrypted store, covers exactly these bytes)
    let s = Store::open(store.to_str().unwrap(), &Config::default(), false, None).unwrap();
    let m = s.manifest(FIXTURE_ID).unwrap();
    let on_disk = std::fs::read(store.join(format!("snapshots/{FIXTURE_ID}.json"))).unwrap();
    assert_eq!(
        String::from_utf8(serde_json::to_vec_pretty(&m).unwrap()).unwrap(),
        String::from_utf8(on_disk).unwrap()
    );

    let o = Cmd::new("snapshots verify").store(&store).json().run();
    assert_exit!(o, Some(0));
    assert_eq!(json(&o)[0]["ok"], true, "{}", stdout(&o));

    let new = new_root(&t.path().join("new"));
    let o = Cmd::new("restore")
        .root(&new.dir)
        .store(&store)
        .json()
        .run();
    assert_exit!(o, Some(0));
    assert_eq!(new.read("/srv/app/config.toml"), "[app]\nport = 8080\n");
    assert_eq!(
        new.read("/srv/app/notes: 2026.txt"),
        "a name with a colon\n"
    );
    let log = new.read("/srv/app/sub/log.txt");
    assert_eq!(log.lines().count(), 40000);
    assert!(log.ends_with("line 39999 of a log that compresses well\n"));
    assert_eq!(
        std::fs::read_link(new.p("/srv/app/link")).unwrap(),
        Path::new("config.toml")
    );
}

/// #14.2: the data engine names a failed file as a `Problem` with its whole path; a name
/// with ": " in it is not cut there (it was when "path: reason" lines were split back).
#[test]
fn a_damaged_file_whose_name_holds_a_colon_is_named_whole() {
    use carryover::data::repo::{Index, pack_key};
    use carryover::data::tree::TreeReader;
    use std::sync::{Arc, Mutex};

    let t = tempfile::tempdir().unwrap();
    let dir = fixture_store(t.path());
    let store = Store::open(dir.to_str().unwrap(), &Config::default(), false, None).unwrap();
    let data = store.manifest(FIXTURE_ID).unwrap().data.unwrap();
    let index = Arc::new(Mutex::new(Index::load(&store).unwrap().0));
    let root = &data.roots[0];
    let mut reader = TreeReader::new(store.clone(), index.clone(), root.tree.clone());
    let mut chunk = None;
    while let Some(n) = reader.next_node().unwrap() {
        if n.path == b"app/notes: 2026.txt" {
            chunk = n.chunk_ids().next();
        }
    }
    let chunk = chunk.expect("the fixture has the file");
    let (pack, loc) = {
        let idx = index.lock().unwrap();
        let loc = idx.blobs[&chunk];
        (dir.join(pack_key(&idx.packs[loc.pack as usize])), loc)
    };
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[loc.offset as usize + 1] ^= 0x20;
    std::fs::write(&pack, bytes).unwrap();

    let problems = carryover::data::verify::damaged_files(&store, &index, &data);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].path, "/srv/app/notes: 2026.txt");
    assert!(
        problems[0]
            .error
            .starts_with(&format!("chunk {chunk} damaged: ")),
        "{}",
        problems[0].error
    );

    let new = new_root(&t.path().join("new"));
    let o = Cmd::new("restore").root(&new.dir).store(&dir).json().run();
    assert_exit!(o, Some(4));
    let all = stdout(&o);
    assert!(
        all.contains("\"/srv/app/notes: 2026.txt: in packs/"),
        "{all}"
    );
    assert_eq!(new.read("/srv/app/config.toml"), "[app]\nport = 8080\n");
}
