//! Application files on the system disk that no package owns (`/opt`, `/usr/local`,
//! `/srv`, `/var/www`, `/var/lib/*`, `/var/spool/*`) and database data directories there:
//! the Change OS deletes them, so `check` names each folder with its size and the
//! `--path` that saves it, and refuses a live database directory unless it is captured
//! consistently.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Gather;

/// A folder on the system disk holding files no package owns.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct AppDir {
    pub path: String,
    pub files: u64,
    pub bytes: u64,
    /// A database's data directory inside it (`postgresql`, `mysql`, …), with its path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<(String, String)>,
    /// Inside the configured data paths: captured.
    pub captured: bool,
}

/// The folders looked at; `/usr/local/*`, `/var/lib/*` and `/var/spool/*` one level down.
const TOPS: &[&str] = &["/opt", "/srv", "/var/www"];
/// (`/usr/local` itself is a place of the OS: its folders are named one by one.)
const PER_CHILD: &[&str] = &["/usr/local", "/var/lib", "/var/spool"];

/// `/var/lib` and `/var/spool` folders of the OS itself (its managers' state, caches).
const OS_STATE: &[&str] = &[
    "apt",
    "dpkg",
    "rpm",
    "dnf",
    "yum",
    "zypp",
    "apk",
    "systemd",
    "ucf",
    "pam",
    "dhcp",
    "dhclient",
    "misc",
    "cloud",
    "carryover",
    "polkit-1",
    "private",
    "sudo",
    "logrotate",
    "man-db",
    "os-prober",
    "vim",
    "python",
    "sgml-base",
    "xml-core",
    "initramfs-tools",
    "NetworkManager",
    "chrony",
    "ntp",
    "ntpsec",
    "snapd",
    "lxcfs",
    "ubuntu-advantage",
    "command-not-found",
    "landscape",
    "update-notifier",
    "apport",
    "usbutils",
    "pollinate",
    "shells.state",
    "dbus",
    "emacsen-common",
    "ispell",
    "dictionaries-common",
    "update-rc.d",
    "alternatives",
    "selinux",
    "authselect",
    "rsyslog",
    "plymouth",
    "hwclock",
    "smartmontools",
    "tpm",
    "fwupd",
    "os-release",
    "lvm",
    "nfs",
    "rpcbind",
    "sss",
    "gssproxy",
    "texmf",
    "ca-certificates",
    "openssl",
    "ssl",
    "containerd",
    "machines",
    "portables",
    "ldconfig",
    "libuuid",
    "AccountsService",
    "udisks2",
    "upower",
    "colord",
    "ghostscript",
    "cron",
    "cron/crontabs",
    "anacron",
    "rsyslog",
    "postfix",
    "exim4",
    "mail",
    "mlocate",
    "plocate",
    "locate",
    "aspell",
    "pycentral",
    "pypy",
    "sepolgen",
    "kdump",
    "tuned",
    "unbound",
    "sendmail",
    "cups",
    "gems",
    "iscsi",
    "mdadm",
    "multipath",
    "nginx",
    "php",
    "ucf",
    "vmware",
    "waagent",
    "google",
    "amazon",
    "hyperv",
    "qemu-guest-agent",
    "cloud-init",
    "debconf",
    "xkb",
    "tmpfiles",
    "ufw",
    "firewalld",
    "iptables",
];

/// Files that mark a database's data directory, and the database.
const DATABASE_MARKS: &[(&str, &str)] = &[
    ("PG_VERSION", "postgresql"),
    ("ibdata1", "mysql/mariadb"),
    ("mysql.ibd", "mysql/mariadb"),
    ("aria_log_control", "mariadb"),
    ("WiredTiger", "mongodb"),
    ("mongod.lock", "mongodb"),
    ("dump.rdb", "redis"),
    ("appendonly.aof", "redis"),
    ("appendonlydir", "redis"),
];

/// Finds the database data directory at or below `dir` (three levels down at most):
/// (database, in-root path).
fn find_database(g: &Gather, dir: &Path) -> Option<(String, String)> {
    for e in walkdir::WalkDir::new(dir)
        .max_depth(4)
        .follow_links(false)
        .into_iter()
        .flatten()
    {
        let name = e.file_name().to_string_lossy();
        if let Some((_, db)) = DATABASE_MARKS.iter().find(|(m, _)| *m == name) {
            let data_dir = e.path().parent().unwrap_or(dir);
            // PostgreSQL's PG_VERSION exists in each base/<oid> too: the cluster is the top
            let data_dir = if *db == "postgresql"
                && data_dir.parent().and_then(|p| p.file_name()) == Some("base".as_ref())
            {
                data_dir.parent().and_then(Path::parent).unwrap_or(data_dir)
            } else {
                data_dir
            };
            return Some((db.to_string(), g.inner(data_dir).display().to_string()));
        }
    }
    None
}

/// The folders to look at: the tops and each child of the per-child folders that is
/// not the OS's own.
fn candidates(g: &Gather) -> Vec<String> {
    let mut out: Vec<String> = TOPS.iter().map(|s| s.to_string()).collect();
    for parent in PER_CHILD {
        if !g.root.follow(parent).is_dir() {
            continue;
        }
        for c in g.list(parent) {
            let name = c.file_name().map(|n| n.to_string_lossy().into_owned());
            if let Some(n) = name
                && !OS_STATE.contains(&n.as_str())
                && c.is_dir()
            {
                out.push(format!("{parent}/{n}"));
            }
        }
    }
    out
}

pub fn gather(
    g: &Gather,
    manager: &str,
    on_system_disk: &dyn Fn(&Path) -> bool,
    data_paths: &[PathBuf],
) -> Vec<AppDir> {
    let cands = candidates(g);
    let prefixes: Vec<String> = cands.iter().map(|c| format!("{c}/")).collect();
    let owned: BTreeSet<String> = match manager {
        "dpkg" => {
            super::packages::dpkg_owned(g, &prefixes.iter().map(String::as_str).collect::<Vec<_>>())
        }
        _ => cands
            .iter()
            .flat_map(|c| super::packages::owned_under(g, manager, &format!("{c}/")))
            .collect(),
    };
    let mut out = Vec::new();
    for c in cands {
        let host = g.root.path(&c);
        let Ok(meta) = std::fs::symlink_metadata(&host) else {
            continue;
        };
        if !meta.is_dir() || !on_system_disk(Path::new(&c)) {
            continue;
        }
        let (mut files, mut bytes) = (0u64, 0u64);
        for e in walkdir::WalkDir::new(&host)
            .follow_links(false)
            .same_file_system(true)
            .into_iter()
            .flatten()
        {
            if e.file_type().is_dir() {
                continue;
            }
            let inner = g.inner(e.path()).display().to_string();
            // owned by a package, or captured as data
            if owned.contains(&inner) || data_paths.iter().any(|p| Path::new(&inner).starts_with(p))
            {
                continue;
            }
            files += 1;
            bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
        }
        // a database is named even when its folder is captured as data (copying a
        // running database's files is not a consistent backup)
        let database = find_database(g, &host);
        if files == 0 && database.is_none() {
            continue;
        }
        out.push(AppDir {
            captured: files == 0 || data_paths.iter().any(|p| Path::new(&c).starts_with(p)),
            database,
            path: c,
            files,
            bytes,
        });
    }
    out
}
