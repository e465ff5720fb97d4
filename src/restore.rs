//! Restore: load a snapshot, run the plan of ordered idempotent steps with a journal in
//! the store (so a crash or reboot resumes where it stopped), verify the result, and
//! decide `ready`, `degraded` or `failed`.

pub mod apply;
pub mod merge;
pub mod names;
pub mod steps;

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::state::{Secrets, SystemState};
use crate::store::{Manifest, Store};
use crate::sys::Root;
use apply::{Apply, Outcome, Status};

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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_files: Vec<String>,
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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            install_packages: true,
            ready_timeout: std::time::Duration::from_secs(120),
        }
    }
}

impl Options {
    pub fn from_config(c: &crate::config::Config) -> Options {
        Options {
            install_packages: c.restore_install_packages,
            ready_timeout: std::time::Duration::from_secs(c.ready_timeout_seconds),
        }
    }
}

/// The result of a restore.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub snapshot_id: String,
    /// `ready`, `degraded` or `failed` (`planned` for a dry run).
    pub state: String,
    pub steps: Vec<StepReport>,
    pub failed_files: Vec<String>,
    pub health: Vec<HealthCheck>,
    /// True when this run picked up an interrupted restore.
    pub resumed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct HealthCheck {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

fn journal_key(snapshot: &str) -> String {
    format!("journal/{snapshot}.json")
}

/// Test hook (debug builds only): `CARRYOVER_TEST_CRASH_AFTER_STEP=N` aborts the process
/// right after the N-th step has been journaled, as a crash or power loss would.
const CRASH_HOOK: &str = "CARRYOVER_TEST_CRASH_AFTER_STEP";

/// Runs the plan against `root`.
pub fn run(
    store: &Store,
    manifest: &Manifest,
    root: &Root,
    target_id: &str,
    dry_run: bool,
    marker: Option<&str>,
    options: &Options,
) -> Result<RestoreReport> {
    let loaded = load(store, manifest);
    let a = Apply::new(root, &manifest.id, dry_run).with_options(options.clone());
    let key = journal_key(&manifest.id);
    let previous: Option<Journal> = store
        .get_doc(&key)?
        .and_then(|b| serde_json::from_slice(&b).ok());
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
    // the crash tests' hook exists only in debug builds: a release agent has none
    let crash_after: Option<usize> = if cfg!(debug_assertions) {
        std::env::var(CRASH_HOOK).ok().and_then(|v| v.parse().ok())
    } else {
        None
    };
    let done_before: BTreeMap<String, StepReport> = journal
        .steps
        .iter()
        .filter(|s| s.status != Status::Failed)
        .map(|s| (s.name.clone(), s.clone()))
        .collect();
    journal.steps.retain(|s| s.status != Status::Failed);
    let mut reports = Vec::new();
    for (i, step) in steps::plan().iter().enumerate() {
        if let Some(prev) = done_before.get(step.name) {
            tracing::info!(step = step.name, "done before the restart; not run again");
            reports.push(prev.clone());
            continue;
        }
        let started = std::time::Instant::now();
        let outcome = run_step(&a, &loaded, step);
        tracing::info!(
            step = step.name,
            status = outcome.status.as_str(),
            secs = format!("{:.1}", started.elapsed().as_secs_f64()),
            "{}",
            outcome.detail
        );
        let report = StepReport {
            name: step.name.to_string(),
            status: outcome.status,
            detail: outcome.detail,
            warnings: outcome.warnings,
            failed_files: outcome.failed_files,
            attention: outcome.attention,
            changes: outcome.changes,
        };
        reports.push(report.clone());
        if !dry_run {
            journal.steps.push(report);
            store.put_doc(&key, &serde_json::to_vec_pretty(&journal)?)?;
            if crash_after == Some(i + 1) {
                eprintln!(
                    "{CRASH_HOOK}: aborting after step {} ({})",
                    i + 1,
                    step.name
                );
                std::process::abort();
            }
        }
    }
    let health = if dry_run {
        Vec::new()
    } else {
        health_checks(root, &manifest.id, &loaded)
    };
    let failed = reports.iter().any(|r| r.status == Status::Failed);
    let unhealthy = health.iter().any(|h| !h.ok) || reports.iter().any(|r| !r.attention.is_empty());
    let state = if dry_run {
        "planned"
    } else if !loaded.state_read || reports.iter().all(|r| r.status == Status::Failed) {
        // nothing of the system came back: its state could not be read, or every step
        // failed
        "failed"
    } else if failed || unhealthy {
        "degraded"
    } else {
        "ready"
    };
    if !dry_run {
        journal.finished_at = Some(crate::store::now_rfc3339());
        journal.steps = reports.clone();
        store.put_doc(&key, &serde_json::to_vec_pretty(&journal)?)?;
    }
    Ok(RestoreReport {
        snapshot_id: manifest.id.clone(),
        state: state.into(),
        failed_files: reports
            .iter()
            .flat_map(|r| r.failed_files.clone())
            .collect(),
        steps: reports,
        health,
        resumed,
    })
}

fn run_step(a: &Apply, loaded: &Loaded, step: &steps::StepDef) -> Outcome {
    let damaged: Vec<&String> = step
        .needs
        .iter()
        .filter_map(|n| loaded.broken.get(*n).or(loaded.broken.get("*")))
        .collect();
    if let Some(why) = damaged.first() {
        return Outcome::failed(format!("the snapshot is damaged: {why}"));
    }
    a.begin();
    match (step.run)(a, loaded) {
        Ok(o) => o,
        Err(e) => Outcome::failed(format!("{e:#}")),
    }
}

/// After the steps: every verifiable step, run again as a dry run, must find nothing to
/// change (a first-boot tool or a failed write would show up here).
fn health_checks(root: &Root, snapshot: &str, loaded: &Loaded) -> Vec<HealthCheck> {
    let a = Apply::new(root, snapshot, true);
    let mut checks: Vec<HealthCheck> = steps::plan()
        .iter()
        .filter(|s| s.verify)
        .map(|s| {
            let o = run_step(&a, loaded, s);
            let ok = matches!(o.status, Status::Unchanged | Status::Skipped);
            HealthCheck {
                name: s.name.to_string(),
                ok: ok || o.status == Status::Failed,
                detail: if o.status == Status::WouldChange {
                    "not as restored: something changed it after the step".into()
                } else {
                    o.detail
                },
            }
        })
        .collect();
    // the data paths: every file of the snapshot is there with its size (a data step
    // that a journal said was done, but was not, shows up here)
    if let Some((store, data)) = &loaded.data {
        let missing = crate::data::restore::missing(store, root, data);
        checks.push(HealthCheck {
            name: "data".into(),
            ok: missing.as_ref().is_ok_and(|m| m.is_empty()),
            detail: match missing {
                Ok(m) if m.is_empty() => "every file of the snapshot is in place".into(),
                Ok(m) => format!(
                    "{} files of the snapshot are missing or of another size: {}",
                    m.len(),
                    m.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
                ),
                Err(e) => format!("the snapshot's tree cannot be read: {e:#}"),
            },
        });
    }
    checks
}
