//! Capturing data paths: a sorted walk that streams the tree, content-defined chunking
//! (FastCDC) with BLAKE3 ids, deduplication against everything in the store, zstd on
//! worker threads, and packs written by one writer thread. Unchanged files of a parent
//! snapshot (same size, mtime, ctime, inode) are not read again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use anyhow::{Context, Result, anyhow, bail};
use crossbeam_channel::{Receiver, Sender, bounded};
use zstd::bulk::Compressor;

use super::node::{BlobId, Kind, Node, Xattr};
use super::repo::{self, Index, PackWriter, Sealed};
use super::tree::{Blob, TreeReader, TreeWriter};
use super::{DataManifest, DataRoot, Progress};
use crate::state::Problem;
use crate::store::{Object, Store};
use crate::sys::{self, Root};

const MIN_CHUNK: usize = 256 << 10;
const AVG_CHUNK: usize = 1 << 20;
const MAX_CHUNK: usize = 4 << 20;
/// How often a file that keeps changing while it is read is read again.
const READ_ATTEMPTS: usize = 3;

/// What a capture of data paths produced.
pub struct CaptureOutcome {
    pub manifest: DataManifest,
    pub problems: Vec<Problem>,
    /// The blobs this capture stored (not in the store's index before).
    pub stored: HashSet<BlobId>,
}

/// Names → ids of the system being captured, so owners are recorded by name too.
struct Names {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Names {
    fn of(root: &Root) -> Names {
        let (users, groups) = crate::state::accounts::load(root);
        Names {
            users: users.into_iter().map(|u| (u.uid, u.name)).collect(),
            groups: groups.into_iter().map(|g| (g.gid, g.name)).collect(),
        }
    }
}

/// Where blobs go: deduplicated against the store and this run, compressed by the
/// caller's thread, packed by the writer thread. Shared by the file workers.
struct Sink {
    store: Store,
    index: Arc<Mutex<Index>>,
    queued: Mutex<HashSet<BlobId>>,
    tx: Sender<Sealed>,
    new_bytes: AtomicU64,
}

/// A store failure (not a file's): it stops the capture.
#[derive(Debug)]
struct StoreFailed(anyhow::Error);

impl Sink {
    /// Stores a blob unless the store or this run has it already.
    fn put(
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
enum Read_ {
    Done(FileContent),
    Unreadable(anyhow::Error),
    Store(anyhow::Error),
}

/// The worker threads that read, chunk, hash and compress whole files, and the pack
/// writer thread.
struct Pipeline {
    sink: Arc<Sink>,
    tasks: Option<Sender<Task>>,
    results: Receiver<(u64, Read_)>,
    workers: Vec<thread::JoinHandle<()>>,
    writer: Option<thread::JoinHandle<Result<PackWriter>>>,
    z: Compressor<'static>,
}

impl Pipeline {
    fn start(store: &Store, index: Arc<Mutex<Index>>, progress: Arc<Progress>) -> Result<Pipeline> {
        let (stx, srx) = bounded::<Sealed>(4);
        let sink = Arc::new(Sink {
            store: store.clone(),
            index: index.clone(),
            queued: Mutex::new(HashSet::new()),
            tx: stx,
            new_bytes: AtomicU64::new(0),
        });
        let (ttx, trx) = bounded::<Task>(64);
        let (rtx, rrx) = crossbeam_channel::unbounded::<(u64, Read_)>();
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
                        Ok(c) => Read_::Done(c),
                        Err(e) => match e.downcast::<StoreFailed>() {
                            Ok(StoreFailed(e)) => Read_::Store(e),
                            Err(e) => Read_::Unreadable(e),
                        },
                    };
                    if rtx.send((t.seq, r)).is_err() {
                        break;
                    }
                }
            }));
        }
        let mut pw = PackWriter::new(store.clone(), index);
        let writer = thread::spawn(move || -> Result<PackWriter> {
            for b in srx {
                pw.add(b)?;
            }
            pw.flush()?;
            Ok(pw)
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
    fn put_tree(&mut self, (id, raw): Blob) -> Result<()> {
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
    fn finish(&mut self) -> Result<u64> {
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
                .map_err(|_| anyhow!("the pack writer panicked"))??
                .bytes_written),
            None => Ok(0),
        }
    }
}

impl std::fmt::Display for StoreFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for StoreFailed {}

/// Captures `paths` (in-root absolute) into the store.
#[allow(clippy::too_many_arguments)]
pub fn capture(
    store: &Store,
    index: Index,
    root: &Root,
    paths: &[PathBuf],
    exclude: &[String],
    skip_host: &[PathBuf],
    parent: Option<&DataManifest>,
    progress: &Arc<Progress>,
) -> Result<CaptureOutcome> {
    let index = Arc::new(Mutex::new(index));
    let names = Names::of(root);
    let mut pipe = Pipeline::start(store, index.clone(), progress.clone())?;
    let mut problems = Vec::new();
    let mut roots = Vec::new();
    let result = (|| -> Result<()> {
        for path in normalize_paths(paths) {
            let shown = path.display().to_string();
            let host = root.follow(&path);
            match std::fs::symlink_metadata(&host) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    problems.push(Problem {
                        path: shown,
                        error: "not a directory: data paths name directories".into(),
                    });
                    continue;
                }
                Err(e) => {
                    problems.push(Problem {
                        path: shown,
                        error: format!("cannot be captured: {e}"),
                    });
                    continue;
                }
            }
            let parent_tree = parent
                .and_then(|p| p.roots.iter().find(|r| r.path == shown))
                .map(|r| r.tree_ids())
                .transpose()?;
            let walker = Walker {
                store,
                root,
                names: &names,
                exclude,
                skip_host,
                progress,
            };
            let r = walker.walk(&path, &host, parent_tree, &mut pipe, &mut problems)?;
            roots.push(r);
        }
        Ok(())
    })();
    let written = pipe.finish();
    result?;
    let stored = written?;
    let files = roots.iter().map(|r| r.files).sum();
    let bytes = roots.iter().map(|r| r.bytes).sum();
    Ok(CaptureOutcome {
        manifest: DataManifest {
            roots,
            files,
            bytes,
            new_bytes: pipe.sink.new_bytes.load(Ordering::Relaxed),
            stored_bytes: stored,
        },
        problems,
        stored: std::mem::take(&mut *pipe.sink.queued.lock().expect("queued")),
    })
}

/// Sorted, without duplicates and without paths inside another one.
fn normalize_paths(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = paths.to_vec();
    v.sort();
    v.dedup();
    let mut out: Vec<PathBuf> = Vec::new();
    for p in v {
        if !out.iter().any(|q| p.starts_with(q)) {
            out.push(p);
        }
    }
    out
}

struct Walker<'a> {
    store: &'a Store,
    root: &'a Root,
    names: &'a Names,
    exclude: &'a [String],
    skip_host: &'a [PathBuf],
    progress: &'a Progress,
}

/// How many files may be in the workers' hands before the walk waits for them.
const IN_FLIGHT: usize = 256;

/// A node waiting for its file content (or ready), in walk order.
struct Pending {
    node: Node,
    inner: String,
    seq: Option<u64>,
}

/// Keeps the tree in walk order while files finish out of order.
struct Ordered {
    queue: VecDeque<Pending>,
    done: HashMap<u64, Read_>,
    next_seq: u64,
    in_flight: usize,
    tree: TreeWriter,
    files: u64,
    bytes: u64,
}

impl Ordered {
    fn push(&mut self, pipe: &mut Pipeline, problems: &mut Vec<Problem>, p: Pending) -> Result<()> {
        self.queue.push_back(p);
        self.drain(pipe, problems, false)
    }

    /// Takes in finished files and writes every node at the front that is complete;
    /// `all` waits until nothing is pending.
    fn drain(&mut self, pipe: &mut Pipeline, problems: &mut Vec<Problem>, all: bool) -> Result<()> {
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
                    Some(Read_::Done((chunks, extents, note))) => {
                        p.node.chunks = chunks;
                        p.node.extents = extents;
                        if let Some(note) = note {
                            problems.push(Problem {
                                path: p.inner.clone(),
                                error: note,
                            });
                        }
                    }
                    Some(Read_::Unreadable(e)) => {
                        problems.push(Problem {
                            path: p.inner,
                            error: format!("cannot be read: {e:#}"),
                        });
                        continue;
                    }
                    Some(Read_::Store(e)) => return Err(pipe.stopped(e)),
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

impl Walker<'_> {
    fn walk(
        &self,
        path: &Path,
        host: &Path,
        parent_tree: Option<Vec<BlobId>>,
        pipe: &mut Pipeline,
        problems: &mut Vec<Problem>,
    ) -> Result<DataRoot> {
        let mut parent = parent_tree
            .map(|ids| TreeReader::new(self.store.clone(), pipe.sink.index.clone(), ids));
        let mut hardlinks: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
        let mut ord = Ordered {
            queue: VecDeque::new(),
            done: HashMap::new(),
            next_seq: 0,
            in_flight: 0,
            tree: TreeWriter::new(self.store.clone()),
            files: 0,
            bytes: 0,
        };
        let mut walk = SortedWalk::new(host);
        while let Some(step) = walk.next() {
            let (hp, rel, meta) = match step {
                Step::Entry { host, rel, meta } => (host, rel, meta),
                Step::Error { host, err } => {
                    problems.push(Problem {
                        path: self.root.inner(&host).display().to_string(),
                        error: format!("cannot be read: {err}"),
                    });
                    continue;
                }
            };
            let hp = hp.as_path();
            let inner = || self.root.inner(hp).display().to_string();
            let top = rel.is_empty();
            if !top
                && (self.skip_host.iter().any(|s| s == hp)
                    || (!self.exclude.is_empty() && excluded(self.exclude, &self.root.inner(hp))))
            {
                continue;
            }
            if meta.is_dir()
                && let Err(err) = walk.descend(hp.to_path_buf(), rel.clone())
            {
                problems.push(Problem {
                    path: inner(),
                    error: format!("directory cannot be read: {err}"),
                });
            }
            let fm = sys::file_meta(&meta);
            let mut node = Node {
                path: rel.clone(),
                kind: Kind::File,
                mode: fm.mode,
                uid: fm.uid,
                gid: fm.gid,
                user: self.names.users.get(&fm.uid).cloned(),
                group: self.names.groups.get(&fm.gid).cloned(),
                mtime: fm.mtime,
                mtime_ns: fm.mtime_ns,
                size: 0,
                chunks: Vec::new(),
                extents: None,
                target: Vec::new(),
                rdev: 0,
                xattrs: Vec::new(),
                ctime: fm.ctime,
                ctime_ns: fm.ctime_ns,
                ino: fm.ino,
            };
            // The parent snapshot's node: when ctime and inode agree, nothing about the
            // entry changed (xattrs included) but, for a file, possibly its content.
            let prev = match parent.as_mut().map(|p| p.find(&rel)) {
                Some(Ok(found)) => found,
                Some(Err(e)) => {
                    // Not fatal: everything after it is read again.
                    tracing::warn!("the parent snapshot's tree cannot be read further: {e:#}");
                    parent = None;
                    None
                }
                None => None,
            };
            let same_inode = prev
                .as_ref()
                .filter(|p| p.ino == fm.ino && p.ctime == fm.ctime && p.ctime_ns == fm.ctime_ns);
            match same_inode {
                Some(p) => node.xattrs = p.xattrs.clone(),
                None => match sys::xattrs_of(hp) {
                    Ok(x) => {
                        node.xattrs = x
                            .into_iter()
                            .map(|(name, value)| Xattr { name, value })
                            .collect()
                    }
                    Err(e) => problems.push(Problem {
                        path: inner(),
                        error: format!("extended attributes cannot be read: {e}"),
                    }),
                },
            }
            let ft = meta.file_type();
            let mut seq = None;
            if ft.is_dir() {
                node.kind = Kind::Dir;
            } else if ft.is_symlink() {
                node.kind = Kind::Symlink;
                match std::fs::read_link(hp) {
                    Ok(t) => node.target = os_bytes(t.as_os_str()),
                    Err(e) => {
                        problems.push(Problem {
                            path: inner(),
                            error: format!("symlink cannot be read: {e}"),
                        });
                        continue;
                    }
                }
            } else if ft.is_file() {
                node.size = fm.size;
                if fm.nlink > 1 {
                    if let Some(first) = hardlinks.get(&(fm.dev, fm.ino)) {
                        node.kind = Kind::Hardlink;
                        node.target = first.clone();
                        ord.push(
                            pipe,
                            problems,
                            Pending {
                                node,
                                inner: String::new(),
                                seq: None,
                            },
                        )?;
                        continue;
                    }
                    hardlinks.insert((fm.dev, fm.ino), rel.clone());
                }
                let unchanged = same_inode.filter(|p| {
                    p.kind == Kind::File
                        && p.size == fm.size
                        && p.mtime == fm.mtime
                        && p.mtime_ns == fm.mtime_ns
                });
                let have_all = unchanged.is_some_and(|p| {
                    let idx = pipe.sink.index.lock().expect("index");
                    p.chunk_ids().all(|id| idx.blobs.contains_key(&id))
                });
                match unchanged {
                    Some(p) if have_all => {
                        node.chunks = p.chunks.clone();
                        node.extents = p.extents.clone();
                        self.progress.skipped(fm.size);
                    }
                    _ => {
                        let s = ord.next_seq;
                        ord.next_seq += 1;
                        ord.in_flight += 1;
                        pipe.submit(Task {
                            seq: s,
                            path: hp.to_path_buf(),
                            meta: fm,
                        })?;
                        seq = Some(s);
                    }
                }
                self.progress.file();
            } else if let Some(kind) = sys::special_kind(&ft) {
                node.kind = match kind {
                    "fifo" => Kind::Fifo,
                    "char" => Kind::Char,
                    "block" => Kind::Block,
                    _ => {
                        problems.push(Problem {
                            path: inner(),
                            error: "a socket: not captured (its service creates it again)".into(),
                        });
                        continue;
                    }
                };
                node.rdev = fm.rdev;
            }
            let inner = if seq.is_some() {
                inner()
            } else {
                String::new()
            };
            ord.push(pipe, problems, Pending { node, inner, seq })?;
        }
        ord.drain(pipe, problems, true)?;
        let tree = std::mem::replace(&mut ord.tree, TreeWriter::new(self.store.clone()));
        let (ids, last) = tree.finish()?;
        if let Some(blob) = last {
            pipe.put_tree(blob)?;
        }
        Ok(DataRoot {
            path: path.display().to_string(),
            tree: ids.iter().map(hex::encode).collect(),
            files: ord.files,
            bytes: ord.bytes,
        })
    }
}

use crate::sys::os_bytes;

/// The bytes of the regular files below `dir` (for the progress bar's ETA).
pub fn estimate_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut walk = SortedWalk::new(dir);
    while let Some(step) = walk.next() {
        if let Step::Entry { host, rel, meta } = step {
            if meta.is_dir() {
                let _ = walk.descend(host, rel);
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}

/// A depth-first walk with the entries of each directory in byte order (the tree's
/// order), entering only the directories it is told to, and taking metadata relative to
/// the open directory (no full path lookup per entry).
struct SortedWalk {
    first: Option<PathBuf>,
    stack: Vec<Frame>,
}

struct Frame {
    dir: PathBuf,
    rel: Vec<u8>,
    entries: std::vec::IntoIter<std::fs::DirEntry>,
}

enum Step {
    Entry {
        host: PathBuf,
        rel: Vec<u8>,
        meta: std::fs::Metadata,
    },
    Error {
        host: PathBuf,
        err: std::io::Error,
    },
}

impl SortedWalk {
    fn new(top: &Path) -> SortedWalk {
        SortedWalk {
            first: Some(top.to_path_buf()),
            stack: Vec::new(),
        }
    }

    fn next(&mut self) -> Option<Step> {
        if let Some(top) = self.first.take() {
            return Some(match std::fs::symlink_metadata(&top) {
                Ok(meta) => Step::Entry {
                    host: top,
                    rel: Vec::new(),
                    meta,
                },
                Err(err) => Step::Error { host: top, err },
            });
        }
        loop {
            let frame = self.stack.last_mut()?;
            let Some(entry) = frame.entries.next() else {
                self.stack.pop();
                continue;
            };
            let name = entry.file_name();
            let host = frame.dir.join(&name);
            let mut rel = frame.rel.clone();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(&os_bytes(&name));
            return Some(match entry.metadata() {
                Ok(meta) => Step::Entry { host, rel, meta },
                Err(err) => Step::Error { host, err },
            });
        }
    }

    /// Enters a directory just returned: its entries come next.
    fn descend(&mut self, dir: PathBuf, rel: Vec<u8>) -> std::io::Result<()> {
        let mut entries = Vec::new();
        for e in std::fs::read_dir(&dir)? {
            entries.push(e?);
        }
        entries.sort_by_key(|e| e.file_name());
        self.stack.push(Frame {
            dir,
            rel,
            entries: entries.into_iter(),
        });
        Ok(())
    }
}

/// A file's chunk ids, the data regions of a sparse file, and a note when it kept
/// changing while it was read.
type FileContent = (Vec<u8>, Option<Vec<(u64, u64)>>, Option<String>);

/// Reads a file's content into chunks; retries when it changes underneath. Returns the
/// chunk ids, the data extents of a sparse file, and a note when it kept changing.
fn read_file(
    path: &Path,
    before: &sys::FileMeta,
    sink: &Sink,
    z: &mut Compressor<'_>,
    progress: &Progress,
) -> Result<FileContent> {
    let mut last = None;
    for _ in 0..READ_ATTEMPTS {
        let f = File::open(path)?;
        let fm = sys::file_meta(&f.metadata()?);
        let extents = sys::data_extents(&f, &fm)?;
        let mut chunks = Vec::new();
        let total: u64 = match &extents {
            Some(ex) => ex.iter().map(|(_, l)| l).sum(),
            None => fm.size,
        };
        let reader = ExtentReader {
            f: &f,
            extents: extents.clone().unwrap_or_else(|| vec![(0, u64::MAX)]),
            i: 0,
            pos: 0,
        };
        if total < MIN_CHUNK as u64 {
            let mut buf = Vec::with_capacity(total as usize);
            reader.take(MAX_CHUNK as u64).read_to_end(&mut buf)?;
            progress.bytes(buf.len() as u64);
            let id = sink.store.blob_id(&buf);
            chunks.extend_from_slice(&id);
            if !buf.is_empty() {
                sink.put(id, buf, z, true)?;
            } else {
                chunks.clear();
            }
        } else {
            for c in fastcdc::v2020::StreamCDC::new(reader, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK) {
                let c = c.map_err(|e| anyhow!("{e}"))?;
                progress.bytes(c.length as u64);
                let id = sink.store.blob_id(&c.data);
                chunks.extend_from_slice(&id);
                sink.put(id, c.data, z, true)?;
            }
        }
        let after = sys::file_meta(&std::fs::symlink_metadata(path)?);
        let stable = after.size == fm.size
            && after.mtime == fm.mtime
            && after.mtime_ns == fm.mtime_ns
            && after.ino == before.ino;
        if stable {
            return Ok((chunks, extents, None));
        }
        last = Some((chunks, extents));
    }
    let (chunks, extents) = last.context("no read")?;
    Ok((
        chunks,
        extents,
        Some(format!(
            "kept changing while being read ({READ_ATTEMPTS} attempts): captured as last read, may be inconsistent"
        )),
    ))
}

/// Reads the data regions of a file one after the other.
struct ExtentReader<'f> {
    f: &'f File,
    extents: Vec<(u64, u64)>,
    i: usize,
    pos: u64,
}

impl Read for ExtentReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.i < self.extents.len() {
            let (off, len) = self.extents[self.i];
            if self.pos >= len {
                self.i += 1;
                self.pos = 0;
                continue;
            }
            let want = ((len - self.pos).min(buf.len() as u64)) as usize;
            let n = crate::sys::pread(self.f, &mut buf[..want], off + self.pos)?;
            if n == 0 {
                // end of file (the unbounded extent of a plain file, or a file that shrank)
                self.i = self.extents.len();
                return Ok(0);
            }
            self.pos += n as u64;
            return Ok(n);
        }
        Ok(0)
    }
}

/// Matches `exclude` patterns: one starting with `/` against the in-root path, others
/// against the file name; `*` and `?` do not cross `/`, `**` does.
pub fn excluded(patterns: &[String], inner: &Path) -> bool {
    let full = inner.to_string_lossy();
    let name = inner
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    patterns.iter().any(|p| {
        if p.starts_with('/') {
            glob(p.as_bytes(), full.as_bytes())
        } else {
            glob(p.as_bytes(), name.as_bytes())
        }
    })
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (None, Some(_)) => false,
        (Some(b'*'), _) if p.get(1) == Some(&b'*') => (0..=s.len()).any(|i| glob(&p[2..], &s[i..])),
        (Some(b'*'), _) => (0..=s.len())
            .take_while(|i| *i == 0 || s[i - 1] != b'/')
            .any(|i| glob(&p[1..], &s[i..])),
        (Some(b'?'), Some(c)) if *c != b'/' => glob(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => glob(&p[1..], &s[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclude_patterns() {
        let pats = vec![
            "*.tmp".to_string(),
            "/var/lib/mysql/*.sock".to_string(),
            "/srv/**/cache".to_string(),
        ];
        assert!(excluded(&pats, Path::new("/srv/a/b.tmp")));
        assert!(excluded(&pats, Path::new("/var/lib/mysql/mysqld.sock")));
        assert!(!excluded(&pats, Path::new("/var/lib/mysql/sub/x.sock")));
        assert!(excluded(&pats, Path::new("/srv/x/y/cache")));
        assert!(!excluded(&pats, Path::new("/srv/x/y/cache2")));
        assert!(!excluded(&pats, Path::new("/srv/a/b.tmpx")));
    }

    #[test]
    fn nested_paths_are_captured_once() {
        let v = normalize_paths(&[
            PathBuf::from("/srv/app"),
            PathBuf::from("/srv"),
            PathBuf::from("/home"),
            PathBuf::from("/srv"),
        ]);
        assert_eq!(v, vec![PathBuf::from("/home"), PathBuf::from("/srv")]);
    }
}
