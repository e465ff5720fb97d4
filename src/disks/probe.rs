//! Identifying what is on a block device or image file — filesystem, swap, LVM physical
//! volume, LUKS container, partition table — by reading the signatures ourselves, with
//! the names and value formats `blkid -p` uses, so carryover works where blkid does not
//! exist (a minimal image, Windows) and never depends on its version.

mod fs;
pub mod lvm;
mod parts;

use std::io;

use serde::Serialize;

pub use parts::Partition;

/// What was found on one device or image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Signature {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub uuid: Option<String>,
    pub label: Option<String>,
    pub version: Option<String>,
    /// `filesystem`, `other` (swap), `raid` (LVM), `crypto` (LUKS, BitLocker) or
    /// `partition_table`.
    pub usage: Option<String>,
    /// The partitions of a partition table.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<Partition>,
    /// The volume group of an LVM physical volume, read from its metadata area.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lvm: Option<lvm::VolumeGroup>,
}

/// Random access to the bytes of a device or image.
pub trait Source {
    /// Reads up to `buf.len()` bytes at `offset`; fewer at the end, none past it.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;

    /// `len` bytes at `offset`, or `None` when the source is shorter.
    fn bytes(&self, offset: u64, len: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; len];
        let mut got = 0;
        while got < len {
            match self.read_at(offset + got as u64, &mut buf[got..]) {
                Ok(0) | Err(_) => return None,
                Ok(n) => got += n,
            }
        }
        Some(buf)
    }
}

impl Source for std::fs::File {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        crate::sys::pread(self, buf, offset)
    }
}

impl Source for Vec<u8> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let Ok(off) = usize::try_from(offset) else {
            return Ok(0);
        };
        if off >= self.len() {
            return Ok(0);
        }
        let n = buf.len().min(self.len() - off);
        buf[..n].copy_from_slice(&self[off..off + n]);
        Ok(n)
    }
}

/// Identifies the content of `src`: a filesystem or volume signature first (as blkid,
/// a partition table only when there is none).
pub fn probe(src: &dyn Source) -> Signature {
    if let Some(mut s) = fs::probe(src) {
        if s.kind.as_deref() == Some("LVM2_member") {
            s.lvm = lvm::read(src);
        }
        return s;
    }
    if let Some((kind, uuid, partitions)) = parts::probe(src) {
        return Signature {
            kind: Some(kind),
            uuid,
            usage: Some("partition_table".into()),
            partitions,
            ..Signature::default()
        };
    }
    Signature::default()
}

/// A window on part of a source (a partition of a disk).
pub struct Slice<'a> {
    pub src: &'a dyn Source,
    pub start: u64,
    pub size: u64,
}

impl Source for Slice<'_> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if offset >= self.size {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(self.size - offset) as usize;
        self.src.read_at(self.start + offset, &mut buf[..n])
    }
}

/// A source that only takes whole aligned blocks (a raw Windows disk,
/// `\\.\PhysicalDriveN`, refuses reads that do not start and end on a sector).
pub struct Aligned<S: Source>(pub S);

/// The block the reads of `Aligned` are made of (a multiple of every sector size).
const BLOCK: u64 = 4096;

impl<S: Source> Source for Aligned<S> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let first = offset / BLOCK * BLOCK;
        let end = (offset + buf.len() as u64).div_ceil(BLOCK) * BLOCK;
        let mut block = vec![0u8; (end - first) as usize];
        let mut got = 0;
        while got < block.len() {
            match self.0.read_at(first + got as u64, &mut block[got..])? {
                0 => break,
                n => got += n,
            }
        }
        let skip = (offset - first) as usize;
        let n = got.saturating_sub(skip).min(buf.len());
        buf[..n].copy_from_slice(&block[skip..skip + n]);
        Ok(n)
    }
}

/// What is on a whole disk: the signature of each partition (numbered), or of the
/// disk itself when it has no partition table (number 0).
pub fn probe_disk(src: &dyn Source) -> Vec<(u32, Signature)> {
    let whole = probe(src);
    if whole.usage.as_deref() != Some("partition_table") {
        return vec![(0, whole)];
    }
    whole
        .partitions
        .iter()
        .map(|p| {
            let part = Slice {
                src,
                start: p.start,
                size: p.size,
            };
            (p.number, probe(&part))
        })
        .collect()
}

/// Probes a path (device or image file).
pub fn probe_path(path: &std::path::Path) -> io::Result<Signature> {
    let f = std::fs::File::open(path)?;
    let mut s = probe(&f);
    s.path = path.display().to_string();
    Ok(s)
}

/// Little-endian integers and text fields of on-disk structures.
pub(crate) fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

pub(crate) fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}

pub(crate) fn le64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

/// A standard 8-4-4-4-12 UUID from 16 bytes in order.
pub(crate) fn uuid_be(b: &[u8]) -> String {
    let h = hex::encode(&b[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A GUID stored mixed-endian (GPT, Microsoft): first three fields little-endian.
pub(crate) fn guid_le(b: &[u8]) -> String {
    let mut v = b[..16].to_vec();
    v[0..4].reverse();
    v[4..6].reverse();
    v[6..8].reverse();
    uuid_be(&v)
}

/// A label from a NUL- or space-padded byte field, UTF-8 (lossy).
pub(crate) fn label(b: &[u8]) -> Option<String> {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    let s = String::from_utf8_lossy(&b[..end]).trim_end().to_string();
    (!s.is_empty()).then_some(s)
}

/// A label from UTF-16LE code units (up to a NUL).
pub(crate) fn label_utf16(b: &[u8]) -> Option<String> {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|u| *u != 0)
        .collect();
    let s = String::from_utf16_lossy(&units).trim_end().to_string();
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/images")
            .join(format!("{name}.zst"));
        zstd::decode_all(std::fs::File::open(p).unwrap()).unwrap()
    }

    /// A source that fails every read not on 512-byte boundaries, as a raw disk does.
    struct Strict(Vec<u8>);
    impl Source for Strict {
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
            if !offset.is_multiple_of(512) || !buf.len().is_multiple_of(512) {
                return Err(io::Error::from_raw_os_error(87));
            }
            self.0.read_at(offset, buf)
        }
    }

    #[test]
    fn a_partitioned_disk_shows_each_partition_even_through_sector_reads() {
        let (ext4, pv) = (image("ext4.img"), image("pv.img"));
        let sector = 512usize;
        let (a, b) = (2048usize, 2048 + ext4.len().div_ceil(sector) + 2048);
        let mut disk = vec![0u8; (b + pv.len().div_ceil(sector) + 2048) * sector];
        for (i, (start, len, kind)) in [(a, ext4.len(), 0x83u8), (b, pv.len(), 0x8e)]
            .into_iter()
            .enumerate()
        {
            let e = 446 + 16 * i;
            disk[e + 4] = kind;
            disk[e + 8..e + 12].copy_from_slice(&(start as u32).to_le_bytes());
            disk[e + 12..e + 16].copy_from_slice(&(len.div_ceil(sector) as u32).to_le_bytes());
        }
        disk[510] = 0x55;
        disk[511] = 0xAA;
        disk[a * sector..a * sector + ext4.len()].copy_from_slice(&ext4);
        disk[b * sector..b * sector + pv.len()].copy_from_slice(&pv);
        let raw = Aligned(Strict(disk));
        let found = probe_disk(&raw);
        let kinds: Vec<(u32, Option<&str>)> =
            found.iter().map(|(n, s)| (*n, s.kind.as_deref())).collect();
        assert_eq!(kinds, vec![(1, Some("ext4")), (2, Some("LVM2_member"))]);
        assert_eq!(
            found[0].1.uuid.as_deref(),
            Some("11111111-2222-4333-8444-555555555555")
        );
        assert!(found[1].1.lvm.is_some(), "the VG is read through the slice");
        // a disk without a table is one signature, number 0
        assert_eq!(probe_disk(&Aligned(Strict(pv.clone())))[0].0, 0);
        let mut b = [0u8; 8];
        assert!(Strict(ext4.clone()).read_at(3, &mut b).is_err());
        assert_eq!(
            Aligned(Strict(ext4)).read_at(0x438, &mut b[..2]).unwrap(),
            2
        );
        assert_eq!(
            b[..2],
            [0x53, 0xEF],
            "the ext4 magic, read unaligned through Aligned"
        );
    }

    #[test]
    fn empty_and_random_inputs_never_panic() {
        assert_eq!(probe(&Vec::new()).kind, None);
        let mut x: u64 = 0x1234_5678;
        for round in 0..300 {
            let len = [0usize, 10, 511, 512, 1100, 4096, 70_000, 140_000][round % 8];
            let mut v = vec![0u8; len];
            for b in v.iter_mut() {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *b = (x >> 56) as u8;
            }
            // plant magics at their places so the parsers get past their first check
            let magics: [(usize, &[u8]); 10] = [
                (1080, &[0x53, 0xEF]),
                (0, b"XFSB"),
                (0x10040, b"_BHRfS_M"),
                (3, b"NTFS    "),
                (3, b"EXFAT   "),
                (0x52, b"FAT32   "),
                (4086, b"SWAPSPACE2"),
                (512, b"LABELONE"),
                (0, b"LUKS\xba\xbe"),
                (512, b"EFI PART"),
            ];
            let (at, m) = magics[round % magics.len()];
            if v.len() >= at + m.len() {
                v[at..at + m.len()].copy_from_slice(m);
            }
            if v.len() >= 512 && round % 3 == 0 {
                v[510] = 0x55;
                v[511] = 0xAA;
            }
            let _ = probe(&v);
        }
    }
}
