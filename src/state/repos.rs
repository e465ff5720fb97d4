//! Third-party package repositories and their keys (apt sources in both formats, yum/dnf
//! and zypp `.repo` files, keyrings, apt pins): what the new OS needs before the user's
//! packages can be installed again. The distribution's own archives are left out — the
//! new OS has its own.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::Gather;
use super::accounts::IdNames;
use super::files::{self, FileCopy};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Repos {
    /// The old OS's release codename (`bookworm`), which apt suites name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codename: Option<String>,
    pub apt: Vec<AptSource>,
    pub rpm: Vec<RpmRepoFile>,
    /// Keyrings the repositories name (`signed-by`, `trusted.gpg.d`, `gpgkey=file://`).
    pub keys: Vec<FileCopy>,
    /// apt preferences (pins) not owned by a package.
    pub pins: Vec<FileCopy>,
}

/// One apt source (a one-line entry or a deb822 stanza), third-party.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct AptSource {
    /// The file it came from.
    pub file: String,
    /// `deb`, `deb-src`.
    pub types: Vec<String>,
    pub uris: Vec<String>,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    /// A keyring path (`signed-by`), when the source names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
    /// An armored key given inline in a deb822 `Signed-By:` field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inline_key: Option<String>,
    /// Other options (`arch=amd64`), as written.
    pub options: Vec<(String, String)>,
}

/// A `.repo` file of yum/dnf or zypper with at least one third-party section.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct RpmRepoFile {
    /// `yum` or `zypp`.
    pub manager: String,
    pub file: FileCopy,
    pub ids: Vec<String>,
    pub urls: Vec<String>,
}

/// The components of a distribution's own archives.
const DISTRO_COMPONENTS: &[&str] = &[
    "main",
    "contrib",
    "non-free",
    "non-free-firmware",
    "restricted",
    "universe",
    "multiverse",
];
/// The last path element of a distribution archive's URI.
const DISTRO_ARCHIVES: &[&str] = &[
    "debian",
    "debian-security",
    "debian-backports",
    "debian-ports",
    "ubuntu",
    "ubuntu-ports",
    "ubuntu-security",
];

impl AptSource {
    /// True for the distribution's own archive (a mirror of Debian or Ubuntu, with only
    /// the distribution's components): the new OS has its own.
    pub fn is_distro(&self) -> bool {
        let archive = self.uris.iter().all(|u| {
            let path = u.trim_end_matches('/');
            let last = path.rsplit('/').next().unwrap_or("");
            DISTRO_ARCHIVES.contains(&last) || u.starts_with("cdrom:")
        });
        archive
            && self
                .components
                .iter()
                .all(|c| DISTRO_COMPONENTS.contains(&c.as_str()))
    }

    /// The name a restored copy gets: the file's stem.
    pub fn stem(&self) -> String {
        let name = self.file.rsplit('/').next().unwrap_or("sources");
        let stem = name
            .strip_suffix(".list")
            .or_else(|| name.strip_suffix(".sources"))
            .unwrap_or(name);
        let clean: String = stem
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        if clean.is_empty() {
            "sources".into()
        } else {
            clean
        }
    }
}

/// Parses one-line apt sources (`deb [opts] uri suite [components]`).
pub fn parse_apt_list(file: &str, text: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    for raw in text.lines() {
        let line = raw.split('#').next().unwrap_or("").trim();
        let Some((kind, rest)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        if kind != "deb" && kind != "deb-src" {
            continue;
        }
        let mut rest = rest.trim();
        let mut options = Vec::new();
        if let Some(r) = rest.strip_prefix('[') {
            let Some((opts, after)) = r.split_once(']') else {
                continue;
            };
            for o in opts.split_whitespace() {
                if let Some((k, v)) = o.split_once('=') {
                    options.push((k.to_ascii_lowercase(), v.to_string()));
                }
            }
            rest = after.trim();
        }
        let w: Vec<&str> = rest.split_whitespace().collect();
        if w.len() < 2 {
            continue;
        }
        let signed_by = take_option(&mut options, "signed-by");
        out.push(AptSource {
            file: file.to_string(),
            types: vec![kind.to_string()],
            uris: vec![w[0].to_string()],
            suites: vec![w[1].to_string()],
            components: w[2..].iter().map(|s| s.to_string()).collect(),
            signed_by,
            inline_key: None,
            options,
        });
    }
    out
}

fn take_option(options: &mut Vec<(String, String)>, key: &str) -> Option<String> {
    let i = options.iter().position(|(k, _)| k == key)?;
    Some(options.remove(i).1)
}

/// Parses deb822 `.sources` stanzas (`Types:`, `URIs:`, `Suites:`, `Components:`,
/// `Signed-By:` — a path or an inline key block); `Enabled: no` stanzas are left out.
pub fn parse_apt_sources(file: &str, text: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in stanza.lines() {
            if line.starts_with('#') {
                continue;
            }
            if line.starts_with(' ') || line.starts_with('\t') {
                if let Some(last) = fields.last_mut() {
                    last.1.push('\n');
                    last.1.push_str(line.trim());
                }
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                fields.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |k: &str| {
            fields
                .iter()
                .find(|(f, _)| f == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let words =
            |k: &str| -> Vec<String> { get(k).split_whitespace().map(str::to_string).collect() };
        if get("enabled").eq_ignore_ascii_case("no") || words("uris").is_empty() {
            continue;
        }
        let signed = get("signed-by").trim().to_string();
        let (signed_by, inline_key) = if signed.contains("BEGIN PGP") {
            let key: Vec<&str> = signed
                .lines()
                .map(|l| if l == "." { "" } else { l })
                .collect();
            (None, Some(key.join("\n") + "\n"))
        } else if signed.is_empty() {
            (None, None)
        } else {
            (Some(signed.trim().to_string()), None)
        };
        let options = fields
            .iter()
            .filter(|(k, _)| {
                ![
                    "types",
                    "uris",
                    "suites",
                    "components",
                    "signed-by",
                    "enabled",
                ]
                .contains(&k.as_str())
            })
            .cloned()
            .collect();
        out.push(AptSource {
            file: file.to_string(),
            types: words("types"),
            uris: words("uris"),
            suites: words("suites"),
            components: words("components"),
            signed_by,
            inline_key,
            options,
        });
    }
    out
}

/// Writes sources as one deb822 file, the suites' `from` codename replaced by `to`.
pub fn render_deb822(sources: &[AptSource], from: Option<&str>, to: Option<&str>) -> String {
    let mut out = String::new();
    for s in sources {
        if !out.is_empty() {
            out.push('\n');
        }
        let suites: Vec<String> = s
            .suites
            .iter()
            .map(|suite| rename_suite(suite, from, to))
            .collect();
        out.push_str(&format!("Types: {}\n", s.types.join(" ")));
        out.push_str(&format!("URIs: {}\n", s.uris.join(" ")));
        out.push_str(&format!("Suites: {}\n", suites.join(" ")));
        if !s.components.is_empty() {
            out.push_str(&format!("Components: {}\n", s.components.join(" ")));
        }
        if let Some(k) = &s.signed_by {
            out.push_str(&format!("Signed-By: {k}\n"));
        }
        for (k, v) in &s.options {
            out.push_str(&format!("{k}: {v}\n"));
        }
    }
    out
}

/// `bookworm-pgdg` → `trixie-pgdg` for `bookworm` → `trixie`; other suites unchanged.
pub fn rename_suite(suite: &str, from: Option<&str>, to: Option<&str>) -> String {
    if let (Some(from), Some(to)) = (from, to)
        && let Some(rest) = suite.strip_prefix(from)
        && (rest.is_empty() || rest.starts_with('-') || rest.starts_with('/'))
    {
        return format!("{to}{rest}");
    }
    suite.to_string()
}

/// The items of a `.repo` list option (`baseurl`, `gpgkey`): dnf and zypper split them
/// on blanks and commas alike.
pub fn repo_list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
}

/// The sections of a `.repo` file: (id, every URL it names, gpgkey file paths); the
/// distribution's own repositories are left out.
pub fn parse_repo_file(text: &str) -> Vec<(String, Vec<String>, Vec<String>)> {
    let entries = super::ini::parse(text);
    let ids: BTreeSet<&str> = entries.iter().map(|e| e.section.as_str()).collect();
    ids.into_iter()
        .filter(|id| !id.is_empty())
        .map(|id| {
            let of = |k: &str| super::ini::values(&entries, id, k);
            let urls: Vec<String> = ["baseurl", "mirrorlist", "metalink"]
                .iter()
                .flat_map(|k| of(k))
                .flat_map(|v| repo_list(v).map(str::to_string).collect::<Vec<_>>())
                .collect();
            let keys = of("gpgkey")
                .into_iter()
                .flat_map(|v| repo_list(v).map(str::to_string).collect::<Vec<_>>())
                .filter_map(|k| k.strip_prefix("file://").map(str::to_string))
                .collect();
            (id.to_string(), urls, keys)
        })
        .collect()
}

/// True for a `.repo` file of the distribution itself (CentOS, Rocky, Alma, RHEL, Fedora,
/// openSUSE/SLES, openEuler, Oracle, Amazon, Huawei Cloud EulerOS).
pub fn is_distro_repo_file(name: &str, urls: &[String]) -> bool {
    const NAMES: &[&str] = &[
        "centos",
        "rocky",
        "almalinux",
        "redhat",
        "rhel",
        "fedora",
        "opensuse",
        "sle",
        "suse",
        "openeuler",
        "oracle",
        "ol7",
        "ol8",
        "ol9",
        "uek",
        "amzn",
        "amazon",
        "euleros",
        "hce",
        "epel-modular",
    ];
    const HOSTS: &[&str] = &[
        "download.opensuse.org",
        "updates.suse.com",
        "mirrors.centos.org",
        "mirrorlist.centos.org",
        "vault.centos.org",
        "dl.rockylinux.org",
        "mirrors.rockylinux.org",
        "repo.almalinux.org",
        "mirrors.fedoraproject.org",
        "repo.openeuler.org",
    ];
    let lower = name.to_ascii_lowercase();
    NAMES.iter().any(|n| lower.starts_with(n))
        || (!urls.is_empty() && urls.iter().all(|u| HOSTS.iter().any(|h| u.contains(h))))
}

pub fn gather(g: &Gather, names: &IdNames, owned: &BTreeSet<String>) -> Repos {
    let mut out = Repos {
        codename: g
            .read("/etc/os-release")
            .and_then(|t| super::identity::parse_os_release(&t).version_codename),
        ..Default::default()
    };
    let mut key_paths: BTreeSet<String> = BTreeSet::new();
    let mut lists = vec!["/etc/apt/sources.list".to_string()];
    if g.root.follow("/etc/apt/sources.list.d").is_dir() {
        for p in g.list("/etc/apt/sources.list.d") {
            lists.push(g.inner(&p).display().to_string());
        }
    }
    for f in &lists {
        let parsed = if f.ends_with(".list") {
            g.read(f).map(|t| parse_apt_list(f, &t))
        } else if f.ends_with(".sources") {
            g.read(f).map(|t| parse_apt_sources(f, &t))
        } else {
            None
        };
        for s in parsed.unwrap_or_default() {
            if s.is_distro() {
                continue;
            }
            if let Some(k) = &s.signed_by {
                key_paths.insert(k.clone());
            }
            out.apt.push(s);
        }
    }
    if !out.apt.is_empty() {
        // keys apt trusts for every source: the third-party ones need them
        if g.root.follow("/etc/apt/trusted.gpg.d").is_dir() {
            for p in g.list("/etc/apt/trusted.gpg.d") {
                let inner = g.inner(&p).display().to_string();
                if !owned.contains(&inner) {
                    key_paths.insert(inner);
                }
            }
        }
        if g.exists("/etc/apt/trusted.gpg") {
            key_paths.insert("/etc/apt/trusted.gpg".into());
        }
    }
    for dir in ["/etc/yum.repos.d", "/etc/zypp/repos.d"] {
        if !g.root.follow(dir).is_dir() {
            continue;
        }
        for p in g.list(dir) {
            let inner = g.inner(&p).display().to_string();
            let name = inner.rsplit('/').next().unwrap_or("").to_string();
            if !name.ends_with(".repo") || owned.contains(&inner) {
                continue;
            }
            let Some(text) = g.read(&inner) else {
                continue;
            };
            let sections = parse_repo_file(&text);
            let urls: Vec<String> = sections.iter().flat_map(|s| s.1.clone()).collect();
            if is_distro_repo_file(&name, &urls) {
                continue;
            }
            let Some(file) = files::copy(g, &inner, names) else {
                continue;
            };
            for s in &sections {
                key_paths.extend(s.2.iter().cloned());
            }
            out.rpm.push(RpmRepoFile {
                manager: if dir.contains("zypp") { "zypp" } else { "yum" }.into(),
                file,
                ids: sections.iter().map(|s| s.0.clone()).collect(),
                urls,
            });
        }
    }
    for k in key_paths {
        if k.starts_with('/')
            && let Some(c) = files::copy(g, &k, names)
        {
            out.keys.push(c);
        }
    }
    if !out.apt.is_empty() || g.root.follow("/etc/apt/preferences.d").is_dir() {
        let mut pins = vec!["/etc/apt/preferences".to_string()];
        if g.root.follow("/etc/apt/preferences.d").is_dir() {
            for p in g.list("/etc/apt/preferences.d") {
                pins.push(g.inner(&p).display().to_string());
            }
        }
        for p in pins {
            if !owned.contains(&p)
                && let Some(c) = files::copy(g, &p, names)
            {
                out.pins.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_sources_split_distro_from_third_party() {
        let t = "deb http://deb.debian.org/debian bookworm main contrib\n\
                 deb http://repo.huaweicloud.com/debian-security bookworm-security main\n\
                 deb [arch=amd64 signed-by=/etc/apt/keyrings/pgdg.asc] http://apt.postgresql.org/pub/repos/apt bookworm-pgdg main # pg\n\
                 deb http://nginx.org/packages/mainline/debian bookworm nginx\n\
                 # deb http://example.invalid/x y z\n";
        let s = parse_apt_list("/etc/apt/sources.list", t);
        assert_eq!(s.len(), 4);
        let third: Vec<&AptSource> = s.iter().filter(|s| !s.is_distro()).collect();
        assert_eq!(third.len(), 2);
        assert_eq!(
            third[0].signed_by.as_deref(),
            Some("/etc/apt/keyrings/pgdg.asc")
        );
        assert_eq!(third[0].options, vec![("arch".into(), "amd64".into())]);
        assert_eq!(third[1].components, vec!["nginx"]);
    }

    #[test]
    fn deb822_with_an_inline_key_and_disabled_stanza() {
        let t = "Types: deb\nURIs: https://download.docker.com/linux/debian\nSuites: bookworm\nComponents: stable\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n abc\n -----END PGP PUBLIC KEY BLOCK-----\n\nTypes: deb\nURIs: http://x.invalid/\nSuites: y\nEnabled: no\n";
        let s = parse_apt_sources("/etc/apt/sources.list.d/docker.sources", t);
        assert_eq!(s.len(), 1);
        let key = s[0].inline_key.as_deref().unwrap();
        assert!(key.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nabc\n"));
        assert_eq!(s[0].stem(), "docker");
        assert!(!s[0].is_distro());
    }

    #[test]
    fn suites_follow_the_release() {
        assert_eq!(
            rename_suite("bookworm-pgdg", Some("bookworm"), Some("trixie")),
            "trixie-pgdg"
        );
        assert_eq!(
            rename_suite("bookwormish", Some("bookworm"), Some("trixie")),
            "bookwormish"
        );
        assert_eq!(
            rename_suite("stable", Some("bookworm"), Some("trixie")),
            "stable"
        );
        let s = parse_apt_list(
            "/etc/apt/sources.list.d/pgdg.list",
            "deb [signed-by=/k.asc] http://apt.postgresql.org/pub/repos/apt bookworm-pgdg main\n",
        );
        assert_eq!(
            render_deb822(&s, Some("bookworm"), Some("trixie")),
            "Types: deb\nURIs: http://apt.postgresql.org/pub/repos/apt\nSuites: trixie-pgdg\nComponents: main\nSigned-By: /k.asc\n"
        );
    }

    #[test]
    fn repo_files_name_their_keys() {
        let t = "[nginx-stable]\nname=nginx\nbaseurl=http://nginx.org/packages/centos/$releasever/$basearch/\ngpgkey=file:///etc/pki/rpm-gpg/nginx.key https://nginx.org/keys/nginx_signing.key\n";
        let s = parse_repo_file(t);
        assert_eq!(s[0].0, "nginx-stable");
        assert_eq!(s[0].2, vec!["/etc/pki/rpm-gpg/nginx.key"]);
        assert!(!is_distro_repo_file("nginx.repo", &s[0].1));
        assert!(is_distro_repo_file("Rocky-BaseOS.repo", &[]));
        // dnf splits lists on commas too: each key and URL on its own
        let s = parse_repo_file(
            "[epel]\nbaseurl=http://a/,http://b/\ngpgkey=file:///etc/pki/rpm-gpg/A,file:///etc/pki/rpm-gpg/B\n",
        );
        assert_eq!(s[0].1, vec!["http://a/", "http://b/"]);
        assert_eq!(s[0].2, vec!["/etc/pki/rpm-gpg/A", "/etc/pki/rpm-gpg/B"]);
    }
}
