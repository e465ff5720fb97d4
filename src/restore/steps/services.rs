//! Restore steps for systemd: custom unit files and drop-ins, then the enablement links
//! and masks of the old OS for the units the new OS has.

use anyhow::Result;

use crate::restore::Loaded;
use crate::restore::apply::{Apply, Outcome};
use crate::state::services::{SYSTEM_DIR, UNIT_DIRS, is_unit_name, template_of};

const PREFIX: &str = "/etc/systemd/system/";

pub fn unit_files(a: &Apply, l: &Loaded) -> Result<Outcome> {
    let s = &l.state.services;
    if s.unit_files.is_empty() && s.drop_ins.is_empty() {
        return Ok(Outcome::skipped("no custom unit files or drop-ins"));
    }
    let mut warnings = Vec::new();
    let mut count = 0;
    for f in s.unit_files.iter().chain(&s.drop_ins) {
        let path = super::safe_path(&f.path, &[PREFIX])?;
        match (&f.content, &f.link) {
            (Some(content), _) => {
                a.install(path, content.as_bytes(), f.mode & 0o7777, None)?;
                count += 1;
            }
            (None, Some(target)) => {
                // An alias: only where what it points to exists on the new OS.
                if a.is_file(target) || a.root.follow(target).exists() {
                    a.link(path, target)?;
                    count += 1;
                } else {
                    warnings.push(format!(
                        "{path} -> {target}: the target is not on the new OS; alias not made"
                    ));
                }
            }
            (None, None) => {}
        }
    }
    Ok(a.finish(format!("{count} files"), warnings))
}

/// Where a unit's file is on the new OS (in-root path), looking at the template too.
fn find_unit(a: &Apply, unit: &str) -> Option<String> {
    let mut names = vec![unit.to_string()];
    if let Some(t) = template_of(unit) {
        names.push(t);
    }
    for name in &names {
        for dir in UNIT_DIRS {
            let p = format!("{dir}/{name}");
            if a.is_file(&p) {
                // a template instance links to the template's file, as systemctl does
                return Some(p);
            }
        }
    }
    None
}

pub fn enable_units(a: &Apply, l: &Loaded) -> Result<Outcome> {
    let s = &l.state.services;
    if s.enabled.is_empty() && s.masked.is_empty() {
        return Ok(Outcome::skipped("no enabled or masked units"));
    }
    let mut warnings = Vec::new();
    let mut enabled = 0;
    for e in &s.enabled {
        let unit = super::safe_name(&e.unit)?;
        let dir = super::safe_name(&e.dir)?;
        if !is_unit_name(unit) {
            warnings.push(format!("{dir}/{unit}: not a unit name; skipped"));
            continue;
        }
        let Some(target) = find_unit(a, unit) else {
            warnings.push(format!("{unit} (enabled in {dir} on the old OS) is not installed on the new OS: not enabled"));
            continue;
        };
        a.link(&format!("{SYSTEM_DIR}/{dir}/{unit}"), &target)?;
        enabled += 1;
    }
    let mut masked = 0;
    for unit in &s.masked {
        let unit = super::safe_name(unit)?;
        let path = format!("{SYSTEM_DIR}/{unit}");
        let host = a.root.path(&path);
        let is_regular = std::fs::symlink_metadata(&host).is_ok_and(|m| m.is_file());
        if is_regular {
            warnings.push(format!(
                "{unit} was masked on the old OS but the new OS has its own {path}; left as it is"
            ));
            continue;
        }
        a.link(&path, "/dev/null")?;
        masked += 1;
    }
    Ok(a.finish(format!("{enabled} enabled, {masked} masked"), warnings))
}
