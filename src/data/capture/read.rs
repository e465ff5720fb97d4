//! Reading one file's content into chunks: content-defined chunking (FastCDC) with
//! BLAKE3 ids, only the data regions of a sparse file, and a file that changes while it
//! is read read again. Runs on the pipeline's worker threads.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use zstd::bulk::Compressor;

use super::pipeline::Sink;
use crate::data::Progress;
use crate::store::BlobId;
use crate::sys;

pub(super) const MIN_CHUNK: usize = 256 << 10;
const AVG_CHUNK: usize = 1 << 20;
const MAX_CHUNK: usize = 4 << 20;
/// How often a file that keeps changing while it is read is read again.
const READ_ATTEMPTS: usize = 3;

/// A file's chunk ids, the data regions of a sparse file, and a note when it kept
/// changing while it was read.
pub(super) type FileContent = (Vec<BlobId>, Option<Vec<(u64, u64)>>, Option<String>);

/// Reads a file's content into chunks; retries when it changes underneath. Returns the
/// chunk ids, the data extents of a sparse file, and a note when it kept changing.
pub(super) fn read_file(
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
            chunks.push(id);
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
                chunks.push(id);
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
