//! Verification: every pack read back, every blob decompressed and checked against its
//! id, every blob a snapshot needs present — and what is damaged named down to the files
//! that use it.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use super::node::{BlobId, Kind, Node};
use super::repo::{self, Index};
use super::tree::TreeReader;
use super::{DataManifest, DataRoot};
use crate::error::Problem;
use crate::store::Store;

/// What is wrong with the data of a store.
#[derive(Debug, Default)]
pub struct Damage {
    /// blob id → why, for the blobs of which no intact copy is left
    pub blobs: BTreeMap<BlobId, String>,
    /// Every damaged copy (also those of blobs that have an intact one elsewhere).
    pub copies: Vec<(BlobId, repo::BlobLoc, String)>,
    pub packs_read: u64,
    pub blobs_checked: u64,
}

/// One snapshot as `snapshots verify` found it (its JSON).
#[derive(Debug, serde::Serialize)]
pub struct Verified {
    pub snapshot_id: String,
    pub ok: bool,
    #[serde(with = "crate::error::problem_lines")]
    pub damaged: Vec<Problem>,
}

/// The `snapshots verify` use case: every object and blob `manifests` need, read and
/// checked. With `all` (the whole store), a manifest that cannot be read is named too;
/// the damaged blobs are recorded in the store, so the next capture stores them again.
pub fn snapshots(
    store: &Store,
    manifests: &[crate::store::Manifest],
    all: bool,
) -> anyhow::Result<Vec<Verified>> {
    let mut results = Vec::new();
    let needs_data = manifests.iter().any(|m| m.data.is_some());
    let (index, warnings) = if needs_data {
        Index::load(store)?
    } else {
        (Index::default(), Vec::new())
    };
    let damage = check_packs(store, &index);
    let index = Arc::new(Mutex::new(index));
    for m in manifests {
        let mut damaged: Vec<Problem> = warnings
            .iter()
            .map(|w| Problem::new(format!("index {}", w.path), &w.error))
            .collect();
        for r in m.state.iter().chain(m.secrets.iter()) {
            if let Err(e) = store.get_object(&m.id, r) {
                damaged.push(Problem::new(&r.key, format!("{e:#}")));
            }
        }
        if let Some(d) = &m.data {
            damaged.extend(check_snapshot(store, &index, d, &damage));
        }
        results.push(Verified {
            snapshot_id: m.id.clone(),
            ok: damaged.is_empty(),
            damaged,
        });
    }
    if !damage.blobs.is_empty() {
        tracing::warn!("{} damaged blobs in the store", damage.blobs.len());
    }
    let healed = damage.copies.len()
        - damage
            .copies
            .iter()
            .filter(|(id, _, _)| damage.blobs.contains_key(id))
            .count();
    if healed > 0 {
        tracing::warn!(
            "{healed} damaged copies of blobs that have an intact copy in another pack: `carryover snapshots prune` rewrites the packs that hold them"
        );
    }
    // The next capture stores what is damaged again instead of building on it.
    if needs_data && let Err(e) = super::damaged::DamagedList::record(store, &damage) {
        tracing::warn!("could not record the damaged blobs in the store: {e:#}");
    }
    // a manifest that cannot be read is damage too, never silence
    if all {
        for bad in store.ids()? {
            if let Err(e) = store.manifest(&bad) {
                results.push(Verified {
                    snapshot_id: bad,
                    ok: false,
                    damaged: vec![Problem::new("manifest", format!("{e:#}"))],
                });
            }
        }
    }
    Ok(results)
}

/// Reads every pack of the index and checks every copy of every blob in it.
pub fn check_packs(store: &Store, index: &Index) -> Damage {
    check_blobs(store, index, None)
}

/// Reads the packs that hold `only` (every pack when `None`) and checks every copy of
/// those blobs: decrypted, decompressed, hashed against the id.
pub fn check_blobs(store: &Store, index: &Index, only: Option<&HashSet<BlobId>>) -> Damage {
    let mut d = Damage::default();
    let mut by_pack: BTreeMap<u32, Vec<(BlobId, repo::BlobLoc)>> = BTreeMap::new();
    for (id, loc) in index.all() {
        if only.is_none_or(|o| o.contains(&id)) {
            by_pack.entry(loc.pack).or_default().push((id, loc));
        }
    }
    for (pack, blobs) in by_pack {
        let key = repo::pack_key(&index.packs[pack as usize]);
        d.packs_read += 1;
        let data = match store.backend().get(&key) {
            Ok(Some(b)) => b,
            Ok(None) => {
                for (id, loc) in blobs {
                    d.copies
                        .push((id, loc, format!("its pack {key} is missing")));
                }
                continue;
            }
            Err(e) => {
                for (id, loc) in blobs {
                    d.copies
                        .push((id, loc, format!("its pack {key} cannot be read: {e:#}")));
                }
                continue;
            }
        };
        for (id, loc) in blobs {
            d.blobs_checked += 1;
            if let Err(why) = check_copy(store, &key, &data, &id, &loc) {
                d.copies.push((id, loc, why));
            }
        }
    }
    let bad: HashSet<(BlobId, u32, u32)> = d
        .copies
        .iter()
        .map(|(i, l, _)| (*i, l.pack, l.offset))
        .collect();
    for (id, _, why) in &d.copies {
        let intact = index
            .locations(id)
            .iter()
            .any(|l| !bad.contains(&(*id, l.pack, l.offset)));
        if !intact {
            d.blobs.entry(*id).or_insert_with(|| why.clone());
        }
    }
    d
}

/// Checks one copy of a blob in the bytes of its pack.
pub fn check_copy(
    store: &Store,
    key: &str,
    pack: &[u8],
    id: &BlobId,
    loc: &repo::BlobLoc,
) -> Result<(), String> {
    let end = loc.offset as usize + loc.length as usize;
    let Some(stored) = pack.get(loc.offset as usize..end) else {
        return Err(format!("{key} is truncated"));
    };
    repo::decode_ref(store, stored, loc, id, repo::ANY_BLOB)
        .map(|_| ())
        .map_err(|e| format!("{key}: {e:#}"))
}

/// What a walk of a snapshot's trees meets.
enum Visit<'a> {
    /// The tree blobs of a data path.
    Trees(&'a DataRoot, &'a [BlobId]),
    Node(&'a DataRoot, &'a Node),
}

/// Walks every node of a snapshot's trees; returns what of them could not be read.
fn walk(
    store: &Store,
    index: &Arc<Mutex<Index>>,
    data: &DataManifest,
    mut visit: impl FnMut(Visit),
) -> Vec<Problem> {
    let mut problems = Vec::new();
    for root in &data.roots {
        let ids = root.tree.clone();
        visit(Visit::Trees(root, &ids));
        let mut reader = TreeReader::new(store.clone(), index.clone(), ids);
        loop {
            match reader.next_node() {
                Ok(Some(node)) => visit(Visit::Node(root, &node)),
                Ok(None) => break,
                Err(e) => {
                    problems.push(Problem::new(
                        &root.path,
                        format!("the tree cannot be read further: {e:#}"),
                    ));
                    break;
                }
            }
        }
    }
    problems
}

/// Every blob the snapshot needs (its tree blobs and its files' chunks), and what could
/// not be read of its trees (then the set is incomplete).
pub fn needed_blobs(
    store: &Store,
    index: &Arc<Mutex<Index>>,
    data: &DataManifest,
) -> (HashSet<BlobId>, Vec<Problem>) {
    let mut needed = HashSet::new();
    let problems = walk(store, index, data, |v| match v {
        Visit::Trees(_, ids) => needed.extend(ids.iter().copied()),
        Visit::Node(_, node) => needed.extend(node.chunk_ids()),
    });
    (needed, problems)
}

/// The files of a snapshot that cannot be restored, and why: the blobs it needs are
/// read and hashed (only those), as a restore would read them.
pub fn damaged_files(
    store: &Store,
    index: &Arc<Mutex<Index>>,
    data: &DataManifest,
) -> Vec<Problem> {
    let (needed, _) = needed_blobs(store, index, data);
    let damage = check_blobs(store, &index.lock().expect("index"), Some(&needed));
    check_snapshot(store, index, data, &damage)
}

/// The problems of one snapshot's data: its trees and chunks missing or damaged, with the
/// files they belong to.
pub fn check_snapshot(
    store: &Store,
    index: &Arc<Mutex<Index>>,
    data: &DataManifest,
    damage: &Damage,
) -> Vec<Problem> {
    let mut out = Vec::new();
    let problems = walk(store, index, data, |v| match v {
        Visit::Trees(root, ids) => {
            for id in ids {
                if let Some(why) = damage.blobs.get(id) {
                    out.push(Problem::new(
                        &root.path,
                        format!("tree blob {id} damaged: {why}"),
                    ));
                }
            }
        }
        Visit::Node(root, node) if node.kind == Kind::File => {
            let name = format!(
                "{}/{}",
                root.path.trim_end_matches('/'),
                String::from_utf8_lossy(&node.path)
            );
            for id in node.chunk_ids() {
                let missing = !index.lock().expect("index").blobs.contains_key(&id);
                if missing {
                    out.push(Problem::new(
                        &name,
                        format!("chunk {id} is missing from the store"),
                    ));
                } else if let Some(why) = damage.blobs.get(&id) {
                    out.push(Problem::new(&name, format!("chunk {id} damaged: {why}")));
                }
            }
        }
        Visit::Node(..) => {}
    });
    out.extend(problems);
    out
}
