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
