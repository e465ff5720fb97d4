//! The restore journal written in the background: each step's record goes to the store
//! while the next step runs, so an S3 store's round trips (tens of milliseconds each, once
//! per step) no longer add up between the steps.
//!
//! One write at a time, always of the newest version: versions that pile up while a write
//! is on the wire go as one, and an older version never lands after a newer one. A crash
//! can lose the versions not written yet: their steps run again on resume, exactly as a
//! step does that finished just before the agent died and was never journaled (every step
//! is idempotent). `flush` waits until the newest version is in the store.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use anyhow::{Result, anyhow};

use crate::store::Store;

#[derive(Default)]
struct Queue {
    /// The newest version not yet handed to the store.
    pending: Option<Vec<u8>>,
    /// A write is on the wire.
    busy: bool,
    closed: bool,
    /// The first write that failed.
    error: Option<String>,
}

type Shared = Arc<(Mutex<Queue>, Condvar)>;

/// Writes one document key of the store, newest version last, from a thread of its own.
pub struct DocWriter {
    shared: Shared,
    thread: Option<JoinHandle<()>>,
}

impl DocWriter {
    pub fn new(store: Store, key: String) -> DocWriter {
        let shared: Shared = Arc::default();
        let thread = {
            let shared = shared.clone();
            std::thread::spawn(move || write_loop(&store, &key, &shared))
        };
        DocWriter {
            shared,
            thread: Some(thread),
        }
    }

    /// Queues `data` as the newest version; fails when an earlier write failed.
    pub fn save(&self, data: Vec<u8>) -> Result<()> {
        let (lock, cv) = &*self.shared;
        let mut q = lock.lock().expect("journal writer");
        if let Some(e) = &q.error {
            return Err(anyhow!("{e}"));
        }
        q.pending = Some(data);
        cv.notify_all();
        Ok(())
    }

    /// Waits until every version queued is in the store.
    pub fn flush(&self) -> Result<()> {
        let (lock, cv) = &*self.shared;
        let mut q = lock.lock().expect("journal writer");
        while (q.pending.is_some() || q.busy) && q.error.is_none() {
            q = cv.wait(q).expect("journal writer");
        }
        match &q.error {
            Some(e) => Err(anyhow!("{e}")),
            None => Ok(()),
        }
    }
}

impl Drop for DocWriter {
    /// Writes what is queued, then stops the thread.
    fn drop(&mut self) {
        {
            let (lock, cv) = &*self.shared;
            lock.lock().expect("journal writer").closed = true;
            cv.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn write_loop(store: &Store, key: &str, shared: &Shared) {
    let (lock, cv) = &**shared;
    let mut q = lock.lock().expect("journal writer");
    loop {
        if q.error.is_some() {
            return;
        }
        let Some(data) = q.pending.take() else {
            if q.closed {
                return;
            }
            q = cv.wait(q).expect("journal writer");
            continue;
        };
        q.busy = true;
        drop(q);
        let written = store.put_doc(key, &data);
        q = lock.lock().expect("journal writer");
        q.busy = false;
        if let Err(e) = written {
            q.error = Some(format!("writing {key}: {e:#}"));
        }
        cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_version_is_in_the_store_after_flush() {
        let t = tempfile::tempdir().unwrap();
        let config = crate::config::Config::default();
        let store = Store::open(t.path().join("s").to_str().unwrap(), &config, true, None).unwrap();
        let w = DocWriter::new(store.clone(), "journal/x.json".into());
        for i in 0..50 {
            w.save(format!("{i}").into_bytes()).unwrap();
        }
        w.flush().unwrap();
        assert_eq!(store.get_doc("journal/x.json").unwrap().unwrap(), b"49");
        w.save(b"last".to_vec()).unwrap();
        drop(w);
        assert_eq!(store.get_doc("journal/x.json").unwrap().unwrap(), b"last");
    }
}
