//! The live mount table: what is mounted where, read from `/proc/self/mountinfo` under the
//! root. The one reader of it, so every caller sees the same table (and a fixture tree can
//! bring its own).

use std::path::{Path, PathBuf};

use crate::sys::Root;

/// Where the mount table is, under the root.
pub const MOUNT_TABLE: &str = "/proc/self/mountinfo";

/// A mount of the live mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub mountpoint: PathBuf,
    pub fstype: String,
    pub source: String,
    /// `major:minor` of the mounted device.
    pub dev: String,
}

/// Reads the mount table of the system under the root ([`MOUNT_TABLE`]).
pub fn mount_table(root: &Root) -> std::io::Result<Vec<Mount>> {
    std::fs::read_to_string(root.follow(MOUNT_TABLE)).map(|t| parse_mountinfo(&t))
}

/// Parses /proc/self/mountinfo (octal escapes decoded).
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split_whitespace().collect();
            let r: Vec<&str> = right.split_whitespace().collect();
            if f.len() < 5 || r.len() < 2 {
                return None;
            }
            Some(Mount {
                mountpoint: PathBuf::from(super::fstab::unescape(f[4])),
                fstype: r[0].to_string(),
                source: super::fstab::unescape(r[1]),
                dev: f[2].to_string(),
            })
        })
        .collect()
}

/// The mount that holds `p` (the longest mountpoint prefix).
pub fn mount_of<'a>(mounts: &'a [Mount], p: &Path) -> Option<&'a Mount> {
    mounts
        .iter()
        .filter(|m| p.starts_with(&m.mountpoint))
        .max_by_key(|m| m.mountpoint.as_os_str().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines() {
        let t = "22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n95 22 254:16 / /mnt/data\\040disk rw,relatime shared:50 - ext4 /dev/mapper/datavg-lvdata rw\n";
        let m = parse_mountinfo(t);
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].mountpoint, PathBuf::from("/mnt/data disk"));
        assert_eq!(m[1].source, "/dev/mapper/datavg-lvdata");
        assert_eq!(m[1].dev, "254:16");
    }

    #[test]
    fn the_table_is_read_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path()).unwrap();
        assert!(mount_table(&root).is_err(), "no table in an empty tree");
        std::fs::create_dir_all(dir.path().join("proc/self")).unwrap();
        std::fs::write(
            dir.path().join("proc/self/mountinfo"),
            "22 1 254:1 / / rw - ext4 /dev/vda1 rw\n95 22 254:16 / /srv rw - xfs /dev/vdb rw\n",
        )
        .unwrap();
        let t = mount_table(&root).unwrap();
        assert_eq!(
            mount_of(&t, Path::new("/srv/a")).unwrap().source,
            "/dev/vdb"
        );
        assert_eq!(mount_of(&t, Path::new("/etc")).unwrap().source, "/dev/vda1");
    }
}
