//! The restore use case (`carryover restore`): decide whether a restore is due and of
//! which snapshot (never onto the system that took it, never a rolled-back store), run the
//! hooks around the plan, keep this system's record and tell the orchestrator. The CLI
//! only parses the request and prints the outcome.

use std::time::Duration;

use anyhow::Result;

use super::apply::Status;
use super::{RestoreReport, RestoreState, StepReport};
use crate::config::Config;
use crate::error::Error;
use crate::hooks::{self, HookEnv, Phase};
use crate::local::{LocalState, RestoreRecord};
use crate::origin::{self, Origin};
use crate::report::{EventPhase, EventState, Reporter};
use crate::state::{Gather, identity};
use crate::store::{self, Manifest, Store};
use crate::sys::Root;

/// What to restore, as the command line (or the Windows service) asks for it.
pub struct Request<'a> {
    pub root: &'a Root,
    pub config: &'a Config,
    /// The store's URL (default: the config's).
    pub store: Option<String>,
    /// The snapshot named by the user: an id, a unique prefix, or `latest`.
    pub snapshot: Option<String>,
    /// Plan only: change nothing, report nothing.
    pub dry_run: bool,
    /// The boot unit: restore only when a restore is due.
    pub if_due: bool,
    /// Draw progress bars (stderr is a terminal, the output is text).
    pub progress: bool,
}

/// How a restore request ended.
#[derive(Debug)]
pub enum RestoreOutcome {
    /// Nothing to do, and why (only with `if_due`).
    NotDue { reason: String },
    /// The plan ran (or, in a dry run, was planned).
    Finished(RestoreReport),
}

/// Runs a restore request. A failure is reported to the orchestrator where a new OS was
/// expected to restore.
pub fn run(req: &Request) -> Result<RestoreOutcome> {
    let local = LocalState::load_for_update(req.root);
    let g = Gather::new(req.root, req.config);
    let (instance, _, _) = identity::instance(&g);
    let reporter = Reporter::new(req.root, req.config, instance.as_deref());
    // The boot unit restores once per system: after a finished restore (of any snapshot,
    // a later one by hand included) nothing is due again — only an interrupted one, which
    // has no record yet, resumes.
    if req.if_due
        && let Some(done) = ran_already(&local)
    {
        return Ok(done);
    }
    // The old OS (it took snapshots) never tells the orchestrator about a restore; a new
    // OS reports a failure wherever a restore was expected (the user-data says so).
    let speaks = !req.dry_run && !local.took_any();
    let expected = !req.if_due || req.config.restore_expected;
    let job = Job {
        req,
        local: &local,
        instance: instance.as_deref(),
        reporter: &reporter,
    };
    // the machine's restore lock, once `job` takes it: held until the outcome is
    // reported and recorded below, so a restore that starts next never sees this one's
    // failure arrive after its own start
    let mut running = None;
    let result = job.run(&mut running);
    // another restore running is not this one failing: the running one reports
    let busy = result
        .as_ref()
        .is_err_and(|e| e.downcast_ref::<crate::local::Busy>().is_some());
    if let Err(e) = &result
        && speaks
        && expected
        && !busy
    {
        reporter.failed(EventPhase::Restore, req.snapshot.as_deref(), e);
        // and `status` says so instead of waiting for it
        let mut record = LocalState::load_for_update(req.root);
        record.last_failure = Some(crate::local::FailureRecord {
            at: crate::store::now_rfc3339(),
            error: format!("{e:#}"),
            boot: crate::sys::boot_id(),
        });
        if let Err(e) = record.save(req.root) {
            tracing::warn!("could not record the failed restore: {e:#}");
        }
    }
    // where the user-data said a restore is expected (a new OS), the report an operator
    // looks for and the banner that points at it — not for a restore by hand refused
    // elsewhere (the old OS itself)
    if let Err(e) = &result
        && speaks
        && req.config.restore_expected
        && !busy
    {
        let report =
            super::RestoreReport::stopped(req.snapshot.as_deref().unwrap_or(""), format!("{e:#}"));
        super::document::publish(req.root, &report, String::new());
    }
    result
}

fn not_due(reason: String) -> RestoreOutcome {
    RestoreOutcome::NotDue { reason }
}

/// Not due for the boot unit: a restore finished here already.
fn ran_already(local: &LocalState) -> Option<RestoreOutcome> {
    let r = local.last_restore.as_ref()?;
    Some(not_due(format!(
        "a restore ran here already (snapshot {} at {}, {}); run `carryover restore` to restore again",
        r.snapshot_id, r.at, r.state
    )))
}

/// One restore run: what `run` decided before the store was opened.
struct Job<'a> {
    req: &'a Request<'a>,
    local: &'a LocalState,
    instance: Option<&'a str>,
    reporter: &'a Reporter,
}

impl Job<'_> {
    fn run(&self, running: &mut Option<crate::local::RunMarker>) -> Result<RestoreOutcome> {
        let req = self.req;
        // Nothing due, quietly: only where no restore was expected (a plain install).
        let quiet = req.if_due && !req.config.restore_expected;
        if quiet && req.store.is_none() && req.config.store.url.is_none() {
            return Ok(not_due("no store is configured".into()));
        }
        let (url, store) =
            store::open_configured(req.root, req.config, req.store.as_deref(), false)?;
        let manifest = match choose(&store, req.snapshot.as_deref(), self.instance) {
            Err(e) if quiet => return Ok(not_due(format!("{e:#}"))),
            r => r?,
        };
        // Never onto the system that took the snapshot, unless it is named explicitly by
        // its id (`latest` is what restore picks by itself: it is guarded too).
        let named = req.snapshot.as_deref().is_some_and(|s| s != store::LATEST);
        let here = Origin::here(req.root);
        if !named
            && let Some(why) = origin::taken_by_this_system(
                self.local,
                &manifest.id,
                manifest.origin.as_ref(),
                &here,
            )
        {
            if req.if_due {
                return Ok(not_due(why.reason().to_string()));
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
        if req.if_due
            && let Some(j) = super::journal(&store, &manifest.id)
            && let (Some(at), Some(on)) = (&j.finished_at, &j.restored_on)
            && here.marker.as_ref() == Some(on)
        {
            return Ok(not_due(format!(
                "snapshot {} was restored onto this system at {at} (the store's journal); run `carryover restore` to restore again",
                manifest.id
            )));
        }
        // A store rolled back (newer snapshots removed, an old manifest in their place) is
        // refused: the user-data, this machine and the store's record of the instance name
        // the newest snapshot seen before. After the old-OS guards: an old OS has seen
        // newer snapshots in other stores.
        let floor = store::seen::floor(
            &store,
            self.local,
            req.config.restore_not_before.as_deref(),
            self.instance,
        );
        if !named {
            store::seen::check(&manifest.id, floor.as_ref())?;
        }
        if let Some(note) = origin::same_root_filesystem(manifest.origin.as_ref(), &here) {
            tracing::warn!("{note}");
        }
        // One restore at a time on a system, taken once this one is known to be due and
        // before it says anything: one started by hand while another runs is refused
        // (`local::Busy`); the boot unit's waits for the running one to end — when that
        // one finished, the record it left makes this one not due; when it was killed,
        // this one does the work.
        if !req.dry_run {
            *running = Some(crate::local::RunMarker::start(req.root, req.if_due)?);
        }
        if req.if_due
            && let Some(done) = LocalState::load(req.root)
                .ok()
                .as_ref()
                .and_then(ran_already)
        {
            return Ok(done);
        }
        if !req.dry_run {
            self.reporter.send(
                EventPhase::Restore,
                EventState::Started,
                Some(&manifest.id),
                |_| {},
            );
            self.reporter.arm_panic(EventPhase::Restore);
        }
        self.restore(&url, &store, &manifest, here.marker.as_deref(), floor)
            .map(RestoreOutcome::Finished)
    }

    fn restore(
        &self,
        url: &str,
        store: &Store,
        manifest: &Manifest,
        marker: Option<&str>,
        floor: Option<(String, &'static str)>,
    ) -> Result<RestoreReport> {
        let req = self.req;
        // a restore runs (`run` holds the lock and the marker): it logs to its file
        if !req.dry_run {
            super::document::start_log();
        }
        let target = format!(
            "{}@{}",
            self.instance.unwrap_or("unknown"),
            req.root.dir().display()
        );
        let hook_env = HookEnv {
            root: req.root,
            snapshot_id: &manifest.id,
            store: url,
            timeout: Duration::from_secs(req.config.hooks_timeout_seconds),
        };
        let pre = (!req.dry_run).then(|| hooks::run(Phase::PreRestore, &hook_env));
        let mut report = super::execute(&super::Plan {
            store,
            manifest,
            root: req.root,
            target_id: &target,
            dry_run: req.dry_run,
            marker,
            options: &super::Options {
                progress: req.progress,
                ..super::Options::from_config(req.config)
            },
        })?;
        let post = (!req.dry_run).then(|| hooks::run(Phase::PostRestore, &hook_env));
        for (name, r) in [("pre-restore-hooks", pre), ("post-restore-hooks", post)] {
            let (status, detail) = match r {
                None | Some(Ok(0)) => continue,
                Some(Ok(n)) => (Status::Changed, format!("{n} hooks ran")),
                Some(Err(e)) => (Status::Failed, format!("{e:#}")),
            };
            if status == Status::Failed && report.state == RestoreState::Ready {
                report.state = RestoreState::Degraded;
            }
            report.steps.push(StepReport {
                name: name.into(),
                status,
                detail,
                warnings: Vec::new(),
                failed_files: Vec::new(),
                attention: Vec::new(),
                changes: Vec::new(),
            });
        }
        if !req.dry_run {
            self.record(url, store, manifest, &report, floor);
            self.reporter.send(
                EventPhase::Restore,
                report.state.event_state(),
                Some(&manifest.id),
                |e| {
                    e.set_failed_files(&report.failed_files);
                    e.set_steps(&report.steps);
                    e.reasons = super::document::reasons(&report)
                        .into_iter()
                        .take(50)
                        .collect();
                },
            );
            // the report an operator reads after the change, and the login banner
            super::document::publish(req.root, &report, manifest.hostname.clone());
            if let Err(e) = super::finish_journal(store, &manifest.id, &target) {
                tracing::warn!("could not mark the restore finished in the store: {e:#}");
            }
        }
        Ok(report)
    }

    /// This system's record of the restore, and the newest snapshot seen (here and in
    /// the store).
    fn record(
        &self,
        url: &str,
        store: &Store,
        manifest: &Manifest,
        report: &RestoreReport,
        floor: Option<(String, &'static str)>,
    ) {
        let root = self.req.root;
        let mut local = LocalState::load_for_update(root);
        local.last_restore = Some(RestoreRecord {
            snapshot_id: manifest.id.clone(),
            store: url.to_string(),
            at: store::now_rfc3339(),
            state: report.state,
        });
        // the newest seen stays the newest: a snapshot named on purpose lowers nothing
        let newest = floor
            .map(|(f, _)| f)
            .filter(|f| f > &manifest.id)
            .unwrap_or_else(|| manifest.id.clone());
        local.see(self.instance, &newest);
        store::seen::record_in_store(store, self.instance, &newest);
        if let Err(e) = local.save(root) {
            tracing::warn!("could not record the restore locally: {e:#}");
        }
    }
}

fn choose(store: &Store, named: Option<&str>, instance: Option<&str>) -> Result<Manifest> {
    store.resolve(named.unwrap_or(store::LATEST), || {
        instance.map(str::to_string)
    })
}
