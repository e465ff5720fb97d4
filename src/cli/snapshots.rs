//! `carryover snapshots list|show|verify|forget|prune`: what the store holds, whether
//! every byte of it is still as written, and its upkeep.

use anyhow::Result;

use super::output::{emit, field};
use super::{Ctx, SnapshotsCommand};
use crate::data::upkeep::{self, Forget};
use crate::data::verify;
use crate::error::Exit;
use crate::store::Store;

pub fn run(ctx: &Ctx, cmd: SnapshotsCommand) -> Result<Exit> {
    match cmd {
        SnapshotsCommand::List(s) => {
            let store = open(ctx, s.store.as_deref())?;
            let list = store.list()?;
            emit(ctx.format, &list, || list_text(&list, s.store.as_deref()))?;
            Ok(Exit::Success)
        }
        SnapshotsCommand::Show { id, store } => {
            let store = open(ctx, store.store.as_deref())?;
            let m = ctx.resolve_snapshot(&store, &id)?;
            let loaded = crate::restore::load(&store, &m);
            let value =
                serde_json::json!({"manifest": m, "state": loaded.state, "damaged": loaded.broken});
            emit(ctx.format, &value, || {
                let mut o = String::new();
                let one = |v: &str| crate::units::one_line(v).into_owned();
                field(&mut o, "snapshot", &m.id);
                field(&mut o, "created", crate::units::local_time(&m.created_at));
                field(&mut o, "agent", one(&m.agent_version));
                if let Some(p) = &m.parent {
                    field(&mut o, "parent", one(p));
                }
                let paths: Vec<String> = m
                    .data
                    .iter()
                    .flat_map(|d| d.roots.iter().map(|r| one(&r.path)))
                    .collect();
                field(&mut o, "data paths", super::output::list(&paths));
                field(
                    &mut o,
                    "data",
                    format!(
                        "{}, {} ({} stored)",
                        crate::units::count(m.files as usize, "file"),
                        crate::units::bytes(m.bytes),
                        crate::units::bytes(m.stored_bytes)
                    ),
                );
                for p in &m.skipped {
                    field(
                        &mut o,
                        "NOT CAPTURED",
                        one(&format!("{}: {}", p.path, p.error)),
                    );
                }
                o.push_str(&super::inspect::render(&loaded.state));
                for (k, v) in &loaded.broken {
                    field(&mut o, "DAMAGED", format!("{k}: {v}"));
                }
                o
            })?;
            Ok(if loaded.broken.is_empty() {
                Exit::Success
            } else {
                Exit::Failure
            })
        }
        SnapshotsCommand::Verify { id, store } => {
            let store = open(ctx, store.store.as_deref())?;
            let all = id.is_none();
            let manifests = match id {
                Some(id) => vec![ctx.resolve_snapshot(&store, &id)?],
                None => store.list()?,
            };
            let results = verify::snapshots(&store, &manifests, all)?;
            let all_ok = results.iter().all(|r| r.ok);
            emit(ctx.format, &results, || {
                let mut o = String::new();
                for r in &results {
                    o.push_str(&format!(
                        "{}  {}\n",
                        r.snapshot_id,
                        if r.ok { "ok" } else { "DAMAGED" }
                    ));
                    for d in &r.damaged {
                        o.push_str(&format!("    {d}\n"));
                    }
                }
                o
            })?;
            Ok(if all_ok { Exit::Success } else { Exit::Failure })
        }
        SnapshotsCommand::Forget {
            ids,
            keep_last,
            store,
        } => {
            let store = open(ctx, store.store.as_deref())?;
            let which = match keep_last {
                Some(n) => Forget::KeepLast(n as usize),
                None => Forget::Ids(
                    ids.iter()
                        .map(|s| ctx.resolve_snapshot(&store, s).map(|m| m.id))
                        .collect::<Result<_>>()?,
                ),
            };
            let forgotten = upkeep::forget(&store, &which)?;
            let value = serde_json::json!({"forgotten": forgotten});
            emit(ctx.format, &value, || {
                let mut o = String::new();
                for id in &forgotten {
                    field(&mut o, "forgotten", id);
                }
                if forgotten.is_empty() {
                    o.push_str("nothing to forget\n");
                } else {
                    o.push_str("`carryover snapshots prune` frees the space they used\n");
                }
                o
            })?;
            Ok(Exit::Success)
        }
        SnapshotsCommand::Prune(s) => {
            let store = open(ctx, s.store.as_deref())?;
            let r = upkeep::prune(&store)?;
            for w in &r.warnings {
                tracing::warn!("{w}");
            }
            emit(ctx.format, &r, || {
                let mut o = String::new();
                field(&mut o, "snapshots", r.snapshots);
                field(&mut o, "packs removed", r.packs_removed);
                field(
                    &mut o,
                    "packs rewritten",
                    format!("{} (into {} new)", r.packs_rewritten, r.packs_written),
                );
                field(
                    &mut o,
                    "packs",
                    format!("{} -> {}", r.packs_before, r.packs_after),
                );
                field(
                    &mut o,
                    "pack bytes",
                    format!("{} -> {}", r.bytes_before, r.bytes_after),
                );
                field(&mut o, "objects removed", r.objects_removed);
                o
            })?;
            Ok(Exit::Success)
        }
    }
}

fn open(ctx: &Ctx, cli: Option<&str>) -> Result<Store> {
    Ok(ctx.open_store(cli, false)?.1)
}

/// `snapshots list` as a table like restic's: a header, second-precision local times,
/// the data's size and paths, `latest` per instance, and what needs a look (paths not
/// captured).
fn list_text(list: &[crate::store::Manifest], store: Option<&str>) -> String {
    if list.is_empty() {
        return format!(
            "no snapshots in the store{}\n",
            store.map(|s| format!(" {s}")).unwrap_or_default()
        );
    }
    let mut newest: std::collections::BTreeMap<&str, &str> = Default::default();
    for m in list {
        newest.insert(m.instance_id.as_deref().unwrap_or("-"), &m.id);
    }
    let rows: Vec<[String; 7]> = list
        .iter()
        .map(|m| {
            let instance = m.instance_id.as_deref().unwrap_or("-");
            let paths = m
                .data
                .as_ref()
                .map(|d| {
                    d.roots
                        .iter()
                        .map(|r| r.path.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let mut notes = Vec::new();
            if newest.get(instance) == Some(&m.id.as_str()) {
                notes.push("latest".to_string());
            }
            if !m.skipped.is_empty() {
                notes.push(format!("{} NOT CAPTURED", m.skipped.len()));
            }
            [
                m.id.clone(),
                crate::units::local_time(&m.created_at),
                // values of the (untrusted) manifest, one line each: a newline in a
                // hostname must not break the table
                crate::units::one_line(&m.hostname).into_owned(),
                crate::units::one_line(instance).into_owned(),
                crate::units::bytes(m.bytes),
                if paths.is_empty() {
                    "-".into()
                } else {
                    crate::units::one_line(&paths).into_owned()
                },
                notes.join(", "),
            ]
        })
        .collect();
    let header = ["ID", "Time", "Host", "Instance", "Size", "Paths", ""];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            l.push_str(&format!("{c:<w$}", w = widths[i]));
        }
        l.trim_end().to_string() + "\n"
    };
    let mut o = line(&header);
    o.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
    o.push('\n');
    for r in &rows {
        o.push_str(&line(&r.iter().map(String::as_str).collect::<Vec<_>>()));
    }
    o.push_str(&format!("{} snapshots\n", rows.len()));
    o
}
