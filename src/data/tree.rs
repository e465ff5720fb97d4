//! Trees as streams: nodes CBOR-encoded one after the other and cut into blobs of about
//! 1 MiB, so neither capture nor restore ever holds a whole tree in memory.

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

use super::codec;
use super::node::{BlobId, Node, path_cmp};
use super::repo::{self, Index};
use crate::store::Store;

const TREE_BLOB: usize = 1 << 20;

/// A blob to store: its id and content.
pub type Blob = (BlobId, Vec<u8>);

/// Encodes nodes into tree blobs.
pub struct TreeWriter {
    store: Store,
    buf: Vec<u8>,
    ids: Vec<BlobId>,
}

impl TreeWriter {
    pub fn new(store: Store) -> TreeWriter {
        TreeWriter {
            store,
            buf: Vec::new(),
            ids: Vec::new(),
        }
    }

    /// Adds a node; returns a finished blob to store when one is full.
    pub fn push(&mut self, node: &Node) -> Result<Option<Blob>> {
        if self.buf.is_empty() {
            codec::tree_header(&mut self.buf);
        }
        codec::put_node(&mut self.buf, node);
        if self.buf.len() >= TREE_BLOB {
            return Ok(Some(self.cut()));
        }
        Ok(None)
    }

    fn cut(&mut self) -> Blob {
        let raw = std::mem::take(&mut self.buf);
        let id = self.store.blob_id(&raw);
        self.ids.push(id);
        (id, raw)
    }

    /// The ids of all tree blobs, and the last blob to store.
    pub fn finish(mut self) -> Result<(Vec<BlobId>, Option<Blob>)> {
        let last = (!self.buf.is_empty()).then(|| self.cut());
        Ok((self.ids, last))
    }
}

/// Decodes every node of one tree blob.
pub fn decode_nodes(raw: &[u8]) -> Result<Vec<Node>> {
    codec::decode_tree(raw).context("a tree blob cannot be decoded")
}

/// Reads a stored tree node by node.
pub struct TreeReader {
    store: Store,
    index: Arc<Mutex<Index>>,
    ids: std::vec::IntoIter<BlobId>,
    current: std::vec::IntoIter<Node>,
    peeked: Option<Node>,
}

impl TreeReader {
    pub fn new(store: Store, index: Arc<Mutex<Index>>, ids: Vec<BlobId>) -> TreeReader {
        TreeReader {
            store,
            index,
            ids: ids.into_iter(),
            current: Vec::new().into_iter(),
            peeked: None,
        }
    }

    /// The next node, or `None` at the end.
    pub fn next_node(&mut self) -> Result<Option<Node>> {
        if let Some(n) = self.peeked.take() {
            return Ok(Some(n));
        }
        loop {
            if let Some(n) = self.current.next() {
                return Ok(Some(n));
            }
            let Some(id) = self.ids.next() else {
                return Ok(None);
            };
            let raw = repo::read_blob(&self.store, &self.index, &id, repo::TREE)?;
            self.current = decode_nodes(&raw)?.into_iter();
        }
    }

    /// For a merge walk in path order: the node at `path`, skipping the ones before it.
    pub fn find(&mut self, path: &[u8]) -> Result<Option<Node>> {
        while let Some(n) = self.next_node()? {
            match path_cmp(&n.path, path) {
                std::cmp::Ordering::Less => continue,
                std::cmp::Ordering::Equal => return Ok(Some(n)),
                std::cmp::Ordering::Greater => {
                    self.peeked = Some(n);
                    return Ok(None);
                }
            }
        }
        Ok(None)
    }
}
