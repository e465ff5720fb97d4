//! Capturing data paths: a sorted walk that streams the tree, content-defined chunking
//! (FastCDC) with BLAKE3 ids, deduplication against everything in the store, zstd on
//! worker threads, and packs written by one writer thread. Unchanged files of a parent
//! snapshot (same size, mtime, ctime, inode) are not read again.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;

use anyhow::{Context, Result, anyhow};
use crossbeam_channel::{Receiver, Sender, bounded};

use super::node::{BlobId, Kind, Node, Xattr};
use super::repo::{self, Index, PackWriter, Sealed};
use super::tree::{TreeReader, TreeWriter};
use super::{DataManifest, DataRoot, Progress};
use crate::state::Problem;
use crate::store::Store;
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
}

/// Names → ids of the system being captured, so owners are recorded by name too.
struct Names {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Names {
    fn of(root: &Root) -> Names {
        let read = |p: &str| {
            sys::read_opt(&root.follow(p))
                .ok()
                .flatten()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        let (users, _) = crate::state::accounts::parse_passwd(&read("/etc/passwd"));
        let (groups, _) = crate::state::accounts::parse_group(&read("/etc/group"));
        Names {
            users: users.into_iter().map(|u| (u.uid, u.name)).collect(),
            groups: groups.into_iter().map(|g| (g.gid, g.name)).collect(),
        }
    }
}

/// The shared state of the pipeline's producer side.
struct Pipeline {
    index: Arc<Mutex<Index>>,
    queued: HashSet<BlobId>,
    tx: Option<Sender<(BlobId, Vec<u8>)>>,
    workers: Vec<thread::JoinHandle<Result<()>>>,
    writer: Option<thread::JoinHandle<Result<PackWriter>>>,
    new_bytes: u64,
}

impl Pipeline {
    fn start(store: &Store, index: Arc<Mutex<Index>>) -> Pipeline {
        let (tx, rx) = bounded::<(BlobId, Vec<u8>)>(8);
        let (stx, srx) = bounded::<Sealed>(8);
        let threads = thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 8);
        let workers = (0..threads)
            .map(|_| {
                let rx: Receiver<(BlobId, Vec<u8>)> = rx.clone();
                let stx = stx.clone();
                thread::spawn(move || -> Result<()> {
                    let mut z = repo::compressor()?;
                    for (id, raw) in rx {
                        let (data, compressed) = repo::encode(&raw, &mut z)?;
                        let sealed = Sealed {
                            id,
                            raw_length: raw.len() as u32,
                            data,
                            compressed,
                        };
                        if stx.send(sealed).is_err() {
                            break;
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        drop(stx);
        let mut pw = PackWriter::new(store.clone(), index.clone());
        let writer = thread::spawn(move || -> Result<PackWriter> {
            for b in srx {
                pw.add(b)?;
            }
            pw.flush()?;
            Ok(pw)
        });
        Pipeline {
            index,
            queued: HashSet::new(),
            tx: Some(tx),
            workers,
            writer: Some(writer),
            new_bytes: 0,
        }
    }

    /// Queues a file's chunk unless the store or this run has it already.
    fn put(&mut self, id: BlobId, raw: Vec<u8>) -> Result<()> {
        self.queue(id, raw, true)
    }

    /// Queues a tree blob (not counted as new data).
    fn put_tree(&mut self, id: BlobId, raw: Vec<u8>) -> Result<()> {
        self.queue(id, raw, false)
    }

    fn queue(&mut self, id: BlobId, raw: Vec<u8>, data: bool) -> Result<()> {
        if self.queued.contains(&id) || self.index.lock().expect("index").blobs.contains_key(&id) {
            return Ok(());
        }
        self.queued.insert(id);
        if data {
            self.new_bytes += raw.len() as u64;
        }
        let tx = self.tx.as_ref().expect("pipeline open");
        if tx.send((id, raw)).is_err() {
            // A worker or the writer stopped: its error is the one to report.
            return Err(self
                .finish()
                .err()
                .unwrap_or_else(|| anyhow!("the pack writer stopped")));
        }
        Ok(())
    }

    /// Drains the pipeline; returns the bytes written to the store.
    fn finish(&mut self) -> Result<u64> {
        self.tx.take();
        let mut first_err = None;
        for w in self.workers.drain(..) {
            if let Err(e) = w
                .join()
                .map_err(|_| anyhow!("a compression worker panicked"))?
            {
                first_err.get_or_insert(e);
            }
        }
        let written = match self.writer.take() {
            Some(w) => match w.join().map_err(|_| anyhow!("the pack writer panicked"))? {
                Ok(pw) => pw.bytes_written,
                Err(e) => return Err(e),
            },
            None => 0,
        };
        match first_err {
            Some(e) => Err(e),
            None => Ok(written),
        }
    }
}

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
    progress: &Progress,
) -> Result<CaptureOutcome> {
    let index = Arc::new(Mutex::new(index));
    let names = Names::of(root);
    let mut pipe = Pipeline::start(store, index.clone());
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
            new_bytes: pipe.new_bytes,
            stored_bytes: stored,
        },
        problems,
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

impl Walker<'_> {
    fn walk(
        &self,
        path: &Path,
        host: &Path,
        parent_tree: Option<Vec<BlobId>>,
        pipe: &mut Pipeline,
        problems: &mut Vec<Problem>,
    ) -> Result<DataRoot> {
        let mut tree = TreeWriter::default();
        let mut parent =
            parent_tree.map(|ids| TreeReader::new(self.store.clone(), pipe.index.clone(), ids));
        let mut hardlinks: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
        let mut files = 0u64;
        let mut bytes = 0u64;
        let mut it = walkdir::WalkDir::new(host)
            .follow_links(false)
            .sort_by(|a, b| a.file_name().cmp(b.file_name()))
            .into_iter();
        while let Some(entry) = it.next() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    let p = e.path().map(|p| self.root.inner(p).display().to_string());
                    problems.push(Problem {
                        path: p.unwrap_or_else(|| path.display().to_string()),
                        error: format!(
                            "cannot be read: {}",
                            e.io_error().map_or(e.to_string(), |x| x.to_string())
                        ),
                    });
                    continue;
                }
            };
            let hp = entry.path();
            let rel = rel_bytes(host, hp);
            let inner = self.root.inner(hp);
            if entry.depth() > 0
                && (self.skip_host.iter().any(|s| s == hp) || excluded(self.exclude, &inner))
            {
                if entry.file_type().is_dir() {
                    it.skip_current_dir();
                }
                continue;
            }
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) => {
                    problems.push(Problem {
                        path: inner.display().to_string(),
                        error: format!("cannot be read: {e}"),
                    });
                    continue;
                }
            };
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
            match sys::xattrs_of(hp) {
                Ok(x) => {
                    node.xattrs = x
                        .into_iter()
                        .map(|(name, value)| Xattr { name, value })
                        .collect()
                }
                Err(e) => problems.push(Problem {
                    path: inner.display().to_string(),
                    error: format!("extended attributes cannot be read: {e}"),
                }),
            }
            let ft = meta.file_type();
            if ft.is_dir() {
                node.kind = Kind::Dir;
            } else if ft.is_symlink() {
                node.kind = Kind::Symlink;
                match std::fs::read_link(hp) {
                    Ok(t) => node.target = os_bytes(t.as_os_str()),
                    Err(e) => {
                        problems.push(Problem {
                            path: inner.display().to_string(),
                            error: format!("symlink cannot be read: {e}"),
                        });
                        continue;
                    }
                }
            } else if ft.is_file() {
                if fm.nlink > 1 {
                    if let Some(first) = hardlinks.get(&(fm.dev, fm.ino)) {
                        node.kind = Kind::Hardlink;
                        node.target = first.clone();
                        node.size = fm.size;
                        files += 1;
                        if let Some((id, raw)) = tree.push(&node)? {
                            pipe.put_tree(id, raw)?;
                        }
                        continue;
                    }
                    hardlinks.insert((fm.dev, fm.ino), rel.clone());
                }
                node.size = fm.size;
                let reused = parent
                    .as_mut()
                    .map(|p| p.find(&rel))
                    .transpose()?
                    .flatten()
                    .filter(|p| {
                        p.kind == Kind::File
                            && p.size == fm.size
                            && p.mtime == fm.mtime
                            && p.mtime_ns == fm.mtime_ns
                            && p.ctime == fm.ctime
                            && p.ctime_ns == fm.ctime_ns
                            && p.ino == fm.ino
                    });
                let have_all = reused.as_ref().is_some_and(|p| {
                    let idx = pipe.index.lock().expect("index");
                    p.chunk_ids().all(|id| idx.blobs.contains_key(&id))
                });
                match reused {
                    Some(p) if have_all => {
                        node.chunks = p.chunks;
                        node.extents = p.extents;
                        self.progress.skipped(fm.size);
                    }
                    _ => match read_file(hp, &fm, pipe, self.progress) {
                        Ok((chunks, extents, note)) => {
                            node.chunks = chunks;
                            node.extents = extents;
                            if let Some(note) = note {
                                problems.push(Problem {
                                    path: inner.display().to_string(),
                                    error: note,
                                });
                            }
                        }
                        Err(e) if is_store_error(&e) => return Err(e),
                        Err(e) => {
                            problems.push(Problem {
                                path: inner.display().to_string(),
                                error: format!("cannot be read: {e:#}"),
                            });
                            continue;
                        }
                    },
                }
                files += 1;
                bytes += fm.size;
                self.progress.file();
            } else if let Some(kind) = sys::special_kind(&ft) {
                node.kind = match kind {
                    "fifo" => Kind::Fifo,
                    "char" => Kind::Char,
                    "block" => Kind::Block,
                    _ => {
                        problems.push(Problem {
                            path: inner.display().to_string(),
                            error: "a socket: not captured (its service creates it again)".into(),
                        });
                        continue;
                    }
                };
                node.rdev = fm.rdev;
            }
            if let Some((id, raw)) = tree.push(&node)? {
                pipe.put_tree(id, raw)?;
            }
        }
        let (ids, last) = tree.finish()?;
        if let Some((id, raw)) = last {
            pipe.put_tree(id, raw)?;
        }
        Ok(DataRoot {
            path: path.display().to_string(),
            tree: ids.iter().map(hex::encode).collect(),
            files,
            bytes,
        })
    }
}

/// Errors of the store (not of the file being read) stop the capture.
fn is_store_error(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|c| c.to_string().contains("pack writer") || c.to_string().contains("writing a pack"))
}

fn os_bytes(s: &std::ffi::OsStr) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    s.as_bytes().to_vec()
}

fn rel_bytes(base: &Path, p: &Path) -> Vec<u8> {
    os_bytes(p.strip_prefix(base).unwrap_or(Path::new("")).as_os_str())
}

/// A file's chunk ids, the data regions of a sparse file, and a note when it kept
/// changing while it was read.
type FileContent = (Vec<u8>, Option<Vec<(u64, u64)>>, Option<String>);

/// Reads a file's content into chunks; retries when it changes underneath. Returns the
/// chunk ids, the data extents of a sparse file, and a note when it kept changing.
fn read_file(
    path: &Path,
    before: &sys::FileMeta,
    pipe: &mut Pipeline,
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
            let id = *blake3::hash(&buf).as_bytes();
            chunks.extend_from_slice(&id);
            if !buf.is_empty() {
                pipe.put(id, buf)?;
            } else {
                chunks.clear();
            }
        } else {
            for c in fastcdc::v2020::StreamCDC::new(reader, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK) {
                let c = c.map_err(|e| anyhow!("{e}"))?;
                progress.bytes(c.length as u64);
                let id = *blake3::hash(&c.data).as_bytes();
                chunks.extend_from_slice(&id);
                pipe.put(id, c.data)?;
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
        use std::os::unix::fs::FileExt;
        while self.i < self.extents.len() {
            let (off, len) = self.extents[self.i];
            if self.pos >= len {
                self.i += 1;
                self.pos = 0;
                continue;
            }
            let want = ((len - self.pos).min(buf.len() as u64)) as usize;
            let n = self.f.read_at(&mut buf[..want], off + self.pos)?;
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
