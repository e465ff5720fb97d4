//! The configuration the user changed: package configuration files whose content differs
//! from the package's (dpkg's `Conffiles:` checksums, rpm's `%config` files by `rpm -V`)
//! and files under /etc that no package owns — minus what other steps carry (accounts,
//! hostname, fstab, SSH, cron …) and what belongs to the machine (network, boot, the
//! package manager). Private files keep their content in the secrets object.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::Gather;
use super::accounts::IdNames;
use super::files::{self, FileCopy};

/// A changed or added configuration file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ConfigFile {
    #[serde(flatten)]
    pub file: FileCopy,
    /// The package whose configuration file this is; `None`: owned by no package.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// The content is in the secrets object (root-only), not here.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub private: bool,
}

/// Places under /etc carryover never carries as plain configuration: another step owns
/// them, or they belong to the machine and its new OS (network, boot, package manager,
/// generated files and caches). An entry ending in `/` is a folder, one ending in `*` a
/// prefix, any other one file (and its `-` backup: `/etc/passwd-`).
pub const NOT_CARRIED: &[&str] = &[
    // other steps
    "/etc/passwd",
    "/etc/shadow",
    "/etc/group",
    "/etc/gshadow",
    "/etc/subuid",
    "/etc/subgid",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/fstab",
    "/etc/crypttab",
    "/etc/machine-id",
    "/etc/ssh/",
    "/etc/sudoers",
    "/etc/sudoers.d/",
    "/etc/crontab",
    "/etc/cron.d/",
    "/etc/cron.hourly/",
    "/etc/cron.daily/",
    "/etc/cron.weekly/",
    "/etc/cron.monthly/",
    "/etc/cron.allow",
    "/etc/cron.deny",
    "/etc/anacrontab",
    "/etc/sysctl.conf",
    "/etc/sysctl.d/",
    "/etc/chrony/",
    "/etc/chrony.conf",
    "/etc/chrony.keys",
    "/etc/ntp.conf",
    "/etc/ntpsec/",
    "/etc/systemd/",
    "/etc/timezone",
    "/etc/localtime",
    "/etc/carryover/",
    "/etc/apt/",
    "/etc/yum.repos.d/",
    "/etc/zypp/",
    "/etc/pki/rpm-gpg/",
    "/etc/dnf/",
    "/etc/yum.conf",
    "/etc/yum/",
    "/etc/apk/",
    "/etc/dpkg/",
    "/etc/cloud/",
    // the machine: network, boot, kernel, storage, the release's identity
    "/etc/network/",
    "/etc/netplan/",
    "/etc/NetworkManager/",
    "/etc/sysconfig/network",
    "/etc/sysconfig/network-scripts/",
    "/etc/dhcp/",
    "/etc/dhcpcd.conf",
    "/etc/resolvconf/",
    "/etc/default/grub",
    "/etc/default/grub.d/",
    "/etc/grub.d/",
    "/etc/kernel/",
    "/etc/kernel-img.conf",
    "/etc/initramfs-tools/",
    "/etc/dracut.conf",
    "/etc/dracut.conf.d/",
    "/etc/modprobe.d/",
    "/etc/lvm/backup/",
    "/etc/lvm/archive/",
    "/etc/lvm/devices/",
    "/etc/modules-load.d/",
    "/etc/udev/",
    "/etc/selinux/",
    "/etc/lvm/backup/",
    "/etc/lvm/archive/",
    "/etc/lvm/cache/",
    "/etc/zfs/zpool.cache",
    "/etc/os-release",
    "/etc/lsb-release",
    "/etc/debian_version",
    "/etc/redhat-release",
    "/etc/system-release",
    "/etc/system-release-cpe",
    "/etc/issue",
    "/etc/mtab",
    "/etc/adjtime",
    "/etc/.pwd.lock",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.preload",
    // made by the new OS's own tools and packages' scripts
    "/etc/alternatives/",
    "/etc/rc0.d/",
    "/etc/rc1.d/",
    "/etc/rc2.d/",
    "/etc/rc3.d/",
    "/etc/rc4.d/",
    "/etc/rc5.d/",
    "/etc/rc6.d/",
    "/etc/rcS.d/",
    "/etc/ssl/certs/",
    "/etc/ca-certificates.conf",
    "/etc/pki/ca-trust/extracted/",
    "/etc/pam.d/common-*",
    "/etc/shells",
    "/etc/console-setup/cached*",
    "/etc/.updated",
    "/etc/X11/Xsession.d/",
    "/etc/motd",
    "/etc/xml/",
    "/etc/sgml/",
    "/etc/ssl/private/ssl-cert-snakeoil.key",
    "/etc/.java/",
    "/etc/security/opasswd",
    "/etc/nsswitch.conf",
    "/etc/mysql/debian.cnf",
    "/etc/aliases.db",
    "/etc/mailname",
    "/etc/papersize",
    // version control of /etc (etckeeper): its history is not configuration
    "/etc/.git/",
    "/etc/.gitignore",
    "/etc/.hg/",
    "/etc/.bzr/",
    "/etc/.etckeeper",
    "/etc/etckeeper/",
];

/// The operator's hooks (`/etc/carryover/hooks/<phase>.d/`): under carryover's own
/// folder, which is not carried, yet carried all the same — the system disk that held them
/// is replaced, and the post-restore hooks (loading a database dump) must be on the new
/// OS before they run. The config-files step writes them root's, never group- or
/// other-writable, never as links.
pub const HOOKS: &str = "/etc/carryover/hooks/";

/// A folder of enabled things (`/etc/nginx/sites-enabled`, `/etc/apache2/mods-enabled`)
/// and the names it held: what the operator removed there stays removed on the new OS
/// (a package's install script re-creates `sites-enabled/default`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct EnabledDir {
    pub path: String,
    pub entries: Vec<String>,
}

/// The `/etc/<program>/*-enabled` folders and their entries.
pub fn enabled_dirs(g: &Gather) -> Vec<EnabledDir> {
    let mut out = Vec::new();
    if !g.root.follow("/etc").is_dir() {
        return out;
    }
    for program in g.list("/etc") {
        let Ok(children) = crate::sys::list_dir(&program) else {
            continue;
        };
        for d in children {
            let name = d
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let inner = g.inner(&d).display().to_string();
            if !name.ends_with("-enabled") || !d.is_dir() || not_carried(&format!("{inner}/")) {
                continue;
            }
            let mut entries: Vec<String> = crate::sys::list_dir(&d)
                .unwrap_or_default()
                .iter()
                .filter_map(|e| e.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            entries.sort();
            out.push(EnabledDir {
                path: inner,
                entries,
            });
        }
    }
    out
}

/// At most this many configuration files, and bytes of them, are carried; past that a
/// problem names what was left out (an /etc grown by a tool, not by hand).
pub const MAX_FILES: usize = 2000;
pub const MAX_BYTES: usize = 16 << 20;

/// True when `path` is one of [`NOT_CARRIED`], or a packaging leftover
/// (`*.dpkg-dist`, `*.rpmnew`, `*.carryover-new`, editor backups).
pub fn not_carried(path: &str) -> bool {
    // the operator's hooks are the one exception under carryover's own folder
    let hook = path.starts_with(HOOKS) && !path.chars().any(|c| c.is_control());
    !hook
        && NOT_CARRIED.iter().any(|p| {
            if let Some(prefix) = p.strip_suffix('*') {
                path.starts_with(prefix)
            } else if p.ends_with('/') {
                path.starts_with(p) || path == &p[..p.len() - 1]
            } else {
                path == *p || path.strip_prefix(p) == Some("-")
            }
        })
        || path.ends_with('~')
        || [
            ".dpkg-old",
            ".dpkg-dist",
            ".dpkg-new",
            ".dpkg-bak",
            ".ucf-old",
            ".ucf-dist",
            ".ucf-new",
            ".rpmnew",
            ".rpmsave",
            ".rpmorig",
            ".carryover-new",
            ".swp",
        ]
        .iter()
        .any(|s| path.ends_with(s))
        || path.chars().any(|c| c.is_control())
}

/// ucf's record of the files it manages (`/var/lib/ucf/hashfile`: `md5  path`): a
/// package's configuration outside dpkg's conffiles.
pub fn parse_ucf_hashfile(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let (sum, path) = l.split_once(char::is_whitespace)?;
            let path = path.trim();
            (sum.len() == 32 && path.starts_with('/')).then(|| (path.to_string(), sum.to_string()))
        })
        .collect()
}

/// The conffiles of a dpkg status whose current content differs from the package's
/// checksum: `(path, package)`. `md5_of` reads a file's MD5 (None: absent).
pub fn dpkg_changed(
    status: &[super::packages::DpkgPackage],
    md5_of: impl Fn(&str) -> Option<String>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in status.iter().filter(|p| p.installed) {
        for (path, sum) in &p.conffiles {
            if md5_of(path).is_some_and(|now| &now != sum) {
                out.push((path.clone(), p.name.clone()));
            }
        }
    }
    out
}

/// The `%config` files `rpm -Va` reports with a changed digest: `S.5....T.  c /etc/x`.
pub fn parse_rpm_verify(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() == 3 && w[1] == "c" && w[0].as_bytes().get(2) == Some(&b'5'))
                .then(|| w[2].to_string())
        })
        .collect()
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(bytes))
}

/// Gathers the changed and added configuration; private files' copies go to the second
/// list (for the secrets object), their entries stay here marked `private`.
pub fn gather(
    g: &Gather,
    names: &IdNames,
    packages: &super::packages::Packages,
    owned: &BTreeSet<String>,
) -> (Vec<ConfigFile>, Vec<FileCopy>) {
    let md5_now = |p: &str| {
        crate::sys::read_opt(&g.root.path(p))
            .ok()
            .flatten()
            .map(|b| md5_hex(&b))
    };
    let mut changed: BTreeMap<String, Option<String>> = BTreeMap::new();
    match packages.manager.as_str() {
        "dpkg" => {
            if let Some(t) = g.read("/var/lib/dpkg/status") {
                let status = super::packages::parse_dpkg(&t);
                for (path, pkg) in dpkg_changed(&status, md5_now) {
                    changed.insert(path, Some(pkg));
                }
            }
        }
        "rpm" => {
            if let Ok(out) = super::packages::rpm(g, &["-Va", "--nodeps", "--noscripts"], true) {
                for p in parse_rpm_verify(&out) {
                    changed.insert(p, Some(String::new()));
                }
            }
        }
        _ => {}
    }
    // ucf's files as they were installed are the package's, not the user's
    let ucf = g
        .read("/var/lib/ucf/hashfile")
        .map(|t| parse_ucf_hashfile(&t))
        .unwrap_or_default();
    let unchanged_ucf = |p: &str| {
        ucf.get(p).is_some_and(|sum| {
            crate::sys::read_opt(&g.root.path(p))
                .ok()
                .flatten()
                .is_some_and(|b| &md5_hex(&b) == sum)
        })
    };
    // files no package owns (only where the manager can say what it owns)
    if packages.manager == "dpkg" || packages.manager == "rpm" {
        let etc = g.root.path("/etc");
        for entry in walkdir::WalkDir::new(&etc)
            .follow_links(false)
            .into_iter()
            .filter_entry(|e| {
                let dir = format!("{}/", g.inner(e.path()).display());
                // a folder on the way to the hooks is walked; its other files are not taken
                !e.file_type().is_dir() || !not_carried(&dir) || HOOKS.starts_with(&dir)
            })
            .flatten()
        {
            if entry.file_type().is_dir() {
                continue;
            }
            let inner = g.inner(entry.path()).display().to_string();
            if owned.contains(&inner)
                || not_carried(&inner)
                || changed.contains_key(&inner)
                || unchanged_ucf(&inner)
            {
                continue;
            }
            if ucf
                .get(&inner)
                .is_some_and(|sum| md5_now(&inner).as_ref() == Some(sum))
            {
                continue;
            }
            changed.insert(inner, None);
        }
    }
    let mut files_out = Vec::new();
    let mut private = Vec::new();
    let (mut count, mut bytes) = (0usize, 0usize);
    let mut left_out = 0usize;
    for (path, package) in changed {
        if not_carried(&path) {
            continue;
        }
        let Some(copy) = files::copy(g, &path, names) else {
            continue;
        };
        if count >= MAX_FILES || bytes + copy.len() > MAX_BYTES {
            left_out += 1;
            continue;
        }
        count += 1;
        bytes += copy.len();
        let package = package.filter(|p| !p.is_empty());
        if files::is_private(&copy) {
            files_out.push(ConfigFile {
                file: FileCopy {
                    content: String::new(),
                    ..copy.clone()
                },
                package,
                private: true,
            });
            private.push(copy);
        } else {
            files_out.push(ConfigFile {
                file: copy,
                package,
                private: false,
            });
        }
    }
    if left_out > 0 {
        g.problem(
            "/etc",
            format!(
                "{left_out} more configuration files not carried: past {MAX_FILES} files or {} MiB (add the folders that matter to [data] paths)",
                MAX_BYTES >> 20
            ),
        );
    }
    (files_out, private)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_conffiles_by_checksum() {
        let status = super::super::packages::parse_dpkg(
            "Package: nginx-common\nStatus: install ok installed\nVersion: 1.22\nConffiles:\n /etc/nginx/nginx.conf aaa\n /etc/nginx/mime.types bbb\n /etc/nginx/old.conf ccc obsolete\nDescription: x\n",
        );
        let changed = dpkg_changed(&status, |p| match p {
            "/etc/nginx/nginx.conf" => Some("zzz".into()),
            "/etc/nginx/mime.types" => Some("bbb".into()),
            _ => None,
        });
        assert_eq!(
            changed,
            vec![("/etc/nginx/nginx.conf".into(), "nginx-common".into())]
        );
    }

    #[test]
    fn what_other_steps_own_is_not_carried() {
        for p in [
            "/etc/passwd-",
            "/etc/ssh/sshd_config",
            "/etc/apt/sources.list",
            "/etc/network/interfaces",
            "/etc/nginx/nginx.conf.dpkg-dist",
            "/etc/alternatives/editor",
            "/etc/carryover/config.toml",
            "/etc/carryover/token",
            "/etc/carryover/config.d/10-vm.toml",
            "/etc/carryover/hooks/post-restore.d/90-load~",
        ] {
            assert!(not_carried(p), "{p}");
        }
        for p in [
            "/etc/nginx/sites-available/app",
            "/etc/myapp/app.toml",
            "/etc/environment",
            "/etc/carryover/hooks/post-restore.d/90-postgresql-load",
        ] {
            assert!(!not_carried(p), "{p}");
        }
    }

    #[test]
    fn ucf_hashfile() {
        let h = parse_ucf_hashfile(
            "0123456789abcdef0123456789abcdef  /etc/ssh/sshd_config\nbad line\n",
        );
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("/etc/ssh/sshd_config"));
    }

    #[test]
    fn ucf_hashfile_lines() {
        let h = parse_ucf_hashfile(
            "e6fd6e8e29210c5678181f33177d5433  /etc/ssh/sshd_config\nfbc910d4bc9889530c92c7e8b101689b  /etc/postgresql-common/createcluster.conf\n",
        );
        assert_eq!(
            h.get("/etc/postgresql-common/createcluster.conf")
                .map(String::as_str),
            Some("fbc910d4bc9889530c92c7e8b101689b")
        );
        assert_eq!(h.len(), 2);
        assert!(not_carried("/etc/lvm/backup/datavg"));
        assert!(not_carried("/etc/lvm/archive/datavg_00000-1.vg"));
    }

    #[test]
    fn rpm_verify_lines() {
        let t = "S.5....T.  c /etc/httpd/conf/httpd.conf\n.......T.  c /etc/sysconfig/x\nS.5....T.    /usr/bin/y\nmissing   c /etc/z\n";
        assert_eq!(parse_rpm_verify(t), vec!["/etc/httpd/conf/httpd.conf"]);
    }
}
