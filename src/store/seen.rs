//! Rollback by instance: the newest snapshot of each instance seen so far — kept on this
//! machine (`/var/lib/carryover`), in the store (`seen/<instance>.json`, sealed in an
//! encrypted store) and named by the user-data (`[restore] not_before`) — so a restore
//! that picks the newest snapshot by itself refuses a store rolled back to an older one.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::{Store, backend};
use crate::local::LocalState;

/// The store's record of the newest snapshot of one instance.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    instance: String,
    newest: String,
}

fn key(instance: &str) -> Option<String> {
    backend::check_name(instance)
        .ok()
        .map(|_| super::Key::seen(instance).path())
}

/// The store's record for `instance`; a record that cannot be read is ignored (with a
/// warning): it only ever raises the floor.
fn in_store(store: &Store, instance: &str) -> Option<String> {
    let key = key(instance)?;
    let read = store.get_doc(&key).and_then(|b| match b {
        None => Ok(None),
        Some(b) => {
            let r: Record = serde_json::from_slice(&b)?;
            if r.instance != instance || backend::check_name(&r.newest).is_err() {
                bail!("it is not a record of instance {instance}");
            }
            Ok(Some(r.newest))
        }
    });
    read.unwrap_or_else(|e| {
        tracing::warn!("{key} cannot be read: {e:#}; not used");
        None
    })
}

/// The newest snapshot of `instance` seen anywhere (ids sort by time), and where.
pub fn floor(
    store: &Store,
    local: &LocalState,
    not_before: Option<&str>,
    instance: Option<&str>,
) -> Option<(String, &'static str)> {
    let mut all: Vec<(String, &'static str)> = Vec::new();
    if let Some(nb) = not_before {
        all.push((nb.to_string(), "the user-data's `[restore] not_before`"));
    }
    if let Some(i) = instance {
        if let Some(s) = local.newest_seen.get(i) {
            all.push((s.clone(), "this machine's own record"));
        }
        if let Some(s) = in_store(store, i) {
            all.push((s, "the store's record of the instance"));
        }
    }
    all.into_iter().max_by(|a, b| a.0.cmp(&b.0))
}

/// Refuses `picked` (chosen by restore itself, not named) when it is older than the
/// newest snapshot of the instance seen so far.
pub fn check(picked: &str, floor: Option<&(String, &'static str)>) -> Result<()> {
    if let Some((newest, source)) = floor
        && picked < newest.as_str()
    {
        bail!(
            "the newest snapshot of this instance in the store is {picked}, older than {newest}, the newest seen before ({source}): the store lost snapshots or was rolled back; name one with --snapshot to restore it anyway"
        );
    }
    Ok(())
}

/// Records in the store that `snapshot` of `instance` was seen (never lowering it).
pub fn record_in_store(store: &Store, instance: Option<&str>, snapshot: &str) {
    let Some((instance, key)) = instance.and_then(|i| Some((i, key(i)?))) else {
        return;
    };
    if in_store(store, instance).is_some_and(|s| s.as_str() >= snapshot) {
        return;
    }
    let r = Record {
        instance: instance.to_string(),
        newest: snapshot.to_string(),
    };
    let put = serde_json::to_vec(&r)
        .map_err(anyhow::Error::from)
        .and_then(|b| store.put_doc(&key, &b));
    if let Err(e) = put {
        tracing::warn!("recording the newest snapshot of {instance} in the store: {e:#}");
    }
}
