//! Pack-level reads for restore: the chunks of the files, in tree order, planned into few
//! large ranged reads (consecutive blobs of one pack coalesced, gaps under 1 MiB read
//! through), fetched ahead by the backend (`connections` at once on S3, plain preads on a
//! local store) within a bounded budget of bytes, and handed to the file that needs them.
//! What is read here is untrusted: the workers decode and check every blob against its id,
//! and fall back to `repo::read_blob` (every copy) when a range or a blob is bad.

use std::collections::HashMap;
use std::sync::mpsc::{
    Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError, TrySendError, channel,
    sync_channel,
};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};

use anyhow::{Result, anyhow};

use super::node::BlobId;
use super::repo::{BlobLoc, Index, MAX_BLOB};
use crate::store::Store;
use crate::store::backend::{Fetched, Range, RangeRead};

/// A gap between two blobs of one pack smaller than this is read through.
pub const GAP: u64 = 1 << 20;
/// A planned range grows to at most this (one blob alone may be larger).
pub const MAX_RANGE: u64 = 4 << 20;
/// Ranges open at once, one per pack: consecutive files whose blobs alternate between a
/// few packs (a capture fills several at once) still share a range per pack.
const MAX_OPEN: usize = 8;
/// How long the planner waits for the next file before it sends what it has planned.
const IDLE: std::time::Duration = std::time::Duration::from_millis(20);

/// Bytes fetched and not yet written: the planner waits while they are spent.
struct Budget {
    used: Mutex<u64>,
    freed: Condvar,
    cap: u64,
}

impl Budget {
    /// Takes `n` bytes; waits while the budget is spent (one range always fits).
    fn take(&self, n: u64) {
        let mut used = self.used.lock().expect("budget");
        while *used > 0 && *used + n > self.cap {
            used = self.freed.wait(used).expect("budget");
        }
        *used += n;
    }

    fn give(&self, n: u64) {
        *self.used.lock().expect("budget") -= n;
        self.freed.notify_all();
    }
}

/// A range read from a pack; its bytes count against the budget until the last blob in it
/// is written, and its buffer then goes back to the backend for another range.
struct Buf {
    data: Vec<u8>,
    charged: u64,
    budget: Arc<Budget>,
    store: Store,
}

impl Drop for Buf {
    fn drop(&mut self) {
        self.store.backend().recycle(std::mem::take(&mut self.data));
        self.budget.give(self.charged);
    }
}

/// A blob as stored (sealed, compressed), inside the range that was read.
pub struct Stored {
    buf: Arc<Buf>,
    start: usize,
    len: usize,
}

impl Stored {
    pub fn bytes(&self) -> &[u8] {
        &self.buf.data[self.start..self.start + self.len]
    }
}

/// A chunk of a file: its position in the file, where it was read from, and its stored
/// bytes (or why they could not be read: the reader then tries every copy).
pub type Chunk = (usize, BlobLoc, Result<Stored>);

/// A blob that a file waits for.
struct Want {
    pos: usize,
    loc: BlobLoc,
    to: Sender<Chunk>,
}

/// A range being planned or in flight, and the blobs it serves.
struct Planned {
    pack: u32,
    start: u64,
    end: u64,
    wants: Vec<Want>,
    /// The number of the first file it serves (`Planner::file` then).
    first_file: u64,
}

/// Plans the ranges, in the order the files come.
pub struct Planner {
    index: Arc<Mutex<Index>>,
    /// The ranges being planned, by their first file (oldest first), one per pack; they
    /// go out together (see `add`).
    open: Vec<Planned>,
    requests: Option<Sender<Range>>,
    in_flight: Arc<Mutex<HashMap<u64, Planned>>>,
    next_tag: u64,
    budget: Arc<Budget>,
    threads: Vec<JoinHandle<()>>,
    /// Ranges requested (for tests and logs).
    pub ranges: u64,
    /// The number of the file being planned (its place in the hand-off).
    file: u64,
    /// How many reads the backend runs at once.
    connections: usize,
}

impl Planner {
    /// Starts the fetching (the backend's `get_ranges`) and the delivery threads; at most
    /// `budget` bytes are read ahead of the writers.
    pub fn start(store: &Store, index: Arc<Mutex<Index>>, budget: u64) -> Planner {
        // std's channels park a waiting thread at once; crossbeam's spin and yield first
        // (thousands of sched_yield calls per restore on a busy 2-core machine)
        let (rtx, rrx) = channel::<Range>();
        let (dtx, drx) = channel::<Fetched>();
        let budget = Arc::new(Budget {
            used: Mutex::new(0),
            freed: Condvar::new(),
            cap: budget.max(MAX_RANGE),
        });
        let in_flight: Arc<Mutex<HashMap<u64, Planned>>> = Default::default();
        let fetch = {
            let store = store.clone();
            thread::spawn(move || store.backend().get_ranges(rrx, &dtx))
        };
        let deliver = {
            let in_flight = in_flight.clone();
            let budget = budget.clone();
            let store = store.clone();
            thread::spawn(move || {
                for (range, got) in drx {
                    let planned = in_flight.lock().expect("in flight").remove(&range.tag);
                    if let Some(p) = planned {
                        deliver(p, &range, got, &budget, &store);
                    }
                }
            })
        };
        Planner {
            index,
            open: Vec::new(),
            requests: Some(rtx),
            in_flight,
            next_tag: 0,
            budget,
            threads: vec![fetch, deliver],
            ranges: 0,
            file: 0,
            connections: store.backend().reads_at_once(),
        }
    }

    /// True when the open range is worth a request (a mebibyte) and fewer reads are on
    /// their way than the backend runs at once: a connection waits for work, and holding
    /// the range back for more blobs costs time instead of saving a request.
    fn idle(&self) -> bool {
        self.open.iter().any(|p| p.end - p.start >= GAP)
            && self.in_flight.lock().expect("in flight").len() < self.connections
    }

    /// Plans the reads of a file's chunks; they arrive on `tx`, in any order, as their
    /// ranges are read. The file must already be on its way to a writer: the budget may
    /// wait for it to write its first chunks.
    pub fn plan(&mut self, chunks: impl Iterator<Item = BlobId>, tx: Sender<Chunk>) {
        for (pos, id) in chunks.enumerate() {
            let found = self.index.lock().expect("index").blobs.get(&id).copied();
            match found {
                // implausible sizes are refused by the reader's own checks
                Some(loc) if loc.length <= MAX_BLOB + 4096 => self.add(Want {
                    pos,
                    loc,
                    to: tx.clone(),
                }),
                Some(loc) => {
                    let _ = tx.send((pos, loc, Err(anyhow!("implausible blob size"))));
                }
                None => {
                    let loc = BlobLoc {
                        pack: u32::MAX,
                        offset: 0,
                        length: 0,
                        raw_length: 0,
                        compressed: false,
                    };
                    let _ = tx.send((pos, loc, Err(anyhow!("not in the index"))));
                }
            }
        }
    }

    /// Adds a blob to its pack's open range when it is near enough; else every open
    /// range goes out and a new one is opened. All of them go out together, and together
    /// they never hold more than the budget: their blobs interleave, so one sent while
    /// another waits for the budget could hold what the writers need after what is
    /// still unsent, and nothing would free the budget.
    fn add(&mut self, w: Want) {
        let (off, end) = (
            w.loc.offset as u64,
            w.loc.offset as u64 + w.loc.length as u64,
        );
        let open_bytes: u64 = self.open.iter().map(|p| p.end - p.start).sum();
        if let Some(p) = self.open.iter_mut().find(|p| p.pack == w.loc.pack) {
            let start = p.start.min(off);
            let stop = p.end.max(end);
            let near = off <= p.end + GAP && end + GAP >= p.start;
            let grown = open_bytes - (p.end - p.start) + (stop - start);
            if near && stop - start <= MAX_RANGE && grown <= self.budget.cap {
                p.start = start;
                p.end = stop;
                p.wants.push(w);
                return;
            }
            self.flush();
        } else if self.open.len() >= MAX_OPEN || open_bytes + (end - off) > self.budget.cap {
            self.flush();
        }
        self.open.push(Planned {
            pack: w.loc.pack,
            start: off,
            end,
            wants: vec![w],
            first_file: self.file,
        });
    }

    /// Requests every open range, oldest first (call it before waiting for anything:
    /// what is planned must be on its way, or a writer could wait for it forever).
    pub fn flush(&mut self) {
        let open = std::mem::take(&mut self.open);
        for p in open {
            self.send(p);
        }
    }

    fn send(&mut self, p: Planned) {
        let key = {
            let idx = self.index.lock().expect("index");
            idx.packs.get(p.pack as usize).map(super::repo::pack_key)
        };
        let Some(key) = key else {
            let e = || anyhow!("the index names a pack it does not have");
            for w in p.wants {
                let _ = w.to.send((w.pos, w.loc, Err(e())));
            }
            return;
        };
        let len = p.end - p.start;
        self.budget.take(len);
        let tag = self.next_tag;
        self.next_tag += 1;
        let range = Range {
            key,
            offset: p.start,
            len,
            tag,
        };
        self.in_flight.lock().expect("in flight").insert(tag, p);
        self.ranges += 1;
        if let Some(r) = &self.requests {
            let _ = r.send(range);
        }
    }

    /// The number of the first file the oldest open (not yet requested) range serves.
    fn open_since(&self) -> Option<u64> {
        self.open.first().map(|p| p.first_file)
    }

    /// Requests what is planned and waits until every range is delivered.
    pub fn finish(mut self) -> u64 {
        self.flush();
        self.requests.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.ranges
    }
}

/// Hands the blobs of a range that was read to the files waiting for them.
fn deliver(p: Planned, range: &Range, got: Result<RangeRead>, budget: &Arc<Budget>, store: &Store) {
    let got = got.and_then(|r| {
        r.bytes(range.len)?;
        Ok(r)
    });
    let RangeRead { data, start } = match got {
        Ok(read) => read,
        Err(e) => {
            budget.give(range.len);
            let e = format!("{e:#}");
            for w in p.wants {
                let _ = w.to.send((w.pos, w.loc, Err(anyhow!("{e}"))));
            }
            return;
        }
    };
    let buf = Arc::new(Buf {
        data,
        charged: range.len,
        budget: budget.clone(),
        store: store.clone(),
    });
    for w in p.wants {
        let stored = Stored {
            buf: buf.clone(),
            start: start + (w.loc.offset as u64 - range.offset) as usize,
            len: w.loc.length as usize,
        };
        let _ = w.to.send((w.pos, w.loc, Ok(stored)));
    }
}

/// A job on its way to a writer, with the channel of its chunks.
pub type Handed<J> = (J, Option<Receiver<Chunk>>);

/// The hand-off from the planner to any number of writers: a bounded queue in tree order
/// that counts what the writers took. While the queue is full the planner keeps planning
/// into its open range as long as the writers are more than half a queue away from it;
/// closer (a writer may soon wait for it, or already does), it sends the range first.
/// Every wait blocks (no spinning, no yielding). This is the writers' side; the planner
/// sends through the `Handing` made with it. When the last writer is gone (a panic
/// included), the planner's sends fail and it stops.
pub struct Handoff<J> {
    rx: Mutex<Option<Receiver<Handed<J>>>>,
    taken: Arc<Taken>,
}

/// The planner's side of a `Handoff`.
pub struct Handing<J> {
    cap: u64,
    tx: SyncSender<Handed<J>>,
    taken: Arc<Taken>,
}

/// How many jobs the writers took; signalled at every take and when they are gone.
#[derive(Default)]
struct Taken {
    count: Mutex<u64>,
    took: Condvar,
}

impl<J> Handoff<J> {
    /// A hand-off that holds at most `cap` jobs not yet taken: the writers' side to share,
    /// and the planner's.
    pub fn new(cap: usize) -> (Arc<Handoff<J>>, Handing<J>) {
        let (tx, rx) = sync_channel(cap);
        let taken = Arc::new(Taken::default());
        let handing = Handing {
            cap: cap as u64,
            tx,
            taken: taken.clone(),
        };
        (
            Arc::new(Handoff {
                rx: Mutex::new(Some(rx)),
                taken,
            }),
            handing,
        )
    }

    /// The next job for a writer (`None` once the planner is done and the queue empty).
    pub fn next(&self) -> Option<Handed<J>> {
        // one writer waits on the channel, the others on the lock
        let got = self.rx.lock().expect("hand-off").as_ref()?.recv().ok()?;
        *self.taken.count.lock().expect("hand-off") += 1;
        self.taken.took.notify_all();
        Some(got)
    }
}

impl<J> Drop for Handoff<J> {
    /// The writers are gone: the receiver goes with this, and a waiting planner wakes up
    /// to find its sends refused.
    fn drop(&mut self) {
        // the receiver first: the planner must find it gone when it wakes
        if let Ok(rx) = self.rx.get_mut() {
            rx.take();
        }
        let _count = self.taken.count.lock();
        self.taken.took.notify_all();
    }
}

impl<J> Handing<J> {
    /// Sends `item`, waiting while the queue is full; the open range goes out first when
    /// the writers are within half a queue of its first file. False: no writer is left.
    fn send(&self, planner: &mut Planner, item: Handed<J>) -> bool {
        let mut item = item;
        loop {
            // the count is held from the attempt to the wait: no take falls in between
            let taken = self.taken.count.lock().expect("hand-off");
            match self.tx.try_send(item) {
                Ok(()) => return true,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(back)) => item = back,
            }
            if planner
                .open_since()
                .is_some_and(|first| *taken + self.cap / 2 > first || planner.idle())
            {
                drop(taken);
                planner.flush();
                continue;
            }
            // a take makes room (or may be a writer that now waits for the open range);
            // a read delivered meanwhile may leave a connection idle: look again soon
            drop(
                self.taken
                    .took
                    .wait_timeout(taken, IDLE)
                    .expect("hand-off")
                    .0,
            );
        }
    }
}

/// Runs a planner between `jobs` (in tree order) and the writers behind `out`: each job
/// goes on with the channel of its chunks (`None` when `chunks_of` says it needs no
/// content). What is planned is requested whenever the planner would wait for a writer
/// or the walker.
pub fn plan_in_order<J>(
    store: &Store,
    index: Arc<Mutex<Index>>,
    budget: u64,
    jobs: Receiver<J>,
    out: Handing<J>,
    chunks_of: impl Fn(&J) -> Option<Vec<BlobId>>,
) -> u64 {
    let mut planner = Planner::start(store, index, budget);
    loop {
        let job = match jobs.try_recv() {
            Ok(j) => j,
            // the walker is a little behind: wait a moment before sending a small range
            Err(TryRecvError::Empty) => match jobs.recv_timeout(IDLE) {
                Ok(j) => j,
                Err(RecvTimeoutError::Timeout) => {
                    planner.flush();
                    match jobs.recv() {
                        Ok(j) => j,
                        Err(_) => break,
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            },
            Err(TryRecvError::Disconnected) => break,
        };
        let ids = chunks_of(&job);
        let (ctx, crx) = channel();
        // the job first, then its reads: its writer is on the way before the budget could
        // wait for it
        if !out.send(&mut planner, (job, ids.is_some().then_some(crx))) {
            break;
        }
        if let Some(ids) = ids {
            planner.plan(ids.into_iter(), ctx);
        }
        planner.file += 1;
    }
    drop(out);
    planner.finish()
}

/// Collects a file's chunks in order: the next one, waiting for it if need be.
pub struct InOrder {
    rx: Receiver<Chunk>,
    early: HashMap<usize, (BlobLoc, Result<Stored>)>,
    next: usize,
}

impl InOrder {
    pub fn new(rx: Receiver<Chunk>) -> InOrder {
        InOrder {
            rx,
            early: HashMap::new(),
            next: 0,
        }
    }

    /// The next chunk's location and stored bytes (an error when it never comes).
    pub fn next_chunk(&mut self) -> (Option<BlobLoc>, Result<Stored>) {
        let pos = self.next;
        self.next += 1;
        loop {
            if let Some((loc, s)) = self.early.remove(&pos) {
                return (Some(loc), s);
            }
            match self.rx.recv() {
                Ok((p, loc, s)) => {
                    self.early.insert(p, (loc, s));
                }
                Err(_) => return (None, Err(anyhow!("the read was not planned"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::repo::{self, PackWriter, Sealed};

    /// A local store with one pack of `blobs` (each `len` bytes that do not compress)
    /// with `pad` bytes of another blob between them that no file wants.
    fn store_with(blobs: usize, len: usize, pad: usize) -> (tempfile::TempDir, Store, Vec<BlobId>) {
        packed(1, blobs, len, pad)
    }

    /// A local store with `blobs` blobs of `len` bytes that do not compress, the i-th
    /// (and `pad` bytes after it that no file wants) in pack `i % packs`: the packs are
    /// filled at once, as a capture fills several.
    fn packed(
        packs: usize,
        blobs: usize,
        len: usize,
        pad: usize,
    ) -> (tempfile::TempDir, Store, Vec<BlobId>) {
        let t = tempfile::tempdir().unwrap();
        let config = crate::config::Config::default();
        let store = Store::open(t.path().join("s").to_str().unwrap(), &config, true, None).unwrap();
        let index = Arc::new(Mutex::new(Index::default()));
        let mut writers: Vec<PackWriter> = (0..packs)
            .map(|_| PackWriter::new(store.clone(), index.clone()))
            .collect();
        let mut ids = Vec::new();
        let mut x = 7u64;
        let mut noise = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (x >> 56) as u8
                })
                .collect()
        };
        for i in 0..blobs {
            for (raw, keep) in [(noise(len), true), (noise(pad), false)] {
                if raw.is_empty() {
                    continue;
                }
                let id = store.blob_id(&raw);
                writers[i % packs]
                    .add(Sealed {
                        id,
                        raw_length: raw.len() as u32,
                        data: raw,
                        compressed: false,
                    })
                    .unwrap();
                if keep {
                    ids.push(id);
                }
            }
        }
        for w in &mut writers {
            w.flush().unwrap();
        }
        (t, store, ids)
    }

    /// Takes a file's chunks in order and checks each against its id.
    fn read_file(store: &Store, rx: Receiver<Chunk>, ids: &[BlobId]) {
        let mut chunks = InOrder::new(rx);
        for id in ids {
            let (loc, stored) = chunks.next_chunk();
            let stored = stored.unwrap();
            let raw = repo::decode_ref(store, stored.bytes(), &loc.unwrap(), id, repo::DATA);
            assert_eq!(&store.blob_id(&raw.unwrap()), id);
        }
    }

    /// Reads every blob through the planner, one file per blob; returns the ranges read.
    fn read_all(store: &Store, ids: &[BlobId]) -> u64 {
        let (index, _) = Index::load(store).unwrap();
        let index = Arc::new(Mutex::new(index));
        let mut planner = Planner::start(store, index, 8 * MAX_RANGE);
        let files: Vec<_> = ids
            .iter()
            .map(|id| {
                let (tx, rx) = channel();
                planner.plan([*id].into_iter(), tx);
                rx
            })
            .collect();
        let ranges = planner.finish();
        for (rx, id) in files.into_iter().zip(ids) {
            read_file(store, rx, &[*id]);
        }
        ranges
    }

    /// Regression: files whose blobs alternate between two packs (a capture fills
    /// several at once) were read in one range per file: each change of pack sent the
    /// open range.
    #[test]
    fn blobs_alternating_between_packs_share_a_range_per_pack() {
        let (_t, store, ids) = packed(2, 200, 10_000, 0);
        assert_eq!(read_all(&store, &ids), 2, "one range per pack");
    }

    /// Regression (review): with ranges of five packs open at once, four went out full
    /// while the fifth, holding an earlier chunk of the file, waited for a budget that
    /// only the writer could free, and the writer waited for that chunk: a hang.
    #[test]
    fn interleaved_packs_never_outgrow_the_budget() {
        let (_t, store, ids) = packed(5, 40, 1 << 20, 0);
        let (index, _) = Index::load(&store).unwrap();
        let index = Arc::new(Mutex::new(index));
        let (jtx, jrx) = sync_channel::<Vec<BlobId>>(1);
        jtx.send(ids.clone()).unwrap();
        drop(jtx);
        let (out, handing) = Handoff::new(4);
        {
            let store = store.clone();
            thread::spawn(move || {
                plan_in_order(&store, index, 4 * MAX_RANGE, jrx, handing, |j| {
                    Some(j.clone())
                })
            });
        }
        let (done_tx, done_rx) = channel();
        thread::spawn(move || {
            let (file, rx) = out.next().unwrap();
            read_file(&store, rx.unwrap(), &file);
            let _ = done_tx.send(());
        });
        assert!(
            done_rx
                .recv_timeout(std::time::Duration::from_secs(60))
                .is_ok(),
            "the restore of a file across five packs hung"
        );
    }

    #[test]
    fn blobs_of_one_pack_are_read_in_few_ranges() {
        let (_t, store, ids) = store_with(200, 10_000, 0);
        assert_eq!(read_all(&store, &ids), 1, "2 MB of neighbours: one read");
        // 40 KB between the wanted blobs is read through; 4 MiB caps a range
        let (_t, store, ids) = store_with(200, 10_000, 40_000);
        assert_eq!(read_all(&store, &ids), 3);
    }

    /// Regression: a file with more chunks than the read-ahead budget holds hung the
    /// restore (its reads were planned before it was handed to a writer, and the budget
    /// waited for a writer that never came).
    #[test]
    fn a_file_larger_than_the_budget_is_read_to_its_end() {
        let (_t, store, ids) = store_with(12, 1 << 20, 0);
        let (index, _) = Index::load(&store).unwrap();
        let index = Arc::new(Mutex::new(index));
        let (jtx, jrx) = sync_channel::<Vec<BlobId>>(4);
        let (out, handing) = Handoff::new(4);
        let planner = {
            let store = store.clone();
            thread::spawn(move || {
                plan_in_order(&store, index, MAX_RANGE, jrx, handing, |j| Some(j.clone()))
            })
        };
        jtx.send(ids.clone()).unwrap();
        drop(jtx);
        let (file, rx) = out.next().unwrap();
        read_file(&store, rx.unwrap(), &file);
        assert!(
            planner.join().unwrap() >= 3,
            "12 MiB in ranges of at most 4 MiB"
        );
    }

    /// Regression: while the writers were behind (the hand-off full), the planner sent
    /// its open range before every file, so 20,000 small files took thousands of reads
    /// (one request each through S3) instead of a few large ones.
    #[test]
    fn small_files_behind_slow_writers_share_ranges() {
        let (_t, store, ids) = store_with(200, 10_000, 0);
        let (index, _) = Index::load(&store).unwrap();
        let index = Arc::new(Mutex::new(index));
        let (jtx, jrx) = sync_channel::<Vec<BlobId>>(1024);
        for id in &ids {
            jtx.send(vec![*id]).unwrap();
        }
        drop(jtx);
        let (out, handing) = Handoff::new(16);
        let planner = {
            let store = store.clone();
            thread::spawn(move || {
                plan_in_order(&store, index, 8 * MAX_RANGE, jrx, handing, |j| {
                    Some(j.clone())
                })
            })
        };
        let mut files = 0;
        while let Some((file, rx)) = out.next() {
            std::thread::sleep(std::time::Duration::from_millis(1));
            read_file(&store, rx.unwrap(), &file);
            files += 1;
        }
        assert_eq!(files, 200);
        // at least half a queue of files is taken between two sends of a range while the
        // queue is full
        let ranges = planner.join().unwrap();
        assert!(
            ranges <= 200 / 8 + 2,
            "{ranges} ranges for 2 MB of one pack"
        );
    }

    /// Regression: the planner held the writers' end of the hand-off itself, so when the
    /// writers were gone (a panic) it waited for room in a full queue forever.
    #[test]
    fn the_planner_stops_when_the_writers_are_gone() {
        let (_t, store, ids) = store_with(8, 1000, 0);
        let (index, _) = Index::load(&store).unwrap();
        let index = Arc::new(Mutex::new(index));
        let (jtx, jrx) = sync_channel::<Vec<BlobId>>(16);
        for id in &ids {
            jtx.send(vec![*id]).unwrap();
        }
        let (out, handing) = Handoff::new(2);
        let (done_tx, done_rx) = channel();
        thread::spawn(move || {
            let ranges = plan_in_order(&store, index, MAX_RANGE, jrx, handing, |j| Some(j.clone()));
            let _ = done_tx.send(ranges);
        });
        // the queue fills up; then the only writer goes away without taking anything
        std::thread::sleep(std::time::Duration::from_millis(100));
        drop(out);
        assert!(
            done_rx
                .recv_timeout(std::time::Duration::from_secs(20))
                .is_ok(),
            "the planner still waits for writers that are gone"
        );
        drop(jtx);
    }

    #[test]
    fn a_gap_of_more_than_a_mebibyte_is_not_read() {
        let (_t, store, ids) = store_with(3, 1000, 2 << 20);
        assert_eq!(read_all(&store, &ids), 3);
    }
}
