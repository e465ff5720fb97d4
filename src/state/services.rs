//! systemd services: the enablement links, masks, custom unit files and drop-ins under
//! /etc/systemd/system — what an operator set up and a fresh image does not have.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Gather;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Services {
    /// `systemd`, or `none` when /etc/systemd/system does not exist.
    pub manager: String,
    pub enabled: Vec<EnabledUnit>,
    pub masked: Vec<String>,
    /// Unit files and aliases under /etc/systemd/system.
    pub unit_files: Vec<UnitFile>,
    /// `*.d/*.conf` drop-ins under /etc/systemd/system.
    pub drop_ins: Vec<UnitFile>,
    /// Enabled timers (a subset of `enabled`, listed for the operator).
    pub timers: Vec<String>,
}

/// An enablement link: `<dir>/<unit>` → `target`, e.g.
/// `multi-user.target.wants/app.service` → `/etc/systemd/system/app.service`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnabledUnit {
    pub unit: String,
    /// `multi-user.target.wants` and the like.
    pub dir: String,
    pub target: String,
    /// `custom` when the unit file lives in /etc/systemd/system, else `vendor`.
    pub origin: String,
}

/// A file under /etc/systemd/system, kept with its content (a symlink keeps its target).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitFile {
    pub path: String,
    pub mode: u32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub link: Option<String>,
}

pub const UNIT_SUFFIXES: &[&str] = &[
    "service",
    "socket",
    "timer",
    "target",
    "path",
    "mount",
    "automount",
    "slice",
    "swap",
    "device",
    "scope",
];

/// The directories systemd loads unit files from, most specific first.
pub const UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

pub fn is_unit_name(name: &str) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(stem, ext)| !stem.is_empty() && UNIT_SUFFIXES.contains(&ext))
}

/// The template a unit instance comes from (`getty@tty1.service` → `getty@.service`).
pub fn template_of(unit: &str) -> Option<String> {
    let (stem, ext) = unit.rsplit_once('.')?;
    let (prefix, instance) = stem.split_once('@')?;
    (!instance.is_empty()).then(|| format!("{prefix}@.{ext}"))
}

pub const SYSTEM_DIR: &str = "/etc/systemd/system";

pub fn gather(g: &Gather) -> Services {
    let mut s = Services::default();
    let base = g.root.follow(SYSTEM_DIR);
    if !base.is_dir() {
        s.manager = "none".into();
        return s;
    }
    s.manager = "systemd".into();
    for entry in g.list(SYSTEM_DIR) {
        let name = entry
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let inner = format!("{SYSTEM_DIR}/{name}");
        let Ok(meta) = std::fs::symlink_metadata(&entry) else {
            continue;
        };
        if meta.is_dir() {
            if name.ends_with(".wants") || name.ends_with(".requires") || name.ends_with(".upholds")
            {
                gather_links(g, &entry, &name, &mut s);
            } else if name.ends_with(".d") {
                for f in g.list(&inner) {
                    if f.extension().is_some_and(|e| e == "conf")
                        && let Some(u) = read_unit_file(g, &f)
                    {
                        s.drop_ins.push(u);
                    }
                }
            }
            continue;
        }
        if !is_unit_name(&name) {
            continue;
        }
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&entry)
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            if target == "/dev/null" {
                s.masked.push(name);
                continue;
            }
        }
        if let Some(u) = read_unit_file(g, &entry) {
            s.unit_files.push(u);
        }
    }
    s.timers = s
        .enabled
        .iter()
        .filter(|e| e.unit.ends_with(".timer"))
        .map(|e| e.unit.clone())
        .collect();
    s
}

fn gather_links(g: &Gather, dir: &Path, dir_name: &str, s: &mut Services) {
    for link in g.list(&format!("{SYSTEM_DIR}/{dir_name}")) {
        let unit = link
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let Ok(target) = std::fs::read_link(&link) else {
            continue;
        };
        let target_s = target.display().to_string();
        let custom = target.starts_with(SYSTEM_DIR)
            || (target.is_relative() && dir.join(&target).starts_with(g.root.follow(SYSTEM_DIR)));
        s.enabled.push(EnabledUnit {
            unit,
            dir: dir_name.to_string(),
            target: target_s,
            origin: if custom { "custom" } else { "vendor" }.into(),
        });
    }
}

fn read_unit_file(g: &Gather, host: &Path) -> Option<UnitFile> {
    let inner = g.inner(host);
    let meta = std::fs::symlink_metadata(host).ok()?;
    if meta.file_type().is_symlink() {
        let link = std::fs::read_link(host).ok()?.display().to_string();
        return Some(UnitFile {
            path: inner.display().to_string(),
            mode: 0o777,
            content: None,
            link: Some(link),
        });
    }
    let content = g.read_path(&inner)?;
    Some(UnitFile {
        path: inner.display().to_string(),
        mode: crate::sys::mode_of(&meta),
        content: Some(content),
        link: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names() {
        assert!(is_unit_name("app.service"));
        assert!(is_unit_name("backup.timer"));
        assert!(!is_unit_name("README"));
        assert!(!is_unit_name(".service"));
        assert_eq!(
            template_of("getty@tty1.service").as_deref(),
            Some("getty@.service")
        );
        assert_eq!(template_of("getty@.service"), None);
        assert_eq!(template_of("app.service"), None);
    }
}
