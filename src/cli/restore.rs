//! `carryover restore`: choose the snapshot of this instance, run the plan, report.

use anyhow::Result;

use super::output::{emit, field};
use super::{Ctx, RestoreArgs};
use std::time::Duration;

use crate::error::{Error, Exit};
use crate::hooks::{self, HookEnv, Phase};
use crate::local::{LocalState, RestoreRecord};
use crate::origin::{self, Origin};
use crate::report::Reporter;
use crate::restore::apply::Status;
use crate::restore::{self, RestoreReport};
use crate::state::{Gather, identity};
use crate::store::{self, Manifest, Store};

pub fn run(ctx: &Ctx, args: RestoreArgs) -> Result<Exit> {
    let local = LocalState::load(&ctx.root).unwrap_or_else(|e| {
        tracing::warn!("{e:#}; taken as empty");
        LocalState::default()
    });
    let g = Gather::new(&ctx.root, &ctx.config);
    let (instance, _, _) = identity::instance(&g);
    let reporter = Reporter::new(&ctx.root, &ctx.config, instance.as_deref());
    // The boot unit restores once per system: after a finished restore (of any snapshot,
    // a later one by hand included) nothing is due again — only an interrupted one, which
    // has no record yet, resumes.
    if args.if_due
        && let Some(r) = &local.last_restore
    {
        return nothing_due(
            ctx,
            format!(
                "a restore ran here already (snapshot {} at {}, {}); run `carryover restore` to restore again",
                r.snapshot_id, r.at, r.state
            ),
        );
    }
    // The old OS (it took snapshots) never tells the orchestrator about a restore; a new
    // OS reports a failure wherever a restore was expected (the user-data says so).
    let speaks = !args.dry_run && !local.took_any();
    let expected = !args.if_due || ctx.config.restore_expected;
    // `status --wait` waits while this runs
    let _running = if args.dry_run {
        None
    } else {
        crate::local::RunMarker::start(&ctx.root)
            .inspect_err(|e| tracing::warn!("{e:#}"))
            .ok()
    };
    let job = Job {
        ctx,
        args: &args,
        local: &local,
        instance: instance.as_deref(),
        reporter: &reporter,
    };
    match job.run() {
        Ok(exit) => Ok(exit),
        Err(e) => {
            if speaks && expected {
                reporter.failed("restore", args.snapshot.as_deref(), &e);
            }
            Err(e)
        }
    }
}

/// One restore run: what `run` decided before the store was opened.
struct Job<'a> {
    ctx: &'a Ctx,
    args: &'a RestoreArgs,
    local: &'a LocalState,
    instance: Option<&'a str>,
    reporter: &'a Reporter,
}

impl Job<'_> {
    fn run(&self) -> Result<Exit> {
        let (ctx, args) = (self.ctx, self.args);
        // Nothing due, quietly: only where no restore was expected (a plain install).
        let quiet = args.if_due && !ctx.config.restore_expected;
        if quiet && args.store.store.is_none() && ctx.config.store.url.is_none() {
            return nothing_due(ctx, "no store is configured".into());
        }
        let (url, store) = ctx.open_store(args.store.store.as_deref(), false)?;
        let manifest = match choose(&store, args.snapshot.as_deref(), self.instance) {
            Err(e) if quiet => return nothing_due(ctx, format!("{e:#}")),
            r => r?,
        };
        // Never onto the system that took the snapshot, unless it is named explicitly by
        // its id (`latest` is what restore picks by itself: it is guarded too).
        let named = args.snapshot.as_deref().is_some_and(|s| s != store::LATEST);
        let here = Origin::here(&ctx.root);
        if !named
            && let Some(why) = origin::taken_by_this_system(
                self.local,
                &manifest.id,
                manifest.origin.as_ref(),
                &here,
            )
        {
            if args.if_due {
                return nothing_due(ctx, why.reason().to_string());
            }
            return Err(Error::Usage(format!(
                "{}; to restore it here anyway name it: --snapshot {}",
                why.reason(),
                manifest.id
            ))
            .into());
        }
        // This system's own record may be lost: the store's journal says where the
        // snapshot was restored already.
        if args.if_due
            && let Some(j) = restore::journal(&store, &manifest.id)
            && let (Some(at), Some(on)) = (&j.finished_at, &j.restored_on)
            && here.marker.as_ref() == Some(on)
        {
            return nothing_due(
                ctx,
                format!(
                    "snapshot {} was restored onto this system at {at} (the store's journal); run `carryover restore` to restore again",
                    manifest.id
                ),
            );
        }
        // A store rolled back (newer snapshots removed, an old manifest in their place) is
        // refused: the user-data, this machine and the store's record of the instance name
        // the newest snapshot seen before. After the old-OS guards: an old OS has seen
        // newer snapshots in other stores.
        let floor = store::seen::floor(
            &store,
            self.local,
            ctx.config.restore_not_before.as_deref(),
            self.instance,
        );
        if !named {
            store::seen::check(&manifest.id, floor.as_ref())?;
        }
        if let Some(note) = origin::same_root_filesystem(manifest.origin.as_ref(), &here) {
            tracing::warn!("{note}");
        }
        if !args.dry_run {
            self.reporter
                .send("restore", "started", Some(&manifest.id), |_| {});
            self.reporter.arm_panic("restore");
        }
        self.restore(&url, &store, &manifest, here.marker.as_deref(), floor)
    }

    fn restore(
        &self,
        url: &str,
        store: &Store,
        manifest: &Manifest,
        marker: Option<&str>,
        floor: Option<(String, &'static str)>,
    ) -> Result<Exit> {
        let (ctx, args) = (self.ctx, self.args);
        let target = format!(
            "{}@{}",
            self.instance.unwrap_or("unknown"),
            ctx.root.dir().display()
        );
        let hook_env = HookEnv {
            root: &ctx.root,
            snapshot_id: &manifest.id,
            store: url,
            timeout: Duration::from_secs(ctx.config.hooks_timeout_seconds),
        };
        let pre = (!args.dry_run).then(|| hooks::run(Phase::PreRestore, &hook_env));
        let mut report = restore::run(
            store,
            manifest,
            &ctx.root,
            &target,
            args.dry_run,
            marker,
            &restore::Options {
                progress: ctx.format == super::Format::Text
                    && std::io::IsTerminal::is_terminal(&std::io::stderr()),
                ..restore::Options::from_config(&ctx.config)
            },
        )?;
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
                attention: Vec::new(),
                changes: Vec::new(),
            });
        }
        if !args.dry_run {
            let mut local = LocalState::load(&ctx.root).unwrap_or_default();
            local.last_restore = Some(RestoreRecord {
                snapshot_id: manifest.id.clone(),
                store: url.to_string(),
                at: store::now_rfc3339(),
                state: report.state.clone(),
            });
            // the newest seen stays the newest: a snapshot named on purpose lowers nothing
            let newest = floor
                .map(|(f, _)| f)
                .filter(|f| f > &manifest.id)
                .unwrap_or_else(|| manifest.id.clone());
            local.see(self.instance, &newest);
            store::seen::record_in_store(store, self.instance, &newest);
            if let Err(e) = local.save(&ctx.root) {
                tracing::warn!("could not record the restore locally: {e:#}");
            }
            let state = match report.state.as_str() {
                "ready" => "succeeded",
                s => s,
            };
            let steps = report
                .steps
                .iter()
                .map(|s| {
                    let mut v = serde_json::json!({"name": s.name, "status": s.status.as_str(), "detail": s.detail});
                    // what needs a person, and the readiness check line by line (bounded)
                    if !s.attention.is_empty() {
                        v["attention"] = s.attention.iter().take(20).cloned().collect();
                    }
                    if s.name == "readiness" && !s.changes.is_empty() {
                        v["readiness"] = s.changes.iter().take(50).cloned().collect();
                    }
                    v
                })
                .collect();
            self.reporter
                .send("restore", state, Some(&manifest.id), |e| {
                    e.set_failed_files(&report.failed_files);
                    e.steps = steps;
                });
            // the report an operator reads after the change, and the login banner
            let meta = crate::restore::document::Meta {
                hostname: manifest.hostname.clone(),
                finished_at: crate::store::now_rfc3339(),
            };
            match serde_json::to_value(&report) {
                Ok(v) => {
                    if let Err(e) = crate::restore::document::write(&ctx.root, &v, &meta) {
                        tracing::warn!(
                            "could not write the restore report under /var/log/carryover: {e}"
                        );
                    }
                }
                Err(e) => tracing::warn!("could not render the restore report: {e}"),
            }
        }
        emit(ctx.format, &report, || render(&report))?;
        Ok(match report.state.as_str() {
            "ready" | "planned" => Exit::Success,
            "degraded" => Exit::Degraded,
            _ => Exit::Failure,
        })
    }
}

fn nothing_due(ctx: &Ctx, reason: String) -> Result<Exit> {
    let v = serde_json::json!({"state": "not-due", "reason": reason});
    emit(ctx.format, &v, || format!("no restore due: {reason}\n"))?;
    Ok(Exit::Success)
}

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
        for c in &s.changes {
            o.push_str(&format!("  {:<18} {:<13} {c}\n", "", ""));
        }
        for w in &s.warnings {
            o.push_str(&format!("  {:<18} {:<13} {w}\n", "", "warning"));
        }
        for w in &s.attention {
            o.push_str(&format!("  {:<18} {:<13} {w}\n", "", "ATTENTION"));
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
