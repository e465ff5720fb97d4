//! Restore step that keeps every file on a surviving data disk with its owner: where a
//! captured account had to take another id on the new OS, the files it owned on the data
//! disks — never restored, they simply stayed — are moved from the old id to the new one.
//! Only the data-disk filesystems are walked (never the new OS's system disk, whose files
//! with the same numbers belong to the image's accounts), symlinks are never followed and
//! the walk stays on each filesystem. A rerun finds nothing left to move: the new ids are
//! ones no captured account had.

use anyhow::Result;
use std::path::PathBuf;

use crate::restore::Loaded;
use crate::restore::apply::{Apply, Outcome};
use crate::state::accounts;

pub fn reown(a: &Apply, l: &Loaded) -> Result<Outcome> {
    let s = &l.state;
    let (image_passwd, image_groups) = super::accounts::image_accounts(a);
    let (now_passwd, now_groups) = a.accounts();
    let mut record = super::accounts::Record::load(a);
    let mut moves = accounts::id_moves(
        &s.users,
        &s.groups,
        &image_passwd,
        &image_groups,
        &now_passwd,
        &now_groups,
    );
    // a move whose files were re-owned once is never walked again: by now the image's own
    // user may have made files with the old number
    for (kind, old, new) in &record.reowned {
        let map = if kind == "uid" {
            &mut moves.uids
        } else {
            &mut moves.gids
        };
        if map.get(old) == Some(new) {
            map.remove(old);
        }
    }
    if moves.is_empty() {
        return Ok(Outcome::skipped(
            "no captured account had to move to another id (or its files were re-owned already)",
        ));
    }
    let mut dirs: Vec<String> = Vec::new();
    let mut warnings = Vec::new();
    // only where the new OS mounts the old data disk: a mountpoint the new OS uses for a
    // filesystem of its own (or none) is its system disk, never walked
    let current = crate::state::mounts::parse_fstab(&a.read("/etc/fstab").unwrap_or_default());
    for m in super::disks::by_uuid(l, &mut Vec::new())
        .iter()
        .filter(|m| m.is_data() && !m.swap)
    {
        let Ok(p) = super::safe_path(&m.mountpoint, &["/"]) else {
            warnings.push(format!("refusing the mountpoint '{}'", m.mountpoint));
            continue;
        };
        match current.iter().find(|c| c.mountpoint == m.mountpoint) {
            Some(c) if c.spec == m.spec || c.spec == original_spec(l, &m.mountpoint) => {
                dirs.push(p.to_string())
            }
            Some(c) => warnings.push(format!(
                "{}: the new OS mounts {} there, not the old data disk ({}): not walked",
                m.mountpoint, c.spec, m.spec
            )),
            None => warnings.push(format!(
                "{}: not in the new fstab: the old data disk is not mounted there; not walked",
                m.mountpoint
            )),
        }
    }
    dirs.sort();
    dirs.dedup();
    let mut counts = (0u64, 0u64);
    let mut failed = Vec::new();
    for dir in &dirs {
        let host: PathBuf = a.root.follow(dir);
        if !host.is_dir() {
            continue;
        }
        for entry in walkdir::WalkDir::new(&host)
            .follow_links(false)
            .same_file_system(true)
        {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    failed.push(format!("{dir}: {e}"));
                    continue;
                }
            };
            let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
                continue;
            };
            let (uid, gid) = crate::sys::owner_of(&meta);
            let new = (
                moves.uids.get(&uid).copied().unwrap_or(uid),
                moves.gids.get(&gid).copied().unwrap_or(gid),
            );
            if new == (uid, gid) {
                continue;
            }
            counts.0 += 1;
            if new.0 != uid {
                counts.1 += 1;
            }
            a.mark_changed();
            if a.dry_run {
                continue;
            }
            if let Err(e) = crate::sys::lchown(entry.path(), new.0, new.1) {
                failed.push(format!("{}: {e}", a.root.inner(entry.path()).display()));
            }
        }
    }
    let what: Vec<String> = moves
        .uids
        .iter()
        .map(|(o, n)| format!("uid {o}→{n}"))
        .chain(moves.gids.iter().map(|(o, n)| format!("gid {o}→{n}")))
        .collect();
    let mut out = a.finish(
        format!(
            "{} entries on {} data disks re-owned ({} to another user) for {}",
            counts.0,
            dirs.len(),
            counts.1,
            what.join(", ")
        ),
        warnings,
    );
    if !failed.is_empty() {
        out.status = crate::restore::apply::Status::Failed;
        out.failed_files = failed;
    } else {
        for (old, new) in &moves.uids {
            record.reowned.push(("uid".into(), *old, *new));
        }
        for (old, new) in &moves.gids {
            record.reowned.push(("gid".into(), *old, *new));
        }
        record.save(a)?;
    }
    Ok(out)
}

/// The spec the old fstab had for a mountpoint, as written.
fn original_spec(l: &Loaded, mountpoint: &str) -> String {
    l.state
        .mounts
        .iter()
        .find(|m| m.mountpoint == mountpoint)
        .map(|m| m.spec.clone())
        .unwrap_or_default()
}
