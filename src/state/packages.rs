//! Installed packages: the list a new OS needs to deploy the service environment again,
//! and which configuration files belong to a package (and so come back with it).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::Gather;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Packages {
    /// `dpkg`, `rpm`, `apk` or `none`.
    pub manager: String,
    pub names: Vec<String>,
    /// The packages the user chose (apt's manual marks, zypper's and dnf5's user-installed
    /// set, apk's world), base system, kernels and boot loaders left out: what the new OS
    /// installs again. `None` when the manager cannot tell (then nothing is installed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chosen: Option<Vec<Package>>,
}

/// One package the user chose.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(default)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// A few programs it installed (`/usr/sbin/nginx`): where the new OS's manager can
    /// say which of its packages provides them (`dnf provides`), a package with another
    /// name is still found.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<String>,
}

/// How many programs of a package are recorded.
const PROGRAMS: usize = 3;

/// True for a path of a program (what `dnf provides` can look up).
fn is_program(path: &str) -> bool {
    ["/usr/bin/", "/usr/sbin/", "/bin/", "/sbin/"]
        .iter()
        .any(|d| {
            path.strip_prefix(d)
                .is_some_and(|n| !n.is_empty() && !n.contains('/'))
        })
}

/// Fills in each package's programs from `files`, a list of (package, path).
fn add_programs(pkgs: &mut [Package], files: impl IntoIterator<Item = (String, String)>) {
    let mut by_name: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (name, path) in files {
        if is_program(&path) {
            let v = by_name.entry(name).or_default();
            if v.len() < PROGRAMS && !v.contains(&path) {
                v.push(path);
            }
        }
    }
    for p in pkgs {
        if let Some(v) = by_name.remove(&p.name) {
            p.programs = v;
        }
    }
}

/// One stanza of dpkg's status file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DpkgPackage {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub installed: bool,
    pub essential: bool,
    pub priority: String,
    /// `(path, md5)` of each configuration file the package ships, obsolete ones left out.
    pub conffiles: Vec<(String, String)>,
    /// The other names it stands for (`Provides:`, versions left out): virtual packages.
    pub provides: Vec<String>,
}

/// Parses dpkg's status file, every stanza.
pub fn parse_dpkg(text: &str) -> Vec<DpkgPackage> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut p = DpkgPackage::default();
        let mut in_conffiles = false;
        for line in stanza.lines() {
            if in_conffiles && line.starts_with(' ') {
                let w: Vec<&str> = line.split_whitespace().collect();
                if w.len() >= 2 && w.get(2) != Some(&"obsolete") && w[0].starts_with('/') {
                    p.conffiles.push((w[0].to_string(), w[1].to_string()));
                }
                continue;
            }
            in_conffiles = false;
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k {
                "Package" => p.name = v.to_string(),
                "Version" => p.version = v.to_string(),
                "Architecture" => p.arch = v.to_string(),
                "Status" => p.installed = v.split_whitespace().last() == Some("installed"),
                "Essential" => p.essential = v == "yes",
                "Priority" => p.priority = v.to_string(),
                "Conffiles" => in_conffiles = true,
                "Provides" => {
                    p.provides = v
                        .split(',')
                        .filter_map(|n| n.split_whitespace().next())
                        .map(str::to_string)
                        .collect()
                }
                _ => {}
            }
        }
        if !p.name.is_empty() {
            out.push(p);
        }
    }
    out
}

/// The names apt marked automatically installed (`/var/lib/apt/extended_states`), per
/// architecture-less name.
pub fn parse_apt_auto(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for stanza in text.split("\n\n") {
        let mut name = None;
        let mut auto = false;
        for line in stanza.lines() {
            if let Some(v) = line.strip_prefix("Package:") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("Auto-Installed:") {
                auto = v.trim() == "1";
            }
        }
        if let (Some(n), true) = (name, auto) {
            out.insert(n);
        }
    }
    out
}

/// Packages that belong to the machine, not the service: the new OS brings its own.
pub fn is_platform_package(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "linux-image",
        "linux-headers",
        "linux-modules",
        "linux-generic",
        "linux-virtual",
        "linux-cloud",
        "linux-aws",
        "linux-azure",
        "linux-kvm",
        "linux-firmware",
        "kernel",
        "grub",
        "shim",
        "efibootmgr",
        "firmware-",
        "intel-microcode",
        "amd64-microcode",
        "microcode_ctl",
        "dracut",
        "initramfs-tools",
        "cloud-init",
        "cloud-guest-utils",
        "cloud-utils",
        "os-prober",
        "systemd-boot",
        "carryover",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The packages the user chose on a dpkg system: installed, not marked automatic, not
/// essential or of the base priorities, not the machine's own (kernel, boot loader).
pub fn dpkg_chosen(status: &[DpkgPackage], auto: &BTreeSet<String>) -> Vec<Package> {
    let mut out: Vec<Package> = status
        .iter()
        .filter(|p| p.installed && !p.essential)
        .filter(|p| p.priority != "required" && p.priority != "important")
        .filter(|p| !auto.contains(&p.name) && !auto.contains(&format!("{}:{}", p.name, p.arch)))
        .filter(|p| !is_platform_package(&p.name))
        .map(|p| Package {
            name: p.name.clone(),
            version: p.version.clone(),
            arch: p.arch.clone(),
            programs: Vec::new(),
        })
        .collect();
    out.sort();
    out.dedup_by(|a, b| a.name == b.name);
    out
}

/// The names zypper installed as dependencies (`/var/lib/zypp/AutoInstalled`).
pub fn parse_zypp_auto(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// The names dnf5 records as installed by the user (`packages.toml`: `reason = "User"`);
/// a key is a name, `name.arch` or a whole `name-version-release.arch`.
pub fn parse_dnf5_user(text: &str) -> Option<BTreeSet<String>> {
    let doc: toml::Table = text.parse().ok()?;
    let pkgs = doc.get("packages")?.as_table()?;
    Some(
        pkgs.iter()
            .filter(|(_, v)| v.get("reason").and_then(|r| r.as_str()) == Some("User"))
            .map(|(k, _)| rpm_name(k))
            .collect(),
    )
}

/// `httpd-2.4.62-1.el10.x86_64` → `httpd`; `httpd.x86_64` → `httpd`; `httpd` → `httpd`.
fn rpm_name(key: &str) -> String {
    const ARCHES: &[&str] = &["x86_64", "aarch64", "noarch", "i686", "ppc64le", "s390x"];
    let k = match key.rsplit_once('.') {
        Some((head, arch)) if ARCHES.contains(&arch) => head,
        _ => key,
    };
    let parts: Vec<&str> = k.rsplitn(3, '-').collect();
    let versioned = |p: &str| p.chars().next().is_some_and(|c| c.is_ascii_digit());
    if parts.len() == 3 && versioned(parts[0]) && versioned(parts[1]) {
        parts[2].to_string()
    } else {
        k.to_string()
    }
}

/// The names in apk's world file.
pub fn parse_apk_world(text: &str) -> Vec<String> {
    let set: BTreeSet<String> = text
        .split_whitespace()
        .map(|w| {
            w.split(['<', '>', '=', '~'])
                .next()
                .unwrap_or(w)
                .to_string()
        })
        .filter(|n| !n.is_empty())
        .collect();
    set.into_iter().collect()
}

/// The installed packages of a dpkg status file (`Status: install ok installed`).
pub fn parse_dpkg_status(text: &str) -> Vec<String> {
    let set: BTreeSet<String> = parse_dpkg(text)
        .into_iter()
        .filter(|p| p.installed)
        .map(|p| p.name)
        .collect();
    set.into_iter().collect()
}

/// The installed packages of an apk database (`P:` lines).
pub fn parse_apk_installed(text: &str) -> Vec<String> {
    let set: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("P:").map(|s| s.trim().to_string()))
        .collect();
    set.into_iter().collect()
}

/// The names the installed packages provide besides their own — dpkg's `Provides:`
/// (virtual packages), rpm's provides (EL8's php-json is provided by EL9's php-common):
/// a chosen name one of these has is installed, as its manager would say.
/// The virtual names dpkg's installed packages provide.
pub fn dpkg_provided(status: &str) -> BTreeSet<String> {
    parse_dpkg(status)
        .into_iter()
        .filter(|p| p.installed)
        .flat_map(|p| p.provides)
        .collect()
}

pub fn provided(g: &Gather) -> BTreeSet<String> {
    if let Some(t) = g.read("/var/lib/dpkg/status") {
        return dpkg_provided(&t);
    }
    if rpm_db(g).is_some() {
        return rpm(g, &["-qa", "--qf", "[%{PROVIDENAME}\\n]"], false)
            .map(|out| {
                out.lines()
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
    }
    BTreeSet::new()
}

pub fn gather(g: &Gather) -> Packages {
    if let Some(t) = g.read("/var/lib/dpkg/status") {
        let status = parse_dpkg(&t);
        let auto = g
            .read("/var/lib/apt/extended_states")
            .map(|t| parse_apt_auto(&t))
            .unwrap_or_default();
        let mut chosen = dpkg_chosen(&status, &auto);
        let lists: Vec<(String, String)> = chosen
            .iter()
            .flat_map(|p| {
                [
                    format!("{}.list", p.name),
                    format!("{}:{}.list", p.name, p.arch),
                ]
                .into_iter()
                .filter_map(|f| g.read(&format!("/var/lib/dpkg/info/{f}")))
                .flat_map(|t| {
                    t.lines()
                        .map(|l| (p.name.clone(), l.to_string()))
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
            })
            .collect();
        add_programs(&mut chosen, lists);
        return Packages {
            manager: "dpkg".into(),
            names: parse_dpkg_status(&t),
            chosen: Some(chosen),
        };
    }
    if let Some(dir) = rpm_db(g) {
        let all: Vec<Package> = match rpm(
            g,
            &["-qa", "--qf", "%{NAME} %{VERSION}-%{RELEASE} %{ARCH}\\n"],
            false,
        ) {
            Ok(out) => parse_rpm_qa(&out),
            Err(e) => {
                g.problem(dir, format!("cannot read the rpm database: {e}"));
                Vec::new()
            }
        };
        let mut names: Vec<String> = all.iter().map(|p| p.name.clone()).collect();
        names.dedup();
        let chosen = rpm_user_installed(g).map(|user| {
            let mut chosen: Vec<Package> = all
                .iter()
                .filter(|p| user.contains(&p.name) && !is_platform_package(&p.name))
                .cloned()
                .collect();
            if let Ok(files) = rpm(g, &["-qa", "--qf", "[%{NAME} %{FILENAMES}\\n]"], false) {
                add_programs(
                    &mut chosen,
                    files.lines().filter_map(|l| {
                        l.split_once(' ')
                            .map(|(n, f)| (n.to_string(), f.to_string()))
                    }),
                );
            }
            chosen
        });
        return Packages {
            manager: "rpm".into(),
            names,
            chosen,
        };
    }
    if let Some(t) = g.read("/lib/apk/db/installed") {
        let world = g.read("/etc/apk/world").map(|w| {
            parse_apk_world(&w)
                .into_iter()
                .filter(|n| !is_platform_package(n))
                .map(|name| Package {
                    name,
                    ..Default::default()
                })
                .collect()
        });
        return Packages {
            manager: "apk".into(),
            names: parse_apk_installed(&t),
            chosen: world,
        };
    }
    Packages {
        manager: "none".into(),
        names: Vec::new(),
        chosen: None,
    }
}

/// Where an rpm database lives, in-root (RHEL 7–9 and SUSE: /var/lib/rpm; Fedora 36+,
/// RHEL 10: /usr/lib/sysimage/rpm).
const RPM_DBS: &[&str] = &["/usr/lib/sysimage/rpm", "/var/lib/rpm"];

/// The in-root rpm database folder, when the system has one.
pub fn rpm_db(g: &Gather) -> Option<&'static str> {
    RPM_DBS
        .iter()
        .copied()
        .find(|d| crate::sys::list_dir(&g.root.follow(d)).is_ok_and(|l| !l.is_empty()))
}

/// Runs `rpm` against the system under the root, its database named explicitly (the
/// host's rpm may keep its own elsewhere: Debian's looks in ~/.rpmdb). `any_status`:
/// the exit status is part of the answer (`-V`).
pub fn rpm(g: &Gather, args: &[&str], any_status: bool) -> std::io::Result<String> {
    let db = rpm_db(g).ok_or_else(|| std::io::Error::other("no rpm database"))?;
    let root = g.root.dir().display().to_string();
    let mut all = vec!["--root", &root, "--dbpath", db];
    all.extend_from_slice(args);
    if any_status {
        crate::sys::run_any("rpm", &all)
    } else {
        crate::sys::run("rpm", &all)
    }
}

/// `rpm -qa` lines of `NAME VERSION-RELEASE ARCH`, sorted by name.
pub fn parse_rpm_qa(text: &str) -> Vec<Package> {
    let mut out: Vec<Package> = text
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() == 3 && w[0] != "gpg-pubkey").then(|| Package {
                name: w[0].to_string(),
                version: w[1].to_string(),
                arch: w[2].to_string(),
                programs: Vec::new(),
            })
        })
        .collect();
    out.sort();
    out
}

/// The names an rpm system's manager says the user installed: zypper's AutoInstalled
/// list (everything else), dnf5's `packages.toml`, or — on the live system — dnf's
/// history through `dnf repoquery --userinstalled`. `None` when none can tell.
fn rpm_user_installed(g: &Gather) -> Option<BTreeSet<String>> {
    if let Some(t) = g.read("/var/lib/zypp/AutoInstalled") {
        let auto = parse_zypp_auto(&t);
        let all = rpm(g, &["-qa", "--qf", "%{NAME}\\n"], false).ok()?;
        return Some(
            all.lines()
                .filter(|n| !auto.contains(*n))
                .map(str::to_string)
                .collect(),
        );
    }
    for p in [
        "/usr/lib/sysimage/libdnf5/packages.toml",
        "/var/lib/dnf/packages.toml",
    ] {
        if let Some(t) = g.read(p) {
            return parse_dnf5_user(&t);
        }
    }
    if g.root.is_live()
        && let Ok(out) = crate::sys::run(
            "dnf",
            &["repoquery", "--userinstalled", "--qf", "%{name}\\n", "-q"],
        )
    {
        return Some(out.lines().map(|l| l.trim().to_string()).collect());
    }
    g.problem(
        "/var/lib/rpm",
        "cannot tell which packages the user installed (no zypper/dnf5 record, dnf not runnable): none will be installed on the new OS",
    );
    None
}

/// The files below `prefix` that a package owns (dpkg's lists, `rpm -qal`); empty for
/// other managers.
pub fn owned_under(g: &Gather, manager: &str, prefix: &str) -> BTreeSet<String> {
    match manager {
        "dpkg" => dpkg_owned(g, &[prefix]),
        "rpm" => rpm(g, &["-qal"], false)
            .map(|o| {
                o.lines()
                    .filter(|l| l.starts_with(prefix))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        _ => BTreeSet::new(),
    }
}

/// The files below `prefixes` that a dpkg package owns (from /var/lib/dpkg/info/*.list);
/// empty where dpkg is not the package manager.
pub fn dpkg_owned(g: &Gather, prefixes: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for f in g.list("/var/lib/dpkg/info") {
        if f.extension().is_none_or(|e| e != "list") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        for line in text.lines() {
            if prefixes.iter().any(|p| line.starts_with(p)) {
                out.insert(line.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review #25 (D): a chosen name the new OS has as a virtual package.
    #[test]
    fn dpkg_provides_of_installed_packages_are_names_it_has() {
        let t = "Package: php8.2-common\nStatus: install ok installed\nProvides: php-json (= 8.2), php8.2-json, php-ctype\nVersion: 8.2.1\n\n\
Package: exim4-daemon-light\nStatus: deinstall ok config-files\nProvides: mail-transport-agent\n";
        let p = dpkg_provided(t);
        assert_eq!(
            p.into_iter().collect::<Vec<_>>(),
            vec!["php-ctype", "php-json", "php8.2-json"]
        );
    }

    #[test]
    fn dpkg_status_only_installed() {
        let t = "Package: bash\nStatus: install ok installed\nVersion: 5.2\n\nPackage: oldpkg\nStatus: deinstall ok config-files\n\nPackage: nginx\nStatus: install ok installed\nArchitecture: amd64\n";
        assert_eq!(parse_dpkg_status(t), vec!["bash", "nginx"]);
    }

    #[test]
    fn dnf5_keys_by_name_or_nevra() {
        let t = "version = \"1.0\"\n[packages]\n\"httpd-2.4.62-1.el10.x86_64\" = { reason = \"User\" }\n\"apr-1.7.5-1.el10.x86_64\" = { reason = \"Dependency\" }\n\"php-fpm.x86_64\" = { reason = \"User\" }\n\"jq\" = { reason = \"User\" }\n";
        let got = parse_dnf5_user(t).unwrap();
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            vec!["httpd", "jq", "php-fpm"]
        );
    }

    #[test]
    fn apk_db() {
        assert_eq!(
            parse_apk_installed("C:Q1\nP:musl\nV:1\n\nP:busybox\n"),
            vec!["busybox", "musl"]
        );
    }
}
