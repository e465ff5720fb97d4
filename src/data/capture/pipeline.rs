//! The capture pipeline: worker threads that read, chunk, hash and compress whole files;
//! a sink that deduplicates blobs against the store and this run; one pack writer thread;
//! and the ordering that writes the tree in walk order while files finish out of order.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use anyhow::{Result, anyhow, bail};
use crossbeam_channel::{Receiver, Sender, bounded};
use zstd::bulk::Compressor;

use super::read::{FileContent, read_file};
use crate::data::Progress;
use crate::data::node::{BlobId, Kind, Node};
use crate::data::repo::{self, Index, PackWriter, Sealed};
use crate::data::tree::{Blob, TreeWriter};
use crate::state::Problem;
use crate::store::{Object, Store};
use crate::sys;

/// Where blobs go: deduplicated against the store and this run, compressed by the
/// caller's thread, packed by the writer thread. Shared by the file workers.
pub(super) struct Sink {
    pub(super) store: Store,
    pub(super) index: Arc<Mutex<Index>>,
    pub(super) queued: Mutex<HashSet<BlobId>>,
    tx: Sender<Sealed>,
    pub(super) new_bytes: AtomicU64,
}

/// A store failure (not a file's): it stops the capture.
#[derive(Debug)]
pub(super) struct StoreFailed(anyhow::Error);

impl std::fmt::Display for StoreFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for StoreFailed {}

impl Sink {
    /// Stores a blob unless the store or this run has it already.
    pub(super) fn put(
        &self,
        id: BlobId,
        raw: Vec<u8>,
        z: &mut Compressor<'_>,
        data: bool,
    ) -> Result<(), StoreFailed> {
        if self.index.lock().expect("index").blobs.contains_key(&id) {
            return Ok(());
        }
        if !self.queued.lock().expect("queued").insert(id) {
            return Ok(());
        }
        if data {
            self.new_bytes
                .fetch_add(raw.len() as u64, Ordering::Relaxed);
        }
        let raw_length = raw.len() as u32;
        let (bytes, compressed) = repo::encode(raw, z).map_err(StoreFailed)?;
        let sealed = Sealed {
            id,
            data: self.store.seal(
                if data {
                    Object::DataBlob
                } else {
                    Object::TreeBlob
                },
                bytes,
            ),
            raw_length,
            compressed,
        };
        self.tx
            .send(sealed)
            .map_err(|_| StoreFailed(anyhow!("the pack writer stopped")))
    }
}

/// A file for a worker to read.
struct Task {
    seq: u64,
    path: PathBuf,
    meta: sys::FileMeta,
}

/// What a worker made of a file.
enum FileRead {
    Done(FileContent),
    Unreadable(anyhow::Error),
    Store(anyhow::Error),
}

/// The worker threads that read, chunk, hash and compress whole files, and the pack
/// writer thread.
pub(super) struct Pipeline {
    pub(super) sink: Arc<Sink>,
    tasks: Option<Sender<Task>>,
    results: Receiver<(u64, FileRead)>,
    workers: Vec<thread::JoinHandle<()>>,
    writer: Option<thread::JoinHandle<Result<u64>>>,
    z: Compressor<'static>,
}

impl Pipeline {
    pub(super) fn start(
        store: &Store,
        index: Arc<Mutex<Index>>,
        progress: Arc<Progress>,
    ) -> Result<Pipeline> {
        let (stx, srx) = bounded::<Sealed>(4);
        let sink = Arc::new(Sink {
            store: store.clone(),
            index: index.clone(),
            queued: Mutex::new(HashSet::new()),
            tx: stx,
            new_bytes: AtomicU64::new(0),
        });
        let (ttx, trx) = bounded::<Task>(64);
        let (rtx, rrx) = crossbeam_channel::unbounded::<(u64, FileRead)>();
        let threads = thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 8);
        let mut workers = Vec::new();
        for _ in 0..threads {
            let trx = trx.clone();
            let rtx = rtx.clone();
            let sink = sink.clone();
            let progress = progress.clone();
            let mut z = repo::compressor()?;
            workers.push(thread::spawn(move || {
                for t in trx {
                    let r = match read_file(&t.path, &t.meta, &sink, &mut z, &progress) {
                        Ok(c) => FileRead::Done(c),
                        Err(e) => match e.downcast::<StoreFailed>() {
                            Ok(StoreFailed(e)) => FileRead::Store(e),
                            Err(e) => FileRead::Unreadable(e),
                        },
                    };
                    if rtx.send((t.seq, r)).is_err() {
                        break;
                    }
                }
            }));
        }
        // Small blobs (whole small files, the tails of large ones, trees) fill packs of
        // their own: a restore then finds the small files of a folder side by side and
        // reads them in a few ranges, not one between every two chunks of a large file.
        let mut small = PackWriter::new(store.clone(), index.clone());
        let mut large = PackWriter::new(store.clone(), index);
        let writer = thread::spawn(move || -> Result<u64> {
            for b in srx {
                if (b.raw_length as usize) < super::read::MIN_CHUNK {
                    small.add(b)?;
                } else {
                    large.add(b)?;
                }
            }
            small.flush()?;
            large.flush()?;
            Ok(small.bytes_written + large.bytes_written)
        });
        Ok(Pipeline {
            sink,
            tasks: Some(ttx),
            results: rrx,
            workers,
            writer: Some(writer),
            z: repo::compressor()?,
        })
    }

    /// Stores a tree blob from the walking thread.
    pub(super) fn put_tree(&mut self, (id, raw): Blob) -> Result<()> {
        self.sink
            .put(id, raw, &mut self.z, false)
            .map_err(|e| self.stopped(e.0))
    }

    fn submit(&mut self, t: Task) -> Result<()> {
        let tx = self.tasks.as_ref().expect("pipeline open");
        tx.send(t)
            .map_err(|_| anyhow!("the capture workers stopped"))
    }

    /// The error to report when the writer side failed: the writer's own, if it has one.
    fn stopped(&mut self, e: anyhow::Error) -> anyhow::Error {
        match self.finish() {
            Err(w) => w,
            Ok(_) => e,
        }
    }

    /// Drains the pipeline; returns the bytes written to the store.
    pub(super) fn finish(&mut self) -> Result<u64> {
        self.tasks.take();
        for w in self.workers.drain(..) {
            w.join().map_err(|_| anyhow!("a capture worker panicked"))?;
        }
        // the workers hold the only other senders of the sink: close it
        let (dead, _) = bounded(0);
        if let Some(sink) = Arc::get_mut(&mut self.sink) {
            sink.tx = dead;
        }
        match self.writer.take() {
            Some(w) => Ok(w
                .join()
                .map_err(|_| anyhow!("the pack writer panicked"))??),
            None => Ok(0),
        }
    }
}

/// How many files may be in the workers' hands before the walk waits for them.
const IN_FLIGHT: usize = 256;

/// A node waiting for its file content (or ready), in walk order.
pub(super) struct Pending {
    pub(super) node: Node,
    /// The in-root path, to name the file in a problem (set when `seq` is).
    pub(super) inner: String,
    pub(super) seq: Option<u64>,
}

/// Keeps the tree in walk order while files finish out of order.
pub(super) struct Ordered {
    queue: VecDeque<Pending>,
    done: HashMap<u64, FileRead>,
    next_seq: u64,
    in_flight: usize,
    pub(super) tree: TreeWriter,
    pub(super) files: u64,
    pub(super) bytes: u64,
}

impl Ordered {
    pub(super) fn new(store: &Store) -> Ordered {
        Ordered {
            queue: VecDeque::new(),
            done: HashMap::new(),
            next_seq: 0,
            in_flight: 0,
            tree: TreeWriter::new(store.clone()),
            files: 0,
            bytes: 0,
        }
    }

    /// Hands a file to the workers; returns its sequence number for its `Pending`.
    pub(super) fn submit(
        &mut self,
        pipe: &mut Pipeline,
        path: PathBuf,
        meta: sys::FileMeta,
    ) -> Result<u64> {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.in_flight += 1;
        pipe.submit(Task { seq, path, meta })?;
        Ok(seq)
    }

    pub(super) fn push(
        &mut self,
        pipe: &mut Pipeline,
        problems: &mut Vec<Problem>,
        p: Pending,
    ) -> Result<()> {
        self.queue.push_back(p);
        self.drain(pipe, problems, false)
    }

    /// Takes in finished files and writes every node at the front that is complete;
    /// `all` waits until nothing is pending.
    pub(super) fn drain(
        &mut self,
        pipe: &mut Pipeline,
        problems: &mut Vec<Problem>,
        all: bool,
    ) -> Result<()> {
        loop {
            while let Ok((seq, r)) = pipe.results.try_recv() {
                self.done.insert(seq, r);
                self.in_flight -= 1;
            }
            while let Some(front) = self.queue.front() {
                let result = match front.seq {
                    None => None,
                    Some(seq) => match self.done.remove(&seq) {
                        Some(r) => Some(r),
                        None => break,
                    },
                };
                let mut p = self.queue.pop_front().expect("front exists");
                match result {
                    None => {}
                    Some(FileRead::Done((chunks, extents, note))) => {
                        p.node.chunks = chunks;
                        p.node.extents = extents;
                        if let Some(note) = note {
                            problems.push(Problem {
                                path: p.inner.clone(),
                                error: note,
                            });
                        }
                    }
                    Some(FileRead::Unreadable(e)) => {
                        problems.push(Problem {
                            path: p.inner,
                            error: format!("cannot be read: {e:#}"),
                        });
                        continue;
                    }
                    Some(FileRead::Store(e)) => return Err(pipe.stopped(e)),
                }
                if matches!(p.node.kind, Kind::File | Kind::Hardlink) {
                    self.files += 1;
                    if p.node.kind == Kind::File {
                        self.bytes += p.node.size;
                    }
                }
                if let Some(blob) = self.tree.push(&p.node)? {
                    pipe.put_tree(blob)?;
                }
            }
            let waiting = if all {
                !self.queue.is_empty()
            } else {
                self.in_flight >= IN_FLIGHT
            };
            if !waiting {
                return Ok(());
            }
            match pipe.results.recv() {
                Ok((seq, r)) => {
                    self.done.insert(seq, r);
                    self.in_flight -= 1;
                }
                Err(_) => bail!("the capture workers stopped"),
            }
        }
    }
}
