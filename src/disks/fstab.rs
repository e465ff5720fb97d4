//! fstab: its entries (which belong to the operating system, gone after a Change OS, and
//! which to data disks, to be brought back), its octal escapes, and the merge that writes
//! the data-disk entries into a new OS's fstab. Pure text in, text out.

use serde::{Deserialize, Serialize};

use super::SYSTEM_MOUNTPOINTS;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountEntry {
    /// The first field as written (`UUID=…`, `LABEL=…`, `/dev/vdb1`, `/dev/mapper/vg-lv`).
    pub spec: String,
    /// How `spec` names the device: `uuid`, `label`, `partuuid`, `partlabel`, `lvm`,
    /// `device`, `none` (pseudo filesystems) or `other`.
    pub spec_kind: String,
    pub mountpoint: String,
    pub fstype: String,
    pub options: Vec<String>,
    pub dump: u32,
    pub pass: u32,
    /// The root filesystem.
    pub root: bool,
    /// Part of the operating system (/, /boot, /boot/efi, /usr …): not carried over.
    pub system: bool,
    /// A kernel filesystem (proc, tmpfs, …) every OS sets up itself: not carried over.
    pub pseudo: bool,
    pub swap: bool,
}

impl MountEntry {
    /// True when restore should carry the entry to the new OS.
    pub fn is_data(&self) -> bool {
        !self.system && !self.pseudo
    }
}

const PSEUDO_FS: &[&str] = &[
    "proc",
    "sysfs",
    "tmpfs",
    "devpts",
    "devtmpfs",
    "securityfs",
    "cgroup",
    "cgroup2",
    "debugfs",
    "tracefs",
    "mqueue",
    "hugetlbfs",
    "pstore",
    "bpf",
    "configfs",
    "efivarfs",
    "fusectl",
    "binfmt_misc",
    "autofs",
    "rpc_pipefs",
    "nfsd",
];

/// Decodes fstab's octal escapes (`\040` for a space).
pub fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = (oct[0] - b'0') as u32 * 64
                    + (oct[1] - b'0') as u32 * 8
                    + (oct[2] - b'0') as u32;
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes a field for fstab (space, tab, newline and backslash as octal).
pub fn escape(field: &str) -> String {
    let mut out = String::new();
    for c in field.chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    out
}

fn spec_kind(spec: &str, fstype: &str) -> &'static str {
    let upper = spec.to_ascii_uppercase();
    if upper.starts_with("UUID=") || spec.starts_with("/dev/disk/by-uuid/") {
        "uuid"
    } else if upper.starts_with("PARTUUID=") || spec.starts_with("/dev/disk/by-partuuid/") {
        "partuuid"
    } else if upper.starts_with("PARTLABEL=") || spec.starts_with("/dev/disk/by-partlabel/") {
        "partlabel"
    } else if upper.starts_with("LABEL=") || spec.starts_with("/dev/disk/by-label/") {
        "label"
    } else if spec.starts_with("/dev/mapper/") || is_vg_lv_path(spec) {
        "lvm"
    } else if spec.starts_with("/dev/") {
        "device"
    } else if PSEUDO_FS.contains(&fstype) || spec == "none" {
        "none"
    } else {
        "other"
    }
}

/// `/dev/VG/LV` (two components under /dev that are not a known device directory).
fn is_vg_lv_path(spec: &str) -> bool {
    let Some(rest) = spec.strip_prefix("/dev/") else {
        return false;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    parts.len() == 2
        && !["disk", "md", "block", "char", "pts", "shm", "net", "cdrom"].contains(&parts[0])
}

/// Parses fstab.
pub fn parse_fstab(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                return None;
            }
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 3 {
                return None;
            }
            let spec = unescape(f[0]);
            let mountpoint = unescape(f[1]);
            let fstype = f[2].to_string();
            let swap = fstype == "swap";
            let kind = spec_kind(&spec, &fstype);
            Some(MountEntry {
                root: mountpoint == "/",
                system: SYSTEM_MOUNTPOINTS.contains(&mountpoint.as_str()),
                pseudo: PSEUDO_FS.contains(&fstype.as_str()) || kind == "none",
                swap,
                spec_kind: kind.to_string(),
                options: f
                    .get(3)
                    .map(|o| o.split(',').map(str::to_string).collect())
                    .unwrap_or_else(|| vec!["defaults".into()]),
                dump: f.get(4).and_then(|x| x.parse().ok()).unwrap_or(0),
                pass: f.get(5).and_then(|x| x.parse().ok()).unwrap_or(0),
                spec,
                mountpoint,
                fstype,
            })
        })
        .collect()
}

/// Renders an entry as an fstab line, adding `nofail` so that a missing data disk can
/// never hang the boot of the new OS.
pub fn render(e: &MountEntry) -> String {
    let mut opts = e.options.clone();
    if !opts.iter().any(|o| o == "nofail") {
        opts.push("nofail".into());
    }
    format!(
        "{}\t{}\t{}\t{}\t{} {}",
        escape(&e.spec),
        escape(if e.swap { "none" } else { &e.mountpoint }),
        e.fstype,
        opts.join(","),
        e.dump,
        e.pass
    )
}

/// Why a data entry from a snapshot cannot be written as an fstab line (`None` when it
/// can): a field that would end the line, start a comment or shift the fields.
pub fn refused(e: &MountEntry) -> Option<String> {
    let word = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_graphic());
    let ok = !e.spec.is_empty()
        && !e.spec.starts_with('#')
        && !e.spec.chars().any(char::is_control)
        && (e.swap || !e.mountpoint.is_empty())
        && !e.mountpoint.chars().any(char::is_control)
        && word(&e.fstype)
        && e.options
            .iter()
            .all(|o| !o.contains(',') && (o.is_empty() || word(o)));
    // a data disk never mounts over the OS (`/usr`, `/etc/cron.d`…): an entry claiming
    // `system: false` for such a place is hostile
    let over_os = !e.swap
        && (crate::paths::is_system_location(&e.mountpoint)
            || e.mountpoint == "/etc"
            || e.mountpoint.starts_with("/etc/"));
    let ok = ok && !over_os;
    (!ok).then(|| {
        format!(
            "refusing the fstab entry '{} {} {}': not a device, mountpoint (outside the OS's own places), type and options",
            e.spec.escape_debug(),
            e.mountpoint.escape_debug(),
            e.fstype.escape_debug()
        )
    })
}

/// Two entries that mount the same thing the same way.
pub fn same_line(a: &MountEntry, b: &MountEntry) -> bool {
    (
        &a.spec,
        &a.mountpoint,
        &a.fstype,
        &a.options,
        a.dump,
        a.pass,
    ) == (
        &b.spec,
        &b.mountpoint,
        &b.fstype,
        &b.options,
        b.dump,
        b.pass,
    )
}

/// Merges data-disk entries into a new fstab. Every line of the new file stays in its
/// place, with one replacement: a line for the same device at the same place (the same
/// mountpoint, or both swap) takes the captured entry's options (and `nofail`). A
/// captured entry whose mountpoint the new OS mounts another device at is left out and
/// reported (the new OS's mount is kept); every other one is appended unless the file
/// already has that very line — one device may be mounted at several places (btrfs
/// subvolumes, bind mounts). System and pseudo entries of the old OS are never carried.
/// Returns the new text and the clashes. Idempotent.
pub fn merge_fstab(new_text: &str, captured: &[MountEntry]) -> (String, Vec<String>) {
    let entry = |l: &str| parse_fstab(l).into_iter().next();
    let mut lines: Vec<String> = new_text.lines().map(str::to_string).collect();
    let own = lines.len();
    let mut replaced = vec![false; own];
    let mut clashes = Vec::new();
    let mut header = false;
    for e in captured.iter().filter(|e| e.is_data()) {
        let rendered = render(e);
        let Some(want) = entry(&rendered) else {
            continue;
        };
        if lines
            .iter()
            .any(|l| entry(l).is_some_and(|x| same_line(&x, &want)))
        {
            continue;
        }
        let same_place = |x: &MountEntry| {
            if want.swap {
                x.swap
            } else {
                !x.swap && x.mountpoint == want.mountpoint
            }
        };
        // the new file's own lines at the same place
        let here: Vec<(usize, MountEntry)> = (0..own)
            .filter_map(|i| entry(&lines[i]).map(|x| (i, x)))
            .filter(|(_, x)| same_place(x))
            .collect();
        if let Some((i, _)) = here
            .iter()
            .find(|(i, x)| !replaced[*i] && x.spec == want.spec)
        {
            lines[*i] = rendered;
            replaced[*i] = true;
            continue;
        }
        if !want.swap
            && here.iter().all(|(_, x)| x.spec != want.spec)
            && let Some((_, x)) = here.first()
        {
            clashes.push(format!(
                "{} is {} on the new OS, not {}: kept the new OS's entry",
                e.mountpoint, x.spec, e.spec
            ));
            continue;
        }
        if !header {
            lines.push("# data disks restored by carryover".into());
            header = true;
        }
        lines.push(rendered);
    }
    let mut out = lines.join("\n");
    out.push('\n');
    (out, clashes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ECS: &str = "# /etc/fstab: static file system information.\nUUID=0a1b2c3d-1111-2222-3333-444455556666 /               ext4    errors=remount-ro 0       1\nUUID=7E1F-1A2B  /boot/efi       vfat    umask=0077      0       1\nUUID=aaaa-bbbb /srv ext4 defaults 0 2\n/dev/mapper/datavg-lvdata /data xfs defaults,noatime 0 0\nLABEL=backup /mnt/backup\\040disk ext4 defaults 0 2\n/dev/vdc1 none swap sw 0 0\ntmpfs /tmp tmpfs defaults,size=1g 0 0\nUUID=5F1E3C2B /mnt/win ntfs-3g defaults 0 0\n";

    #[test]
    fn ecs_fstab_kinds() {
        let m = parse_fstab(ECS);
        assert_eq!(m.len(), 8);
        assert!(m[0].root && m[0].system);
        assert!(m[1].system && !m[1].root);
        assert_eq!(m[2].spec_kind, "uuid");
        assert!(m[2].is_data());
        assert_eq!(m[3].spec_kind, "lvm");
        assert_eq!(m[3].options, vec!["defaults", "noatime"]);
        assert_eq!(m[4].mountpoint, "/mnt/backup disk");
        assert_eq!(m[4].spec_kind, "label");
        assert!(m[5].swap && m[5].spec_kind == "device");
        assert!(m[6].pseudo);
        assert_eq!(
            parse_fstab("/dev/vg0/lv /x ext4 defaults")[0].spec_kind,
            "lvm"
        );
    }

    #[test]
    fn merge_carries_data_disks_only_with_nofail() {
        let old = parse_fstab(ECS);
        let new = "UUID=ffff-new-root / ext4 defaults 0 1\n";
        let (merged, clashes) = merge_fstab(new, &old);
        assert!(clashes.is_empty());
        assert!(!merged.contains("0a1b2c3d"), "old root never carried");
        assert!(!merged.contains("7E1F-1A2B"));
        assert!(!merged.contains("tmpfs"));
        assert!(merged.contains("UUID=aaaa-bbbb\t/srv\text4\tdefaults,nofail\t0 2"));
        assert!(merged.contains("/mnt/backup\\040disk"));
        assert!(merged.contains("/dev/vdc1\tnone\tswap\tsw,nofail"));
        let (again, _) = merge_fstab(&merged, &old);
        assert_eq!(again, merged, "second merge changes nothing");
    }

    #[test]
    fn merge_reports_a_mountpoint_the_new_os_uses() {
        let old = parse_fstab("UUID=aaaa /srv ext4 defaults 0 2\n");
        let (merged, clashes) = merge_fstab("UUID=bbbb /srv xfs defaults 0 0\n", &old);
        assert_eq!(clashes.len(), 1);
        assert!(!merged.contains("aaaa"));
    }

    #[test]
    fn escapes_round_trip() {
        assert_eq!(unescape(&escape("/a b\\c")), "/a b\\c");
        assert_eq!(unescape("\\"), "\\");
        assert_eq!(unescape("ab\\04"), "ab\\04");
    }
}
