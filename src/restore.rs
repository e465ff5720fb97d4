//! Restore: load a snapshot, run the plan of ordered idempotent steps with a journal in
//! the store (so a crash or reboot resumes where it stopped), verify the result, and
//! decide `ready`, `degraded` or `failed`.

pub mod apply;
mod background;
pub mod document;
mod job;
pub mod merge;
pub mod names;
pub mod steps;

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::error::Problem;
use crate::state::{Secrets, SystemState};
use crate::store::{Manifest, Store};
use crate::sys::Root;
use apply::{Apply, Outcome, Status};
pub use job::{Request, RestoreOutcome, run};

/// A snapshot's state as restore sees it: each section parsed on its own, so a damaged
/// section fails only the steps that need it.
#[derive(Debug, Default)]
pub struct Loaded {
    pub state: SystemState,
    pub secrets: Secrets,
    /// Section name → why it could not be read.
    pub broken: BTreeMap<String, String>,
    /// False when the snapshot's state object could not be read at all (then nothing of
    /// the system comes back: the restore is `failed`).
    pub state_read: bool,
    /// The store and the data part of the snapshot, when it has data paths.
    pub data: Option<(Store, crate::data::DataManifest)>,
}

/// Parses a state document section by section.
pub fn parse_state_lenient(bytes: &[u8]) -> (SystemState, BTreeMap<String, String>) {
    let (state, broken, _) = parse_state_sections(bytes);
    (state, broken)
}

/// `parse_state_lenient`, and how many sections could be read.
fn parse_state_sections(bytes: &[u8]) -> (SystemState, BTreeMap<String, String>, usize) {
    let mut broken = BTreeMap::new();
    let value: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            broken.insert("*".into(), format!("state.json is not valid JSON: {e}"));
            return (SystemState::default(), broken, 0);
        }
    };
    let Some(obj) = value.as_object() else {
        broken.insert("*".into(), "state.json is not a JSON object".into());
        return (SystemState::default(), broken, 0);
    };
    let mut good = serde_json::Map::new();
    for (k, v) in obj {
        let single = serde_json::Value::Object([(k.clone(), v.clone())].into_iter().collect());
        match serde_json::from_value::<SystemState>(single) {
            Ok(_) => {
                good.insert(k.clone(), v.clone());
            }
            Err(e) => {
                broken.insert(
                    k.clone(),
                    format!("section `{k}` of state.json cannot be read: {e}"),
                );
            }
        }
    }
    let read = good.len();
    let state = serde_json::from_value(serde_json::Value::Object(good)).unwrap_or_default();
    (state, broken, read)
}

/// Loads the state and secrets of a snapshot; damage is recorded, not fatal.
pub fn load(store: &Store, m: &Manifest) -> Loaded {
    let mut loaded = Loaded {
        data: m.data.clone().map(|d| (store.clone(), d)),
        ..Loaded::default()
    };
    match &m.state {
        Some(r) => match store.get_object(&m.id, r) {
            Ok(bytes) => {
                let (state, broken, read) = parse_state_sections(&bytes);
                loaded.state = state;
                loaded.broken = broken;
                loaded.state_read = read > 0;
            }
            Err(e) => {
                // A checksum mismatch: still try the sections that parse, but say so.
                // In an encrypted store it must still open as this snapshot's state: another
                // snapshot's copied over it does not (and the error says whose it is).
                match store.get_object_unchecked(&m.id, r) {
                    Ok(bytes) => {
                        loaded.broken.insert("*".into(), format!("{e:#}"));
                        let (state, broken, read) = parse_state_sections(&bytes);
                        loaded.state = state;
                        loaded.broken.extend(broken);
                        loaded.state_read = read > 0;
                    }
                    Err(e2) => {
                        loaded.broken.insert("*".into(), format!("{e:#}; {e2:#}"));
                    }
                }
            }
        },
        None => {
            // a data-only snapshot: nothing failed to read
            loaded.state_read = true;
            loaded
                .broken
                .insert("*".into(), "the snapshot has no state object".into());
        }
    }
    if let Some(r) = &m.secrets {
        match store.get_object(&m.id, r).and_then(|b| {
            serde_json::from_slice::<Secrets>(&b).context("secrets.json cannot be read")
        }) {
            Ok(s) => loaded.secrets = s,
            Err(e) => {
                loaded.broken.insert("secrets".into(), format!("{e:#}"));
            }
        }
    }
    loaded
}

/// One step's line in the report and the journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepReport {
    pub name: String,
    pub status: Status,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "crate::error::problem_lines"
    )]
    pub failed_files: Vec<Problem>,
    /// What a person must look at (the restore ends `degraded`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attention: Vec<String>,
    /// What changed (or, in a dry run, would change), old → new.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
}

/// The journal of a restore, kept in the store and rewritten after every step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    pub snapshot_id: String,
    pub target: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub steps: Vec<StepReport>,
    /// The origin marker of the system restored (see `origin`): the boot unit never
    /// restores the same snapshot onto it again, even when its own record is lost.
    #[serde(default)]
    pub restored_on: Option<String>,
}

/// Marks the journal of `snapshot` finished — the last thing a restore does, after the
/// post-restore hooks, this system's record and the outcome queued for the orchestrator:
/// the boot unit takes a finished journal naming this system for a restore done (when
/// the system's own record is lost) and never runs it again, so marked any earlier, a
/// crash in between left a restore whose outcome was never recorded nor reported.
///
/// One journal per snapshot: another system restoring the same snapshot meanwhile may
/// have written its own over this one's — that one is left alone (its restore resumes
/// on its next boot), never marked finished by this restore.
pub fn finish_journal(store: &Store, snapshot: &str, target: &str) -> Result<()> {
    let mut j = journal(store, snapshot)
        .with_context(|| format!("the journal of snapshot {snapshot} cannot be read"))?;
    if j.snapshot_id != snapshot || j.target != target {
        anyhow::bail!(
            "the journal of snapshot {snapshot} is another restore's now (target {}): left as it is",
            j.target
        );
    }
    j.finished_at = Some(crate::store::now_rfc3339());
    store.put_doc(&journal_key(snapshot), &serde_json::to_vec_pretty(&j)?)
}

/// The journal of `snapshot` in the store, when there is a readable one.
pub fn journal(store: &Store, snapshot: &str) -> Option<Journal> {
    store
        .get_doc(&journal_key(snapshot))
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// The operator's `[restore]` settings the steps follow.
#[derive(Debug, Clone)]
pub struct Options {
    /// `[restore] packages = "install"` (else only reported).
    pub install_packages: bool,
    /// `[restore] ready_timeout_seconds`.
    pub ready_timeout: std::time::Duration,
    /// Draw progress bars (stderr is a terminal, the output is text).
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            install_packages: true,
            ready_timeout: std::time::Duration::from_secs(120),
            progress: false,
        }
    }
}

impl Options {
    pub fn from_config(c: &crate::config::Config) -> Options {
        Options {
            install_packages: c.restore_install_packages,
            ready_timeout: std::time::Duration::from_secs(c.ready_timeout_seconds),
            progress: false,
        }
    }
}

/// How a restore ended (serialized `ready`, `degraded`, `failed`, `planned`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RestoreState {
    /// Every step done and every health check as restored.
    Ready,
    /// Some step failed, a health check found a change, or something needs a person.
    Degraded,
    /// Nothing of the system came back.
    Failed,
    /// A dry run: the plan only.
    Planned,
}

impl RestoreState {
    pub fn as_str(self) -> &'static str {
        match self {
            RestoreState::Ready => "ready",
            RestoreState::Degraded => "degraded",
            RestoreState::Failed => "failed",
            RestoreState::Planned => "planned",
        }
    }

    /// The process exit code of CLI.md.
    pub fn exit(self) -> crate::error::Exit {
        use crate::error::Exit;
        match self {
            RestoreState::Ready | RestoreState::Planned => Exit::Success,
            RestoreState::Degraded => Exit::Degraded,
            RestoreState::Failed => Exit::Failure,
        }
    }

    /// The state of the orchestrator's `restore` event (a dry run sends none).
    pub fn event_state(self) -> crate::report::EventState {
        use crate::report::EventState;
        match self {
            RestoreState::Ready | RestoreState::Planned => EventState::Succeeded,
            RestoreState::Degraded => EventState::Degraded,
            RestoreState::Failed => EventState::Failed,
        }
    }
}

impl std::fmt::Display for RestoreState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of a restore (and, read back from `/var/log/carryover`, its report).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestoreReport {
    pub snapshot_id: String,
    pub state: RestoreState,
    #[serde(default)]
    pub steps: Vec<StepReport>,
    #[serde(default, with = "crate::error::problem_lines")]
    pub failed_files: Vec<Problem>,
    #[serde(default)]
    pub health: Vec<HealthCheck>,
    /// True when this run picked up an interrupted restore.
    #[serde(default)]
    pub resumed: bool,
    /// Why an expected restore stopped before its plan (its report has no steps then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RestoreReport {
    /// The report of an expected restore that stopped before its plan.
    pub fn stopped(snapshot_id: &str, error: String) -> RestoreReport {
        RestoreReport {
            snapshot_id: snapshot_id.to_string(),
            state: RestoreState::Failed,
            steps: Vec::new(),
            failed_files: Vec::new(),
            health: Vec::new(),
            resumed: false,
            error: Some(error),
        }
    }
}

/// One post-restore health check. Serialized with `status` and, as before it, `ok`
/// (true unless the check found the system not as restored).
#[derive(Debug, Clone)]
pub struct HealthCheck {
    pub name: String,
    pub status: Health,
    pub detail: String,
}

/// What a health check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    /// The step, run again as a dry run, finds nothing to change.
    AsRestored,
    /// Something changed it after the step (a first-boot tool, a failed write).
    ChangedSince,
    /// The re-check itself failed: the step's own failure is in the report already, so
    /// this is not counted against the restore.
    RecheckFailed,
    /// Files of the snapshot are missing or of another size, or its tree cannot be read.
    Missing,
    /// What a step did, or its report says it did, is not so on the system: the packages
    /// it installs are not installed, the units it starts have not started.
    NotDone,
}

impl Health {
    /// False when the check found the system not as restored (the restore is degraded).
    pub fn healthy(self) -> bool {
        matches!(self, Health::AsRestored | Health::RecheckFailed)
    }

    /// What the report prints for it: the findings that need a person in capitals.
    pub fn label(self) -> &'static str {
        match self {
            Health::AsRestored => "as restored",
            Health::ChangedSince => "CHANGED SINCE",
            Health::RecheckFailed => "not re-checked",
            Health::Missing => "FILES MISSING",
            Health::NotDone => "NOT DONE",
        }
    }
}

/// A health check read back: `status`, or (a report older than it) `ok` alone.
impl<'de> Deserialize<'de> for HealthCheck {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            name: String,
            #[serde(default)]
            ok: Option<bool>,
            #[serde(default)]
            status: Option<Health>,
            #[serde(default)]
            detail: String,
        }
        let r = Raw::deserialize(d)?;
        Ok(HealthCheck {
            name: r.name,
            status: r.status.unwrap_or(if r.ok == Some(false) {
                Health::ChangedSince
            } else {
                Health::AsRestored
            }),
            detail: r.detail,
        })
    }
}

impl Serialize for HealthCheck {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("HealthCheck", 4)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("ok", &self.status.healthy())?;
        st.serialize_field("status", &self.status)?;
        st.serialize_field("detail", &self.detail)?;
        st.end()
    }
}

fn journal_key(snapshot: &str) -> String {
    crate::store::Key::journal(snapshot).path()
}

/// Test hook (builds with the `test-hooks` feature only; absent from a shipped agent):
/// `CARRYOVER_TEST_CRASH_AFTER_STEP=N` aborts the process right after the N-th step has
/// been journaled, as a crash or power loss would.
#[cfg(feature = "test-hooks")]
fn crash_after_step() -> Option<usize> {
    std::env::var("CARRYOVER_TEST_CRASH_AFTER_STEP")
        .ok()
        .and_then(|v| v.parse().ok())
}

#[cfg(not(feature = "test-hooks"))]
fn crash_after_step() -> Option<usize> {
    None
}

/// Test hook (`test-hooks` builds only): `CARRYOVER_TEST_AFTER_STEP=<step>:<command>`
/// runs the command with `sh -c` right after that step, as a service started by the
/// step would change the system (a database recycling its WAL).
#[cfg(feature = "test-hooks")]
fn run_after_step(name: &str) {
    if let Some((step, cmd)) = std::env::var("CARRYOVER_TEST_AFTER_STEP")
        .ok()
        .as_deref()
        .and_then(|v| v.split_once(':'))
        && step == name
    {
        let _ = std::process::Command::new("sh").args(["-c", cmd]).status();
    }
}

#[cfg(not(feature = "test-hooks"))]
fn run_after_step(_: &str) {}

/// One run of the plan: which snapshot onto which system, and how.
pub struct Plan<'a> {
    pub store: &'a Store,
    pub manifest: &'a Manifest,
    pub root: &'a Root,
    /// `instance@root`: a journal is resumed only for the same target.
    pub target_id: &'a str,
    pub dry_run: bool,
    /// This system's origin marker, kept in the journal (see `origin`).
    pub marker: Option<&'a str>,
    pub options: &'a Options,
}

/// Runs the plan against its root: the steps (journaled, resumed), then the health checks.
pub fn execute(plan: &Plan) -> Result<RestoreReport> {
    let Plan {
        store,
        manifest,
        root,
        target_id,
        dry_run,
        marker,
        options,
    } = *plan;
    let loaded = load(store, manifest);
    let a = Apply::new(root, &manifest.id, dry_run).with_options(options.clone());
    let key = journal_key(&manifest.id);
    // a journal that cannot be read (damaged, not this store's seal, not a file) is not
    // this restore's: it starts over, as for one of another snapshot
    // (a store that cannot be read at all — a transport error — fails the restore: it
    // must not start over on top of a journal it could not see)
    let previous: Option<Journal> = match store.backend().get(&key)? {
        None => None,
        Some(b) => match store.unseal(crate::store::Object::Doc(&key), b) {
            Ok(doc) => serde_json::from_slice(&doc).ok(),
            Err(e) => {
                tracing::warn!("the journal in the store cannot be read ({e:#}): starting over");
                None
            }
        },
    };
    // The journal is read back from the store: it is resumed only when it is this
    // snapshot's, for this target, and names only steps of the plan (a forged or copied
    // journal claiming `data` done is ignored, and the health check sees the data anyway).
    let names: Vec<&str> = steps::plan().iter().map(|s| s.name).collect();
    let resume = previous.filter(|j| {
        let ours = j.snapshot_id == manifest.id
            && j.target == target_id
            && j.steps.iter().all(|s| names.contains(&s.name.as_str()));
        if !ours && j.finished_at.is_none() && !dry_run {
            tracing::warn!(
                "the journal in the store is not this restore's (snapshot {}, target {}): starting over",
                j.snapshot_id,
                j.target
            );
        }
        ours && j.finished_at.is_none() && !dry_run
    });
    let resumed = resume.is_some();
    let mut journal = resume.unwrap_or_else(|| Journal {
        snapshot_id: manifest.id.clone(),
        target: target_id.to_string(),
        started_at: crate::store::now_rfc3339(),
        finished_at: None,
        steps: Vec::new(),
        restored_on: marker.map(str::to_string),
    });
    let crash_after = crash_after_step();
    let done_before: BTreeMap<String, StepReport> = journal
        .steps
        .iter()
        .filter(|s| s.status != Status::Failed)
        .map(|s| (s.name.clone(), s.clone()))
        .collect();
    journal.steps.retain(|s| s.status != Status::Failed);
    // written once before any step: a store where the journal cannot be written (a
    // folder planted at its name, a full or read-only disk) fails the restore before it
    // changes anything, not after its first step
    if !dry_run {
        store
            .put_doc(&key, &serde_json::to_vec_pretty(&journal)?)
            .with_context(|| format!("writing the journal {key}"))?;
    }
    let writer = background::DocWriter::new(store.clone(), key.clone());
    let mut reports = Vec::new();
    // the checks made right after their step (see `Verify::Check`), by step name
    let checker =
        (!dry_run).then(|| Apply::new(root, &manifest.id, true).with_options(options.clone()));
    let mut checked: BTreeMap<&str, (Health, String)> = BTreeMap::new();
    let mut check_now = |step: &steps::StepDef, report: &StepReport| {
        if let (Some(c), Some(check)) = (&checker, step.verify.check()) {
            checked.insert(step.name, verify_step(c, &loaded, step, check, report));
        }
    };
    for (i, step) in steps::plan().iter().enumerate() {
        if let Some(prev) = done_before.get(step.name) {
            if step.verify.from_journal() {
                tracing::info!(step = step.name, "done before the restart; not run again");
                check_now(step, prev);
                reports.push(prev.clone());
                continue;
            }
            // on the live system: what the journal says of it is never taken
            journal.steps.retain(|s| s.name != step.name);
        }
        let started = std::time::Instant::now();
        let outcome = run_step(&a, &loaded, step);
        let mut report = StepReport {
            name: step.name.to_string(),
            status: outcome.status,
            detail: outcome.detail,
            warnings: outcome.warnings,
            failed_files: outcome.failed_files,
            attention: outcome.attention,
            changes: outcome.changes,
        };
        check_now(step, &report);
        // what the step left running (the data step's final flush, during its check) ends
        // before the step is taken as done
        let late = a.finish_pending();
        if !late.is_empty() {
            report.status = Status::Failed;
            report.failed_files.extend(late);
        }
        tracing::info!(
            step = step.name,
            status = report.status.as_str(),
            secs = format!("{:.1}", started.elapsed().as_secs_f64()),
            "{}",
            report.detail
        );
        run_after_step(step.name);
        reports.push(report.clone());
        if !dry_run {
            journal.steps.push(report);
            writer.save(serde_json::to_vec_pretty(&journal)?)?;
            if crash_after == Some(i + 1) {
                writer.flush()?;
                eprintln!(
                    "CARRYOVER_TEST_CRASH_AFTER_STEP: aborting after step {} ({})",
                    i + 1,
                    step.name
                );
                std::process::abort();
            }
        }
    }
    let health = match &checker {
        None => Vec::new(),
        Some(c) => health_checks(c, &loaded, checked),
    };
    let failed = reports.iter().any(|r| r.status == Status::Failed);
    // a file that could not be restored needs a person as much as a failed step
    let unhealthy = health.iter().any(|h| !h.status.healthy())
        || reports
            .iter()
            .any(|r| !r.attention.is_empty() || !r.failed_files.is_empty());
    let state = if dry_run {
        RestoreState::Planned
    } else if !loaded.state_read || reports.iter().all(|r| r.status == Status::Failed) {
        // nothing of the system came back: its state could not be read, or every step
        // failed
        RestoreState::Failed
    } else if failed || unhealthy {
        RestoreState::Degraded
    } else {
        RestoreState::Ready
    };
    // the journal is marked finished by `finish_journal` once the outcome is recorded
    // and queued for the orchestrator: a crash before then resumes the restore
    if !dry_run {
        journal.steps = reports.clone();
        writer.save(serde_json::to_vec_pretty(&journal)?)?;
    }
    writer.flush()?;
    drop(writer);
    Ok(RestoreReport {
        snapshot_id: manifest.id.clone(),
        state,
        failed_files: reports
            .iter()
            .flat_map(|r| r.failed_files.clone())
            .collect(),
        steps: reports,
        health,
        resumed,
        error: None,
    })
}

fn run_step(a: &Apply, loaded: &Loaded, step: &steps::StepDef) -> Outcome {
    if let Some(why) = damaged(loaded, step) {
        return Outcome::failed(format!("the snapshot is damaged: {why}"));
    }
    a.begin();
    match (step.run)(a, loaded) {
        Ok(o) => o,
        Err(e) => Outcome::failed(format!("{e:#}")),
    }
}

/// Why a part of the snapshot the step reads cannot be read, if one cannot.
fn damaged<'l>(loaded: &'l Loaded, step: &steps::StepDef) -> Option<&'l String> {
    step.needs
        .iter()
        .find_map(|n| loaded.broken.get(n.name()).or(loaded.broken.get("*")))
}

/// A step's own check, unless the snapshot part it reads is damaged.
fn verify_step(
    a: &Apply,
    loaded: &Loaded,
    step: &steps::StepDef,
    check: steps::CheckFn,
    report: &StepReport,
) -> (Health, String) {
    match damaged(loaded, step) {
        Some(why) => (
            Health::RecheckFailed,
            format!("the snapshot is damaged: {why}"),
        ),
        None => check(a, loaded, report),
    }
}

/// After the steps, each step's work is checked (`a` is a dry run): a verifiable step,
/// run again now, must find nothing to change (a first-boot tool or a failed write would
/// show up here); the others have checks of their own, which see through a journal that
/// says a step was done when it was not (the data in place, the packages installed, the
/// units started) — made right after their step, before later steps' services changed
/// what they look at, and handed in as `checked`.
fn health_checks(
    a: &Apply,
    loaded: &Loaded,
    mut checked: BTreeMap<&str, (Health, String)>,
) -> Vec<HealthCheck> {
    steps::plan()
        .iter()
        .filter_map(|s| {
            let (status, detail) = match s.verify {
                steps::Verify::Itself => return None,
                steps::Verify::DryRun => {
                    let o = run_step(a, loaded, s);
                    match o.status {
                        Status::Unchanged | Status::Skipped => (Health::AsRestored, o.detail),
                        Status::Failed => (Health::RecheckFailed, o.detail),
                        Status::WouldChange | Status::Changed => (
                            Health::ChangedSince,
                            "not as restored: something changed it after the step".into(),
                        ),
                    }
                }
                steps::Verify::Check(_) | steps::Verify::Live(_) => checked.remove(s.name)?,
            };
            Some(HealthCheck {
                name: s.name.to_string(),
                status,
                detail,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two systems restoring one snapshot share its journal: the one that ends first
    /// never marks the other's finished (that one resumes on its next boot).
    #[test]
    fn only_this_restores_journal_is_marked_finished() {
        let t = tempfile::tempdir().unwrap();
        let config = crate::config::Config::default();
        let store = Store::open(t.path().join("s").to_str().unwrap(), &config, true, None).unwrap();
        let snap = "20261203T000000000Z-0000abcd";
        let of = |target: &str| Journal {
            snapshot_id: snap.into(),
            target: target.into(),
            started_at: "2026-12-03T00:00:00Z".into(),
            finished_at: None,
            steps: Vec::new(),
            restored_on: Some(format!("marker-of-{target}")),
        };
        let key = journal_key(snap);
        store
            .put_doc(&key, &serde_json::to_vec(&of("c@/")).unwrap())
            .unwrap();
        let e = finish_journal(&store, snap, "b@/").unwrap_err();
        assert!(format!("{e:#}").contains("another restore's"), "{e:#}");
        let j = journal(&store, snap).unwrap();
        assert_eq!((j.target.as_str(), j.finished_at), ("c@/", None));
        finish_journal(&store, snap, "c@/").unwrap();
        assert!(journal(&store, snap).unwrap().finished_at.is_some());
    }

    #[test]
    fn restore_states_serialize_as_the_words_of_the_protocol() {
        for (s, word, exit) in [
            (RestoreState::Ready, "ready", 0),
            (RestoreState::Degraded, "degraded", 4),
            (RestoreState::Failed, "failed", 1),
            (RestoreState::Planned, "planned", 0),
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), word);
            assert_eq!(s.to_string(), word);
            assert_eq!(s.exit().code(), exit);
            let back: RestoreState = serde_json::from_value(word.into()).unwrap();
            assert_eq!(back, s);
        }
        assert_eq!(
            RestoreState::Ready.event_state(),
            crate::report::EventState::Succeeded
        );
    }

    #[test]
    fn a_failed_recheck_is_not_called_ok_by_its_status_but_keeps_the_old_json() {
        let check = |status| {
            serde_json::to_value(HealthCheck {
                name: "dns".into(),
                status,
                detail: String::new(),
            })
            .unwrap()
        };
        let failed = check(Health::RecheckFailed);
        assert_eq!(failed["status"], "recheck-failed");
        assert_eq!(
            failed["ok"], true,
            "as before: not counted against the restore"
        );
        let changed = check(Health::ChangedSince);
        assert_eq!(changed["status"], "changed-since");
        assert_eq!(changed["ok"], false);
        assert_eq!(check(Health::Missing)["ok"], false);
        assert_eq!(check(Health::NotDone)["status"], "not-done");
        assert_eq!(check(Health::NotDone)["ok"], false);
        assert_eq!(check(Health::AsRestored)["ok"], true);
    }
}
