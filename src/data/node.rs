//! One entry of a snapshot's tree — a file, directory, symlink, hard link, FIFO or device
//! with all the metadata restore needs — and the byte-path order that lets capture and
//! restore stream trees instead of holding them in memory.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

pub use crate::store::BlobId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Dir,
    File,
    Symlink,
    Hardlink,
    Fifo,
    Char,
    Block,
}

/// A tree entry. Paths are bytes (non-UTF-8 names and names with newlines are kept),
/// relative to the data path, `/`-separated; the data path itself has the empty path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    #[serde(with = "serde_bytes")]
    pub path: Vec<u8>,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    pub mtime: i64,
    pub mtime_ns: u32,
    #[serde(default)]
    pub size: u64,
    /// The chunk ids of the content, in order.
    #[serde(default)]
    pub chunks: Vec<BlobId>,
    /// Data regions (offset, length) of a file with holes; the chunks hold only these.
    #[serde(default)]
    pub extents: Option<Vec<(u64, u64)>>,
    /// Symlink target, or for a hard link the path of the first name of the file.
    #[serde(default, with = "serde_bytes")]
    pub target: Vec<u8>,
    #[serde(default)]
    pub rdev: u64,
    #[serde(default)]
    pub xattrs: Vec<Xattr>,
    /// What incremental captures compare to skip reading an unchanged file.
    #[serde(default)]
    pub ctime: i64,
    #[serde(default)]
    pub ctime_ns: u32,
    #[serde(default)]
    pub ino: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

impl Node {
    /// An entry of this kind at `path` with nothing else recorded (mode 0, owner 0:0,
    /// time 0): what the capture and tests start from.
    pub fn bare(path: Vec<u8>, kind: Kind) -> Node {
        Node {
            path,
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            user: None,
            group: None,
            mtime: 0,
            mtime_ns: 0,
            size: 0,
            chunks: Vec::new(),
            extents: None,
            target: Vec::new(),
            rdev: 0,
            xattrs: Vec::new(),
            ctime: 0,
            ctime_ns: 0,
            ino: 0,
        }
    }

    /// The chunk ids.
    pub fn chunk_ids(&self) -> impl Iterator<Item = BlobId> + '_ {
        self.chunks.iter().copied()
    }

    /// The number of content bytes the chunks hold.
    /// (Saturating: a hostile tree's regions may add up past `u64`; the writer refuses
    /// regions that do not fit the size.)
    pub fn data_len(&self) -> u64 {
        match &self.extents {
            Some(ex) => ex.iter().fold(0u64, |sum, (_, l)| sum.saturating_add(*l)),
            None => self.size,
        }
    }
}

/// The walk order: component by component, bytewise; a directory before its contents.
pub fn path_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let mut ai = a.split(|c| *c == b'/').filter(|c| !c.is_empty());
    let mut bi = b.split(|c| *c == b'/').filter(|c| !c.is_empty());
    loop {
        match (ai.next(), bi.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => match x.cmp(y) {
                Ordering::Equal => continue,
                o => return o,
            },
        }
    }
}

/// Checks a path from a snapshot: relative, `/`-separated plain components only (no
/// empty, `.` or `..` component, no NUL).
pub fn check_path(p: &[u8]) -> bool {
    p.is_empty()
        || p.split(|c| *c == b'/')
            .all(|c| !c.is_empty() && c != b"." && c != b".." && !c.contains(&0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_depth_first_by_component() {
        let mut v: Vec<&[u8]> = vec![b"a.b", b"a/z", b"a", b"", b"a/b/c", b"b", b"a-b"];
        v.sort_by(|a, b| path_cmp(a, b));
        assert_eq!(
            v,
            vec![&b""[..], b"a", b"a/b/c", b"a/z", b"a-b", b"a.b", b"b"]
        );
    }

    #[test]
    fn hostile_paths() {
        assert!(check_path(b""));
        assert!(check_path(b"a/b\nc/\xff"));
        for bad in [
            &b"/etc"[..],
            b"a/../b",
            b"..",
            b"a//b",
            b"a/",
            b"./a",
            b"a\0b",
        ] {
            assert!(!check_path(bad), "{bad:?}");
        }
    }
}
