//! The directory walk under a data path: depth first, the entries of each directory in
//! byte order (the order of a snapshot's tree), entering only the directories it is told
//! to, and taking metadata relative to the open directory (no full path lookup per entry).

use std::path::{Path, PathBuf};

use crate::sys::os_bytes;

pub(super) struct SortedWalk {
    first: Option<PathBuf>,
    stack: Vec<Frame>,
}

struct Frame {
    dir: PathBuf,
    rel: Vec<u8>,
    entries: std::vec::IntoIter<std::fs::DirEntry>,
}

/// One entry of the walk: its host path, its path relative to the top (`/`-separated
/// bytes, empty for the top itself) and its metadata (not followed).
pub(super) enum Step {
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
    pub(super) fn new(top: &Path) -> SortedWalk {
        SortedWalk {
            first: Some(top.to_path_buf()),
            stack: Vec::new(),
        }
    }

    pub(super) fn next(&mut self) -> Option<Step> {
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
    pub(super) fn descend(&mut self, dir: PathBuf, rel: Vec<u8>) -> std::io::Result<()> {
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
