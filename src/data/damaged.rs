//! The store's list of damaged blobs, so that no new snapshot builds on damage:
//! `snapshots verify` (and `capture --heal`) record the blobs of which no intact copy is
//! left; the next capture treats them as absent and stores them again from the source
//! files; once its snapshot is sealed, what it stored again is struck off the list.

use std::collections::{BTreeMap, HashSet};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::node::BlobId;
use super::repo::Index;
use super::verify::{self, Damage};
use crate::store::Store;

/// The list's object in the store (sealed like the journal in an encrypted store).
pub const KEY: &str = crate::store::key::DAMAGED;
const FORMAT: u32 = 1;
/// A list larger than this is not one carryover wrote.
const MAX_BYTES: usize = 64 << 20;

/// Blob id (hex) → why it is damaged.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DamagedList {
    pub format: u32,
    pub blobs: BTreeMap<String, String>,
}

impl DamagedList {
    /// The list as the store has it (empty when there is none). Untrusted: a list that
    /// cannot be read is an error, and the caller checks the packs itself instead.
    pub fn load(store: &Store) -> Result<DamagedList> {
        let Some(bytes) = store.get_doc(KEY)? else {
            return Ok(DamagedList::default());
        };
        if bytes.len() > MAX_BYTES {
            bail!("{KEY} is implausibly large ({} bytes)", bytes.len());
        }
        let list: DamagedList =
            serde_json::from_slice(&bytes).with_context(|| format!("{KEY} is damaged"))?;
        if list.format > FORMAT {
            bail!(
                "{KEY} has format {}, newer than this carryover",
                list.format
            );
        }
        Ok(list)
    }

    /// The ids on the list (an entry that is not a blob id is passed over).
    pub fn ids(&self) -> HashSet<BlobId> {
        self.blobs
            .keys()
            .filter_map(|h| h.parse::<BlobId>().ok())
            .collect()
    }

    /// Reads the list, changes it with `f`, and writes it back (atomically) when it
    /// changed; an empty list is removed.
    pub fn update(store: &Store, f: impl FnOnce(&mut DamagedList)) -> Result<DamagedList> {
        let (before, readable) = match DamagedList::load(store) {
            Ok(l) => (l, true),
            Err(e) => {
                tracing::warn!("{e:#}: it is written anew");
                (DamagedList::default(), false)
            }
        };
        let mut list = before.clone();
        f(&mut list);
        list.format = FORMAT;
        if list.blobs != before.blobs || !readable {
            if list.blobs.is_empty() {
                store.backend().delete(KEY)?;
            } else {
                store.put_doc(KEY, &serde_json::to_vec_pretty(&list)?)?;
            }
        }
        Ok(list)
    }

    /// Records what a check of every pack found: the list becomes exactly that.
    pub fn record(store: &Store, damage: &Damage) -> Result<DamagedList> {
        DamagedList::update(store, |l| {
            l.blobs = damage
                .blobs
                .iter()
                .map(|(id, why)| (id.to_string(), why.clone()))
                .collect();
        })
    }
}

/// Before a capture: the blobs of the list (after a check of every pack when `check`,
/// `capture --heal`, or when the list cannot be read) are forgotten by the index, so the
/// capture stores them again; a damaged copy with an intact one elsewhere is only passed
/// over. Returns the ids to strike off the list once the snapshot is sealed.
pub fn before_capture(store: &Store, index: &mut Index, check: bool) -> Result<HashSet<BlobId>> {
    let listed = match DamagedList::load(store) {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!("{e:#}: every pack is checked instead");
            None
        }
    };
    let list = match listed {
        Some(l) if !check => l,
        _ => {
            let damage = verify::check_packs(store, index);
            for (id, loc, _) in &damage.copies {
                index.forget_copy(id, loc);
            }
            for (id, why) in &damage.blobs {
                tracing::warn!("blob {id} is damaged ({why}): stored again from the source");
            }
            DamagedList::record(store, &damage).context("recording the damaged blobs")?
        }
    };
    let ids = list.ids();
    index.forget(ids.iter().copied());
    Ok(ids)
}

/// After the seal: strikes off the list the blobs the capture stored again.
pub fn after_capture(
    store: &Store,
    suspect: &HashSet<BlobId>,
    stored: &HashSet<BlobId>,
) -> Result<()> {
    let healed: HashSet<String> = suspect
        .intersection(stored)
        .map(BlobId::to_string)
        .collect();
    if healed.is_empty() {
        return Ok(());
    }
    DamagedList::update(store, |l| l.blobs.retain(|k, _| !healed.contains(k)))?;
    tracing::info!("{} damaged blobs stored again (healed)", healed.len());
    Ok(())
}
