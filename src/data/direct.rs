//! Large file contents written past the page cache: a restore writes each byte once and
//! never reads it back, so copying gigabytes into the cache, and the kernel's writeback of
//! them afterwards, only takes CPU time from the decoding and checking (`O_DIRECT` writes
//! of a large file cost a tenth of the system time of cached ones, measured with `dd`).
//! The content goes through a staging buffer aligned for the disk; what does not fill a
//! whole block at either end of a run (and everything where the filesystem has no direct
//! I/O) is written through the cache as before. Durability is unchanged: the final flush
//! (`syncfs`) commits the blocks' allocation and flushes the disk's cache, and a file's
//! cached edges are on disk before its mtime is set (`restore::finish`).

use std::fs::File;
use std::io;

use crate::sys;

/// What direct writes are aligned to: their file offset, length and memory. Both the
/// logical block size of every common disk and the page size (4 KiB, or 16 or 64 KiB on
/// some arm64 and ppc64le kernels) divide it, so no page of the cache ever holds a cached
/// edge of one piece of a file and a direct block of the next.
const ALIGN: usize = 64 << 10;
/// The staging buffer: one direct write when full.
const STAGE: usize = 1 << 20;
/// Content from this size on is written directly (below, one write through the cache
/// costs less than one that waits for the disk).
pub const DIRECT_FROM: u64 = 1 << 20;

/// A worker's staging buffer, aligned, kept from file to file (a fresh one per file costs
/// page faults on every first touch).
pub struct Stage {
    mem: Vec<u8>,
    pad: usize,
}

impl Stage {
    pub fn new() -> Stage {
        let mem = vec![0u8; STAGE + ALIGN];
        let pad = mem.as_ptr().align_offset(ALIGN);
        Stage { mem, pad }
    }

    fn buf(&mut self) -> &mut [u8] {
        &mut self.mem[self.pad..self.pad + STAGE]
    }
}

impl Default for Stage {
    fn default() -> Self {
        Stage::new()
    }
}

/// Writes a file's content, run by run (a write that does not continue the last one ends
/// it): runs of whole aligned blocks through
/// `direct`, the rest through `file`. `finish` writes what is staged; without it the
/// staged bytes are lost (the caller removes a file whose writing failed).
pub struct Writer<'a> {
    file: &'a File,
    /// The same file opened `O_DIRECT` (gone when the filesystem refused a direct write).
    direct: Option<&'a File>,
    stage: Option<&'a mut Stage>,
    /// The file offset of the first staged byte.
    at: u64,
    staged: usize,
    /// Bytes written directly so far.
    directly: u64,
}

impl<'a> Writer<'a> {
    /// A writer to `file`; with `direct` (the same file opened `O_DIRECT`) and a stage,
    /// whole blocks go past the cache.
    pub fn new(file: &'a File, direct: Option<(&'a File, &'a mut Stage)>) -> Writer<'a> {
        let (direct, stage) = direct.unzip();
        Writer {
            file,
            direct,
            stage,
            at: 0,
            staged: 0,
            directly: 0,
        }
    }

    /// Writes `data` at `offset`.
    pub fn write(&mut self, mut data: &[u8], mut offset: u64) -> io::Result<()> {
        if self.staged > 0 && offset != self.at + self.staged as u64 {
            self.flush()?;
        }
        if self.direct.is_none() {
            return sys::write_at(self.file, data, offset);
        }
        if self.staged == 0 {
            // a run starts on a block boundary: the bytes before the next one go cached
            let head = ((ALIGN as u64 - offset % ALIGN as u64) % ALIGN as u64) as usize;
            let head = head.min(data.len());
            if head > 0 {
                sys::write_at(self.file, &data[..head], offset)?;
                data = &data[head..];
                offset += head as u64;
            }
            self.at = offset;
        }
        while !data.is_empty() {
            // (nothing is staged when a refused direct write ended them)
            let (Some(_), Some(stage)) = (self.direct, self.stage.as_deref_mut()) else {
                return sys::write_at(self.file, data, offset);
            };
            let take = (STAGE - self.staged).min(data.len());
            stage.buf()[self.staged..self.staged + take].copy_from_slice(&data[..take]);
            self.staged += take;
            data = &data[take..];
            offset += take as u64;
            if self.staged == STAGE {
                self.write_staged(STAGE)?;
                self.at += STAGE as u64;
                self.staged = 0;
            }
        }
        Ok(())
    }

    /// Writes what is staged: its whole blocks directly, the last partial one cached.
    /// Returns how many bytes of all went directly.
    pub fn finish(mut self) -> io::Result<u64> {
        self.flush()?;
        Ok(self.directly)
    }

    fn flush(&mut self) -> io::Result<()> {
        let whole = self.staged / ALIGN * ALIGN;
        if whole > 0 {
            self.write_staged(whole)?;
        }
        if self.staged > whole
            && let Some(stage) = self.stage.as_deref_mut()
        {
            let at = self.at + whole as u64;
            sys::write_at(self.file, &stage.buf()[whole..self.staged], at)?;
        }
        self.at += self.staged as u64;
        self.staged = 0;
        Ok(())
    }

    /// Writes the first `len` staged bytes (whole blocks) at the stage's offset; where the
    /// filesystem refuses a direct write (`EINVAL`: no direct I/O there, or another
    /// alignment), they and all that follows go through the cache.
    fn write_staged(&mut self, len: usize) -> io::Result<()> {
        let Some(stage) = self.stage.as_deref_mut() else {
            return Ok(());
        };
        if let Some(direct) = self.direct {
            match sys::write_at(direct, &stage.buf()[..len], self.at) {
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => self.direct = None,
                Ok(()) => {
                    self.directly += len as u64;
                    return Ok(());
                }
                r => return r,
            }
        }
        sys::write_at(self.file, &stage.buf()[..len], self.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that differ from place to place (a misplaced block shows).
    fn pattern(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// A file made in a new folder, and its direct descriptor where the filesystem has
    /// direct I/O (see `expect_direct`).
    fn made(t: &tempfile::TempDir) -> (File, Option<File>) {
        let dir = sys::Dir::open(t.path()).unwrap();
        let f = dir.create_new("f".as_ref(), 0o600).unwrap();
        let direct = sys::reopen_direct(&f);
        (f, direct)
    }

    /// The Linux filesystems a test's temporary folder lives on (ext4, xfs, tmpfs since
    /// 6.6) take direct writes: on Linux the tests must see them happen, not only the
    /// content come out right (a kernel or filesystem without direct I/O fails here,
    /// rather than pass without testing the direct path).
    fn expect_direct(direct: &Option<File>) -> bool {
        assert!(
            !cfg!(target_os = "linux") || direct.is_some(),
            "no direct I/O in the test's temporary folder"
        );
        direct.is_some()
    }

    /// Content written in odd-sized pieces from an odd offset on, across several stages,
    /// comes out byte for byte, with whole blocks written directly.
    #[test]
    fn odd_pieces_from_an_odd_offset_come_out_whole() {
        let t = tempfile::tempdir().unwrap();
        let (f, direct) = made(&t);
        let data = pattern(3 * STAGE + 12_345, 1);
        let start = 777u64;
        let mut stage = Stage::new();
        let mut w = Writer::new(&f, direct.as_ref().map(|d| (d, &mut stage)));
        let mut at = 0;
        for (i, len) in [1usize, 4095, 4097, 65_536, 1_000_003, 7, 2_000_000]
            .iter()
            .cycle()
            .enumerate()
        {
            if at == data.len() || i > 100 {
                break;
            }
            let end = (at + len).min(data.len());
            w.write(&data[at..end], start + at as u64).unwrap();
            at = end;
        }
        assert_eq!(at, data.len());
        let directly = w.finish().unwrap();
        let back = std::fs::read(t.path().join("f")).unwrap();
        assert_eq!(back.len() as u64, start + data.len() as u64);
        assert!(back[..start as usize].iter().all(|b| *b == 0));
        assert!(back[start as usize..] == data[..], "the content differs");
        if expect_direct(&direct) {
            assert!(
                directly >= (3 * STAGE - 2 * ALIGN) as u64,
                "only {directly} bytes went directly"
            );
        }
    }

    /// Runs at gaps (the data regions of a sparse file) each start and end where they
    /// should; the holes stay zeros.
    #[test]
    fn runs_at_gaps_land_where_they_belong() {
        let t = tempfile::tempdir().unwrap();
        let (f, direct) = made(&t);
        expect_direct(&direct);
        let regions = [
            (0u64, 5000usize),
            (1 << 20, 2 * STAGE + 3),
            (5 << 20, 4096),
            (7 << 20, 100),
        ];
        let mut stage = Stage::new();
        let mut w = Writer::new(&f, direct.as_ref().map(|d| (d, &mut stage)));
        for (i, (off, len)) in regions.iter().enumerate() {
            let data = pattern(*len, i as u64 + 2);
            for (j, part) in data.chunks(300_001).enumerate() {
                w.write(part, off + (j * 300_001) as u64).unwrap();
            }
        }
        w.finish().unwrap();
        let back = std::fs::read(t.path().join("f")).unwrap();
        let mut expected = vec![0u8; (7 << 20) + 100];
        for (i, (off, len)) in regions.iter().enumerate() {
            expected[*off as usize..*off as usize + len]
                .copy_from_slice(&pattern(*len, i as u64 + 2));
        }
        assert!(back == expected, "the content differs");
    }

    /// Two writers of adjacent pieces of one file, at once, meeting inside a block (the
    /// pieces of a large file split at chunk boundaries): the shared block is whole.
    #[test]
    fn adjacent_pieces_written_at_once_share_their_block() {
        let t = tempfile::tempdir().unwrap();
        let (f, direct) = made(&t);
        expect_direct(&direct);
        let data = pattern(4 * STAGE + 999, 9);
        let cut = 2 * STAGE + 1234;
        std::thread::scope(|s| {
            for (from, to) in [(0, cut), (cut, data.len())] {
                let (f, direct, data) = (&f, &direct, &data);
                s.spawn(move || {
                    let mut stage = Stage::new();
                    let mut w = Writer::new(f, direct.as_ref().map(|d| (d, &mut stage)));
                    for at in (from..to).step_by(70_000) {
                        let end = (at + 70_000).min(to);
                        w.write(&data[at..end], at as u64).unwrap();
                    }
                    w.finish().unwrap();
                });
            }
        });
        assert!(
            std::fs::read(t.path().join("f")).unwrap() == data,
            "the content differs"
        );
    }

    /// Without a direct descriptor (Windows, a filesystem without direct I/O) everything
    /// goes through the cache, nothing directly.
    #[test]
    fn without_direct_io_everything_goes_through_the_cache() {
        let t = tempfile::tempdir().unwrap();
        let (f, _) = made(&t);
        let data = pattern(STAGE + 5, 3);
        let mut w = Writer::new(&f, None);
        w.write(&data, 10).unwrap();
        assert_eq!(w.finish().unwrap(), 0);
        assert!(std::fs::read(t.path().join("f")).unwrap()[10..] == data[..]);
    }
}
