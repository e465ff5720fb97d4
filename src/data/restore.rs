//! Restoring data paths: the tree streamed in order, directories made as they come, file
//! contents read by pack (`fetch`: planned, coalesced, fetched ahead) and written by worker
//! threads under temporary names and renamed, hard links and
//! directory metadata last. A hostile tree (`..`, absolute names, paths through a symlink,
//! absurd sizes, entries out of order) is refused entry by entry; nothing is written
//! outside the target; a damaged chunk fails only its file, which is named.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::thread;

use anyhow::{Context, Result, anyhow, bail};

use super::direct::{self, Stage};
use super::fetch::{self, InOrder};
use super::node::{BlobId, Kind, Node, check_path, path_cmp};
use super::repo::{self, Index};
use super::tree::TreeReader;
use super::{DataManifest, Progress};
use crate::error::Problem;
use crate::store::Store;
use crate::sys::{self, Root};

/// Nothing real is larger (ext4's limit is 16 TiB): a bigger size is a hostile tree.
const MAX_FILE_SIZE: u64 = 1 << 50;
const WORKERS: usize = 4;
/// A file this large has its writeback started when it is written (small ones are left
/// to the flush at the end: a call each would cost more than it saves).
const WRITEBACK_FROM: u64 = 1 << 20;
/// Files planned and waiting for a writer (a job is a few hundred bytes).
const HANDOFF: usize = 4096;
/// A file with more content than this is written by several workers at once, in pieces
/// of about this size (a whole chunk each): one worker decompressing, checking and writing
/// a file of gigabytes alone left the other cores idle.
const PIECE: u64 = 8 << 20;
/// What handing out one small file is worth in bytes of a large one (`Mixer`): about
/// what making a file costs in time, as the time to read and write this much data
/// (measured on the cold bench: 10–40 KiB did about as well; none, 1 s worse of 7).
const FILE_COST: u64 = 20 << 10;
/// Pieces held back at most (`Mixer`): past this many, the oldest goes out as the next
/// comes (512 GiB of large files).
const HELD: usize = 1 << 16;

/// What a data restore did.
#[derive(Debug, Default)]
pub struct DataRestore {
    /// Regular files and hard links in place.
    pub files: u64,
    /// Content bytes written.
    pub bytes: u64,
    /// Entries (files, directories, links, devices) written or given their metadata.
    pub changed: u64,
    /// Entries that were already as in the snapshot and were left alone.
    pub unchanged: u64,
    /// Everything that could not be restored, and why.
    pub failed: Vec<Problem>,
    /// Owners the new OS had no account for, and the ids their files got.
    pub unknown_owners: Vec<UnknownOwner>,
    /// Entries left out: below the home of an old user whose name is another account of
    /// the new OS.
    pub not_written: u64,
    /// The filesystems written to, still to be flushed: nothing is restored until
    /// `Filesystems::sync` has returned without a problem.
    pub unflushed: Filesystems,
}

impl DataRestore {
    fn count(&mut self, changed: bool) {
        if changed {
            self.changed += 1;
        } else {
            self.unchanged += 1;
        }
    }
}

/// User and group names of the target root (not the host's): a fresh OS gives system
/// accounts other ids, so owners are restored by name first. A name the new OS lacks (a
/// package's system user not installed yet), or one that belongs to another account of
/// the image (`not_by_name`), is never resolved by number into someone else's account:
/// it gets a reserved id — the old one when no account of the new OS has it, else a free
/// one in the system range — and is listed in `DataRestore::unknown_owners`.
pub struct Owners {
    names: crate::state::accounts::Names,
    not_by_name: std::collections::HashSet<String>,
    /// The homes of those users (absolute): what a data path holds below them is not
    /// written (into the image's account of that name).
    not_into: Vec<String>,
    /// (is a group, name) → the id chosen for it.
    reserved: Mutex<std::collections::BTreeMap<(bool, String), u32>>,
}

/// A user or group the snapshot's files name that the new OS has no account for (or
/// only another person's of that name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownOwner {
    pub group: bool,
    pub name: String,
    /// The id the files were restored with.
    pub id: u32,
    /// The name belongs to another account of the new OS (never created).
    pub conflict: bool,
}

/// Where reserved ids come from when the old one is in use: the system range.
const SYSTEM_IDS: std::ops::RangeInclusive<u32> = 100..=999;

impl Owners {
    pub fn of(root: &Root) -> Owners {
        Owners::with_conflicts(root, &[])
    }

    /// Owners by name, except `not_by_name` (captured users whose name the image uses for
    /// an account of its own).
    pub fn with_conflicts(root: &Root, not_by_name: &[String]) -> Owners {
        Owners {
            names: crate::state::accounts::Names::load(root),
            not_by_name: not_by_name.iter().cloned().collect(),
            not_into: Vec::new(),
            reserved: Mutex::new(Default::default()),
        }
    }

    /// True when `path` (absolute) lies in a home that is not to be written.
    fn not_into(&self, path: &str) -> bool {
        self.not_into.iter().any(|h| {
            path == h
                || path
                    .strip_prefix(h.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        })
    }

    fn ids(&self, n: &Node) -> (u32, u32) {
        let uid = match &n.user {
            Some(u) => self.resolve(false, u, n.uid),
            None => n.uid,
        };
        let gid = match &n.group {
            Some(g) => self.resolve(true, g, n.gid),
            None => n.gid,
        };
        (uid, gid)
    }

    fn resolve(&self, group: bool, name: &str, old: u32) -> u32 {
        let known = if group {
            &self.names.groups
        } else {
            &self.names.users
        };
        if !self.not_by_name.contains(name)
            && let Some(id) = known.id(name)
        {
            return id;
        }
        let mut reserved = self.reserved.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = reserved.get(&(group, name.to_string())) {
            return *id;
        }
        let taken = |id: &u32| known.has_id(*id) || reserved.values().any(|r| r == id);
        let id = if !taken(&old) {
            old
        } else {
            SYSTEM_IDS.rev().find(|id| !taken(id)).unwrap_or(old)
        };
        reserved.insert((group, name.to_string()), id);
        id
    }

    /// The owners the new OS had no account for, with the ids their files got.
    pub fn unknown(&self) -> Vec<UnknownOwner> {
        let reserved = self.reserved.lock().unwrap_or_else(|e| e.into_inner());
        reserved
            .iter()
            .map(|((group, name), id)| UnknownOwner {
                group: *group,
                name: name.clone(),
                id: *id,
                conflict: self.not_by_name.contains(name),
            })
            .collect()
    }
}

/// The regular files of a snapshot that are not in place under `root` (absent, not a
/// file, or of another size): the health check after a restore. Reads the trees only.
pub fn missing(
    store: &Store,
    root: &Root,
    data: &DataManifest,
) -> Result<Vec<crate::error::Problem>> {
    let (index, _) = Index::load(store)?;
    let index = Arc::new(Mutex::new(index));
    let mut out = Vec::new();
    let mut stat = sys::FolderStat::default();
    for r in &data.roots {
        if !r.path.starts_with('/') || crate::paths::is_system_location(&r.path) {
            continue;
        }
        // where the restore wrote it (a data path that is root's link: its target)
        let dest = root
            .path_strict(&r.path)
            .unwrap_or_else(|_| root.path(&r.path));
        let mut reader = TreeReader::new(store.clone(), index.clone(), r.tree.clone());
        while let Some(n) = reader.next_node()? {
            if n.kind != Kind::File || !check_path(&n.path) {
                continue;
            }
            let host = dest.join(sys::os_from_bytes(&n.path));
            let why = match stat.file_size(&host) {
                Err(_) => "absent",
                Ok(None) => "not a regular file",
                Ok(Some(size)) if size != n.size => "of another size",
                Ok(Some(_)) => continue,
            };
            out.push(crate::error::Problem::new(
                format!(
                    "{}/{}",
                    r.path.trim_end_matches('/'),
                    String::from_utf8_lossy(&n.path)
                ),
                why,
            ));
        }
    }
    Ok(out)
}

/// Restores every data path of a snapshot under `root`.
pub fn restore(
    store: &Store,
    index: Index,
    root: &Root,
    data: &DataManifest,
    progress: &Progress,
    not_by_name: &[String],
    not_into: &[String],
) -> Result<DataRestore> {
    let index = Arc::new(Mutex::new(index));
    let mut owners = Owners::with_conflicts(root, not_by_name);
    owners.not_into = not_into.to_vec();
    let owners = Arc::new(owners);
    let mut out = DataRestore::default();
    let mut filesystems = Filesystems::default();
    for r in &data.roots {
        if !r.path.starts_with('/') || !check_path(r.path.trim_start_matches('/').as_bytes()) {
            out.failed
                .push(Problem::new(&r.path, "not a valid data path; refused"));
            continue;
        }
        if crate::paths::is_system_location(&r.path) {
            out.failed.push(Problem::new(
                &r.path,
                "a place of the operating system itself, never restored as data; refused",
            ));
            continue;
        }
        // resolved without following a link a user could have planted (one a user owns,
        // or one in a folder a user can write), then opened from the root one folder at a
        // time, never through a symlink (one swapped in after the resolution is refused)
        let top = match root.open_dir_strict(&r.path, Some(0o755)) {
            Ok(d) => Arc::new(d),
            Err(e) => {
                out.failed.push(Problem::new(&r.path, e));
                continue;
            }
        };
        let dest = top.path().to_path_buf();
        filesystems.add(&dest);
        let ids = r.tree.clone();
        let reader = TreeReader::new(store.clone(), index.clone(), ids);
        restore_root(
            store,
            &index,
            &owners,
            &r.path,
            &top,
            reader,
            progress,
            &mut out,
            &mut filesystems,
        )?;
    }
    out.unflushed = filesystems;
    out.unknown_owners = owners.unknown();
    Ok(out)
}

/// Test hook (builds with the `test-hooks` feature only): `CARRYOVER_TEST_FLUSH_FAILS`
/// makes the final flush of every filesystem fail, as a disk that lost the writes would.
#[cfg(feature = "test-hooks")]
fn flush_fails() -> std::io::Result<()> {
    match std::env::var_os("CARRYOVER_TEST_FLUSH_FAILS") {
        Some(_) => Err(std::io::Error::other("Input/output error (test hook)")),
        None => Ok(()),
    }
}

#[cfg(not(feature = "test-hooks"))]
fn flush_fails() -> std::io::Result<()> {
    Ok(())
}

/// Flushes the filesystem of a data path every `FLUSH_EVERY` while the workers write
/// (syncfs, from a thread of its own): the kernel writes the files back one at a time in
/// one thread of its own, and left to the final flush, tens of thousands of small files
/// made it wait a second or two after the last write; along the way, that work overlaps
/// the restore's. Durability still comes from the final flush (`Filesystems::sync`).
struct Flusher {
    stop: std::sync::mpsc::Sender<()>,
    thread: thread::JoinHandle<Option<std::io::Error>>,
}

/// How often `Flusher` flushes (measured on the cold bench: every 0.5 s or 1 s, the final
/// flush took 0.6–0.9 s instead of 1.7–2.2 s and the restore 0.4 s less of 7).
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

impl Flusher {
    /// Flushes the filesystem of `dir` as it is now (opened once, not followed if a
    /// link: a data path that is not a directory yet is not flushed along the way — the
    /// final flush is what makes the restore durable; only a flush's own error counts).
    fn start(dir: &Path) -> Flusher {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let opened = sys::open_filesystem(dir).ok();
        let thread = thread::spawn(move || {
            let d = opened?;
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(FLUSH_EVERY)
            {
                if let Err(e) = sys::sync_opened(&d) {
                    return Some(e);
                }
            }
            None
        });
        Flusher { stop, thread }
    }

    /// Stops flushing; the error of a flush that failed (whatever it failed to write is
    /// not on disk: the restore must not be taken as done).
    fn stop(self) -> Option<std::io::Error> {
        drop(self.stop);
        self.thread
            .join()
            .unwrap_or_else(|_| Some(std::io::Error::other("the flushing thread panicked")))
    }
}

/// The filesystems a restore wrote to (by device), each with a directory on it.
///
/// Durability: the workers write, chmod and rename without waiting for the disk (a
/// `Flusher` flushes along the way); when every data path is done, `sync` flushes each of
/// these filesystems once (syncfs: file contents, inodes and directory entries alike) —
/// the data step starts it and its check runs meanwhile — and only once it returned
/// without a problem is the data step journaled as done. A crash before that leaves the
/// step undone: the next run writes again whatever is not in place (size and mtime, which
/// are set last). Other filesystems' dirty pages are not waited for, as a global `sync()`
/// did.
#[derive(Debug, Default)]
pub struct Filesystems(BTreeMap<u64, PathBuf>);

impl Filesystems {
    /// Notes the filesystem of an existing directory (a data path, or a directory the
    /// restore did not make, which may be a mount point).
    fn add(&mut self, dir: &Path) {
        if let Ok(m) = std::fs::symlink_metadata(dir) {
            self.0
                .entry(sys::file_meta(&m).dev)
                .or_insert_with(|| dir.to_path_buf());
        }
    }

    /// Flushes every filesystem; what could not be flushed.
    pub fn sync(&self) -> Vec<Problem> {
        let mut failed = Vec::new();
        for dir in self.0.values() {
            if let Err(e) = sys::sync_filesystem(dir).and_then(|()| flush_fails()) {
                failed.push(Problem::new(
                    dir.display().to_string(),
                    format!("flushing the restored files to disk: {e}"),
                ));
            }
        }
        failed
    }
}

struct Job {
    host: PathBuf,
    shown: String,
    node: Node,
    /// Its directory was made by this restore: nothing can be in the way.
    fresh: bool,
    /// The owner (uid, gid) the file gets on this system.
    owner: (u32, u32),
    /// What identifies its folder (`FolderId`).
    folder: Option<FolderId>,
}

/// What a writer is handed: a whole file, or a piece of a large one.
enum Work {
    File(Box<Job>),
    Piece(Arc<Split>, Piece),
}

impl Work {
    fn job(&self) -> &Job {
        match self {
            Work::File(job) => job,
            Work::Piece(split, _) => &split.job,
        }
    }

    /// The chunks this work writes (`None`: its file is in place, nothing is read).
    fn chunks(&self) -> Option<Vec<BlobId>> {
        if !needs_content(self.job()) {
            return None;
        }
        Some(match self {
            Work::File(job) => job.node.chunk_ids().collect(),
            Work::Piece(split, p) => p.ids(&split.job.node).to_vec(),
        })
    }
}

/// A large file written in pieces by several workers: made (or found in place) by the
/// first piece to come, finished — size, metadata, name — by the last one to be done.
struct Split {
    job: Job,
    /// Pieces not done yet.
    left: std::sync::atomic::AtomicUsize,
    state: Mutex<SplitState>,
}

impl Drop for Split {
    /// Pieces that never came to an end (the restore stopped, a worker panicked): the file
    /// they were writing is removed, not left half written.
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(Opened::Writing(_, dir, tmp)) = st.opened.take() {
            let _ = dir.remove_file(&tmp);
        }
    }
}

#[derive(Default)]
struct SplitState {
    opened: Option<Opened>,
    written: u64,
    /// The first piece that failed: the file is not put in place.
    error: Option<anyhow::Error>,
}

enum Opened {
    /// Already in place (true: its metadata was set).
    Done(bool),
    /// Being written in its folder, under `tmp` (its own name in a folder the restore
    /// made).
    Writing(Arc<Target>, Arc<sys::Dir>, OsString),
    Failed(String),
}

/// Chunks `first..first + count` of a file: `len` content bytes from `start` on.
struct Piece {
    first: usize,
    count: usize,
    start: u64,
    len: u64,
}

impl Piece {
    /// The piece's chunks, of its file's node.
    fn ids<'a>(&self, n: &'a Node) -> &'a [BlobId] {
        &n.chunks[self.first..self.first + self.count]
    }
}

/// The work of one regular file: in pieces when it holds more than a `PIECE` and the index
/// knows the length of every chunk (their sum must be the file's content: else it goes
/// whole, and the writer names what is wrong).
fn split(job: Job, index: &Mutex<Index>) -> Vec<Work> {
    let n = &job.node;
    // implausible sizes and regions go whole: the writer refuses them and names them
    if check_sizes(n).is_err() || n.data_len() <= PIECE || n.chunks.len() < 2 {
        return vec![Work::File(Box::new(job))];
    }
    let lengths: Option<Vec<u64>> = {
        let index = index.lock().expect("index");
        n.chunk_ids()
            .map(|id| index.blobs.get(&id).map(|l| l.raw_length as u64))
            .collect()
    };
    let Some(lengths) = lengths.filter(|l| l.iter().sum::<u64>() == n.data_len()) else {
        return vec![Work::File(Box::new(job))];
    };
    let mut pieces = Vec::new();
    let (mut first, mut start, mut len) = (0, 0, 0);
    for (i, l) in lengths.iter().enumerate() {
        len += l;
        if len >= PIECE || i + 1 == lengths.len() {
            pieces.push(Piece {
                first,
                count: i + 1 - first,
                start,
                len,
            });
            first = i + 1;
            start += len;
            len = 0;
        }
    }
    let split = Arc::new(Split {
        job,
        left: pieces.len().into(),
        state: Mutex::new(SplitState::default()),
    });
    pieces
        .into_iter()
        .map(|p| Work::Piece(split.clone(), p))
        .collect()
}

/// Mixes the pieces of large files into the stream of small ones. A large file is read
/// and written at the disk's pace with cores to spare; thousands of small ones keep the
/// cores busy making files while the disk idles. In tree order they come one after the
/// other (`/data/large` before `/data/small`), so the pieces are held back here and go
/// out along the small files that follow them: one piece each time the files handed out
/// since the last one are worth a piece (`FILE_COST` each, plus their size). What is
/// still held when the walk ends goes out then, in order.
#[derive(Default)]
struct Mixer {
    held: std::collections::VecDeque<Work>,
    credit: u64,
}

impl Mixer {
    /// The work to hand out now, in order (`work` itself, or nothing when it is held).
    fn next(&mut self, work: Work) -> Vec<Work> {
        match work {
            Work::Piece(..) if self.held.len() < HELD => {
                self.held.push_back(work);
                Vec::new()
            }
            // full: the oldest goes out (the pieces of a file stay in order)
            Work::Piece(..) => {
                self.held.push_back(work);
                self.held.pop_front().into_iter().collect()
            }
            Work::File(ref job) => {
                if self.held.is_empty() {
                    return vec![work];
                }
                self.credit = self.credit.saturating_add(FILE_COST + job.node.size);
                let mut out = vec![work];
                while let Some(Work::Piece(_, p)) = self.held.front()
                    && p.len <= self.credit
                {
                    self.credit -= p.len;
                    out.extend(self.held.pop_front());
                }
                if self.held.is_empty() {
                    self.credit = 0;
                }
                out
            }
        }
    }

    /// What is still held, once the walk is over.
    fn rest(&mut self) -> impl Iterator<Item = Work> + '_ {
        self.credit = 0;
        self.held.drain(..)
    }
}

#[allow(clippy::too_many_arguments)]
fn restore_root(
    store: &Store,
    index: &Arc<Mutex<Index>>,
    owners: &Arc<Owners>,
    shown_root: &str,
    top: &Arc<sys::Dir>,
    mut reader: TreeReader,
    progress: &Progress,
    out: &mut DataRestore,
    filesystems: &mut Filesystems,
) -> Result<()> {
    // walker → planner (pack-level reads, fetched ahead) → workers, all in tree order,
    // through blocking channels (a waiting thread sleeps; it neither spins nor yields)
    let (tx, jobs) = sync_channel::<Work>(1024);
    // thousands of small files are a few ranges: the queue holds enough of them for the
    // reads to be requested a round trip ahead of the writers
    let (handoff, handing) = fetch::Handoff::<Work>::new(HANDOFF);
    let planner = {
        let store = store.clone();
        let index = index.clone();
        let budget = read_ahead(store.backend().connections());
        thread::spawn(move || {
            fetch::plan_in_order(&store, index, budget, jobs, handing, Work::chunks)
        })
    };
    let results = Arc::new(Mutex::new(DataRestore::default()));
    let dest = top.path();
    let flusher = Flusher::start(dest);
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let handoff = handoff.clone();
            let store = store.clone();
            let index = index.clone();
            let owners = owners.clone();
            let results = results.clone();
            let done = progress.done();
            let mut folders = Folders::new(top.clone());
            let mut stage = None;
            thread::spawn(move || {
                while let Some((work, chunks)) = handoff.next() {
                    let chunks = chunks.map(InOrder::new);
                    let r = match &work {
                        Work::File(job) => {
                            done.file(job.node.size);
                            let f = &mut folders;
                            write_file(&store, &index, &owners, f, &mut stage, job, chunks)
                        }
                        Work::Piece(split, piece) => {
                            let last = write_piece(
                                &store,
                                &index,
                                &owners,
                                &mut folders,
                                &mut stage,
                                split,
                                piece,
                                chunks,
                            );
                            done.bytes(piece.len);
                            match last {
                                None => continue,
                                Some(r) => {
                                    let n = &split.job.node;
                                    done.file(n.size.saturating_sub(n.data_len()));
                                    r
                                }
                            }
                        }
                    };
                    let job = work.job();
                    let mut res = results.lock().expect("results");
                    match r {
                        Ok((n, changed)) => {
                            res.files += 1;
                            res.bytes += n;
                            res.count(changed);
                        }
                        Err(e) => res.failed.push(Problem::new(&job.shown, format!("{e:#}"))),
                    }
                }
            })
        })
        .collect();
    drop(handoff);

    // every folder of the tree (path below the top) and what identifies it
    let mut dirs: HashMap<Vec<u8>, Option<FolderId>> = HashMap::new();
    let mut fresh_dirs: HashSet<Vec<u8>> = HashSet::new();
    let mut deferred_dirs: Vec<(String, Node, bool)> = Vec::new();
    let mut links: Vec<(PathBuf, String, Node, Option<FolderId>)> = Vec::new();
    let mut prev: Option<Vec<u8>> = None;
    let shown = |p: &[u8]| {
        if p.is_empty() {
            shown_root.to_string()
        } else {
            format!(
                "{}/{}",
                shown_root.trim_end_matches('/'),
                String::from_utf8_lossy(p)
            )
        }
    };
    let mut tree_error = None;
    let mut mixer = Mixer::default();
    let mut folders = Folders::new(top.clone());
    loop {
        let node = match reader.next_node() {
            Ok(Some(n)) => n,
            Ok(None) => break,
            Err(e) => {
                tree_error = Some(e);
                break;
            }
        };
        let name = shown(&node.path);
        if owners.not_into(&name) {
            out.not_written += 1;
            continue;
        }
        let in_order = prev
            .as_ref()
            .is_none_or(|p| path_cmp(p, &node.path).is_lt());
        if !check_path(&node.path) || !in_order {
            out.failed.push(Problem::new(
                &name,
                "invalid or out-of-order entry in the snapshot; refused",
            ));
            continue;
        }
        prev = Some(node.path.clone());
        // the names the restore writes under before renaming: an entry of the snapshot
        // with one would share it with the file it belongs to (a decoy planted in a shared
        // folder before the capture, or a leftover of a crashed restore there)
        if node.path.ends_with(TEMP_TAIL.as_bytes()) {
            out.failed.push(Problem::new(
                &name,
                "a name carryover keeps for its own temporary files; refused",
            ));
            continue;
        }
        let parent = parent_of(&node.path).to_vec();
        let in_folder = dirs.get(&parent).copied();
        if !node.path.is_empty() && in_folder.is_none() {
            out.failed.push(Problem::new(
                &name,
                "its parent is not a directory of the snapshot; refused",
            ));
            continue;
        }
        let host = if node.path.is_empty() {
            dest.to_path_buf()
        } else {
            dest.join(sys::os_from_bytes(&node.path))
        };
        match node.kind {
            Kind::Dir => {
                let made = match node.path.is_empty() {
                    true => Ok((top.clone(), false)),
                    false => folders
                        .get(&parent, in_folder.flatten())
                        .and_then(|p| ensure_dir(&p, &base_name(&node.path)))
                        .map(|(d, created)| (Arc::new(d), created)),
                };
                match made {
                    Ok((dir, created)) => {
                        if created {
                            fresh_dirs.insert(node.path.clone());
                        } else {
                            filesystems.add(&host);
                        }
                        let id = folders.keep(node.path.clone(), dir);
                        dirs.insert(node.path.clone(), id);
                        deferred_dirs.push((name, node, created));
                    }
                    Err(e) => out.failed.push(Problem::new(&name, e)),
                }
            }
            Kind::File => {
                if node.path.is_empty() {
                    out.failed
                        .push(Problem::new(&name, "a data path must be a directory"));
                    continue;
                }
                let job = Job {
                    host,
                    shown: name,
                    owner: owners.ids(&node),
                    folder: in_folder.flatten(),
                    node,
                    fresh: fresh_dirs.contains(&parent),
                };
                for work in split(job, index).into_iter().flat_map(|w| mixer.next(w)) {
                    if tx.send(work).is_err() {
                        bail!("the restore workers stopped");
                    }
                }
            }
            Kind::Hardlink => links.push((host, name, node, in_folder.flatten())),
            Kind::Symlink | Kind::Fifo | Kind::Char | Kind::Block => {
                let made = folders
                    .get(&parent, in_folder.flatten())
                    .map_err(anyhow::Error::from)
                    .and_then(|dir| make_other(&dir, &node, owners));
                match made {
                    Ok(changed) => out.count(changed),
                    Err(e) => out.failed.push(Problem::new(name, format!("{e:#}"))),
                }
            }
        }
    }
    for work in mixer.rest() {
        if tx.send(work).is_err() {
            bail!("the restore workers stopped");
        }
    }
    drop(tx);
    let ranges = planner
        .join()
        .map_err(|_| anyhow!("the restore planner panicked"))?;
    tracing::debug!("{shown_root}: file contents read in {ranges} ranges");
    for w in workers {
        w.join().map_err(|_| anyhow!("a restore worker panicked"))?;
    }
    if let Some(e) = flusher.stop() {
        out.failed.push(Problem::new(
            shown_root,
            format!("flushing the restored files to disk: {e}"),
        ));
    }
    store.backend().drop_spare();
    {
        let mut r = results.lock().expect("results");
        out.files += r.files;
        out.bytes += r.bytes;
        out.changed += r.changed;
        out.unchanged += r.unchanged;
        progress.tally(r.bytes);
        out.failed.append(&mut r.failed);
    }
    for (host, name, node, folder) in links {
        match make_hardlink(top, owners, &mut folders, (&host, folder), &node) {
            Ok(changed) => {
                out.files += 1;
                out.count(changed);
            }
            Err(e) => out.failed.push(Problem::new(name, format!("{e:#}"))),
        }
    }
    for (name, node, created) in deferred_dirs.iter().rev() {
        let parent = parent_of(&node.path);
        let id = dirs.get(&node.path).copied().flatten();
        let entry = match node.path.is_empty() {
            true => top.entry_self(),
            false => folders
                .get(parent, dirs.get(parent).copied().flatten())
                .and_then(|d| d.entry(&base_name(&node.path)))
                .and_then(|e| {
                    let m = sys::file_meta(&e.metadata()?);
                    match id {
                        Some(id) if id != (m.dev, m.ino, m.uid) => Err(replaced()),
                        _ => Ok(e),
                    }
                }),
        };
        let applied = entry
            .map_err(anyhow::Error::from)
            .and_then(|e| apply_meta(&e, node, owners));
        match applied {
            Ok(changed) => out.count(*created || changed),
            Err(e) => out.failed.push(Problem::new(name, format!("{e:#}"))),
        }
    }
    if let Some(e) = tree_error {
        out.failed.push(Problem::new(
            shown_root,
            format!("the rest of the tree cannot be read: {e:#}"),
        ));
    }
    Ok(())
}

/// Folders of one data path, opened below its top one component at a time, never
/// through a symlink (`sys::Dir::open_beneath`), the last few kept (consecutive entries
/// mostly share one). Whatever a restore makes, renames or removes in a folder goes
/// through the folder's descriptor: a folder renamed and replaced by a symlink while the
/// restore runs — as a user owning the folder above can do — sends nothing outside.
struct Folders {
    top: Arc<sys::Dir>,
    /// (path below the top, folder, what identifies it), the most recently used last.
    kept: Vec<(Vec<u8>, Arc<sys::Dir>, Option<FolderId>)>,
}

/// What identifies a folder (device, inode, owner; `None` where the platform does not
/// say): one found again by name is the one the walker made or found only when this
/// matches — not another real folder a user with write access above moved into its place,
/// nor one she made after removing the restore's (its inode number reused: her owner).
type FolderId = (u64, u64, u32);

/// Folders a `Folders` keeps open.
const KEPT: usize = 8;

/// The error of a folder found by name that is not the one the restore made or found.
fn replaced() -> std::io::Error {
    std::io::Error::other("the folder was replaced while the restore ran; refused")
}

impl Folders {
    fn new(top: Arc<sys::Dir>) -> Folders {
        Folders {
            top,
            kept: Vec::new(),
        }
    }

    /// The folder at `rel` below the top (`""`: the top), opened from the nearest kept
    /// folder above it; its parent is kept too (the next folder is mostly a sibling: one
    /// step from there). `want`: what must identify it (the walker's record).
    fn get(&mut self, rel: &[u8], want: Option<FolderId>) -> std::io::Result<Arc<sys::Dir>> {
        let (dir, id) = self.find(rel)?;
        match want {
            Some(w) if id != Some(w) => Err(replaced()),
            _ => Ok(dir),
        }
    }

    fn find(&mut self, rel: &[u8]) -> std::io::Result<(Arc<sys::Dir>, Option<FolderId>)> {
        if rel.is_empty() {
            return Ok((self.top.clone(), self.top.id()));
        }
        if let Some(i) = self.kept.iter().rposition(|(r, ..)| r == rel) {
            let kept = self.kept.remove(i);
            let found = (kept.1.clone(), kept.2);
            self.kept.push(kept);
            return Ok(found);
        }
        let (mut at, mut from) = (0, self.top.clone());
        for (r, d, _) in &self.kept {
            if r.len() > at && rel.starts_with(r) && rel.get(r.len()) == Some(&b'/') {
                (at, from) = (r.len() + 1, d.clone());
            }
        }
        let parent = parent_of(rel);
        if parent.len() > at {
            from = Arc::new(from.open_beneath(&parent[at..])?);
            self.keep(parent.to_vec(), from.clone());
            at = parent.len() + 1;
        }
        let dir = Arc::new(from.open_beneath(&rel[at..])?);
        let id = self.keep(rel.to_vec(), dir.clone());
        Ok((dir, id))
    }

    /// Keeps a folder this thread opened or made; what identifies it.
    fn keep(&mut self, rel: Vec<u8>, dir: Arc<sys::Dir>) -> Option<FolderId> {
        if self.kept.len() >= KEPT {
            self.kept.remove(0);
        }
        let id = dir.id();
        self.kept.push((rel, dir, id));
        id
    }
}

/// The folder part of a path below a data path (`""` at the top).
fn parent_of(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|c| *c == b'/') {
        Some(i) => &path[..i],
        None => b"",
    }
}

/// The last component of a path below a data path.
fn base_name(path: &[u8]) -> std::ffi::OsString {
    let start = path.iter().rposition(|c| *c == b'/').map_or(0, |i| i + 1);
    sys::os_from_bytes(&path[start..])
}

/// Makes `name` in `parent` a real directory (a file or symlink in the way is removed,
/// never followed) and opens it; true when it made a new, empty one — 0700 (whatever the
/// umask) until its own metadata is set once everything in it is written.
fn ensure_dir(parent: &sys::Dir, name: &OsStr) -> std::io::Result<(sys::Dir, bool)> {
    match parent.mkdir(name, 0o700) {
        Ok(d) => return Ok((d, true)),
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
        Err(_) => {}
    }
    if parent.is_dir(name) {
        return Ok((parent.open_beneath(&sys::os_bytes(name))?, false));
    }
    parent.remove_file(name)?;
    Ok((parent.mkdir(name, 0o700)?, true))
}

/// The temporary name a file is written under before it replaces what is in place:
/// the same in every run (no pid, no random part), so the run after a crash finds the
/// one the crashed run left and removes it before writing the file again — a restore
/// leaves nothing of its own in a folder it did not make. Two restores never write at
/// once (`local::RunMarker`: the machine's restore lock).
/// A name too long to carry both (a name has at most 255 bytes) is replaced by its hash.
fn temp_name(name: &OsStr) -> OsString {
    let mut t = OsString::from(sys::TEMP_LEAD);
    if sys::TEMP_LEAD.len() + name.len() + TEMP_TAIL.len() <= 255 {
        t.push(name);
    } else {
        let h = blake3::hash(&sys::os_bytes(name));
        t.push(&h.to_hex()[..32]);
    }
    t.push(TEMP_TAIL);
    t
}

/// What ends a restore's temporary name (after `TEMP_LEAD` and the file's own name).
const TEMP_TAIL: &str = ".carryover-tmp-restore";

/// Puts the temporary file in place; a directory in the way is not removed.
fn put_in_place(dir: &sys::Dir, tmp: &OsStr, name: &OsStr) -> Result<()> {
    if dir.is_dir(name) {
        let _ = dir.remove_file(tmp);
        bail!("a directory is in the way");
    }
    dir.rename(tmp, name).map_err(|e| {
        let _ = dir.remove_file(tmp);
        anyhow!("renaming into place: {e}")
    })
}

/// How many bytes are read ahead of the writers: enough ranges for every connection, at
/// most 64 MiB (16 ranges: past that, memory grows and the time does not shrink).
fn read_ahead(connections: usize) -> u64 {
    (connections + 2).clamp(4, 16) as u64 * fetch::MAX_RANGE
}

/// True when the file at `m` is taken as the node's content: a file of the same size and
/// mtime (from an earlier run, or on a surviving data disk) that already has the owner it
/// is to get. Only its owner (or root) can give a file an mtime of its choosing: without
/// the owner check, a user who can write to the folder could plant a file of that size
/// and mtime in place of root's setuid program and have the restore make it root's and
/// setuid (or another group's, setgid). One of another owner is written again.
fn same_content(m: &std::fs::Metadata, n: &Node, (uid, gid): (u32, u32)) -> bool {
    let fm = sys::file_meta(m);
    m.is_file()
        && fm.size == n.size
        && (fm.mtime, fm.mtime_ns) == (n.mtime, n.mtime_ns)
        && sys::owner_matches(m, uid, gid)
}

/// Whether a file's content must be read from the store (not when it is in place). A
/// look by name only, to plan the reads: what the file's writer does is decided again on
/// its folder's descriptor (`prepare`); a wrong guess costs a read, never a write.
fn needs_content(job: &Job) -> bool {
    job.fresh
        || !std::fs::symlink_metadata(&job.host)
            .is_ok_and(|m| same_content(&m, &job.node, job.owner))
}

/// Refuses a node whose size or data regions are not plausible.
fn check_sizes(n: &Node) -> Result<()> {
    if n.size > MAX_FILE_SIZE {
        bail!("size {} is not plausible; refused", n.size);
    }
    let extents_ok = match &n.extents {
        None => true,
        Some(ex) => {
            let mut end = 0u64;
            ex.iter().all(|(o, l)| {
                let ok = *o >= end && o.checked_add(*l).is_some_and(|e| e <= n.size);
                end = o + l;
                ok
            })
        }
    };
    if !extents_ok {
        bail!("its data regions do not fit its size; refused");
    }
    Ok(())
}

/// A file about to be written: where, or why not.
enum Prepared {
    /// Already in place: nothing to write (true: its metadata was set).
    Done(bool),
    /// To be written into `file`, which is `tmp` in its folder (the file's own name in a
    /// folder the restore made).
    Write(Target, Arc<sys::Dir>, OsString),
}

/// A file being written: its descriptor, and for large content a second one that writes
/// past the page cache (`direct`).
struct Target {
    file: File,
    direct: Option<File>,
}

impl Target {
    /// The file `f`, just made, to be written with the content of `n`: large content
    /// gets a direct descriptor where the filesystem has direct I/O, and then its blocks
    /// reserved.
    fn new(f: File, n: &Node) -> Target {
        let direct = (n.data_len() >= direct::DIRECT_FROM)
            .then(|| sys::reopen_direct(&f))
            .flatten();
        if direct.is_some() {
            match &n.extents {
                None => sys::preallocate(&f, 0, n.size),
                Some(ex) => ex.iter().for_each(|(o, l)| sys::preallocate(&f, *o, *l)),
            }
        }
        Target { file: f, direct }
    }
}

/// Looks at what is in place and opens the file to write when it is not (in its folder
/// opened from the top of the data path, never through a symlink).
fn prepare(owners: &Owners, folders: &mut Folders, job: &Job) -> Result<Prepared> {
    let n = &job.node;
    check_sizes(n)?;
    before_file(&job.host);
    let dir = folders.get(parent_of(&n.path), job.folder)?;
    let name = base_name(&n.path);
    // Already there from an earlier run or on a surviving data disk: the content is
    // taken as the same when size and mtime are. Only what differs is set; a file with
    // other names (hard links) is never changed in place, but written anew when its
    // metadata differs.
    // The entry is opened once, without following a link, and its metadata is set on
    // what was opened: a name swapped for a link meanwhile changes nothing outside.
    if job.fresh {
    } else if let Ok(e) = dir.entry(&name)
        && let Ok(m) = e.metadata()
        && same_content(&m, n, job.owner)
    {
        if sys::file_meta(&m).nlink == 1 {
            return Ok(Prepared::Done(apply_meta(&e, n, owners)?));
        }
        if !meta_differs(&e, n, owners)? {
            return Ok(Prepared::Done(false));
        }
    }
    // In a folder this restore made (0700 until its own metadata is set at the end) the
    // file is written under its own name: nothing can be in the way, and a crash leaves
    // it with a size or mtime (set last, once its content is on disk: `finish`) that the
    // next run does not take as in place.
    // Elsewhere a temporary name (0600), renamed over what is there once complete.
    if job.fresh
        && let Ok(f) = dir.create_new(&name, first_mode(n.mode))
    {
        return Ok(Prepared::Write(Target::new(f, n), dir, name));
    }
    let tmp = temp_name(&name);
    let f = dir.create_replacing(&tmp, 0o600)?;
    Ok(Prepared::Write(Target::new(f, n), dir, tmp))
}

/// The permission bits a file starts with, before its owner and mode are set: nobody but
/// root gets more than it will have at the end (group and others each get only what both
/// get: the group a file is made with may not be its own). The common modes (0644, 0755)
/// come out whole and need no chmod; setuid, setgid and sticky bits only come with it.
fn first_mode(mode: u32) -> u32 {
    let shared = (mode >> 3) & mode & 0o7;
    (mode & 0o700) | (shared << 3) | shared
}

/// Completes a written file: its size, its metadata (times last), its name. On an error
/// the temporary file is removed.
fn finish(
    owners: &Owners,
    job: &Job,
    t: Target,
    (dir, tmp): (&sys::Dir, &OsStr),
    written: u64,
) -> Result<()> {
    let n = &job.node;
    let name = base_name(&n.path);
    let Target { file: f, direct } = t;
    let r = (|| -> Result<()> {
        if n.extents.is_some() || written != n.size {
            f.set_len(n.size)?;
        }
        if direct.is_some() {
            // its blocks were reserved up front, so its size is on disk already: the few
            // blocks written through the cache go to disk before the mtime is set, or a
            // power cut could leave a file of the right size, mtime and owner with zeros
            // where they belong, which the next run would take as in place (the direct
            // writes are done; the mtime commits after the blocks' allocation is logged)
            drop(direct);
            sys::write_back_and_wait(&f)?;
        } else if written >= WRITEBACK_FROM {
            sys::start_writeback(&f);
        }
        // on the open file: the temporary name is in a folder others may write to
        apply_meta(&sys::Entry::of_file(f, &dir.path().join(tmp)), n, owners)?;
        Ok(())
    })();
    if let Err(e) = r {
        let _ = dir.remove_file(tmp);
        return Err(e);
    }
    if tmp != name {
        crash_before_rename(&job.host);
        put_in_place(dir, tmp, &name)?;
    }
    Ok(())
}

/// Test hook (`test-hooks` builds only): `CARRYOVER_TEST_CRASH_BEFORE_RENAME=<name>`
/// kills the restore (SIGKILL: nothing runs after it) when the file of that name is
/// written in full under its temporary name, before it is put in place.
#[cfg(feature = "test-hooks")]
fn crash_before_rename(host: &Path) {
    if std::env::var_os("CARRYOVER_TEST_CRASH_BEFORE_RENAME").as_deref() == host.file_name() {
        #[cfg(unix)]
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        std::process::exit(137);
    }
}

#[cfg(not(feature = "test-hooks"))]
fn crash_before_rename(_: &Path) {}

/// Test hook (`test-hooks` builds only): `CARRYOVER_TEST_BEFORE_FILE=<name>:<command>` runs
/// the command with `sh -c` right before a worker opens the folder of the file of that
/// name to write it — the moment another user's swap of that folder would do most harm.
#[cfg(feature = "test-hooks")]
fn before_file(host: &Path) {
    if let Some((name, cmd)) = std::env::var("CARRYOVER_TEST_BEFORE_FILE")
        .ok()
        .as_deref()
        .and_then(|v| v.split_once(':'))
        && host.file_name() == Some(OsStr::new(name))
    {
        let _ = std::process::Command::new("sh").args(["-c", cmd]).status();
    }
}

#[cfg(not(feature = "test-hooks"))]
fn before_file(_: &Path) {}

/// Writes one regular file (its chunks from `chunks` when they were planned); returns the
/// bytes written and whether anything changed.
fn write_file(
    store: &Store,
    index: &Mutex<Index>,
    owners: &Owners,
    folders: &mut Folders,
    stage: &mut Option<Stage>,
    job: &Job,
    chunks: Option<InOrder>,
) -> Result<(u64, bool)> {
    let n = &job.node;
    let (t, dir, tmp) = match prepare(owners, folders, job)? {
        Prepared::Done(changed) => return Ok((0, changed)),
        Prepared::Write(t, dir, tmp) => (t, dir, tmp),
    };
    let ids = n.chunk_ids();
    let written = match write_content(store, index, &t, stage, n, chunks, ids, 0, n.data_len()) {
        Ok(w) => w,
        Err(e) => {
            let _ = dir.remove_file(&tmp);
            return Err(e);
        }
    };
    finish(owners, job, t, (&dir, &tmp), written)?;
    Ok((written, true))
}

/// Writes one piece of a split file; the first piece to come makes the file (or finds it
/// in place), the last one to be done finishes it and returns what a whole file returns.
#[allow(clippy::too_many_arguments)]
fn write_piece(
    store: &Store,
    index: &Mutex<Index>,
    owners: &Owners,
    folders: &mut Folders,
    stage: &mut Option<Stage>,
    split: &Split,
    piece: &Piece,
    chunks: Option<InOrder>,
) -> Option<Result<(u64, bool)>> {
    let lock = || split.state.lock().unwrap_or_else(|e| e.into_inner());
    let file = {
        let mut st = lock();
        let failed = st.error.is_some();
        let opened = st
            .opened
            .get_or_insert_with(|| match prepare(owners, folders, &split.job) {
                Ok(Prepared::Done(changed)) => Opened::Done(changed),
                Ok(Prepared::Write(t, dir, tmp)) => Opened::Writing(Arc::new(t), dir, tmp),
                Err(e) => Opened::Failed(format!("{e:#}")),
            });
        match opened {
            Opened::Writing(f, ..) if !failed => Some(f.clone()),
            _ => None,
        }
    };
    if let Some(f) = file {
        let n = &split.job.node;
        let ids = piece.ids(n).iter().copied();
        let r = write_content(
            store,
            index,
            &f,
            stage,
            n,
            chunks,
            ids,
            piece.start,
            piece.len,
        );
        // every other piece's handle is gone before the last one finishes the file
        drop(f);
        let mut st = lock();
        match r {
            Ok(w) => st.written += w,
            Err(e) => {
                st.error.get_or_insert(e);
            }
        }
    }
    if split.left.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) != 1 {
        return None;
    }
    let mut st = lock();
    let (error, written) = (st.error.take(), st.written);
    Some(match st.opened.take() {
        Some(Opened::Done(changed)) => Ok((0, changed)),
        Some(Opened::Failed(e)) => Err(anyhow!(e)),
        Some(Opened::Writing(f, dir, tmp)) => match (error, Arc::try_unwrap(f)) {
            (None, Ok(t)) => {
                finish(owners, &split.job, t, (&dir, &tmp), written).map(|()| (written, true))
            }
            (error, _) => {
                let _ = dir.remove_file(&tmp);
                Err(error.unwrap_or_else(|| anyhow!("a piece of the file is still held")))
            }
        },
        None => Err(anyhow!("the file was never opened")),
    })
}

/// Writes the chunks into the file, at the data regions of a sparse file. A planned chunk
/// is decoded and checked here; one that did not come or is bad is read again from every
/// copy the index has.
#[allow(clippy::too_many_arguments)]
fn write_content(
    store: &Store,
    index: &Mutex<Index>,
    t: &Target,
    stage: &mut Option<Stage>,
    n: &Node,
    mut chunks: Option<InOrder>,
    ids: impl Iterator<Item = BlobId>,
    start: u64,
    expected: u64,
) -> Result<u64> {
    let regions = n.extents.clone().unwrap_or_else(|| vec![(0, n.size)]);
    // the region holding content byte `start`, and how far into it
    let mut region = 0usize;
    let mut in_region = start;
    while let Some(&(_, len)) = regions.get(region)
        && in_region > len
    {
        in_region -= len;
        region += 1;
    }
    let direct = t
        .direct
        .as_ref()
        .map(|d| (d, stage.get_or_insert_with(Stage::new)));
    let mut out = direct::Writer::new(&t.file, direct);
    let mut written = 0u64;
    for id in ids {
        // a planned chunk is decoded in the range it was read with (no copy when it is
        // stored as is); one that did not come or is bad is read again from every copy
        let planned = match chunks.as_mut().map(InOrder::next_chunk) {
            Some((Some(loc), Ok(stored))) => Some((loc, stored)),
            _ => None,
        };
        let decoded = planned.as_ref().and_then(|(loc, stored)| {
            repo::decode_ref(store, stored.bytes(), loc, &id, repo::DATA).ok()
        });
        let data = match decoded {
            Some(d) => d,
            None => std::borrow::Cow::Owned(repo::read_blob(store, index, &id, repo::DATA)?),
        };
        let mut rest = &data[..];
        while !rest.is_empty() {
            let Some(&(off, len)) = regions.get(region) else {
                bail!("the content is longer than its size; refused");
            };
            if in_region == len {
                region += 1;
                in_region = 0;
                continue;
            }
            let take = ((len - in_region) as usize).min(rest.len());
            out.write(&rest[..take], off + in_region)?;
            in_region += take as u64;
            rest = &rest[take..];
        }
        written += data.len() as u64;
    }
    out.finish()?;
    if written != expected {
        bail!("the content ({written} bytes) does not match its size ({expected}); refused");
    }
    Ok(written)
}

/// Symlinks, FIFOs and device nodes, made in their folder `dir`; one already in place
/// (the same target, the same kind of node and device) only gets the metadata that
/// differs. True when it changed.
fn make_other(dir: &sys::Dir, n: &Node, owners: &Owners) -> Result<bool> {
    let name = base_name(&n.path);
    if let Ok(e) = dir.entry(&name)
        && let Ok(m) = e.metadata()
    {
        let same = match n.kind {
            Kind::Symlink => {
                m.file_type().is_symlink()
                    && dir
                        .read_link(&name)
                        .is_ok_and(|t| t == sys::os_from_bytes(&n.target))
            }
            Kind::Fifo => sys::special_kind(&m.file_type()) == Some("fifo"),
            Kind::Char | Kind::Block => {
                let kind = if n.kind == Kind::Char {
                    "char"
                } else {
                    "block"
                };
                sys::special_kind(&m.file_type()) == Some(kind) && sys::file_meta(&m).rdev == n.rdev
            }
            _ => false,
        };
        if same {
            return apply_meta(&e, n, owners);
        }
    }
    let tmp = temp_name(&name);
    let _ = dir.remove_file(&tmp);
    match n.kind {
        Kind::Symlink => dir.symlink(&sys::os_from_bytes(&n.target), &tmp)?,
        Kind::Fifo => dir.make_special(&tmp, "fifo", n.mode, 0)?,
        Kind::Char => dir.make_special(&tmp, "char", n.mode, n.rdev)?,
        Kind::Block => dir.make_special(&tmp, "block", n.mode, n.rdev)?,
        _ => bail!("not a special file"),
    }
    if let Err(e) = dir
        .entry(&tmp)
        .map_err(anyhow::Error::from)
        .and_then(|e| apply_meta(&e, n, owners))
    {
        let _ = dir.remove_file(&tmp);
        return Err(e);
    }
    put_in_place(dir, &tmp, &name)?;
    Ok(true)
}

/// A second name of a file restored before; only ever to a regular file of this tree,
/// reached from the top one real folder at a time. True when the link was made (false:
/// it was there).
fn make_hardlink(
    top: &sys::Dir,
    owners: &Owners,
    folders: &mut Folders,
    (host, folder): (&Path, Option<FolderId>),
    n: &Node,
) -> Result<bool> {
    if n.target.is_empty() || !check_path(&n.target) {
        bail!("hard link to an invalid path; refused");
    }
    let first = top.path().join(sys::os_from_bytes(&n.target));
    // a look only: a link found in place is left as it is
    if std::fs::symlink_metadata(host)
        .is_ok_and(|m| std::fs::symlink_metadata(&first).is_ok_and(|f| sys::same_file(&f, &m)))
    {
        return Ok(false);
    }
    let dir = folders.get(parent_of(&n.path), folder)?;
    let name = base_name(&n.path);
    let tmp = temp_name(&name);
    let _ = dir.remove_file(&tmp);
    // every folder on the way real, the file regular: no path through a symlink, even
    // one swapped in while this runs
    // the file the restore wrote there: the link's node has its inode's owner, size and
    // mtime (not a file of a user's own that she swapped in on the way)
    let owner = owners.ids(n);
    top.link_beneath(&n.target, &dir, &tmp, &|m| same_content(m, n, owner))
        .context("hard link")?;
    put_in_place(&dir, &tmp, &name)?;
    Ok(true)
}

/// Owner (by name), mode, extended attributes, then times — in that order, since chown
/// clears setuid bits and every change moves ctime — each compared first and set only
/// where it differs, so an entry already as in the snapshot is not touched. True when
/// something was set. All of it on the opened entry (`sys::Entry`), never by name again;
/// one of another kind than the node (a link swapped in) is refused.
fn apply_meta(e: &sys::Entry, n: &Node, owners: &Owners) -> Result<bool> {
    sync_meta(e, n, owners, true)
}

/// True when some of the node's metadata differs from the entry's.
fn meta_differs(e: &sys::Entry, n: &Node, owners: &Owners) -> Result<bool> {
    sync_meta(e, n, owners, false)
}

/// True when the entry is of the node's kind.
fn kind_matches(m: &std::fs::Metadata, kind: Kind) -> bool {
    let ft = m.file_type();
    match kind {
        Kind::Dir => ft.is_dir(),
        Kind::File | Kind::Hardlink => ft.is_file(),
        Kind::Symlink => ft.is_symlink(),
        Kind::Fifo => sys::special_kind(&ft) == Some("fifo"),
        Kind::Char => sys::special_kind(&ft) == Some("char"),
        Kind::Block => sys::special_kind(&ft) == Some("block"),
    }
}

fn sync_meta(e: &sys::Entry, n: &Node, owners: &Owners, set: bool) -> Result<bool> {
    let m = e
        .metadata()
        .map_err(|e| anyhow!("reading its metadata: {e}"))?;
    if !kind_matches(&m, n.kind) {
        bail!("it was replaced by something else while being restored; refused");
    }
    let symlink = n.kind == Kind::Symlink;
    let fm = sys::file_meta(&m);
    let (uid, gid) = owners.ids(n);
    let mut differs = false;
    if !sys::owner_matches(&m, uid, gid) {
        differs = true;
        if set {
            e.set_owner(uid, gid)
                .map_err(|e| anyhow!("setting the owner: {e}"))?;
        }
    }
    // after a chown the mode is set again: it may have cleared setuid/setgid
    if !symlink && (differs || !sys::mode_matches(&m, n.mode)) {
        differs = true;
        if set {
            e.set_mode(n.mode & 0o7777)
                .map_err(|e| anyhow!("setting the mode: {e}"))?;
        }
    }
    for x in &n.xattrs {
        if e.xattr_is(&x.name, &x.value) {
            continue;
        }
        differs = true;
        if set && let Err(e) = e.set_xattr(&x.name, &x.value) {
            bail!(
                "setting the extended attribute {}: {e}",
                String::from_utf8_lossy(&x.name)
            );
        }
    }
    if (fm.mtime, fm.mtime_ns) != (n.mtime, n.mtime_ns) {
        differs = true;
        if set {
            e.set_times(n.mtime, n.mtime_ns)
                .map_err(|e| anyhow!("setting the times: {e}"))?;
        }
    }
    Ok(differs)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn node(kind: Kind, mode: u32) -> Node {
        Node {
            mode,
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            mtime: 1_000_000,
            ..Node::bare(b"f".to_vec(), kind)
        }
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    /// A file's job in a folder the restore made.
    fn fresh_job(node: Node, host: PathBuf) -> Job {
        Job {
            host,
            shown: "f".into(),
            owner: (node.uid, node.gid),
            folder: None,
            node,
            fresh: true,
        }
    }

    fn split_of(
        lengths: &[u32],
        extents: Option<Vec<(u64, u64)>>,
        size: u64,
    ) -> Vec<(usize, usize, u64, u64)> {
        let mut index = Index::default();
        let mut n = node(Kind::File, 0o644);
        for (i, l) in lengths.iter().enumerate() {
            let id = BlobId::from_array([i as u8 + 1; 32]);
            n.chunks.push(id);
            index.blobs.insert(
                id,
                repo::BlobLoc {
                    pack: 0,
                    offset: 0,
                    length: *l,
                    raw_length: *l,
                    compressed: false,
                },
            );
        }
        n.size = size;
        n.extents = extents;
        let job = fresh_job(n, PathBuf::from("/nowhere"));
        split(job, &Mutex::new(index))
            .into_iter()
            .map(|w| match w {
                Work::File(j) => (0, j.node.chunks.len(), 0, j.node.data_len()),
                Work::Piece(_, p) => (p.first, p.count, p.start, p.len),
            })
            .collect()
    }

    /// The temporary name is the same in every run (the run after a crash finds the one
    /// left) and fits in a name's 255 bytes, however long the file's own name; every one
    /// ends in the tail the walker refuses in a snapshot (no entry can share one).
    #[test]
    fn temporary_names_are_stable_and_fit() {
        let short = temp_name(OsStr::new("log.txt"));
        assert_eq!(short, ".log.txt.carryover-tmp-restore");
        assert_eq!(short, temp_name(OsStr::new("log.txt")));
        for len in [200, 232, 233, 255] {
            let name = "n".repeat(len);
            let t = temp_name(OsStr::new(&name));
            assert!(t.len() <= 255, "{len}: {t:?}");
            assert!(!t.to_string_lossy().contains('/'));
            assert_eq!(t, temp_name(OsStr::new(&name)));
            assert!(crate::sys::is_temp_name(&t.to_string_lossy()));
        }
        let a = temp_name(OsStr::new(&"a".repeat(250)));
        let b = temp_name(OsStr::new(&format!("{}b", "a".repeat(249))));
        assert_ne!(a, b, "long names stay apart");
        for t in [short, a, b] {
            assert!(t.to_string_lossy().ends_with(TEMP_TAIL));
        }
    }

    /// A large file goes to the writers in pieces of whole chunks, each knowing where its
    /// content starts; anything the index cannot vouch for goes whole.
    #[test]
    fn a_large_file_is_split_into_pieces_where_its_chunks_start() {
        const M: u32 = 1 << 20;
        // 20 chunks of 1 MiB: pieces of 8, 8 and 4 chunks
        let even = split_of(&[M; 20], None, 20 << 20);
        assert_eq!(
            even,
            vec![
                (0, 8, 0, 8 << 20),
                (8, 8, 8 << 20, 8 << 20),
                (16, 4, 16 << 20, 4 << 20)
            ]
        );
        // a sparse file: pieces count content bytes (the regions place them)
        let sparse = split_of(
            &[5 * M, 5 * M, 5 * M],
            Some(vec![(0, 10 << 20), (100 << 20, 5 << 20)]),
            200 << 20,
        );
        assert_eq!(sparse, vec![(0, 2, 0, 10 << 20), (2, 1, 10 << 20, 5 << 20)]);
        // small, or a length the index does not know, or lengths that do not add up to
        // the content: whole
        assert_eq!(split_of(&[M; 8], None, 8 << 20), vec![(0, 8, 0, 8 << 20)]);
        assert_eq!(
            split_of(&[M; 20], None, (20 << 20) + 1),
            vec![(0, 20, 0, (20 << 20) + 1)]
        );
        let mut index = Index::default();
        let mut n = node(Kind::File, 0o644);
        n.chunks = vec![BlobId::from_array([7; 32]); 20];
        n.size = 20 << 20;
        let job = fresh_job(n, PathBuf::from("/nowhere"));
        index.blobs.clear();
        assert!(matches!(
            split(job, &Mutex::new(index)).as_slice(),
            [Work::File(_)]
        ));
        // regions that overlap (or add up past u64) are not split: the writer refuses them
        assert_eq!(
            split_of(
                &[10 * M, 10 * M],
                Some(vec![(0, 10 << 20), (0, 10 << 20)]),
                10 << 20
            ),
            vec![(0, 2, 0, 20 << 20)]
        );
        let huge = split_of(&[M, M], Some(vec![(0, u64::MAX), (0, 2)]), 1 << 30);
        assert_eq!(huge, vec![(0, 2, 0, u64::MAX)]);
    }

    /// The pieces of a large file wait for the small files after it and go out among
    /// them, a piece each time the files handed out since are worth one; credit is never
    /// saved up while nothing waits; what still waits goes out at the end, in order.
    #[test]
    fn pieces_of_large_files_go_out_among_the_small_files_after_them() {
        const M: u32 = 1 << 20;
        let mut index = Index::default();
        let mut big = node(Kind::File, 0o644);
        for i in 0..20u8 {
            let id = BlobId::from_array([i + 1; 32]);
            big.chunks.push(id);
            let loc = repo::BlobLoc {
                pack: 0,
                offset: 0,
                length: M,
                raw_length: M,
                compressed: false,
            };
            index.blobs.insert(id, loc);
        }
        big.size = 20 << 20;
        let pieces = split(fresh_job(big, PathBuf::from("/big")), &Mutex::new(index));
        assert_eq!(pieces.len(), 3);
        let small = |i: usize| {
            let mut n = node(Kind::File, 0o644);
            n.size = 4096;
            Work::File(Box::new(fresh_job(n, PathBuf::from(format!("/s{i}")))))
        };
        // what goes out, as "s" (a small file) or the piece's first chunk
        let name = |w: &Work| match w {
            Work::File(_) => "s".to_string(),
            Work::Piece(_, p) => format!("p{}", p.first),
        };
        let mut m = Mixer::default();
        let mut out = Vec::new();
        // small files with nothing held pass straight through and bank no credit
        for i in 0..1000 {
            out.extend(m.next(small(i)).iter().map(name));
        }
        assert_eq!(out, vec!["s"; 1000]);
        for p in pieces {
            assert!(m.next(p).is_empty(), "a piece is held");
        }
        out.clear();
        for i in 0..400 {
            out.extend(m.next(small(i)).iter().map(name));
        }
        // a small file is worth FILE_COST + 4096 bytes: the first 8 MiB piece goes out
        // after the 342nd file following it; 400 files release no second one
        let per_piece = (8u64 << 20).div_ceil(FILE_COST + 4096) as usize;
        assert_eq!(out.iter().position(|n| n == "p0"), Some(per_piece));
        assert_eq!(out.iter().filter(|n| n.starts_with('p')).count(), 1);
        let rest: Vec<String> = m.rest().map(|w| name(&w)).collect();
        assert_eq!(rest, vec!["p8", "p16"]);
        // nothing held: no credit left over to release a later piece at once
        assert_eq!(m.credit, 0);
        assert!(m.next(small(0)).len() == 1);
    }

    /// The flushes along the way stop when told; a data path that is not a directory is
    /// not flushed along the way and fails nothing. (A failing syncfs cannot be made here:
    /// `data::a_final_flush_that_fails_fails_the_data_step` fails the final one.)
    #[test]
    fn a_flush_along_the_way_that_fails_is_reported() {
        let t = tempfile::tempdir().unwrap();
        let ok = Flusher::start(t.path());
        std::thread::sleep(FLUSH_EVERY * 2);
        assert!(ok.stop().is_none());
        // a data path that is not a directory (yet): not flushed along the way, no error
        // (the final flush is what counts)
        let gone = Flusher::start(&t.path().join("gone"));
        std::thread::sleep(FLUSH_EVERY * 2);
        assert!(gone.stop().is_none());
        std::os::unix::fs::symlink(t.path(), t.path().join("link")).unwrap();
        let link = Flusher::start(&t.path().join("link"));
        std::thread::sleep(FLUSH_EVERY * 2);
        assert!(link.stop().is_none());
    }

    /// Review s9: past `HELD` held pieces the oldest goes out as the next comes, so the
    /// pieces of every file still go out in order (a file's later piece never opens it
    /// while its first waits).
    #[test]
    fn pieces_go_out_in_order_past_the_limit() {
        let split = |name: &str, n: usize| {
            Arc::new(Split {
                job: fresh_job(node(Kind::File, 0o644), PathBuf::from(name)),
                left: n.into(),
                state: Mutex::new(SplitState::default()),
            })
        };
        let piece = |s: &Arc<Split>, first: usize| {
            let start = first as u64 * PIECE;
            Work::Piece(
                s.clone(),
                Piece {
                    first,
                    count: 1,
                    start,
                    len: PIECE,
                },
            )
        };
        let (x, y) = (split("/x", HELD - 1), split("/y", 3));
        let mut m = Mixer::default();
        let mut out: Vec<Work> = Vec::new();
        for i in 0..HELD - 1 {
            out.extend(m.next(piece(&x, i)));
        }
        assert!(out.is_empty());
        for i in 0..3 {
            out.extend(m.next(piece(&y, i)));
        }
        out.extend(m.rest());
        let order = |who: &Arc<Split>| -> Vec<usize> {
            out.iter()
                .filter_map(|w| match w {
                    Work::Piece(s, p) if Arc::ptr_eq(s, who) => Some(p.first),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(order(&x), (0..HELD - 1).collect::<Vec<_>>());
        assert_eq!(order(&y), vec![0, 1, 2]);
    }

    /// A split file whose pieces never all came to an end is removed, not left half
    /// written under its name or a temporary one.
    #[test]
    fn a_split_file_left_unfinished_is_removed() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("big");
        let f = File::create(&path).unwrap();
        let split = Split {
            job: fresh_job(node(Kind::File, 0o644), path.clone()),
            left: 3.into(),
            state: Mutex::new(SplitState {
                opened: Some(Opened::Writing(
                    Arc::new(Target {
                        file: f,
                        direct: None,
                    }),
                    Arc::new(sys::Dir::open(t.path()).unwrap()),
                    "big".into(),
                )),
                ..SplitState::default()
            }),
        };
        drop(split);
        assert!(!path.exists());
    }

    /// Nobody but the owner gets more at creation than the file will give them at the end.
    #[test]
    fn a_new_file_starts_with_no_more_than_its_mode_gives_everyone() {
        assert_eq!(first_mode(0o644), 0o644);
        assert_eq!(first_mode(0o755), 0o755);
        assert_eq!(first_mode(0o600), 0o600);
        assert_eq!(first_mode(0o640), 0o600);
        assert_eq!(first_mode(0o664), 0o644);
        assert_eq!(first_mode(0o604), 0o600);
        assert_eq!(first_mode(0o4755), 0o755);
        assert_eq!(first_mode(0o2777), 0o777);
    }

    /// Review #25 (A): a user who owns a folder of a data path swaps an entry for a link
    /// to a file of the system between the restore's look at it and its chmod; the
    /// captured mode (setuid, world-writable) must never reach the link's target.
    #[test]
    fn metadata_never_reaches_the_target_of_a_link_swapped_in() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path()).unwrap();
        let owners = Owners::of(&root);
        let victim = t.path().join("victim");
        std::fs::write(&victim, "root's").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
        let vdir = t.path().join("victim-dir");
        std::fs::create_dir(&vdir).unwrap();
        std::fs::set_permissions(&vdir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let tree = t.path().join("tree");
        std::fs::create_dir(&tree).unwrap();

        // a name that is a link already: refused, the target untouched
        let f = tree.join("f");
        std::os::unix::fs::symlink(&victim, &f).unwrap();
        let e = sys::Entry::open(&f).unwrap();
        assert!(apply_meta(&e, &node(Kind::File, 0o4777), &owners).is_err());
        assert_eq!(mode(&victim), 0o600);

        // the file seen in place, then swapped for a link before its metadata is set
        std::fs::remove_file(&f).unwrap();
        std::fs::write(&f, "").unwrap();
        let e = sys::Entry::open(&f).unwrap();
        std::fs::remove_file(&f).unwrap();
        std::os::unix::fs::symlink(&victim, &f).unwrap();
        assert!(apply_meta(&e, &node(Kind::File, 0o4777), &owners).unwrap());
        assert_eq!(mode(&victim), 0o600);
        assert_ne!(
            sys::file_meta(&std::fs::metadata(&victim).unwrap()).mtime,
            1_000_000
        );

        // the temporary file, held open while its metadata is set
        let tmp = tree.join(temp_name(OsStr::new("g")));
        let file = sys::Dir::open(&tree)
            .unwrap()
            .create_replacing(tmp.file_name().unwrap(), 0o600)
            .unwrap();
        std::fs::remove_file(&tmp).unwrap();
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        apply_meta(
            &sys::Entry::of_file(file, &tmp),
            &node(Kind::File, 0o4777),
            &owners,
        )
        .unwrap();
        assert_eq!(mode(&victim), 0o600);

        // a directory, swapped for a link to a directory of the system
        let d = tree.join("d");
        std::fs::create_dir(&d).unwrap();
        let e = sys::Entry::open(&d).unwrap();
        std::fs::remove_dir(&d).unwrap();
        std::os::unix::fs::symlink(&vdir, &d).unwrap();
        apply_meta(&e, &node(Kind::Dir, 0o777), &owners).unwrap();
        assert_eq!(mode(&vdir), 0o700);

        // a FIFO (never opened, reached through its descriptor) gets its mode
        let p = tree.join("p");
        sys::make_special(&p, "fifo", 0o600, 0).unwrap();
        let e = sys::Entry::open(&p).unwrap();
        assert!(apply_meta(&e, &node(Kind::Fifo, 0o640), &owners).unwrap());
        assert_eq!(
            std::fs::symlink_metadata(&p).unwrap().permissions().mode() & 0o7777,
            0o640
        );
        assert_eq!(
            sys::file_meta(&std::fs::symlink_metadata(&p).unwrap()).mtime,
            1_000_000
        );
    }
}
