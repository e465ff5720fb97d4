//! Capturing data paths: a sorted walk that streams the tree, content-defined chunking
//! (FastCDC) with BLAKE3 ids, deduplication against everything in the store, zstd on
//! worker threads, and packs written by one writer thread. Unchanged files of a parent
//! snapshot (same size, mtime, ctime, inode) are not read again.
//!
//! Here: the use case (`capture`) and the walker that turns each entry into a tree node.
//! Beside it: `walk` (the sorted directory walk), `read` (one file into chunks),
//! `pipeline` (workers, pack writer, the tree kept in order) and `exclude` (patterns).

mod exclude;
mod pipeline;
mod read;
mod walk;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use anyhow::Result;

use super::node::{BlobId, Kind, Node, Xattr};
use super::repo::Index;
use super::tree::{TreeReader, TreeWriter};
use super::{DataManifest, DataRoot, Progress};
use crate::state::Problem;
use crate::state::accounts::Names;
use crate::store::Store;
use crate::sys::{self, Root, os_bytes};
pub use exclude::Exclude;
use pipeline::{Ordered, Pending, Pipeline};
pub use walk::estimate_bytes;
use walk::{SortedWalk, Step};

/// What a capture of data paths produced.
pub struct CaptureOutcome {
    pub manifest: DataManifest,
    pub problems: Vec<Problem>,
    /// The blobs this capture stored (not in the store's index before).
    pub stored: HashSet<BlobId>,
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
    progress: &Arc<Progress>,
) -> Result<CaptureOutcome> {
    let index = Arc::new(Mutex::new(index));
    let names = Names::load(root);
    let exclude = Exclude::new(exclude)?;
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
                .map(|r| r.tree.clone());
            let walker = Walker {
                store,
                root,
                names: &names,
                exclude: &exclude,
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

/// What stays the same for every data path of one capture.
struct Walker<'a> {
    store: &'a Store,
    root: &'a Root,
    names: &'a Names,
    exclude: &'a Exclude,
    skip_host: &'a [PathBuf],
    progress: &'a Progress,
}

/// One data path being walked: the parent snapshot's tree beside it, the hard links seen,
/// the tree being written and where problems go.
struct RootWalk<'w, 'p> {
    w: &'w Walker<'w>,
    parent: Option<TreeReader>,
    hardlinks: HashMap<(u64, u64), Vec<u8>>,
    ord: Ordered,
    pipe: &'p mut Pipeline,
    problems: &'p mut Vec<Problem>,
}

/// One entry of the walk.
struct Entry {
    host: PathBuf,
    rel: Vec<u8>,
    meta: std::fs::Metadata,
    fm: sys::FileMeta,
}

/// What becomes of an entry's node.
enum Content {
    /// Complete: into the tree in its turn.
    Ready,
    /// A file handed to the workers (its sequence number).
    Reading(u64),
    /// Left out (a problem names it).
    Dropped,
}

impl Walker<'_> {
    /// Walks one data path (`path` in-root, `host` where it is) into a tree.
    fn walk(
        &self,
        path: &Path,
        host: &Path,
        parent_tree: Option<Vec<BlobId>>,
        pipe: &mut Pipeline,
        problems: &mut Vec<Problem>,
    ) -> Result<DataRoot> {
        let parent = parent_tree
            .map(|ids| TreeReader::new(self.store.clone(), pipe.sink.index.clone(), ids));
        let mut rw = RootWalk {
            w: self,
            parent,
            hardlinks: HashMap::new(),
            ord: Ordered::new(self.store),
            pipe,
            problems,
        };
        let mut walk = SortedWalk::new(host);
        while let Some(step) = walk.next() {
            let Some(e) = rw.entry(step) else { continue };
            if !e.rel.is_empty() && self.left_out(&e.host) {
                continue;
            }
            if e.meta.is_dir() {
                rw.descend(&mut walk, &e);
            }
            rw.add(e)?;
        }
        rw.finish(path)
    }

    /// Excluded by a pattern, or a place never captured (the store itself).
    fn left_out(&self, host: &Path) -> bool {
        self.skip_host.iter().any(|s| s == host)
            || (!self.exclude.is_empty() && self.exclude.matches(&self.root.inner(host)))
    }

    /// The in-root path of a host path, as problems name it.
    fn inner(&self, host: &Path) -> String {
        self.root.inner(host).display().to_string()
    }

    /// The node of an entry from its metadata alone (owners by id and by name).
    fn node(&self, rel: Vec<u8>, fm: &sys::FileMeta) -> Node {
        Node {
            mode: fm.mode,
            uid: fm.uid,
            gid: fm.gid,
            user: self.names.users.name(fm.uid).map(str::to_string),
            group: self.names.groups.name(fm.gid).map(str::to_string),
            mtime: fm.mtime,
            mtime_ns: fm.mtime_ns,
            ctime: fm.ctime,
            ctime_ns: fm.ctime_ns,
            ino: fm.ino,
            ..Node::bare(rel, Kind::File)
        }
    }
}

impl RootWalk<'_, '_> {
    /// The entry of a walk step; an unreadable one is named.
    fn entry(&mut self, step: Step) -> Option<Entry> {
        match step {
            Step::Entry { host, rel, meta } => Some(Entry {
                fm: sys::file_meta(&meta),
                host,
                rel,
                meta,
            }),
            Step::Error { host, err } => {
                self.problem(&host, format!("cannot be read: {err}"));
                None
            }
        }
    }

    fn problem(&mut self, host: &Path, error: String) {
        self.problems.push(Problem {
            path: self.w.inner(host),
            error,
        });
    }

    /// Enters a directory: its entries come next.
    fn descend(&mut self, walk: &mut SortedWalk, e: &Entry) {
        if let Err(err) = walk.descend(e.host.clone(), e.rel.clone()) {
            self.problem(&e.host, format!("directory cannot be read: {err}"));
        }
    }

    /// Makes the entry's node and queues it for the tree.
    fn add(&mut self, e: Entry) -> Result<()> {
        let mut node = self.w.node(e.rel.clone(), &e.fm);
        let prev = self.previous(&e.rel);
        // When ctime and inode agree with the parent snapshot's node, nothing about the
        // entry changed (xattrs included) but, for a file, possibly its content.
        let same_inode = prev
            .filter(|p| p.ino == e.fm.ino && p.ctime == e.fm.ctime && p.ctime_ns == e.fm.ctime_ns);
        node.xattrs = self.xattrs(&e.host, same_inode.as_ref());
        let ft = e.meta.file_type();
        let content = if ft.is_dir() {
            node.kind = Kind::Dir;
            Content::Ready
        } else if ft.is_symlink() {
            self.symlink(&mut node, &e.host)
        } else if ft.is_file() {
            self.file(&mut node, &e, same_inode)?
        } else if let Some(kind) = sys::special_kind(&ft) {
            self.special(&mut node, &e, kind)
        } else {
            Content::Ready
        };
        let (inner, seq) = match content {
            Content::Dropped => return Ok(()),
            Content::Ready => (String::new(), None),
            Content::Reading(seq) => (self.w.inner(&e.host), Some(seq)),
        };
        self.push(Pending { node, inner, seq })
    }

    fn push(&mut self, p: Pending) -> Result<()> {
        self.ord.push(self.pipe, self.problems, p)
    }

    /// The parent snapshot's node at `rel`. A parent tree that cannot be read further is
    /// not fatal: everything after it is read again.
    fn previous(&mut self, rel: &[u8]) -> Option<Node> {
        match self.parent.as_mut()?.find(rel) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!("the parent snapshot's tree cannot be read further: {e:#}");
                self.parent = None;
                None
            }
        }
    }

    /// The extended attributes: the parent's when the inode is unchanged, else read.
    fn xattrs(&mut self, host: &Path, same_inode: Option<&Node>) -> Vec<Xattr> {
        if let Some(p) = same_inode {
            return p.xattrs.clone();
        }
        match sys::xattrs_of(host) {
            Ok(x) => x
                .into_iter()
                .map(|(name, value)| Xattr { name, value })
                .collect(),
            Err(e) => {
                self.problem(host, format!("extended attributes cannot be read: {e}"));
                Vec::new()
            }
        }
    }

    fn symlink(&mut self, node: &mut Node, host: &Path) -> Content {
        node.kind = Kind::Symlink;
        match std::fs::read_link(host) {
            Ok(t) => {
                node.target = os_bytes(t.as_os_str());
                Content::Ready
            }
            Err(e) => {
                self.problem(host, format!("symlink cannot be read: {e}"));
                Content::Dropped
            }
        }
    }

    /// A regular file: a hard link to one seen before, the parent's chunks when it is
    /// unchanged and the store has them all, else read by the workers.
    fn file(&mut self, node: &mut Node, e: &Entry, same_inode: Option<Node>) -> Result<Content> {
        let fm = &e.fm;
        node.size = fm.size;
        if fm.nlink > 1 {
            if let Some(first) = self.hardlinks.get(&(fm.dev, fm.ino)) {
                node.kind = Kind::Hardlink;
                node.target = first.clone();
                return Ok(Content::Ready);
            }
            self.hardlinks.insert((fm.dev, fm.ino), e.rel.clone());
        }
        let unchanged = same_inode.filter(|p| {
            p.kind == Kind::File
                && p.size == fm.size
                && p.mtime == fm.mtime
                && p.mtime_ns == fm.mtime_ns
        });
        let have_all = unchanged.as_ref().is_some_and(|p| {
            let idx = self.pipe.sink.index.lock().expect("index");
            p.chunk_ids().all(|id| idx.blobs.contains_key(&id))
        });
        let content = match unchanged {
            Some(p) if have_all => {
                node.chunks = p.chunks;
                node.extents = p.extents;
                self.w.progress.skipped(fm.size);
                Content::Ready
            }
            _ => Content::Reading(self.ord.submit(self.pipe, e.host.clone(), e.fm)?),
        };
        self.w.progress.file();
        Ok(content)
    }

    /// A FIFO or device node; a socket is left out (its service creates it again).
    fn special(&mut self, node: &mut Node, e: &Entry, kind: &str) -> Content {
        node.kind = match kind {
            "fifo" => Kind::Fifo,
            "char" => Kind::Char,
            "block" => Kind::Block,
            _ => {
                self.problem(
                    &e.host,
                    "a socket: not captured (its service creates it again)".into(),
                );
                return Content::Dropped;
            }
        };
        node.rdev = e.fm.rdev;
        Content::Ready
    }

    /// Writes the rest of the tree; the data path's record.
    fn finish(mut self, path: &Path) -> Result<DataRoot> {
        self.ord.drain(self.pipe, self.problems, true)?;
        let tree = std::mem::replace(&mut self.ord.tree, TreeWriter::new(self.w.store.clone()));
        let (ids, last) = tree.finish()?;
        if let Some(blob) = last {
            self.pipe.put_tree(blob)?;
        }
        Ok(DataRoot {
            path: path.display().to_string(),
            tree: ids,
            files: self.ord.files,
            bytes: self.ord.bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
