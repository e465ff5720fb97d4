//! Partition tables: GPT (header, disk GUID, entries with type GUIDs and names) and the
//! MBR ("dos": disk signature, the four primary entries).

use serde::Serialize;

use super::{Source, guid_le, label_utf16, le32, le64};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    pub number: u32,
    /// First byte and size in bytes.
    pub start: u64,
    pub size: u64,
    /// The GPT type GUID, or the MBR type byte as `0x83`.
    pub part_type: String,
    /// PARTUUID as blkid prints it.
    pub uuid: Option<String>,
    pub name: Option<String>,
}

const SECTOR: u64 = 512;

/// (table type, PTUUID, partitions)
pub fn probe(src: &dyn Source) -> Option<(String, Option<String>, Vec<Partition>)> {
    gpt(src).or_else(|| mbr(src))
}

fn gpt(src: &dyn Source) -> Option<(String, Option<String>, Vec<Partition>)> {
    let h = src.bytes(SECTOR, 512)?;
    if &h[0..8] != b"EFI PART" {
        return None;
    }
    let disk = guid_le(&h[56..72]);
    let lba = le64(&h, 72);
    let count = le32(&h, 80).min(1024);
    let size = le32(&h, 84) as u64;
    if !(128..=4096).contains(&size) {
        return None;
    }
    let mut parts = Vec::new();
    for i in 0..count as u64 {
        let Some(e) = lba
            .checked_mul(SECTOR)
            .and_then(|o| o.checked_add(i * size))
            .and_then(|o| src.bytes(o, size as usize))
        else {
            break;
        };
        if e[0..16].iter().all(|b| *b == 0) {
            continue;
        }
        let first = le64(&e, 32);
        let last = le64(&e, 40);
        parts.push(Partition {
            number: i as u32 + 1,
            start: first.saturating_mul(SECTOR),
            size: last
                .saturating_sub(first)
                .saturating_add(1)
                .saturating_mul(SECTOR),
            part_type: guid_le(&e[0..16]),
            uuid: Some(guid_le(&e[16..32])),
            name: label_utf16(&e[56..128]),
        });
    }
    Some(("gpt".into(), Some(disk), parts))
}

fn mbr(src: &dyn Source) -> Option<(String, Option<String>, Vec<Partition>)> {
    let b = src.bytes(0, 512)?;
    if b[510] != 0x55 || b[511] != 0xAA {
        return None;
    }
    let mut parts = Vec::new();
    for i in 0..4usize {
        let e = &b[446 + 16 * i..446 + 16 * (i + 1)];
        if e[0] != 0 && e[0] != 0x80 {
            return None; // not a partition table (a boot sector of something else)
        }
        let kind = e[4];
        let sectors = le32(e, 12) as u64;
        if kind == 0 || sectors == 0 {
            continue;
        }
        parts.push((i as u32 + 1, kind, le32(e, 8) as u64, sectors));
    }
    if parts.is_empty() {
        return None;
    }
    let sig = le32(&b, 440);
    let id = (sig != 0).then(|| format!("{sig:08x}"));
    let parts = parts
        .into_iter()
        .map(|(n, kind, start, sectors)| Partition {
            number: n,
            start: start * SECTOR,
            size: sectors * SECTOR,
            part_type: format!("0x{kind:x}"),
            uuid: id.as_ref().map(|d| format!("{d}-{n:02x}")),
            name: None,
        })
        .collect();
    Some(("dos".into(), id, parts))
}
