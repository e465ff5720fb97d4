//! Restore step for the data paths: the snapshot engine writes them back under the root,
//! after the accounts exist so that owners are found by name.

use std::sync::{Arc, Mutex};

use anyhow::Result;

use crate::data::repo::Index;
use crate::data::{Progress, restore, verify};
use crate::restore::apply::{Apply, Outcome, Status};
use crate::restore::{Health, Loaded, StepReport};

/// Creates system accounts for the owners the new OS lacked and says what became of each;
/// an owner whose name is another account of the image stays a bare number (attention).
fn owner_accounts(
    a: &Apply,
    unknown: &[restore::UnknownOwner],
    index_warnings: Vec<crate::error::Problem>,
) -> Result<(Vec<String>, Vec<String>)> {
    let mut warnings = self::index_warnings(index_warnings);
    let mut attention = Vec::new();
    let (mut users, mut groups) = (Vec::new(), Vec::new());
    for o in unknown {
        let kind = if o.group { "group" } else { "user" };
        if o.conflict {
            attention.push(format!(
                "the files of the old {kind} {} were restored with the bare id {} (the new OS's {} is another account)",
                o.name, o.id, o.name
            ));
        } else if o.group {
            groups.push((o.name.clone(), o.id));
            warnings.push(format!(
                "group {} did not exist on the new OS: created as a system group with gid {} for its files",
                o.name, o.id
            ));
        } else {
            users.push((o.name.clone(), o.id));
            warnings.push(format!(
                "user {} did not exist on the new OS: created as a system user (no login) with uid {} for its files",
                o.name, o.id
            ));
        }
    }
    if users.is_empty() && groups.is_empty() {
        return Ok((warnings, attention));
    }
    // a user's primary group: its own-named group when there is one, else nogroup
    let (known, _) = crate::state::accounts::parse_group(&super::accounts::account_files(a).group);
    let gid_of = |name: &str| {
        groups
            .iter()
            .find(|(g, _)| g == name)
            .map(|(_, id)| *id)
            .or_else(|| known.iter().find(|g| g.name == name).map(|g| g.gid))
            .unwrap_or(65534)
    };
    let users: Vec<(String, u32, u32)> = users
        .iter()
        .map(|(n, id)| (n.clone(), *id, gid_of(n)))
        .collect();
    super::accounts::make_system_accounts(a, &users, &groups)?;
    Ok((warnings, attention))
}

pub fn data(a: &Apply, l: &Loaded) -> Result<Outcome> {
    let Some((store, manifest)) = &l.data else {
        return Ok(Outcome::skipped("the snapshot has no data paths"));
    };
    // the old users whose name the image uses for an account of its own: their files are
    // not given to that account by name, and their captured homes are not put into its
    let conflicts = super::accounts::conflicts(a, &l.state.users);
    let not_homes: Vec<&crate::state::homes::Home> = l
        .state
        .homes
        .iter()
        .filter(|h| h.captured && conflicts.contains(&h.user))
        .collect();
    let mut manifest = manifest.clone();
    manifest
        .roots
        .retain(|r| !not_homes.iter().any(|h| h.path == r.path));
    let manifest = &manifest;
    let home_attention: Vec<String> = not_homes
        .iter()
        .map(|h| format!(
            "the old {}'s home {} was not restored: the new OS's {} is another account (it stays in the snapshot)",
            h.user, h.path, h.user
        ))
        .collect();
    let paths: Vec<&str> = manifest.roots.iter().map(|r| r.path.as_str()).collect();
    if a.dry_run {
        // Say up front what cannot come back: the blobs the files need, read and hashed.
        let (index, warnings) = Index::load(store)?;
        let damaged = verify::damaged_files(store, &Arc::new(Mutex::new(index)), manifest);
        let mut detail = format!(
            "{} files, {} bytes into {}",
            manifest.files,
            manifest.bytes,
            paths.join(", ")
        );
        if !damaged.is_empty() {
            detail.push_str(&format!(
                "; {} damaged in the store, would not be restored",
                damaged.len()
            ));
        }
        let mut o = a.finish(detail, index_warnings(warnings));
        // as the real run will end: failed when files cannot come back
        o.status = if damaged.is_empty() {
            Status::WouldChange
        } else {
            Status::Failed
        };
        o.failed_files = damaged;
        o.attention = home_attention;
        return Ok(o);
    }
    let (index, warnings) = Index::load(store)?;
    // and nothing goes below their homes inside a larger data path (`/home`)
    let not_into: Vec<String> = l
        .state
        .users
        .iter()
        .filter(|u| conflicts.contains(&u.name) && u.home.starts_with('/') && u.home.len() > 1)
        .map(|u| u.home.trim_end_matches('/').to_string())
        .collect();
    let progress = Progress::new(
        a.options.progress && !a.dry_run,
        Some(manifest.bytes),
        Some(manifest.files),
        "restore",
    );
    let r = restore::restore(
        store, index, a.root, manifest, &progress, &conflicts, &not_into,
    );
    progress.finish();
    let mut r = r?;
    // the final flush runs while the step's check looks at every file; the step is taken
    // as done only once it has returned (`Apply::finish_later`)
    let unflushed = std::mem::take(&mut r.unflushed);
    let flush = std::thread::spawn(move || unflushed.sync());
    a.finish_later(move || {
        flush.join().unwrap_or_else(|_| {
            vec![crate::error::Problem::new(
                "data",
                "the thread flushing the restored files to disk panicked",
            )]
        })
    });
    let (warnings, mut attention) = owner_accounts(a, &r.unknown_owners, warnings)?;
    attention.extend(home_attention);
    if r.not_written > 0 {
        attention.push(format!(
            "{} entries below {} not restored: the new OS's account of that name is another one (they stay in the snapshot)",
            r.not_written,
            not_into.join(", ")
        ));
    }
    let (status, detail) = if !r.failed.is_empty() || r.changed > 0 {
        let status = if r.failed.is_empty() {
            Status::Changed
        } else {
            Status::Failed
        };
        let detail = format!(
            "{} of {} files, {} written ({} entries written or set, {} already as in the snapshot), into {}",
            r.files,
            manifest.files,
            crate::units::bytes(r.bytes),
            r.changed,
            r.unchanged,
            paths.join(", ")
        );
        (status, detail)
    } else {
        let detail = format!(
            "all {} entries already as in the snapshot ({} of {} files), 0 B written, into {}",
            r.unchanged,
            r.files,
            manifest.files,
            paths.join(", ")
        );
        (Status::Unchanged, detail)
    };
    Ok(Outcome {
        status,
        detail,
        warnings,
        failed_files: r.failed,
        attention,
        changes: Vec::new(),
    })
}

/// The data step's health check: every file of the snapshot is in place with its size,
/// whatever the step's report (or a journal) says.
pub fn check(a: &Apply, l: &Loaded, _done: &StepReport) -> (Health, String) {
    let Some((store, data)) = &l.data else {
        return (Health::AsRestored, "the snapshot has no data paths".into());
    };
    match restore::missing(store, a.root, data) {
        Ok(m) if m.is_empty() => (
            Health::AsRestored,
            "every file of the snapshot is in place".into(),
        ),
        Ok(m) => (
            Health::Missing,
            format!(
                "{} files of the snapshot are missing or of another size: {}",
                m.len(),
                m.iter()
                    .take(5)
                    .map(|p| p.path.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Err(e) => (
            Health::Missing,
            format!("the snapshot's tree cannot be read: {e:#}"),
        ),
    }
}

fn index_warnings(warnings: Vec<crate::error::Problem>) -> Vec<String> {
    warnings
        .into_iter()
        .map(|w| format!("store index {w}"))
        .collect()
}
