//! `carryover restore`: choose the snapshot of this instance, run the plan, report.

use anyhow::Result;

use super::output::{emit, field};
use super::{Ctx, RestoreArgs};
use std::time::Duration;

use crate::error::Exit;
use crate::hooks::{self, HookEnv, Phase};
use crate::local::{LocalState, RestoreRecord};
use crate::restore::apply::Status;
use crate::restore::{self, RestoreReport};
use crate::state::{Gather, identity};
use crate::store::{self, Manifest, Store};

pub fn run(ctx: &Ctx, args: RestoreArgs) -> Result<Exit> {
    if args.if_due && args.store.store.is_none() && ctx.config.store.url.is_none() {
        return nothing_due(ctx, "no store is configured".into());
    }
    let (url, store) = ctx.open_store(args.store.store.as_deref(), false)?;
    let g = Gather::new(&ctx.root, &ctx.config);
    let (instance, _, _) = identity::instance(&g);
    let manifest = match choose(&store, args.snapshot.as_deref(), instance.as_deref()) {
        Err(e) if args.if_due => {
            return nothing_due(ctx, format!("{e:#}"));
        }
        r => r?,
    };
    if args.if_due
        && let Some(why) = not_due(
            &LocalState::load(&ctx.root).unwrap_or_default(),
            &manifest.id,
        )
    {
        return nothing_due(ctx, why);
    }
    let target = format!(
        "{}@{}",
        instance.as_deref().unwrap_or("unknown"),
        ctx.root.dir().display()
    );
    let hook_env = HookEnv {
        root: &ctx.root,
        snapshot_id: &manifest.id,
        store: &url,
        timeout: Duration::from_secs(ctx.config.hooks_timeout_seconds),
    };
    let pre = (!args.dry_run).then(|| hooks::run(Phase::PreRestore, &hook_env));
    let mut report = restore::run(&store, &manifest, &ctx.root, &target, args.dry_run)?;
    let post = (!args.dry_run).then(|| hooks::run(Phase::PostRestore, &hook_env));
    for (name, r) in [("pre-restore-hooks", pre), ("post-restore-hooks", post)] {
        let (status, detail) = match r {
            None | Some(Ok(0)) => continue,
            Some(Ok(n)) => (Status::Changed, format!("{n} hooks ran")),
            Some(Err(e)) => (Status::Failed, format!("{e:#}")),
        };
        if status == Status::Failed && report.state == "ready" {
            report.state = "degraded".into();
        }
        report.steps.push(restore::StepReport {
            name: name.into(),
            status,
            detail,
            warnings: Vec::new(),
            failed_files: Vec::new(),
        });
    }
    if !args.dry_run {
        let mut local = LocalState::load(&ctx.root).unwrap_or_default();
        local.last_restore = Some(RestoreRecord {
            snapshot_id: manifest.id.clone(),
            store: url,
            at: store::now_rfc3339(),
            state: report.state.clone(),
        });
        if let Err(e) = local.save(&ctx.root) {
            tracing::warn!("could not record the restore locally: {e:#}");
        }
    }
    if !args.dry_run {
        let state = match report.state.as_str() {
            "ready" => "succeeded",
            s => s,
        };
        let steps = report
            .steps
            .iter()
            .map(|s| serde_json::json!({"name": s.name, "status": s.status.as_str(), "detail": s.detail}))
            .collect();
        super::capture::report_event(
            ctx,
            instance.as_deref(),
            "restore",
            state,
            Some(&manifest.id),
            |e| {
                e.set_failed_files(&report.failed_files);
                e.steps = steps;
            },
        );
    }
    emit(ctx.format, &report, || render(&report))?;
    Ok(match report.state.as_str() {
        "ready" | "planned" => Exit::Success,
        "degraded" => Exit::Degraded,
        _ => Exit::Failure,
    })
}

fn nothing_due(ctx: &Ctx, reason: String) -> Result<Exit> {
    let v = serde_json::json!({"state": "not-due", "reason": reason});
    emit(ctx.format, &v, || format!("no restore due: {reason}\n"))?;
    Ok(Exit::Success)
}

/// Why a restore of `snapshot` is not due on this system, if it is not: this system took
/// it (the old OS rebooting), or already restored it. An interrupted restore has no
/// record yet, so it is due and resumes from its journal.
pub fn not_due(local: &LocalState, snapshot: &str) -> Option<String> {
    if let Some(c) = &local.last_capture
        && c.snapshot_id == snapshot
    {
        return Some(format!(
            "this system took snapshot {snapshot} (at {}): it is the old OS",
            c.at
        ));
    }
    if let Some(r) = &local.last_restore
        && r.snapshot_id == snapshot
    {
        return Some(format!(
            "snapshot {snapshot} was restored here at {} ({}); run `carryover restore` to do it again",
            r.at, r.state
        ));
    }
    None
}

/// The named snapshot (`latest`, an id or a unique prefix), or the newest one of this
/// instance.
fn choose(store: &Store, named: Option<&str>, instance: Option<&str>) -> Result<Manifest> {
    store.resolve(named.unwrap_or(store::LATEST), || {
        instance.map(str::to_string)
    })
}

fn render(r: &RestoreReport) -> String {
    let mut o = String::new();
    field(&mut o, "snapshot", &r.snapshot_id);
    for s in &r.steps {
        o.push_str(&format!(
            "  {:<18} {:<13} {}\n",
            s.name,
            s.status.as_str(),
            s.detail
        ));
        for w in &s.warnings {
            o.push_str(&format!("  {:<18} {:<13} {w}\n", "", "warning"));
        }
        for f in &s.failed_files {
            o.push_str(&format!("  {:<18} {:<13} {f}\n", "", "not restored"));
        }
    }
    for h in r.health.iter().filter(|h| !h.ok) {
        o.push_str(&format!(
            "  health {:<11} FAILED        {}\n",
            h.name, h.detail
        ));
    }
    if r.resumed {
        field(
            &mut o,
            "resumed",
            "yes: an interrupted restore was picked up",
        );
    }
    field(&mut o, "state", &r.state);
    o
}
