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
    let moves = accounts::id_moves(
        &s.users,
        &s.groups,
        &image_passwd,
        &image_groups,
        &now_passwd,
        &now_groups,
    );
    if moves.is_empty() {
        return Ok(Outcome::skipped(
            "every captured account kept its id: nothing to re-own",
        ));
    }
    let mut dirs: Vec<String> = Vec::new();
    let mut warnings = Vec::new();
    for m in s.mounts.iter().filter(|m| m.is_data() && !m.swap) {
        match super::safe_path(&m.mountpoint, &["/"]) {
            Ok(p) => dirs.push(p.to_string()),
            Err(e) => warnings.push(format!("{e:#}")),
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
    }
    Ok(out)
}
