//! Filesystem and volume superblocks: ext2/3/4, xfs, btrfs, ntfs, vfat, exfat, swap,
//! LVM2 physical volumes, LUKS 1 and 2, iso9660, ReFS and BitLocker — each a small,
//! bounds-checked parser that reports what blkid reports.

use super::{Signature, Source, guid_le, label, label_utf16, le16, le32, le64, uuid_be};

fn sig(kind: &str, usage: &str) -> Signature {
    Signature {
        kind: Some(kind.into()),
        usage: Some(usage.into()),
        ..Signature::default()
    }
}

/// The first signature found, in blkid's order of precedence.
pub fn probe(src: &dyn Source) -> Option<Signature> {
    let probes: [fn(&dyn Source) -> Option<Signature>; 13] = [
        luks, lvm2, swap, xfs, ext, btrfs, ntfs, exfat, refs, bitlocker, vfat, iso9660, none,
    ];
    probes.iter().find_map(|p| p(src))
}

fn none(_: &dyn Source) -> Option<Signature> {
    None
}

fn ext(src: &dyn Source) -> Option<Signature> {
    let sb = src.bytes(1024, 1024)?;
    if le16(&sb, 0x38) != 0xEF53 {
        return None;
    }
    let compat = le32(&sb, 0x5C);
    let incompat = le32(&sb, 0x60);
    let ro_compat = le32(&sb, 0x64);
    const HAS_JOURNAL: u32 = 0x4;
    const JOURNAL_DEV: u32 = 0x8;
    const EXT3_RO_SUPP: u32 = 0x1 | 0x2 | 0x4;
    const EXT3_INCOMPAT_SUPP: u32 = 0x2 | 0x4 | 0x10;
    const EXT2_INCOMPAT_SUPP: u32 = 0x2 | 0x10;
    let kind = if incompat & JOURNAL_DEV != 0 {
        "jbd"
    } else if ro_compat & !EXT3_RO_SUPP != 0 || incompat & !EXT3_INCOMPAT_SUPP != 0 {
        "ext4"
    } else if compat & HAS_JOURNAL != 0 {
        "ext3"
    } else if incompat & !EXT2_INCOMPAT_SUPP == 0 {
        "ext2"
    } else {
        return None;
    };
    let mut s = sig(kind, "filesystem");
    s.uuid = Some(uuid_be(&sb[0x68..0x78]));
    s.label = label(&sb[0x78..0x88]);
    s.version = Some(format!("{}.{}", le32(&sb, 0x4C), le16(&sb, 0x3E)));
    Some(s)
}

fn xfs(src: &dyn Source) -> Option<Signature> {
    let sb = src.bytes(0, 512)?;
    if &sb[0..4] != b"XFSB" {
        return None;
    }
    let mut s = sig("xfs", "filesystem");
    s.uuid = Some(uuid_be(&sb[32..48]));
    s.label = label(&sb[108..120]);
    Some(s)
}

fn btrfs(src: &dyn Source) -> Option<Signature> {
    let sb = src.bytes(0x10000, 0x1000)?;
    if &sb[0x40..0x48] != b"_BHRfS_M" {
        return None;
    }
    let mut s = sig("btrfs", "filesystem");
    s.uuid = Some(uuid_be(&sb[0x20..0x30]));
    s.label = label(&sb[0x12B..0x12B + 256]);
    Some(s)
}

fn ntfs(src: &dyn Source) -> Option<Signature> {
    let boot = src.bytes(0, 512)?;
    if &boot[3..11] != b"NTFS    " {
        return None;
    }
    let mut s = sig("ntfs", "filesystem");
    s.uuid = Some(format!("{:016X}", le64(&boot, 0x48)));
    s.label = ntfs_label(src, &boot);
    Some(s)
}

/// The volume name: the resident $VOLUME_NAME attribute of MFT record 3 ($Volume).
fn ntfs_label(src: &dyn Source, boot: &[u8]) -> Option<String> {
    let sector = le16(boot, 0x0B) as u64;
    let per_cluster = boot[0x0D] as u64;
    let cluster = sector.checked_mul(per_cluster).filter(|c| *c > 0)?;
    let mft = le64(boot, 0x30).checked_mul(cluster)?;
    let raw = boot[0x40] as i8;
    let record = if raw < 0 {
        1u64 << (-(raw as i32)).min(20)
    } else {
        (raw as u64).checked_mul(cluster)?
    };
    if !(256..=65536).contains(&record) {
        return None;
    }
    let mut rec = src.bytes(mft.checked_add(3 * record)?, record as usize)?;
    if &rec[0..4] != b"FILE" {
        return None;
    }
    // undo the update sequence fixups at the end of each sector
    let usa = le16(&rec, 4) as usize;
    let count = le16(&rec, 6) as usize;
    for i in 1..count {
        let end = i * sector as usize;
        if end > rec.len() || usa + 2 * i + 2 > rec.len() || end < 2 {
            break;
        }
        rec[end - 2] = rec[usa + 2 * i];
        rec[end - 1] = rec[usa + 2 * i + 1];
    }
    let mut off = le16(&rec, 0x14) as usize;
    while off + 24 <= rec.len() {
        let kind = le32(&rec, off);
        if kind == 0xFFFF_FFFF {
            break;
        }
        let len = le32(&rec, off + 4) as usize;
        if len < 24 || off + len > rec.len() {
            break;
        }
        if kind == 0x60 && rec[off + 8] == 0 {
            let vlen = le32(&rec, off + 16) as usize;
            let voff = le16(&rec, off + 20) as usize;
            let start = off + voff;
            if start + vlen <= off + len {
                return label_utf16(&rec[start..start + vlen]);
            }
        }
        off += len;
    }
    None
}

fn exfat(src: &dyn Source) -> Option<Signature> {
    let boot = src.bytes(0, 512)?;
    if &boot[3..11] != b"EXFAT   " {
        return None;
    }
    let mut s = sig("exfat", "filesystem");
    let serial = le32(&boot, 100);
    s.uuid = Some(format!("{:04X}-{:04X}", serial >> 16, serial & 0xFFFF));
    s.version = Some(format!("{}.{}", boot[105], boot[104]));
    s.label = exfat_label(src, &boot);
    Some(s)
}

/// The volume label entry (type 0x83) in the first cluster of the root directory.
fn exfat_label(src: &dyn Source, boot: &[u8]) -> Option<String> {
    let sector_shift = boot[108] as u32;
    let cluster_shift = boot[109] as u32;
    if !(9..=12).contains(&sector_shift) || cluster_shift > 16 {
        return None;
    }
    let sector = 1u64 << sector_shift;
    let heap = le32(boot, 88) as u64 * sector;
    let root = le32(boot, 96) as u64;
    let cluster = sector << cluster_shift;
    if root < 2 {
        return None;
    }
    let dir = src.bytes(heap + (root - 2) * cluster, cluster.min(1 << 20) as usize)?;
    for e in dir.chunks_exact(32) {
        match e[0] {
            0x00 => break,
            0x83 => {
                let n = (e[1] as usize).min(11);
                return label_utf16(&e[2..2 + 2 * n]);
            }
            _ => {}
        }
    }
    None
}

fn vfat(src: &dyn Source) -> Option<Signature> {
    let b = src.bytes(0, 512)?;
    if b[510] != 0x55 || b[511] != 0xAA {
        return None;
    }
    let (version, serial_at) = if &b[0x52..0x57] == b"FAT32" {
        ("FAT32", 0x43)
    } else if &b[0x36..0x3B] == b"FAT16" || &b[0x36..0x3B] == b"FAT12" {
        (
            if &b[0x36..0x3B] == b"FAT16" {
                "FAT16"
            } else {
                "FAT12"
            },
            0x27,
        )
    } else if &b[0x36..0x39] == b"FAT" {
        ("FAT16", 0x27)
    } else {
        return None;
    };
    // a sane BIOS parameter block, so that random data with 0x55AA is not taken
    let bps = le16(&b, 0x0B);
    if !matches!(bps, 512 | 1024 | 2048 | 4096) || b[0x0D] == 0 || !b[0x0D].is_power_of_two() {
        return None;
    }
    let mut s = sig("vfat", "filesystem");
    let serial = le32(&b, serial_at);
    s.uuid = Some(format!("{:04X}-{:04X}", serial >> 16, serial & 0xFFFF));
    // blkid's LABEL is the root directory's volume-label entry, the one DOS and Windows
    // set and show; the boot sector's copy (blkid's LABEL_FATBOOT, at 0x2B or 0x47) may be
    // stale or "NO NAME" and is not the label
    s.label = fat_root_label(src, &b, version == "FAT32").and_then(|l| label(&l));
    s.version = Some(version.into());
    Some(s)
}

/// The volume-label entry of a FAT root directory: the fixed root area of FAT12/16, or
/// the FAT32 root's cluster chain (followed through the first FAT, at most 100 clusters).
fn fat_root_label(src: &dyn Source, b: &[u8], fat32: bool) -> Option<Vec<u8>> {
    let bps = u64::from(le16(b, 0x0B));
    let spc = u64::from(b[0x0D]);
    let reserved = u64::from(le16(b, 0x0E));
    let fats = u64::from(b[0x10]);
    if !fat32 {
        let fat_size = fats * u64::from(le16(b, 0x16));
        let entries = usize::from(le16(b, 0x11));
        let root = src.bytes((reserved + fat_size) * bps, entries * 32)?;
        return match fat_dir_label(&root) {
            DirLabel::Found(l) => Some(l),
            _ => None,
        };
    }
    let fat_length = u64::from(le32(b, 0x24));
    let data_start = reserved + fats * fat_length;
    let fat_entries = fat_length * bps / 4;
    let cluster_bytes = usize::try_from(spc * bps).ok()?;
    let mut next = u64::from(le32(b, 0x2C));
    for _ in 0..100 {
        if next < 2 || next >= fat_entries {
            return None;
        }
        let dir = src.bytes((data_start + (next - 2) * spc) * bps, cluster_bytes)?;
        match fat_dir_label(&dir) {
            DirLabel::Found(l) => return Some(l),
            DirLabel::End => return None,
            DirLabel::NotHere => {}
        }
        let entry = src.bytes(reserved * bps + next * 4, 4)?;
        next = u64::from(le32(&entry, 0) & 0x0FFF_FFFF);
    }
    None
}

enum DirLabel {
    Found(Vec<u8>),
    /// The directory's end marker: no label.
    End,
    NotHere,
}

/// Looks through 32-byte directory entries for the volume label: an entry in use (not
/// deleted, 0xE5), with no cluster, that is not a long-name part (attributes 0x0F) and
/// has the volume-id attribute without the directory one.
fn fat_dir_label(dir: &[u8]) -> DirLabel {
    for e in dir.chunks_exact(32) {
        match e[0] {
            0x00 => return DirLabel::End,
            0xE5 => continue,
            _ => {}
        }
        let attr = e[11];
        let cluster = le16(e, 20) != 0 || le16(e, 26) != 0;
        if cluster || attr & 0x3F == 0x0F {
            continue;
        }
        if attr & (0x08 | 0x10) == 0x08 {
            return DirLabel::Found(e[..11].to_vec());
        }
    }
    DirLabel::NotHere
}

fn swap(src: &dyn Source) -> Option<Signature> {
    for page in [4096u64, 8192, 16384, 65536] {
        let Some(m) = src.bytes(page - 10, 10) else {
            continue;
        };
        let version = match &m[..] {
            b"SWAPSPACE2" => "1",
            b"SWAP-SPACE" => "0",
            _ => continue,
        };
        let mut s = sig("swap", "other");
        s.version = Some(version.into());
        if version == "1" {
            let h = src.bytes(1024, 44)?;
            s.uuid =
                Some(uuid_be(&h[12..28])).filter(|u| u != "00000000-0000-0000-0000-000000000000");
            s.label = label(&h[28..44]);
        }
        return Some(s);
    }
    None
}

fn lvm2(src: &dyn Source) -> Option<Signature> {
    for sector in 0..4u64 {
        let l = src.bytes(sector * 512, 512)?;
        if &l[0..8] != b"LABELONE" || &l[24..32] != b"LVM2 001" {
            continue;
        }
        let off = le32(&l, 20) as usize;
        if off + 32 > 512 {
            return None;
        }
        let id = &l[off..off + 32];
        if !id.iter().all(|c| c.is_ascii_alphanumeric()) {
            return None;
        }
        let id = String::from_utf8_lossy(id);
        let mut s = sig("LVM2_member", "raid");
        s.uuid = Some(format!(
            "{}-{}-{}-{}-{}-{}-{}",
            &id[0..6],
            &id[6..10],
            &id[10..14],
            &id[14..18],
            &id[18..22],
            &id[22..26],
            &id[26..32]
        ));
        s.version = Some("LVM2 001".into());
        return Some(s);
    }
    None
}

fn luks(src: &dyn Source) -> Option<Signature> {
    let h = src.bytes(0, 512)?;
    if &h[0..6] != b"LUKS\xba\xbe" {
        return None;
    }
    let version = u16::from_be_bytes([h[6], h[7]]);
    let mut s = sig("crypto_LUKS", "crypto");
    s.version = Some(version.to_string());
    s.uuid = label(&h[168..208]);
    if version == 2 {
        s.label = label(&h[24..72]);
    }
    Some(s)
}

fn iso9660(src: &dyn Source) -> Option<Signature> {
    let pvd = src.bytes(0x8000, 2048)?;
    if &pvd[1..6] != b"CD001" {
        return None;
    }
    let mut s = sig("iso9660", "filesystem");
    s.label = label(&pvd[40..72]);
    // blkid's UUID: the volume creation time, YYYY-MM-DD-HH-MM-SS-cc
    let t = &pvd[813..829];
    if t.iter().all(u8::is_ascii_digit) && t.iter().any(|c| *c != b'0') {
        let t = String::from_utf8_lossy(t);
        s.uuid = Some(format!(
            "{}-{}-{}-{}-{}-{}-{}",
            &t[0..4],
            &t[4..6],
            &t[6..8],
            &t[8..10],
            &t[10..12],
            &t[12..14],
            &t[14..16]
        ));
    }
    Some(s)
}

fn refs(src: &dyn Source) -> Option<Signature> {
    let b = src.bytes(0, 512)?;
    if &b[3..11] != b"ReFS\0\0\0\0" {
        return None;
    }
    let mut s = sig("ReFS", "filesystem");
    s.version = Some(format!("{}.{}", b[0x28], b[0x29]));
    Some(s)
}

/// BitLocker (the layout util-linux reads): Vista volumes by their magic alone; Windows 7
/// and later, and To Go, through the FVE metadata block the boot sector points at — its
/// version, the volume identifier (the UUID) and the description entry (the label).
fn bitlocker(src: &dyn Source) -> Option<Signature> {
    const VISTA: &[u8] = b"\xeb\x52\x90-FVE-FS-";
    const WIN7: &[u8] = b"\xeb\x58\x90-FVE-FS-";
    const TOGO: &[u8] = b"\xeb\x58\x90MSWIN4.1";
    let b = src.bytes(0, 512)?;
    let offset = if &b[..11] == VISTA {
        let mut s = sig("BitLocker", "crypto");
        s.version = Some("2".into());
        return Some(s);
    } else if &b[..11] == WIN7 {
        le64(&b, 176)
    } else if &b[..11] == TOGO {
        le64(&b, 440)
    } else {
        return None;
    };
    if offset == 0 || !offset.is_multiple_of(64) {
        return None;
    }
    // the FVE metadata: a 64-byte block header, then a 48-byte header and its entries
    let head = src.bytes(offset, 64 + 48)?;
    if &head[..8] != b"-FVE-FS-" {
        return None;
    }
    let mut s = sig("BitLocker", "crypto");
    s.version = Some(le16(&head, 10).to_string());
    let size = le32(&head, 64) as usize;
    s.uuid = Some(guid_le(&head[64 + 16..64 + 32]));
    if (48..=1 << 20).contains(&size)
        && let Some(meta) = src.bytes(offset + 64, size)
    {
        let mut off = 48;
        while off + 8 < size {
            let len = le16(&meta, off) as usize;
            if off % 2 == 1 || len < 8 || off + len > size {
                break;
            }
            if le16(&meta, off + 2) == 0x0007 && le16(&meta, off + 4) == 0x0002 {
                s.label = label_utf16(&meta[off + 8..off + len]);
                break;
            }
            off += len;
        }
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitlocker_layouts() {
        // Vista: the magic alone
        let mut vista = vec![0u8; 4096];
        vista[..11].copy_from_slice(b"\xeb\x52\x90-FVE-FS-");
        let s = bitlocker(&vista).unwrap();
        assert_eq!(
            (s.kind.as_deref(), s.uuid.as_deref()),
            (Some("BitLocker"), None)
        );
        // To Go shares FAT's OEM name: without FVE metadata where it points, not BitLocker
        let mut togo = vec![0u8; 4096];
        togo[..11].copy_from_slice(b"\xeb\x58\x90MSWIN4.1");
        togo[440..448].copy_from_slice(&1024u64.to_le_bytes());
        assert!(bitlocker(&togo).is_none());
        togo[1024..1032].copy_from_slice(b"-FVE-FS-");
        togo[1024 + 10..1024 + 12].copy_from_slice(&2u16.to_le_bytes());
        togo[1024 + 64..1024 + 68].copy_from_slice(&48u32.to_le_bytes());
        togo[1024 + 80..1024 + 96].copy_from_slice(&[0x11; 16]);
        let s = bitlocker(&togo).unwrap();
        assert_eq!(s.version.as_deref(), Some("2"));
        assert_eq!(
            s.uuid.as_deref(),
            Some("11111111-1111-1111-1111-111111111111")
        );
        // an offset not on 64 bytes, or a metadata size that runs past its entries
        togo[440..448].copy_from_slice(&1000u64.to_le_bytes());
        assert!(bitlocker(&togo).is_none());
    }
}
