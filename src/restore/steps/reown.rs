//! Restore step that keeps every file on a surviving data disk with its owner: where a
//! captured account had to take another id on the new OS, the files it owned on the data
//! disks — never restored, they simply stayed — are moved from the old id to the new one.
//! Only the data-disk filesystems are walked (never the new OS's system disk, whose files
//! with the same numbers belong to the image's accounts), symlinks are never followed and
//! the walk stays on each filesystem. A rerun finds nothing left to move: the new ids are
//! ones no captured account had.

use anyhow::Result;
use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::error::Problem;
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
    forget_done(&mut moves, &record);
    if moves.is_empty() && s.ids.users.is_empty() && s.ids.groups.is_empty() {
        return Ok(Outcome::skipped(
            "no captured account had to move to another id (or its files were re-owned already)",
        ));
    }
    let mut warnings = Vec::new();
    let mut attention = Vec::new();
    let dirs = data_disk_dirs(a, l, &mut warnings);
    // the system accounts whose files are on the data disks (`mysql` 112): by name on the
    // new OS, or an account of their own name made for them — never another's number
    let (used_uids, used_gids) = owners_on(a, &dirs);
    let made = system_moves(
        a,
        l,
        &mut moves,
        &record,
        (&used_uids, &used_gids),
        &mut warnings,
    )?;
    for (name, id) in &made.0 {
        record.created_users.insert(name.clone(), *id);
    }
    for (name, id) in &made.1 {
        record.created_groups.insert(name.clone(), *id);
    }
    // a move onto a number that is itself moved would not survive a rerun after a crash
    // (its files would move twice): such files are left as they are, named
    for (kind, map) in [("uid", &mut moves.uids), ("gid", &mut moves.gids)] {
        let sources: Vec<u32> = map.keys().copied().collect();
        map.retain(|old, new| {
            let chained = sources.contains(new);
            if chained {
                attention.push(format!(
                    "files with {kind} {old} on the data disks not re-owned: their account is {new} on the new OS, a number that moves itself; re-own them by hand"
                ));
            }
            !chained
        });
    }
    if moves.is_empty() {
        let mut out = if made.0.is_empty() && made.1.is_empty() {
            Outcome::skipped(
                "no account with files on the data disks had to move to another id (or its files were re-owned already)",
            )
        } else {
            a.finish(
                "accounts made for the owners of files on the data disks",
                warnings.clone(),
            )
        };
        out.warnings = warnings;
        out.attention = attention;
        return Ok(out);
    }
    let mut counts = (0u64, 0u64);
    let mut failed = Vec::new();
    for dir in &dirs {
        let host: PathBuf = a.root.follow(dir);
        if !host.is_dir() {
            continue;
        }
        // by descriptors, never by a name a user could swap for a link meanwhile
        // (the files' owners may be logged in while this runs)
        let mut visit = |_: &std::path::Path, uid: u32, gid: u32| {
            let new = (
                moves.uids.get(&uid).copied().unwrap_or(uid),
                moves.gids.get(&gid).copied().unwrap_or(gid),
            );
            if new == (uid, gid) {
                return None;
            }
            counts.0 += 1;
            if new.0 != uid {
                counts.1 += 1;
            }
            a.mark_changed();
            (!a.dry_run).then_some(new)
        };
        let mut fail = |p: &std::path::Path, e: std::io::Error| {
            failed.push(Problem::new(a.root.inner(p).display().to_string(), e));
        };
        crate::sys::chown_beneath(&host, &mut visit, &mut fail);
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
    out.attention = attention;
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
    }
    record.save(a)?;
    Ok(out)
}

/// Drops the moves whose files were re-owned once: never walked again (the image's own
/// user may have made files with the old number since).
fn forget_done(moves: &mut accounts::IdMoves, record: &super::accounts::Record) {
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
}

/// The mountpoints of the old data disks that the new OS mounts from them (a mountpoint
/// the new OS uses for a filesystem of its own, or none, is never walked).
fn data_disk_dirs(a: &Apply, l: &Loaded, warnings: &mut Vec<String>) -> Vec<String> {
    let mut dirs: Vec<String> = Vec::new();
    let current = crate::disks::fstab::parse_fstab(&a.read("/etc/fstab").unwrap_or_default());
    for m in super::disks::by_uuid(l, &mut Vec::new())
        .iter()
        .filter(|m| m.is_data() && !m.swap)
    {
        let Ok(p) = super::safe_path(&m.mountpoint, &["/"]) else {
            warnings.push(format!(
                "refusing the mountpoint {}",
                crate::units::quoted(&m.mountpoint)
            ));
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
    dirs
}

/// The uids and gids that own something on the data disks.
fn owners_on(a: &Apply, dirs: &[String]) -> (BTreeSet<u32>, BTreeSet<u32>) {
    let (mut uids, mut gids) = (BTreeSet::new(), BTreeSet::new());
    for dir in dirs {
        for e in walkdir::WalkDir::new(a.root.follow(dir))
            .follow_links(false)
            .same_file_system(true)
            .into_iter()
            .flatten()
        {
            if let Ok(m) = std::fs::symlink_metadata(e.path()) {
                let (u, g) = crate::sys::owner_of(&m);
                uids.insert(u);
                gids.insert(g);
            }
        }
    }
    (uids, gids)
}

/// Moves (and accounts to make) for the old OS's other accounts whose numbers own files on
/// the data disks: the same name on the new OS with another number is a move; a name the
/// new OS lacks gets a system account of its own (its old number when free, else one free
/// in 100–999). Returns the accounts made (users, groups).
#[allow(clippy::type_complexity)]
fn system_moves(
    a: &Apply,
    l: &Loaded,
    moves: &mut accounts::IdMoves,
    record: &super::accounts::Record,
    (used_uids, used_gids): (&BTreeSet<u32>, &BTreeSet<u32>),
    warnings: &mut Vec<String>,
) -> Result<(Vec<(String, u32)>, Vec<(String, u32)>)> {
    let s = &l.state;
    let (now_passwd, now_groups) = a.accounts();
    let captured_uids: Vec<u32> = s.users.iter().map(|u| u.uid).collect();
    let captured_gids: Vec<u32> = s
        .groups
        .iter()
        .map(|g| g.gid)
        .chain(s.users.iter().map(|u| u.gid))
        .collect();
    let done = |kind: &str, id: u32| record.reowned.iter().any(|(k, o, _)| k == kind && *o == id);
    let free = |taken: &dyn Fn(u32) -> bool, old: u32| {
        if !taken(old) {
            Some(old)
        } else {
            (100..=999u32).rev().find(|i| !taken(*i))
        }
    };
    let mut new_groups: Vec<(String, u32)> = Vec::new();
    for (name, old) in &s.ids.groups {
        if !used_gids.contains(old)
            || captured_gids.contains(old)
            || moves.gids.contains_key(old)
            || done("gid", *old)
            || !super::accounts::valid_name(name)
        {
            continue;
        }
        match now_groups.iter().find(|g| &g.name == name) {
            Some(g) if g.gid != *old => {
                moves.gids.insert(*old, g.gid);
            }
            Some(_) => {}
            None => {
                let taken = |i: u32| {
                    now_groups.iter().any(|g| g.gid == i) || new_groups.iter().any(|(_, x)| *x == i)
                };
                if let Some(id) = free(&taken, *old) {
                    new_groups.push((name.clone(), id));
                    if id != *old {
                        moves.gids.insert(*old, id);
                    }
                }
            }
        }
    }
    let mut new_users: Vec<(String, u32, u32)> = Vec::new();
    for (name, old) in &s.ids.users {
        if !used_uids.contains(old)
            || captured_uids.contains(old)
            || moves.uids.contains_key(old)
            || done("uid", *old)
            || !super::accounts::valid_name(name)
        {
            continue;
        }
        match now_passwd.iter().find(|p| &p.name == name) {
            Some(p) if p.uid != *old => {
                moves.uids.insert(*old, p.uid);
            }
            Some(_) => {}
            None => {
                let taken = |i: u32| {
                    now_passwd.iter().any(|p| p.uid == i)
                        || new_users.iter().any(|(_, x, _)| *x == i)
                };
                if let Some(id) = free(&taken, *old) {
                    let gid = new_groups
                        .iter()
                        .find(|(g, _)| g == name)
                        .map(|(_, g)| *g)
                        .or_else(|| now_groups.iter().find(|g| &g.name == name).map(|g| g.gid))
                        .unwrap_or(65534);
                    new_users.push((name.clone(), id, gid));
                    if id != *old {
                        moves.uids.insert(*old, id);
                    }
                }
            }
        }
    }
    if new_users.is_empty() && new_groups.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    for (n, id, _) in &new_users {
        warnings.push(format!(
            "user {n} (files on the data disks) did not exist on the new OS: created as a system user with uid {id}"
        ));
    }
    for (n, id) in &new_groups {
        warnings.push(format!(
            "group {n} (files on the data disks) did not exist on the new OS: created as a system group with gid {id}"
        ));
    }
    super::accounts::make_system_accounts(a, &new_users, &new_groups)?;
    Ok((
        new_users.into_iter().map(|(n, u, _)| (n, u)).collect(),
        new_groups,
    ))
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
