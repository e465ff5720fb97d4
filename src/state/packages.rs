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
}

/// The installed packages of a dpkg status file (`Status: install ok installed`).
pub fn parse_dpkg_status(text: &str) -> Vec<String> {
    let mut out = BTreeSet::new();
    for stanza in text.split("\n\n") {
        let mut name = None;
        let mut installed = false;
        for line in stanza.lines() {
            if let Some(v) = line.strip_prefix("Package:") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("Status:") {
                installed = v.split_whitespace().last() == Some("installed");
            }
        }
        if let (Some(n), true) = (name, installed) {
            out.insert(n);
        }
    }
    out.into_iter().collect()
}

/// The installed packages of an apk database (`P:` lines).
pub fn parse_apk_installed(text: &str) -> Vec<String> {
    let set: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("P:").map(|s| s.trim().to_string()))
        .collect();
    set.into_iter().collect()
}

pub fn gather(g: &Gather) -> Packages {
    if let Some(t) = g.read("/var/lib/dpkg/status") {
        return Packages {
            manager: "dpkg".into(),
            names: parse_dpkg_status(&t),
        };
    }
    let rpmdb = ["/var/lib/rpm", "/usr/lib/sysimage/rpm"]
        .iter()
        .find(|d| g.root.follow(d).is_dir());
    if let Some(dir) = rpmdb {
        let root = g.root.dir().display().to_string();
        let names = match crate::sys::run("rpm", &["--root", &root, "-qa", "--qf", "%{NAME}\\n"]) {
            Ok(out) => {
                let set: BTreeSet<String> = out.lines().map(str::to_string).collect();
                set.into_iter().collect()
            }
            Err(e) => {
                g.problem(dir, format!("cannot read the rpm database: {e}"));
                Vec::new()
            }
        };
        return Packages {
            manager: "rpm".into(),
            names,
        };
    }
    if let Some(t) = g.read("/lib/apk/db/installed") {
        return Packages {
            manager: "apk".into(),
            names: parse_apk_installed(&t),
        };
    }
    Packages {
        manager: "none".into(),
        names: Vec::new(),
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

    #[test]
    fn dpkg_status_only_installed() {
        let t = "Package: bash\nStatus: install ok installed\nVersion: 5.2\n\nPackage: oldpkg\nStatus: deinstall ok config-files\n\nPackage: nginx\nStatus: install ok installed\nArchitecture: amd64\n";
        assert_eq!(parse_dpkg_status(t), vec!["bash", "nginx"]);
    }

    #[test]
    fn apk_db() {
        assert_eq!(
            parse_apk_installed("C:Q1\nP:musl\nV:1\n\nP:busybox\n"),
            vec!["busybox", "musl"]
        );
    }
}
