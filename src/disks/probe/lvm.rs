//! LVM read from the devices themselves — the PV label, its metadata area and the volume
//! group's text metadata — so that volume groups, their PVs and LVs are known where the
//! lvm tools are missing (a fresh image, Windows) or cannot run.

use serde::{Deserialize, Serialize};

use super::{Source, le32, le64};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VolumeGroup {
    pub name: String,
    pub uuid: String,
    pub seqno: u64,
    /// The PV this was read from.
    pub this_pv: String,
    pub pvs: Vec<PhysicalVolume>,
    pub lvs: Vec<LogicalVolume>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PhysicalVolume {
    /// The name inside the metadata (`pv0`).
    pub name: String,
    pub uuid: String,
    /// Where LVM last saw it (a hint: device names change).
    pub device: Option<String>,
    /// The whole disks it is on, once disk discovery has found it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogicalVolume {
    pub name: String,
    pub uuid: String,
    /// The PVs (by their names in `pvs`) its segments use.
    pub pvs: Vec<String>,
}

const MDA_MAGIC: &[u8; 16] = b"\x20LVM2\x20x[5A%r0N*>";

/// Reads the volume group metadata stored on a PV, when `src` is one.
pub fn read(src: &dyn Source) -> Option<VolumeGroup> {
    let (label_at, l) = (0..4u64).find_map(|s| {
        let l = src.bytes(s * 512, 512)?;
        (&l[0..8] == b"LABELONE" && &l[24..32] == b"LVM2 001").then_some((s * 512, l))
    })?;
    let off = le32(&l, 20) as usize;
    if off + 40 > 512 {
        return None;
    }
    let this_pv = String::from_utf8_lossy(&l[off..off + 32]).to_string();
    // data areas, then metadata areas: (offset, size) lists ended by zeros
    let mut p = off + 40;
    let mut lists = [Vec::new(), Vec::new()];
    for list in lists.iter_mut() {
        loop {
            if p + 16 > 512 {
                return None;
            }
            let (o, s) = (le64(&l, p), le64(&l, p + 8));
            p += 16;
            if o == 0 && s == 0 {
                break;
            }
            list.push((o, s));
        }
    }
    let _ = label_at;
    for (mda_off, mda_size) in &lists[1] {
        if let Some(text) = metadata_text(src, *mda_off, *mda_size)
            && let Some(mut vg) = parse_metadata(&text)
        {
            vg.this_pv = format_pv_uuid(&this_pv);
            return Some(vg);
        }
    }
    None
}

/// The current metadata text of one metadata area (a circular buffer after its header).
fn metadata_text(src: &dyn Source, mda_off: u64, mda_size: u64) -> Option<String> {
    let h = src.bytes(mda_off, 512)?;
    if &h[4..20] != MDA_MAGIC {
        return None;
    }
    let start = le64(&h, 24);
    let size = le64(&h, 32);
    if start != mda_off || size != mda_size || size < 1024 {
        return None;
    }
    let (loc, len) = (le64(&h, 40), le64(&h, 48));
    if len == 0 || len > 16 << 20 || loc >= size {
        return None;
    }
    let first = len.min(size - loc);
    let mut text = src.bytes(mda_off + loc, first as usize)?;
    if first < len {
        // wrapped around to just after the header
        text.extend(src.bytes(mda_off + 512, (len - first) as usize)?);
    }
    while text.last() == Some(&0) {
        text.pop();
    }
    Some(String::from_utf8_lossy(&text).into_owned())
}

/// `xxxxxx-xxxx-xxxx-xxxx-xxxx-xxxx-xxxxxx`, as the lvm tools print a PV or VG id.
pub fn format_pv_uuid(id: &str) -> String {
    if id.len() != 32 {
        return id.to_string();
    }
    format!(
        "{}-{}-{}-{}-{}-{}-{}",
        &id[0..6],
        &id[6..10],
        &id[10..14],
        &id[14..18],
        &id[18..22],
        &id[22..26],
        &id[26..32]
    )
}

/// A value of the text format.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Num(i64),
    List(Vec<Value>),
    Section(Vec<(String, Value)>),
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn skip(&mut self) {
        while self.i < self.s.len() {
            match self.s[self.i] {
                b'#' => {
                    while self.i < self.s.len() && self.s[self.i] != b'\n' {
                        self.i += 1;
                    }
                }
                c if c.is_ascii_whitespace() || c == b',' => self.i += 1,
                _ => break,
            }
        }
    }

    fn ident(&mut self) -> Option<String> {
        self.skip();
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || b"_.+-".contains(&self.s[self.i]))
        {
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        if depth > 16 {
            return None; // hostile nesting: no unbounded recursion
        }
        self.skip();
        match *self.s.get(self.i)? {
            b'"' => {
                self.i += 1;
                let mut out = Vec::new();
                while let Some(&c) = self.s.get(self.i) {
                    self.i += 1;
                    match c {
                        b'"' => {
                            return Some(Value::Str(String::from_utf8_lossy(&out).into_owned()));
                        }
                        b'\\' => {
                            out.push(*self.s.get(self.i)?);
                            self.i += 1;
                        }
                        c => out.push(c),
                    }
                }
                None
            }
            b'[' => {
                self.i += 1;
                let mut v = Vec::new();
                loop {
                    self.skip();
                    if self.s.get(self.i) == Some(&b']') {
                        self.i += 1;
                        return Some(Value::List(v));
                    }
                    v.push(self.value(depth + 1)?);
                }
            }
            _ => {
                let t = self.ident()?;
                t.parse().ok().map(Value::Num).or(Some(Value::Str(t)))
            }
        }
    }

    /// Entries until `}` (or the end at the top level).
    fn section(&mut self, depth: usize) -> Option<Vec<(String, Value)>> {
        if depth > 16 {
            return None;
        }
        let mut out = Vec::new();
        loop {
            self.skip();
            match self.s.get(self.i) {
                None => return (depth == 0).then_some(out),
                Some(b'}') => {
                    self.i += 1;
                    return (depth > 0).then_some(out);
                }
                _ => {}
            }
            let name = self.ident()?;
            self.skip();
            match self.s.get(self.i)? {
                b'{' => {
                    self.i += 1;
                    out.push((name, Value::Section(self.section(depth + 1)?)));
                }
                b'=' => {
                    self.i += 1;
                    out.push((name, self.value(depth)?));
                }
                _ => return None,
            }
        }
    }
}

fn get<'a>(sec: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    sec.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn get_str(sec: &[(String, Value)], key: &str) -> Option<String> {
    match get(sec, key)? {
        Value::Str(s) => Some(s.clone()),
        _ => None,
    }
}

/// Parses the text metadata of a volume group.
pub fn parse_metadata(text: &str) -> Option<VolumeGroup> {
    let top = Parser {
        s: text.as_bytes(),
        i: 0,
    }
    .section(0)?;
    let (name, Value::Section(vg)) = top.iter().find(|(_, v)| matches!(v, Value::Section(_)))?
    else {
        return None;
    };
    let mut out = VolumeGroup {
        name: name.clone(),
        uuid: get_str(vg, "id")?,
        seqno: match get(vg, "seqno") {
            Some(Value::Num(n)) => *n as u64,
            _ => 0,
        },
        ..VolumeGroup::default()
    };
    if let Some(Value::Section(pvs)) = get(vg, "physical_volumes") {
        for (pv_name, v) in pvs {
            if let Value::Section(pv) = v {
                out.pvs.push(PhysicalVolume {
                    name: pv_name.clone(),
                    uuid: get_str(pv, "id").unwrap_or_default(),
                    device: get_str(pv, "device"),
                    disks: Vec::new(),
                });
            }
        }
    }
    if let Some(Value::Section(lvs)) = get(vg, "logical_volumes") {
        for (lv_name, v) in lvs {
            let Value::Section(lv) = v else { continue };
            let mut pvs = Vec::new();
            for (_, seg) in lv {
                let Value::Section(seg) = seg else { continue };
                if let Some(Value::List(stripes)) = get(seg, "stripes") {
                    for s in stripes {
                        if let Value::Str(pv) = s
                            && !pvs.contains(pv)
                        {
                            pvs.push(pv.clone());
                        }
                    }
                }
            }
            out.lvs.push(LogicalVolume {
                name: lv_name.clone(),
                uuid: get_str(lv, "id").unwrap_or_default(),
                pvs,
            });
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"datavg {
id = "Zm3Xqu-2vVZ-8fsX-0Yl9-uh2c-3D6b-ObpxhR"
seqno = 3
format = "lvm2" # informational
status = ["RESIZEABLE", "READ", "WRITE"]
extent_size = 8192
physical_volumes {
pv0 {
id = "jGhkfq-MgSD-aOZz-pWsz-Rlaa-msbn-MLwdk2"
device = "/dev/vdb"
status = ["ALLOCATABLE"]
pe_start = 2048
pe_count = 2559
}
pv1 {
id = "Aaaaaa-MgSD-aOZz-pWsz-Rlaa-msbn-MLwdk3"
device = "/dev/vdc"
}
}
logical_volumes {
lvdata {
id = "q1w2e3-r4t5-y6u7-i8o9-p0a1-s2d3-f4g5h6"
status = ["READ", "WRITE", "VISIBLE"]
segment_count = 2
segment1 {
start_extent = 0
extent_count = 1000
type = "striped"
stripe_count = 1
stripes = [
"pv0", 0
]
}
segment2 {
start_extent = 1000
extent_count = 10
type = "striped"
stripe_count = 1
stripes = [
"pv1", 0
]
}
}
}
}
# Generated by LVM2 version 2.03.16(2) (2022-05-18): Tue Nov 25 20:00:00 2026
contents = "Text Format Volume Group"
version = 1
description = ""
"#;

    #[test]
    fn metadata_text() {
        let vg = parse_metadata(SAMPLE).unwrap();
        assert_eq!(vg.name, "datavg");
        assert_eq!(vg.seqno, 3);
        assert_eq!(vg.pvs.len(), 2);
        assert_eq!(vg.pvs[0].device.as_deref(), Some("/dev/vdb"));
        assert_eq!(vg.lvs[0].name, "lvdata");
        assert_eq!(vg.lvs[0].pvs, vec!["pv0", "pv1"]);
    }

    #[test]
    fn garbage_metadata_is_none() {
        for t in [
            "",
            "{",
            "vg {",
            "vg { id = ",
            "vg { a = [ \"x\" ",
            "}}}",
            &"a { ".repeat(40),
        ] {
            assert!(parse_metadata(t).is_none(), "{t}");
        }
    }

    #[test]
    fn hostile_nesting_does_not_overflow_the_stack() {
        let deep = format!("vg {{ id = \"x\" a = {} }}", "[".repeat(100_000));
        assert!(parse_metadata(&deep).is_none());
    }
}
