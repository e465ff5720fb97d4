//! Restore steps that bring the service back: the third-party repositories (checked on
//! the network before they are written), the user's packages through the new OS's own
//! manager in one transaction (names mapped across families), the changed configuration
//! on top of what the packages installed (the new default kept aside), and the readiness
//! check against what ran on the old OS.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::error::Problem;
use crate::restore::apply::{Apply, Outcome, Status};
use crate::restore::names;
use crate::restore::{Health, Loaded, StepReport};
use crate::state::baseline;
use crate::state::configs::{self, ConfigFile};
use crate::state::files::FileCopy;
use crate::state::packages::{self, Package};
use crate::state::repos::{self, AptSource};

use super::rpm_repos;

/// Where repository keys may go.
const KEY_DIRS: &[&str] = &[
    "/etc/apt/keyrings/",
    "/etc/apt/trusted.gpg.d/",
    "/usr/share/keyrings/",
    "/etc/pki/rpm-gpg/",
];

/// The new OS's package family: `dpkg`, `rpm` or `apk` (`none` when it has none).
fn new_family(a: &Apply) -> &'static str {
    if a.is_file("/var/lib/dpkg/status") {
        "dpkg"
    } else if a.is_dir("/var/lib/rpm") || a.is_dir("/usr/lib/sysimage/rpm") {
        "rpm"
    } else if a.is_file("/lib/apk/db/installed") {
        "apk"
    } else {
        "none"
    }
}

/// Why a repository's index is not there (`None`: it is).
fn index_missing(url: &str) -> Option<String> {
    match super::reach::index_answers(url, &super::reach::system_resolve) {
        Ok(true) => None,
        Ok(false) => Some(format!("{url} does not exist")),
        Err(e) => Some(format!("{url} cannot be fetched: {e}")),
    }
}

/// The apt sources grouped by the file they came from, suites renamed for the new release.
fn apt_files(l: &Loaded, new_codename: Option<&str>) -> BTreeMap<String, Vec<AptSource>> {
    let mut by_file: BTreeMap<String, Vec<AptSource>> = BTreeMap::new();
    for s in &l.state.repos.apt {
        let mut s = s.clone();
        s.suites = s
            .suites
            .iter()
            .map(|x| repos::rename_suite(x, l.state.repos.codename.as_deref(), new_codename))
            .collect();
        by_file.entry(s.stem()).or_default().push(s);
    }
    by_file
}

/// Refuses a URI that is not plain http(s)/ftp text: the sources file is line-based.
fn plain_uri(u: &str) -> bool {
    (u.starts_with("http://") || u.starts_with("https://") || u.starts_with("ftp://"))
        && u.chars().all(|c| c.is_ascii_graphic())
}

fn plain_word(w: &str) -> bool {
    !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./+~:=,".contains(c))
}

/// The apt source options carried: the harmless ones. `trusted`, `allow-insecure` and
/// the like turn signature checks off — refused and named.
const APT_OPTIONS: &[&str] = &[
    "arch",
    "architectures",
    "lang",
    "languages",
    "target",
    "targets",
    "pdiffs",
    "by-hash",
    "check-valid-until",
    "valid-until-min",
    "valid-until-max",
    "check-date",
    "date-max-future",
    "inrelease-path",
    "snapshot",
];

/// Why an apt source from the snapshot is not carried, if it is not.
fn apt_source_refused(s: &AptSource) -> Option<String> {
    if s.uris
        .iter()
        .any(|u| u.starts_with("file:") || u.starts_with("cdrom:"))
    {
        return Some("a local source (file:, cdrom:) is not there on the new OS".into());
    }
    if !s.uris.iter().all(|u| plain_uri(u))
        || !s
            .suites
            .iter()
            .chain(&s.components)
            .chain(&s.types)
            .all(|w| plain_word(w))
        || !s.types.iter().all(|t| t == "deb" || t == "deb-src")
    {
        return Some("a field outside apt's grammar".into());
    }
    if let Some((k, _)) = s
        .options
        .iter()
        .find(|(k, v)| !APT_OPTIONS.contains(&k.as_str()) || !plain_word(v))
    {
        return Some(format!(
            "its option '{}' is not carried (it would weaken apt's checks, or is unknown)",
            k.escape_debug()
        ));
    }
    if let Some(k) = &s.signed_by
        && super::safe_path(k, KEY_DIRS).is_err()
    {
        return Some(format!(
            "its key '{}' is not a file below {}",
            k.escape_debug(),
            KEY_DIRS.join(", ")
        ));
    }
    None
}

/// The highest `Pin-Priority` of an apt preferences file (1000 and up lets apt
/// downgrade packages).
fn max_pin_priority(text: &str) -> i64 {
    text.lines()
        .filter_map(|l| l.strip_prefix("Pin-Priority:"))
        .filter_map(|v| v.trim().parse::<i64>().ok())
        .max()
        .unwrap_or(0)
}

pub fn repositories(a: &Apply, l: &Loaded) -> Result<Outcome> {
    let r = &l.state.repos;
    if r.apt.is_empty() && r.rpm.is_empty() {
        return Ok(Outcome::skipped("no third-party repository was captured"));
    }
    let family = new_family(a);
    let mut warnings = Vec::new();
    let mut attention = Vec::new();
    let mut written = Vec::new();
    let mut keys_needed: BTreeSet<String> = BTreeSet::new();
    if !r.apt.is_empty() {
        if family != "dpkg" {
            attention.push(format!(
                "{} apt sources of the old OS not carried: the new OS does not use apt ({})",
                r.apt.len(),
                r.apt
                    .iter()
                    .flat_map(|s| s.uris.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        } else {
            let codename = a.os().version_codename;
            for (stem, mut sources) in apt_files(l, codename.as_deref()) {
                let mut ok = Vec::new();
                for s in sources.drain(..) {
                    if let Some(why) = apt_source_refused(&s) {
                        attention.push(format!(
                            "the apt source {} is not carried: {why}",
                            s.uris.join(" ").escape_debug()
                        ));
                        continue;
                    }
                    // the suite must exist for the new release: fetch its index
                    let mut missing = Vec::new();
                    for u in &s.uris {
                        for suite in &s.suites {
                            let base = u.trim_end_matches('/');
                            let url = if suite.ends_with('/') {
                                format!("{base}/{suite}InRelease")
                            } else {
                                format!("{base}/dists/{suite}/InRelease")
                            };
                            missing.extend(index_missing(&url));
                        }
                    }
                    if missing.is_empty() {
                        ok.push(s);
                    } else {
                        attention.push(format!(
                            "the repository {} {} is not carried: {}",
                            s.uris.join(" "),
                            s.suites.join(" "),
                            missing.join("; ")
                        ));
                    }
                }
                if ok.is_empty() {
                    continue;
                }
                for (i, s) in ok.iter_mut().enumerate() {
                    if let Some(key) = &s.inline_key {
                        let path = if i == 0 {
                            format!("/etc/apt/keyrings/carryover-{stem}.asc")
                        } else {
                            format!("/etc/apt/keyrings/carryover-{stem}-{i}.asc")
                        };
                        a.mkdir("/etc/apt/keyrings", 0o755, Some((0, 0)))?;
                        a.install(&path, key.as_bytes(), 0o644, Some((0, 0)))?;
                        s.signed_by = Some(path);
                        s.inline_key = None;
                    } else if let Some(k) = &s.signed_by {
                        keys_needed.insert(k.clone());
                    }
                }
                keys_needed.extend(
                    r.keys
                        .iter()
                        .filter(|k| k.path.starts_with("/etc/apt/trusted.gpg.d/"))
                        .map(|k| k.path.clone()),
                );
                let path = format!("/etc/apt/sources.list.d/carryover-{stem}.sources");
                let text = repos::render_deb822(&ok, None, None);
                a.install(&path, text.as_bytes(), 0o644, Some((0, 0)))?;
                written.push(path);
            }
            for p in &r.pins {
                let name = p.path.rsplit('/').next().unwrap_or("");
                let target = if p.path == "/etc/apt/preferences" {
                    "/etc/apt/preferences.d/carryover-preferences".to_string()
                } else {
                    format!("/etc/apt/preferences.d/{}", super::safe_name(name)?)
                };
                if p.link.is_some() || configs::not_carried(&format!("/etc/x/{name}")) {
                    continue;
                }
                let text = p.bytes();
                let prio = max_pin_priority(&String::from_utf8_lossy(&text));
                if prio >= 1000 {
                    attention.push(format!(
                        "the apt pin {} (priority {prio}: apt may downgrade packages to it) is not carried",
                        p.path
                    ));
                    continue;
                }
                a.install(&target, &text, 0o644, Some((0, 0)))?;
                written.push(target);
            }
        }
    }
    if !r.rpm.is_empty() {
        let mut t = Tally {
            written: &mut written,
            attention: &mut attention,
            warnings: &mut warnings,
            keys_needed: &mut keys_needed,
        };
        rpm_repo_files(a, l, family, &mut t)?;
    }
    for k in &r.keys {
        if !keys_needed.contains(&k.path) || k.link.is_some() {
            continue;
        }
        let Ok(path) = super::safe_path(&k.path, KEY_DIRS) else {
            attention.push(format!(
                "the key {} is not carried: not below {}",
                k.path.escape_debug(),
                KEY_DIRS.join(", ")
            ));
            continue;
        };
        // a keyring of the new OS is never replaced (the distribution's own keys live
        // beside the third-party ones)
        match a.file_bytes(path) {
            Some((b, _)) if b != k.bytes() => {
                warnings.push(format!(
                    "{path} exists on the new OS with other keys: kept, the old OS's not written"
                ));
                continue;
            }
            _ => {}
        }
        a.install(path, &k.bytes(), 0o644, Some((0, 0)))?;
    }
    if a.root.is_live() && !a.dry_run && !written.is_empty() {
        let update = match family {
            "dpkg" => crate::sys::run_env("apt-get", &["update", "-q"], &[]),
            "rpm" if a.has_tool(&["dnf"]) => crate::sys::run("dnf", &["makecache", "-q"]),
            _ => Ok(String::new()),
        };
        if let Err(e) = update {
            warnings.push(format!("reading the repositories' indexes: {e}"));
        }
    }
    let mut o = a.finish(
        format!("{} repository files written", written.len()),
        warnings,
    );
    o.attention = attention;
    Ok(o)
}

/// What the repositories step collects while it writes.
struct Tally<'t> {
    written: &'t mut Vec<String>,
    attention: &'t mut Vec<String>,
    warnings: &'t mut Vec<String>,
    keys_needed: &'t mut BTreeSet<String>,
}

/// The new OS's rpm repository manager: `zypp` (zypper) or `yum` (dnf, yum).
fn rpm_manager(a: &Apply) -> Option<&'static str> {
    if a.has_tool(&["zypper"]) {
        Some("zypp")
    } else if a.has_tool(&["dnf", "dnf5", "yum"]) || a.is_dir("/etc/yum.repos.d") {
        Some("yum")
    } else {
        None
    }
}

/// Whether a repository index exists: http(s) fetched, `file://` looked up under the
/// root; other schemes cannot be checked.
fn rpm_index(a: &Apply, url: &str) -> Result<(), String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        return index_missing(url).map_or(Ok(()), Err);
    }
    if let Some(path) = url.strip_prefix("file://") {
        let there = super::safe_path(path.trim_end_matches('/'), &["/"]).is_ok()
            && if url.ends_with('/') {
                a.is_dir(path.trim_end_matches('/'))
            } else {
                a.is_file(path)
            };
        return if there {
            Ok(())
        } else {
            Err(format!("{url} does not exist"))
        };
    }
    Err(format!(
        "{url} cannot be checked (only http, https and file URLs are fetched)"
    ))
}

/// The `.repo` files: written to the new OS's `yum.repos.d` or `zypp/repos.d` with the
/// sections whose repository answers for the new release (variables and the release in
/// the URLs given the new OS's values); the others named.
fn rpm_repo_files(a: &Apply, l: &Loaded, family: &str, t: &mut Tally) -> Result<()> {
    let now = if family == "rpm" {
        rpm_manager(a)
    } else {
        None
    };
    let new_os = a.os();
    let vars = rpm_repos::Vars::new(&new_os, crate::agent::Arch::this().name());
    for f in &l.state.repos.rpm {
        let Some(now) = now else {
            t.attention.push(format!(
                "the {} repository file {} is not carried: the new OS does not use dnf, yum or zypper",
                f.manager, f.file.path
            ));
            continue;
        };
        if f.manager != now {
            t.attention.push(format!(
                "the {} repository file {} is not carried: the new OS's manager reads {now} repositories",
                f.manager, f.file.path
            ));
            continue;
        }
        let (dir, var_dirs): (&str, &[&str]) = if now == "zypp" {
            ("/etc/zypp/repos.d/", &["/etc/zypp/vars.d/"])
        } else {
            ("/etc/yum.repos.d/", &["/etc/dnf/vars/", "/etc/yum/vars/"])
        };
        let name = f.file.path.rsplit('/').next().unwrap_or("");
        let target = format!("{dir}{}", super::safe_name(name)?);
        let own_var = |v: &str| {
            var_dirs.iter().find_map(|d| {
                a.read(&format!("{d}{v}"))
                    .and_then(|x| x.lines().next().map(|l| l.trim().to_string()))
            })
        };
        let index = |u: &str| rpm_index(a, u);
        let key_path = |k: &str| {
            super::safe_path(k, KEY_DIRS).map(|_| ()).map_err(|_| {
                format!(
                    "its key '{}' is not a file below {}",
                    k.escape_debug(),
                    KEY_DIRS.join(", ")
                )
            })
        };
        let key_there = |k: &str| {
            a.is_file(k)
                || l.state
                    .repos
                    .keys
                    .iter()
                    .any(|x| x.path == k && x.link.is_none())
        };
        // the new OS's own releasever (a RHEL minor lock) names its release in URLs too,
        // when it is of the same major
        let mut renamed_to = new_os.clone();
        if let (Some(v), Some(id)) = (own_var("releasever"), new_os.version_id.as_deref())
            && rpm_repos::plain_value(&v)
            && v.split('.').next() == id.split('.').next()
        {
            renamed_to.version_id = Some(v);
        }
        let c = rpm_repos::carry(
            &String::from_utf8_lossy(&f.file.bytes()),
            &rpm_repos::Release {
                old: &l.state.identity.os,
                new: &renamed_to,
                vars: &vars,
                own_var: &own_var,
                index: &index,
                key_path: &key_path,
                key_there: &key_there,
            },
        );
        for (id, why) in &c.unchecked {
            t.warnings.push(format!(
                "the repository [{}] of {}: {why}",
                id.escape_debug(),
                f.file.path
            ));
        }
        for (id, why) in &c.refused {
            t.attention.push(format!(
                "the repository [{}] of {} is not carried: {why}",
                id.escape_debug(),
                f.file.path
            ));
        }
        let Some(text) = c.text else {
            continue;
        };
        // a file of that name the new OS has (a package's) is never replaced
        if let Some((b, _)) = a.file_bytes(&target)
            && b != text.as_bytes()
        {
            t.warnings.push(format!(
                "{target} exists on the new OS with other content: kept, the old OS's [{}] not written",
                c.kept.join("], [")
            ));
            continue;
        }
        a.install(&target, text.as_bytes(), 0o644, Some((0, 0)))?;
        t.keys_needed.extend(c.keys);
        t.written.push(target);
    }
    Ok(())
}

/// The packages an apt index of the new OS offers (`/var/lib/apt/lists/*_Packages`):
/// names and what they provide; `None` when there is no index to read.
fn apt_available(a: &Apply) -> Option<BTreeSet<String>> {
    let dir = a.root.follow("/var/lib/apt/lists");
    let files = crate::sys::list_dir(&dir).ok()?;
    let mut out = BTreeSet::new();
    let mut any = false;
    for f in files {
        if !f.to_string_lossy().ends_with("_Packages") {
            continue;
        }
        any = true;
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        for line in text.lines() {
            if let Some(n) = line.strip_prefix("Package:") {
                out.insert(n.trim().to_string());
            } else if let Some(p) = line.strip_prefix("Provides:") {
                for item in p.split(',') {
                    if let Some(n) = item.split_whitespace().next() {
                        out.insert(n.to_string());
                    }
                }
            }
        }
    }
    any.then_some(out)
}

/// A package name by its family's grammar — never an option (`-o`, `--allow-…`) or an
/// apt action suffix (`bash-` removes bash).
fn package_name(name: &str, family: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = match family {
        "dpkg" => name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c)),
        _ => name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-._".contains(c)),
    };
    first_ok && rest_ok && name.len() >= 2 && !name.ends_with('-')
}

/// The installed packages of the new OS and the names they provide (in a dry run too:
/// what is on disk).
fn installed_now(a: &Apply) -> BTreeSet<String> {
    let cfg = crate::config::Config::default();
    let g = crate::state::Gather::new(a.root, &cfg);
    let mut names: BTreeSet<String> = packages::gather(&g).names.into_iter().collect();
    // a provided or virtual name is installed when an installed package provides it
    names.extend(packages::provided(&g));
    names
}

/// What the packages step decides for one old package.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Installed(String),
    Install(String),
    /// Not offered by the new OS's repositories (or no name in its family).
    Missing,
}

fn decide(
    p: &Package,
    from: &str,
    to: &str,
    installed: &BTreeSet<String>,
    available: Option<&BTreeSet<String>>,
    provides: &dyn Fn(&str) -> Option<String>,
) -> Decision {
    // last: the new OS's manager names the package that has one of its programs
    let by_program = || {
        p.programs
            .iter()
            .find_map(|prog| provides(prog))
            .map(|n| {
                if installed.contains(&n) {
                    Decision::Installed(n)
                } else {
                    Decision::Install(n)
                }
            })
            .unwrap_or(Decision::Missing)
    };
    let Some(name) = names::map(&p.name, from, to) else {
        return by_program();
    };
    let offered = |n: &str| available.is_none_or(|set| set.contains(n));
    // the mapped name, its unversioned form, then the old name itself (most names agree
    // across families even where the table has another first choice)
    let mut candidates = vec![name.clone()];
    for c in [names::unversioned(&name), p.name.clone()] {
        if !candidates.contains(&c) {
            candidates.push(c);
        }
    }
    for c in candidates {
        if installed.contains(&c) {
            return Decision::Installed(c);
        }
        if offered(&c) {
            return Decision::Install(c);
        }
    }
    by_program()
}

/// The new OS's package that provides `program`, asked of its manager on the live system
/// (`dnf provides`; `apt-file search` where apt-file is installed).
fn provider(a: &Apply, family: &str, program: &str) -> Option<String> {
    if !a.root.is_live() || !program.starts_with('/') || program.contains(char::is_whitespace) {
        return None;
    }
    let name = match family {
        "rpm" if a.has_tool(&["dnf"]) => {
            crate::sys::run("dnf", &["provides", "-q", "--qf", "%{name}\\n", program])
                .ok()?
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())?
                .to_string()
        }
        "dpkg" if a.has_tool(&["apt-file"]) => crate::sys::run(
            "apt-file",
            &[
                "search",
                "-x",
                &format!("^{}$", program.replace('.', "\\.")),
            ],
        )
        .ok()?
        .lines()
        .find_map(|l| l.split_once(':').map(|(n, _)| n.trim().to_string()))?,
        _ => return None,
    };
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || "+-._".contains(c))
        .then_some(name)
}

/// What becomes of the chosen packages on the new OS as it is now.
struct Decided<'p> {
    /// How many are installed (under their name or the new OS's for them).
    already: usize,
    /// The new OS's package to install, and the old package it stands for.
    install: Vec<(String, &'p Package)>,
    /// Not offered by the new OS (or not a package name), as the report names them.
    missing: Vec<String>,
}

/// Decides for each chosen package of the old OS (its manager `from`) what the new OS
/// (family `to`) has for it, from the installed packages and the index as they are now.
fn decide_all<'p>(a: &Apply, chosen: &'p [Package], from: &str, to: &str) -> Decided<'p> {
    let installed = installed_now(a);
    let available = if to == "dpkg" { apt_available(a) } else { None };
    let provides = |prog: &str| provider(a, to, prog);
    let mut d = Decided {
        already: 0,
        install: Vec::new(),
        missing: Vec::new(),
    };
    for p in chosen {
        if !package_name(&p.name, from) {
            d.missing
                .push(format!("{} (not a package name)", p.name.escape_debug()));
            continue;
        }
        match decide(p, from, to, &installed, available.as_ref(), &provides) {
            Decision::Installed(_) => d.already += 1,
            Decision::Install(n) if !package_name(&n, to) => {
                d.missing
                    .push(format!("{} (not a package name)", n.escape_debug()));
            }
            Decision::Install(n) => d.install.push((n, p)),
            Decision::Missing => d.missing.push(p.name.clone()),
        }
    }
    d
}

/// The packages step's health check: every chosen package the new OS offers is
/// installed now. Where the step cannot install (a tree, not the live system) or was told
/// not to (`[restore] packages = "report"`) their absence is its report's business — unless
/// its report (from a journal, say) claims it installed them.
pub fn packages_check(a: &Apply, l: &Loaded, done: &StepReport) -> (Health, String) {
    let old = &l.state.packages;
    let to = new_family(a);
    let Some(chosen) = old.chosen.as_deref().filter(|_| to != "none") else {
        return (Health::AsRestored, done.detail.clone());
    };
    let d = decide_all(a, chosen, &old.manager, to);
    let mut names: Vec<&str> = d.install.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        return (
            Health::AsRestored,
            format!(
                "{} of the {} packages the user installed are there (the rest not offered)",
                d.already,
                chosen.len()
            ),
        );
    }
    let claims_done = matches!(done.status, Status::Changed | Status::Unchanged);
    let left = if !a.options.install_packages {
        Some("left to install by hand ([restore] packages = \"report\")")
    } else if !a.root.is_live() && !claims_done {
        Some("to install on the live system (never into a tree)")
    } else {
        None
    };
    match left {
        Some(why) => (Health::AsRestored, format!("{why}: {}", names.join(" "))),
        None => (
            Health::NotDone,
            format!(
                "the step says {}, but these packages are not installed: {}",
                done.status.as_str(),
                names.join(" ")
            ),
        ),
    }
}

pub fn packages(a: &Apply, l: &Loaded) -> Result<Outcome> {
    let old = &l.state.packages;
    let Some(chosen) = &old.chosen else {
        if old.names.is_empty() {
            return Ok(Outcome::skipped("no package list was captured"));
        }
        return Ok(Outcome::skipped(format!(
            "the old OS's package manager ({}) could not tell which of its {} packages the user installed: none installed",
            old.manager,
            old.names.len()
        )));
    };
    let to = new_family(a);
    if to == "none" {
        return Ok(Outcome::skipped(
            "the new OS has no package manager carryover knows",
        ));
    }
    // the index decides what is offered: read it fresh first (a cloud image often comes
    // with empty lists; the repositories step updates only when it wrote a source)
    let mut warnings = Vec::new();
    if to == "dpkg"
        && a.root.is_live()
        && !a.dry_run
        && let Err(e) = crate::sys::run_env("apt-get", &["update", "-q"], &[])
    {
        warnings.push(format!("apt-get update: {e}"));
    }
    let Decided {
        already,
        install,
        missing,
    } = decide_all(a, chosen, &old.manager, to);
    let mut names: Vec<String> = Vec::new();
    for (n, p) in install {
        let was = if p.version.is_empty() {
            String::new()
        } else {
            format!(" (old OS: {})", p.version)
        };
        if n == p.name {
            a.note_change(format!("install {n}{was}"));
        } else {
            a.note_change(format!("install {n} for {}{was}", p.name));
        }
        if !names.contains(&n) {
            names.push(n);
        }
    }
    let install = names;
    if to == "dpkg" && a.root.is_live() && a.dry_run {
        warnings.push(
            "planned from the package index as it is now: the real run reads it fresh (apt-get update) first".into(),
        );
    }
    let mut attention = Vec::new();
    // libraries a user marked by hand come back with what needs them; a program or
    // service the new OS does not offer needs a person
    let (libs, progs): (Vec<&String>, Vec<&String>) =
        missing.iter().partition(|n| n.starts_with("lib"));
    if !progs.is_empty() {
        attention.push(format!(
            "{} packages of the old OS are not offered by the new OS's repositories: {}",
            progs.len(),
            progs
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    if !libs.is_empty() {
        warnings.push(format!(
            "{} libraries marked as installed by hand are not offered by the new OS (they come with what needs them): {}",
            libs.len(),
            libs.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
        ));
    }
    let mut detail = format!(
        "{} of the {} packages the user installed are there, {} to install{}",
        already,
        chosen.len(),
        install.len(),
        if missing.is_empty() {
            String::new()
        } else {
            format!(", {} not offered", missing.len())
        }
    );
    if !install.is_empty() {
        a.mark_changed();
        if !a.options.install_packages {
            detail.push_str(&format!(
                " ([restore] packages = \"report\": not installed: {})",
                install.join(" ")
            ));
            attention.push(format!(
                "packages to install by hand: {}",
                install.join(" ")
            ));
            let mut o = a.finish(detail, warnings);
            o.status = Status::Unchanged;
            o.attention = attention;
            return Ok(o);
        }
        if !a.root.is_live() {
            // a package manager installs into the running system only: the plan says so,
            // with what it would install there
            let mut o = a.finish(
                format!(
                    "{detail}: packages are installed only on the live system (--root is not /): {}",
                    install.join(" ")
                ),
                warnings,
            );
            o.status = Status::Skipped;
            o.attention = attention;
            return Ok(o);
        }
        if !a.dry_run {
            let names: Vec<&str> = install.iter().map(String::as_str).collect();
            // an image's package lists may be missing or older than its mirror (the
            // repositories step refreshes them only when it wrote a source): refresh, retry
            let first = run_install(a, to, &names);
            let result = match first {
                Err(_) if to == "dpkg" => crate::sys::run_env("apt-get", &["update", "-q"], &[])
                    .and_then(|_| run_install(a, to, &names)),
                other => other,
            };
            if let Err(e) = result {
                let mut o = Outcome::failed(format!("{detail}: {e}"));
                o.attention = attention;
                o.warnings = warnings;
                return Ok(o);
            }
        }
    }
    let mut o = a.finish(detail, warnings);
    o.attention = attention;
    Ok(o)
}

/// One transaction through the new OS's manager; configuration files the restore puts
/// back later are left to it (apt keeps existing ones: `--force-confold`).
fn run_install(a: &Apply, family: &str, names: &[&str]) -> std::io::Result<String> {
    match family {
        "dpkg" => {
            // the packages' services are not started by their install scripts: they start
            // (activate) after config-files has put the user's configuration back
            let policy = a.root.path("/usr/sbin/policy-rc.d");
            let ours = !policy.exists();
            if ours {
                crate::sys::write_atomic(&policy, b"#!/bin/sh\n# carryover: no service starts during the restore's install\nexit 101\n", 0o755)?;
            }
            let mut args = vec![
                "install",
                "-y",
                "-q",
                "-o",
                "Dpkg::Options::=--force-confdef",
                "-o",
                "Dpkg::Options::=--force-confold",
            ];
            args.extend_from_slice(names);
            crate::sys::run_env(
                "apt-get",
                &args,
                &[
                    ("DEBIAN_FRONTEND", "noninteractive"),
                    ("NEEDRESTART_MODE", "a"),
                ],
            )
        }
        "rpm" if a.has_tool(&["zypper"]) => {
            let mut args = vec!["--non-interactive", "install", "--no-recommends"];
            args.extend_from_slice(names);
            crate::sys::run("zypper", &args)
        }
        "rpm" => {
            let tool = if a.has_tool(&["dnf"]) { "dnf" } else { "yum" };
            let mut args = vec!["install", "-y", "--setopt=strict=0"];
            args.extend_from_slice(names);
            crate::sys::run(tool, &args)
        }
        "apk" => {
            let mut args = vec!["add", "--no-interactive"];
            args.extend_from_slice(names);
            crate::sys::run("apk", &args)
        }
        other => Err(std::io::Error::other(format!("no installer for {other}"))),
    }
}

/// The content of a captured configuration file (a private one's from the secrets).
fn content_of(f: &ConfigFile, l: &Loaded) -> Option<Vec<u8>> {
    if f.private {
        l.secrets
            .configs
            .iter()
            .find(|s| s.path == f.file.path)
            .map(FileCopy::bytes)
    } else {
        Some(f.file.bytes())
    }
}

/// The folder up to the first version-named component below /etc
/// (`/etc/postgresql/15/main/x.conf` → `/etc/postgresql/15`, `/etc/php/8.2/fpm/…` →
/// `/etc/php/8.2`): configuration of one version of a program.
fn versioned_folder(path: &str) -> Option<String> {
    let mut at = String::new();
    for c in path
        .trim_start_matches('/')
        .split('/')
        .collect::<Vec<_>>()
        .split_last()?
        .1
    {
        at.push('/');
        at.push_str(c);
        if c.chars().any(|x| x.is_ascii_digit())
            && c.chars().all(|x| x.is_ascii_digit() || x == '.')
        {
            return Some(at);
        }
    }
    None
}

/// The in-root path a link at `path` pointing at `target` leads to (lexically).
fn link_destination(path: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        let mut p: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        p.pop();
        p
    };
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The new OS's own version of `path` as it was before this snapshot's restore: its
/// backup when there is one, else the file (never through a symlink).
fn theirs(a: &Apply, path: &str) -> Option<(Vec<u8>, u32)> {
    let backup = a.backup_path(path);
    if let Ok(m) = std::fs::symlink_metadata(&backup)
        && m.is_file()
    {
        return Some((
            std::fs::read(&backup).ok()?,
            crate::sys::mode_of(&m) & 0o7777,
        ));
    }
    a.file_bytes(path)
}

pub fn config_files(a: &Apply, l: &Loaded) -> Result<Outcome> {
    let files = &l.state.configs;
    if files.is_empty() && l.state.enabled_dirs.is_empty() {
        return Ok(Outcome::skipped("no changed configuration was captured"));
    }
    if files.len() > 4 * configs::MAX_FILES {
        return Ok(Outcome::failed(format!(
            "the snapshot names {} configuration files, more than capture ever records ({}): refused",
            files.len(),
            configs::MAX_FILES
        )));
    }
    let mut warnings = Vec::new();
    let mut kept_aside = Vec::new();
    let mut held_back: BTreeSet<String> = BTreeSet::new();
    let mut failed = Vec::new();
    let mut done = 0;
    // files first, links after: a link may point at a file restored here
    let (links, plain): (Vec<&ConfigFile>, Vec<&ConfigFile>) =
        files.iter().partition(|f| f.file.link.is_some());
    // the new OS's accounts, read once for every file's owner
    let accounts = a.accounts();
    for f in plain.into_iter().chain(links) {
        let path = match super::safe_path(&f.file.path, &["/etc/"]) {
            Ok(p) if !configs::not_carried(p) => p,
            _ => {
                warnings.push(format!(
                    "refusing the configuration path '{}' from the snapshot",
                    f.file.path.escape_debug()
                ));
                continue;
            }
        };
        if a.through_link(path) {
            failed.push(Problem::new(
                path.to_string(),
                "a folder on its way is a symbolic link on the new OS: not written through it",
            ));
            continue;
        }
        if let Some(dir) = versioned_folder(path)
            && !a.is_dir(&dir)
        {
            held_back.insert(dir);
            continue;
        }
        match restore_config(a, l, f, path, &accounts, &mut warnings) {
            Ok(Some(aside)) => {
                kept_aside.push(aside);
                done += 1;
            }
            Ok(None) => done += 1,
            Err(e) => failed.push(Problem::new(path.to_string(), format!("{e:#}"))),
        }
    }
    // what the operator had removed from an *-enabled folder stays removed
    let mut disabled = Vec::new();
    for d in &l.state.enabled_dirs {
        let Ok(dir) = super::safe_path(&d.path, &["/etc/"]) else {
            continue;
        };
        if configs::not_carried(&format!("{dir}/")) || a.through_link(&format!("{dir}/x")) {
            continue;
        }
        let Ok(now) = crate::sys::list_dir(&a.root.path(dir)) else {
            continue;
        };
        for entry in now {
            let Some(name) = entry.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            if d.entries.contains(&name) {
                continue;
            }
            let path = format!("{dir}/{name}");
            match a.remove(&path) {
                Ok(true) => disabled.push(path),
                Ok(false) => {}
                Err(e) => failed.push(Problem::new(path.clone(), e.to_string())),
            }
        }
    }
    if !disabled.is_empty() {
        warnings.push(format!(
            "not enabled on the old OS, so taken out (kept in the backup folder): {}",
            disabled.join(", ")
        ));
    }
    if !kept_aside.is_empty() {
        warnings.push(format!(
            "the new OS's own version kept beside the restored file: {}",
            kept_aside.join(", ")
        ));
    }
    if !held_back.is_empty() {
        warnings.push(format!(
            "configuration of another version held back (the new OS has another version of the program; compare by hand — the files are in the snapshot): {}",
            held_back.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    let mut o = a.finish(
        format!(
            "{} ({} the new OS's version kept as .carryover-new)",
            crate::units::count(done, "configuration file"),
            kept_aside.len()
        ),
        warnings,
    );
    o.failed_files = failed;
    Ok(o)
}

/// Puts one configuration file (or link) back; the new OS's differing version goes
/// beside it — its path is returned.
fn restore_config(
    a: &Apply,
    l: &Loaded,
    f: &ConfigFile,
    path: &str,
    accounts: &(
        Vec<crate::state::accounts::PasswdLine>,
        Vec<crate::state::accounts::Group>,
    ),
    warnings: &mut Vec<String>,
) -> Result<Option<String>> {
    // a hook runs as root: root's, writable by root only, never a link
    let hook = path.starts_with(configs::HOOKS);
    if hook && f.file.link.is_some() {
        anyhow::bail!("refusing the hook: a link in the snapshot");
    }
    let uid = accounts
        .0
        .iter()
        .find(|u| u.name == f.file.owner)
        .map(|u| u.uid);
    let gid = accounts
        .1
        .iter()
        .find(|g| g.name == f.file.group)
        .map(|g| g.gid);
    let owner = match (uid, gid) {
        _ if hook => (0, 0),
        (Some(u), Some(g)) => (u, g),
        _ => {
            warnings.push(format!(
                "{path}: its owner {}:{} does not exist on the new OS: owned by root",
                f.file.owner, f.file.group
            ));
            (0, 0)
        }
    };
    if let Some(dir) = std::path::Path::new(path).parent() {
        a.mkdir(&dir.display().to_string(), 0o755, None)?;
    }
    if let Some(target) = &f.file.link {
        if target.is_empty() || target.chars().any(char::is_control) {
            anyhow::bail!("refusing its link target from the snapshot");
        }
        let dest = link_destination(path, target);
        if !a.exists(&dest) {
            warnings.push(format!(
                "{path} → {target} not made: {dest} does not exist on the new OS"
            ));
            return Ok(None);
        }
        a.link(path, target)?;
        return Ok(None);
    }
    let Some(content) = content_of(f, l) else {
        anyhow::bail!("its private content is not in the snapshot's secrets");
    };
    // the new OS's own version differs: the user's wins, the new default stays beside it
    let aside = format!("{path}.carryover-new");
    let mut kept = None;
    if let Some((theirs, mode)) = theirs(a, path)
        && theirs != content
    {
        match a.file_bytes(&aside) {
            None if !a.exists(&aside) => {
                a.install(&aside, &theirs, mode, Some(owner))?;
                kept = Some(aside);
            }
            Some((b, _)) if b == theirs => {}
            _ => warnings.push(format!(
                "{aside} exists already and is not the new OS's version: the new OS's {path} is only in the backup folder"
            )),
        }
    }
    let mode = if hook {
        f.file.mode & 0o755
    } else {
        f.file.mode & 0o7777
    };
    a.install(path, &content, mode, Some(owner))?;
    Ok(kept)
}

/// The journal's last lines of a unit, for the report of a service that did not start.
fn last_log_lines(unit: &str) -> String {
    crate::sys::run(
        "journalctl",
        &["-u", unit, "-n", "5", "--no-pager", "-o", "cat", "-q"],
    )
    .map(|t| t.lines().collect::<Vec<_>>().join(" | "))
    .unwrap_or_default()
}

pub fn readiness(a: &Apply, l: &Loaded) -> Result<Outcome> {
    let before = &l.state.baseline;
    if !before.taken {
        return Ok(Outcome::skipped(
            "no baseline: the old OS was not captured live",
        ));
    }
    if !a.root.is_live() {
        return Ok(Outcome::skipped("not the live system (--root is not /)"));
    }
    if a.dry_run {
        return Ok(Outcome::skipped("dry run"));
    }
    let deadline = Instant::now() + a.options.ready_timeout;
    let results = loop {
        let services = baseline::active_services();
        let now = baseline::listeners(a.root, &baseline::program_names());
        let r = baseline::compare(before, &services, &now);
        if r.iter().all(|x| x.ready) || Instant::now() >= deadline {
            break r;
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    let ready = results.iter().filter(|r| r.ready).count();
    let mut o = Outcome {
        status: Status::Unchanged,
        detail: format!(
            "{ready} of {} services and ports of the old OS are back",
            results.len()
        ),
        warnings: Vec::new(),
        failed_files: Vec::new(),
        attention: Vec::new(),
        changes: results
            .iter()
            .map(|r| {
                format!(
                    "{}: {} ({})",
                    r.what,
                    if r.ready { "ready" } else { "NOT READY" },
                    r.detail
                )
            })
            .collect(),
    };
    for r in results.iter().filter(|r| !r.ready) {
        let logs = if r.what.ends_with(".service") {
            last_log_lines(&r.what)
        } else {
            String::new()
        };
        o.attention.push(if logs.is_empty() {
            format!("{}: {}", r.what, r.detail)
        } else {
            format!("{}: {} — {logs}", r.what, r.detail)
        });
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(n: &str) -> Package {
        Package {
            name: n.into(),
            version: "1".into(),
            arch: "amd64".into(),
            programs: Vec::new(),
        }
    }

    #[test]
    fn package_names_by_grammar() {
        for good in ["nginx", "postgresql-15", "libstdc++6", "php8.2-fpm", "g++"] {
            assert!(package_name(good, "dpkg"), "{good}");
        }
        for bad in [
            "-o",
            "--allow-unauthenticated",
            "bash-",
            "Nginx",
            "a",
            "sudo_",
            "x y",
        ] {
            assert!(!package_name(bad, "dpkg"), "{bad}");
        }
        assert!(package_name("perl-Data-Dumper", "rpm"));
        assert!(!package_name("-y", "rpm"));
    }

    #[test]
    fn decisions() {
        let installed: BTreeSet<String> = ["openssh-server".to_string()].into();
        let offered: BTreeSet<String> = ["nginx", "postgresql", "postgresql-17", "apache2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let none = |_: &str| None;
        let d =
            |n: &str, from: &str| decide(&pkg(n), from, "dpkg", &installed, Some(&offered), &none);
        assert_eq!(d("nginx", "dpkg"), Decision::Install("nginx".into()));
        assert_eq!(
            d("openssh-server", "dpkg"),
            Decision::Installed("openssh-server".into())
        );
        assert_eq!(
            d("postgresql-15", "dpkg"),
            Decision::Install("postgresql".into())
        );
        assert_eq!(d("httpd", "rpm"), Decision::Install("apache2".into()));
        assert_eq!(d("mongodb-org", "dpkg"), Decision::Missing);
        // no index to read: everything is tried
        assert_eq!(
            decide(&pkg("jq"), "dpkg", "dpkg", &installed, None, &none),
            Decision::Install("jq".into())
        );
        // a name no table knows, found by one of its programs
        let mut mongo = pkg("mongodb-org-server");
        mongo.programs = vec!["/usr/bin/mongod".into()];
        let provides = |p: &str| (p == "/usr/bin/mongod").then(|| "mongodb-server".to_string());
        assert_eq!(
            decide(&mongo, "rpm", "dpkg", &installed, Some(&offered), &provides),
            Decision::Install("mongodb-server".into())
        );
    }
}
