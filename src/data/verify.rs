//! Verification: every pack read back, every blob decompressed and checked against its
//! id, every blob a snapshot needs present — and what is damaged named down to the files
//! that use it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::DataManifest;
use super::node::{BlobId, Kind};
use super::repo::{self, Index};
use super::tree::TreeReader;
use crate::store::Store;

/// What is wrong with the data of a store.
#[derive(Debug, Default)]
pub struct Damage {
    /// blob id → why
    pub blobs: BTreeMap<BlobId, String>,
    pub packs_read: u64,
    pub blobs_checked: u64,
}

/// Reads every pack of the index and checks every blob in it.
pub fn check_packs(store: &Store, index: &Index) -> Damage {
    let mut d = Damage::default();
    let mut by_pack: BTreeMap<u32, Vec<(BlobId, repo::BlobLoc)>> = BTreeMap::new();
    for (id, loc) in &index.blobs {
        by_pack.entry(loc.pack).or_default().push((*id, *loc));
    }
    for (pack, blobs) in by_pack {
        let key = repo::pack_key(&index.packs[pack as usize]);
        d.packs_read += 1;
        let data = match store.backend().get(&key) {
            Ok(Some(b)) => b,
            Ok(None) => {
                for (id, _) in blobs {
                    d.blobs.insert(id, format!("its pack {key} is missing"));
                }
                continue;
            }
            Err(e) => {
                for (id, _) in blobs {
                    d.blobs
                        .insert(id, format!("its pack {key} cannot be read: {e:#}"));
                }
                continue;
            }
        };
        for (id, loc) in blobs {
            d.blobs_checked += 1;
            let end = loc.offset as usize + loc.length as usize;
            let Some(stored) = data.get(loc.offset as usize..end) else {
                d.blobs.insert(id, format!("{key} is truncated"));
                continue;
            };
            if let Err(e) = repo::decode(store, stored.to_vec(), &loc, &id) {
                d.blobs.insert(id, format!("{key}: {e:#}"));
            }
        }
    }
    d
}

/// The problems of one snapshot's data: its trees and chunks missing or damaged, with the
/// files they belong to.
pub fn check_snapshot(
    store: &Store,
    index: &Arc<Mutex<Index>>,
    data: &DataManifest,
    damage: &Damage,
) -> Vec<String> {
    let mut out = Vec::new();
    for root in &data.roots {
        let ids = match root.tree_ids() {
            Ok(ids) => ids,
            Err(e) => {
                out.push(format!("{}: {e:#}", root.path));
                continue;
            }
        };
        for id in &ids {
            if let Some(why) = damage.blobs.get(id) {
                out.push(format!(
                    "{}: tree blob {} damaged: {why}",
                    root.path,
                    hex::encode(id)
                ));
            }
        }
        let mut reader = TreeReader::new(store.clone(), index.clone(), ids);
        loop {
            let node = match reader.next_node() {
                Ok(Some(n)) => n,
                Ok(None) => break,
                Err(e) => {
                    out.push(format!(
                        "{}: the tree cannot be read further: {e:#}",
                        root.path
                    ));
                    break;
                }
            };
            if node.kind != Kind::File {
                continue;
            }
            let name = format!(
                "{}/{}",
                root.path.trim_end_matches('/'),
                String::from_utf8_lossy(&node.path)
            );
            for id in node.chunk_ids() {
                let missing = !index.lock().expect("index").blobs.contains_key(&id);
                if missing {
                    out.push(format!(
                        "{name}: chunk {} is missing from the store",
                        hex::encode(id)
                    ));
                } else if let Some(why) = damage.blobs.get(&id) {
                    out.push(format!("{name}: chunk {} damaged: {why}", hex::encode(id)));
                }
            }
        }
    }
    out
}
