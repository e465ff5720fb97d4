//! Store upkeep, so a store that takes a capture every day does not grow without end:
//! `snapshots forget` drops manifests (never the newest snapshot of an instance) and
//! `snapshots prune` removes what no remaining snapshot needs — packs and their indexes,
//! forgotten snapshots' objects and journals — and rewrites packs that are mostly dead.
//! Both hold the writer lock. Prune writes its new packs and indexes before it deletes
//! anything, and deletes an index before its pack, so a kill at any moment leaves a store
//! that verifies and whose snapshots all restore; the next prune finishes the job.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use serde::Serialize;

use super::damaged::DamagedList;
use super::lock::StoreLock;
use super::node::BlobId;
use super::repo::{self, BlobLoc, Index, PackWriter, Sealed};
use super::verify;
use crate::error::Error;
use crate::store::{Key, Manifest, PackId, Store};

/// A pack with a larger share of dead bytes than this is rewritten.
const REWRITE_DEAD_SHARE: f64 = 0.5;

/// Which snapshots to forget.
#[derive(Debug, Clone)]
pub enum Forget {
    /// These ids (already resolved).
    Ids(Vec<String>),
    /// All but the N newest of each instance.
    KeepLast(usize),
}

/// The ids to forget among `all` (oldest first). Forgetting the newest snapshot of an
/// instance is refused as a whole: it is the one that instance's restore takes.
pub fn select(all: &[Manifest], which: &Forget) -> Result<Vec<String>, Error> {
    let mut by_instance: HashMap<Option<&str>, Vec<&str>> = HashMap::new();
    for m in all {
        by_instance
            .entry(m.instance_id.as_deref())
            .or_default()
            .push(&m.id);
    }
    let mut out: Vec<String> = match which {
        Forget::Ids(ids) => {
            for id in ids {
                let Some(m) = all.iter().find(|m| &m.id == id) else {
                    continue;
                };
                let group = &by_instance[&m.instance_id.as_deref()];
                if group.last() == Some(&id.as_str()) {
                    return Err(Error::Usage(format!(
                        "snapshot {id} is the newest of instance {}: the one its restore takes, so it is never forgotten; nothing was forgotten",
                        m.instance_id.as_deref().unwrap_or("(unknown)")
                    )));
                }
            }
            ids.clone()
        }
        Forget::KeepLast(n) => {
            if *n == 0 {
                return Err(Error::Usage(
                    "--keep-last 0 would forget the newest snapshots; keep at least 1".into(),
                ));
            }
            by_instance
                .values()
                .flat_map(|ids| ids[..ids.len().saturating_sub(*n)].iter())
                .map(|s| s.to_string())
                .collect()
        }
    };
    out.sort();
    out.dedup();
    Ok(out)
}

/// Forgets snapshots: their manifests are removed (atomically each, the reverse of the
/// commit); their data stays until `prune`. Returns the ids forgotten.
pub fn forget(store: &Store, which: &Forget) -> Result<Vec<String>> {
    let _lock = StoreLock::acquire(store)?;
    let ids = select(&store.list()?, which)?;
    for id in &ids {
        store
            .backend()
            .delete(&Key::snapshot(id).path())
            .with_context(|| format!("forgetting snapshot {id}"))?;
    }
    Ok(ids)
}

/// What a prune did.
#[derive(Debug, Default, Serialize)]
pub struct PruneReport {
    /// The snapshots that remain.
    pub snapshots: usize,
    pub packs_before: usize,
    pub packs_after: usize,
    /// Pack bytes, as their indexes count them.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Packs no snapshot needs anything of, removed.
    pub packs_removed: usize,
    /// Mostly dead packs whose live blobs went into new packs.
    pub packs_rewritten: usize,
    pub packs_written: u64,
    /// Objects and journals of forgotten snapshots, and leftovers of interrupted runs.
    pub objects_removed: usize,
    pub warnings: Vec<String>,
}

/// What becomes of one pack.
#[derive(Debug, Default)]
struct PackPlan {
    total: u64,
    /// The copies of needed blobs that are kept from this pack.
    live: Vec<(BlobId, BlobLoc)>,
    /// It holds a damaged copy of a blob that has an intact one elsewhere (a heal).
    damaged_copy: bool,
}

impl PackPlan {
    fn live_bytes(&self) -> u64 {
        self.live.iter().map(|(_, l)| l.length as u64).sum()
    }

    fn mostly_dead(&self) -> bool {
        let dead = self.total.saturating_sub(self.live_bytes());
        dead as f64 > self.total as f64 * REWRITE_DEAD_SHARE
    }
}

/// Removes what no snapshot needs; see the module's comment for the order of writes.
pub fn prune(store: &Store) -> Result<PruneReport> {
    let _lock = StoreLock::acquire(store)?;
    let mut r = PruneReport {
        objects_removed: store.remove_leftovers()?.len(),
        ..PruneReport::default()
    };
    let (index, warnings) = Index::load(store)?;
    r.warnings.extend(
        warnings
            .into_iter()
            .map(|w| format!("index {w}: its pack is left as it is")),
    );
    let index = Arc::new(Mutex::new(index));
    let needed = needed_by_all(store, &index, &mut r)?;
    let index = index.lock().expect("index");
    let mut plans = plan(store, &index, &needed);
    r.packs_before = plans.len();
    r.bytes_before = plans.iter().map(|p| p.total).sum();

    // First the new packs and their indexes, durable before anything goes.
    let mut writer = PackWriter::new(store.clone(), Arc::new(Mutex::new(Index::default())));
    let mut gone = Vec::new();
    for (n, p) in plans.iter_mut().enumerate() {
        if p.live.is_empty() {
            gone.push(n);
            r.packs_removed += 1;
        } else if p.mostly_dead() || p.damaged_copy {
            match copy_live(store, &index.packs[n], p, &mut writer)? {
                Ok(()) => {
                    gone.push(n);
                    r.packs_rewritten += 1;
                }
                Err(why) => r.warnings.push(format!("{why}: the pack is kept as it is")),
            }
        }
    }
    writer.flush()?;
    crash_point("written");
    // Then the old ones: each index before its pack (a pack without an index is a
    // leftover the next capture or prune removes; an index without its pack never is).
    for &n in &gone {
        let name = &index.packs[n];
        store.backend().delete(&Key::Index(*name).path())?;
        crash_point("index-deleted");
        store.backend().delete(&repo::pack_key(name))?;
    }
    let kept: u64 = plans.iter().map(|p| p.total).sum::<u64>()
        - gone.iter().map(|&n| plans[n].total).sum::<u64>();
    r.packs_written = writer.packs_written;
    r.packs_after = plans.len() - gone.len() + writer.packs_written as usize;
    r.bytes_after = kept + writer.bytes_written;
    // A damaged blob no snapshot needs any more is no longer worth healing.
    DamagedList::update(store, |l| {
        l.blobs
            .retain(|k, _| k.parse::<BlobId>().is_ok_and(|id| needed.contains(&id)))
    })?;
    Ok(r)
}

/// Every blob the remaining snapshots need. A snapshot whose manifest or trees cannot be
/// read stops the prune before anything is removed: what it needs is unknown.
fn needed_by_all(
    store: &Store,
    index: &Arc<Mutex<Index>>,
    r: &mut PruneReport,
) -> Result<HashSet<BlobId>> {
    let mut needed = HashSet::new();
    for id in store.ids()? {
        let refuse = |why: String| {
            anyhow::anyhow!(
                "snapshot {id}: {why}; prune cannot know what it needs, so nothing was removed (`snapshots forget` it, or capture again to heal it)"
            )
        };
        let m = store.manifest(&id).map_err(|e| refuse(format!("{e:#}")))?;
        if let Some(d) = &m.data {
            let (ids, problems) = verify::needed_blobs(store, index, d);
            if let Some(p) = problems.into_iter().next() {
                return Err(refuse(p.to_string()));
            }
            needed.extend(ids);
        }
        r.snapshots += 1;
    }
    Ok(needed)
}

/// Decides which copy of each needed blob is kept, pack by pack. A blob with several
/// copies (a heal, an interrupted prune) keeps an intact one, preferably in the pack
/// that has the most needed bytes, so packs that stay are not emptied for ones that go;
/// a pack found to hold a damaged copy is marked, to be rewritten without it.
fn plan(store: &Store, index: &Index, needed: &HashSet<BlobId>) -> Vec<PackPlan> {
    let mut plans: Vec<PackPlan> = (0..index.packs.len())
        .map(|_| PackPlan::default())
        .collect();
    let mut useful = vec![0u64; index.packs.len()];
    for (id, loc) in index.all() {
        plans[loc.pack as usize].total += loc.length as u64;
        if needed.contains(&id) {
            useful[loc.pack as usize] += loc.length as u64;
        }
    }
    let share = |l: &BlobLoc| {
        let p = l.pack as usize;
        useful[p] as f64 / plans[p].total.max(1) as f64
    };
    let mut chosen = Vec::new();
    let mut damaged = Vec::new();
    for id in needed {
        let mut locs = index.locations(id);
        if locs.len() > 1 {
            locs.sort_by(|a, b| share(b).total_cmp(&share(a)).then(a.pack.cmp(&b.pack)));
            let intact: Vec<bool> = locs
                .iter()
                .map(|l| repo::read_at(store, &(index.pack_key(l), *l), id, repo::ANY_BLOB).is_ok())
                .collect();
            // with no intact copy, every copy stays where it is
            if let Some(i) = intact.iter().position(|ok| *ok) {
                damaged.extend(
                    locs.iter()
                        .zip(&intact)
                        .filter(|(_, ok)| !**ok)
                        .map(|(l, _)| l.pack),
                );
                locs.swap(0, i);
            }
        }
        if let Some(first) = locs.first() {
            chosen.push((*id, *first));
        }
    }
    for (id, loc) in chosen {
        plans[loc.pack as usize].live.push((id, loc));
    }
    for pack in damaged {
        plans[pack as usize].damaged_copy = true;
    }
    plans
}

/// Copies the live blobs of a pack into the writer as they are stored (still sealed and
/// compressed), each checked first; `Err(why)` when one is damaged (nothing is copied).
fn copy_live(
    store: &Store,
    pack: &PackId,
    p: &PackPlan,
    writer: &mut PackWriter,
) -> Result<Result<(), String>> {
    let key = repo::pack_key(pack);
    let Some(bytes) = store.backend().get(&key)? else {
        return Ok(Err(format!("{key} is missing")));
    };
    let mut blobs = Vec::new();
    for (id, loc) in &p.live {
        if let Err(why) = verify::check_copy(store, &key, &bytes, id, loc) {
            return Ok(Err(why));
        }
        let start = loc.offset as usize;
        blobs.push(Sealed {
            id: *id,
            data: bytes[start..start + loc.length as usize].to_vec(),
            raw_length: loc.raw_length,
            compressed: loc.compressed,
        });
    }
    for b in blobs {
        writer.add(b).context("writing a new pack")?;
    }
    Ok(Ok(()))
}

/// Test hook (builds with the `test-hooks` feature only):
/// `CARRYOVER_TEST_CRASH_IN_PRUNE=written|index-deleted` aborts the prune there, as a kill
/// or a power cut would.
#[cfg(feature = "test-hooks")]
fn crash_point(point: &str) {
    if std::env::var("CARRYOVER_TEST_CRASH_IN_PRUNE").as_deref() == Ok(point) {
        eprintln!("CARRYOVER_TEST_CRASH_IN_PRUNE: aborting at {point}");
        std::process::abort();
    }
}

#[cfg(not(feature = "test-hooks"))]
fn crash_point(_: &str) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str, instance: Option<&str>) -> Manifest {
        Manifest {
            id: id.into(),
            instance_id: instance.map(str::to_string),
            ..Manifest::default()
        }
    }

    #[test]
    fn keep_last_is_per_instance_and_the_newest_is_never_forgotten() {
        let all = vec![
            m("1", Some("a")),
            m("2", Some("b")),
            m("3", Some("a")),
            m("4", Some("a")),
            m("5", None),
        ];
        assert_eq!(select(&all, &Forget::KeepLast(1)).unwrap(), vec!["1", "3"]);
        assert_eq!(select(&all, &Forget::KeepLast(2)).unwrap(), vec!["1"]);
        assert!(select(&all, &Forget::KeepLast(0)).is_err());
        assert_eq!(
            select(&all, &Forget::Ids(vec!["3".into(), "1".into(), "3".into()])).unwrap(),
            vec!["1", "3"]
        );
        for newest in ["4", "2", "5"] {
            let e = select(&all, &Forget::Ids(vec!["1".into(), newest.into()])).unwrap_err();
            assert!(e.to_string().contains("newest"), "{e}");
        }
    }
}
