//! The store's writer lock: two captures (or a capture and a prune) cannot write packs
//! into one store at once, and a capture that was killed does not block the next (its
//! lock is recognised as stale).

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::store::Store;

const KEY: &str = crate::store::key::LOCK;
/// A lock of another host older than this is stale (its capture cannot still be running).
const STALE_SECONDS: i64 = 6 * 3600;

#[derive(Debug, Serialize, Deserialize)]
struct Holder {
    host: String,
    pid: u32,
    since: i64,
    /// The boot its process ran in (`sys::boot_id`; absent from older agents' locks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    boot: Option<String>,
}

/// Held until dropped.
pub struct StoreLock {
    store: Store,
}

fn host() -> String {
    crate::sys::hostname()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl StoreLock {
    pub fn acquire(store: &Store) -> Result<StoreLock> {
        let me = Holder {
            host: host(),
            pid: std::process::id(),
            since: now(),
            boot: crate::sys::boot_id(),
        };
        let body = serde_json::to_vec(&me)?;
        for _ in 0..3 {
            if store.backend().create_new(KEY, &body)? {
                return Ok(StoreLock {
                    store: store.clone(),
                });
            }
            let held: Option<Holder> = store
                .backend()
                .get(KEY)?
                .and_then(|b| serde_json::from_slice(&b).ok());
            let stale = match &held {
                None => true, // unreadable: a writer died while creating it
                // this host: stale when its process is gone, or when it was taken in an
                // earlier boot (its pid may belong to another process now) — by the
                // boot's id, never by the wall clock, which can step under a live capture
                Some(h) if h.host == me.host => {
                    !crate::sys::process_alive(h.pid)
                        || (h.boot.is_some() && me.boot.is_some() && h.boot != me.boot)
                }
                Some(h) => now() - h.since > STALE_SECONDS,
            };
            if !stale {
                let h = held.expect("not stale means readable");
                bail!(
                    "the store is in use by process {} on {} since {} (another capture, forget or prune); try again when it has finished (its lock: {} in the store)",
                    h.pid,
                    h.host,
                    crate::store::rfc3339(h.since),
                    KEY
                );
            }
            tracing::warn!("removing a stale store lock ({held:?})");
            store
                .backend()
                .delete(KEY)
                .context("removing a stale lock")?;
        }
        bail!("could not take the store lock")
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        if let Err(e) = self.store.backend().delete(KEY) {
            tracing::warn!("could not release the store lock: {e:#}");
        }
    }
}
