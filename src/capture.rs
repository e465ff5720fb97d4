//! The capture use case (`carryover capture`): preflight, then the state, the data paths
//! and the agent into the store, the snapshot sealed, this system's record kept and the
//! orchestrator told. The CLI only parses the request and prints the outcome.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::check::{self, Finding};
use crate::config::{Config, Target};
use crate::data::lock::StoreLock;
use crate::data::repo::Index;
use crate::data::{self, Progress};
use crate::error::{Error, Exit};
use crate::hooks::{self, HookEnv, Phase};
use crate::local::{CaptureRecord, LocalState};
use crate::report::{EventPhase, EventState, Reporter};
use crate::state::{self, Problem};
use crate::store::{self, Manifest};
use crate::sys::Root;

/// What to capture, as the command line (or a caller) asks for it.
pub struct Request<'a> {
    pub root: &'a Root,
    pub config: &'a Config,
    /// The OS family after the change (default: the config's).
    pub target: Option<Target>,
    /// Findings accepted by key, beside the config's.
    pub ack: Vec<String>,
    /// Data paths beside the config's, absolute in the system under the root.
    pub paths: Vec<PathBuf>,
    /// Read and hash every blob of every pack first (`--heal`).
    pub heal: bool,
    /// Other agents to keep in the store (files taken as they are).
    pub agents: Vec<PathBuf>,
    /// The store's URL (default: the config's).
    pub store: Option<String>,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// How a capture ended.
pub enum CaptureOutcome {
    /// The snapshot is in the store (perhaps with things skipped: see `Sealed::exit`).
    Sealed(Sealed),
    /// A blocker that was not acknowledged stopped it before the store was touched.
    Blocked {
        findings: Vec<Finding>,
        blockers: Vec<String>,
    },
}

/// A sealed snapshot: the JSON of `capture --format json`.
#[derive(Debug, Serialize)]
pub struct Sealed {
    pub snapshot_id: String,
    pub instance_id: Option<String>,
    pub store: String,
    pub files: u64,
    pub bytes: u64,
    pub stored_bytes: u64,
    pub skipped: Vec<Problem>,
    pub findings: Vec<Finding>,
}

impl Sealed {
    /// Success, or degraded when something could not be captured.
    pub fn exit(&self) -> Exit {
        if self.skipped.is_empty() {
            Exit::Success
        } else {
            Exit::Degraded
        }
    }
}

impl Request<'_> {
    /// The preflight this capture runs first.
    fn check(&self) -> check::Request<'_> {
        check::Request {
            root: self.root,
            config: self.config,
            target: self.target,
            ack: &self.ack,
            paths: &self.paths,
            store: self.store.as_deref(),
        }
    }
}

/// Runs a capture; every way it ends is reported to the orchestrator (a usage error in
/// the request is refused before anything is read).
pub fn run(req: &Request) -> Result<CaptureOutcome> {
    // The state first: it names the instance every event is about.
    let preflight = req.check();
    let gathered = preflight.gather()?;
    let reporter = Reporter::new(
        req.root,
        req.config,
        gathered.state.identity.instance_id.as_deref(),
    );
    reporter.send(EventPhase::Capture, EventState::Started, None, |_| {});
    reporter.arm_panic(EventPhase::Capture);
    let result = capture(req, &preflight, gathered, &reporter);
    if let Err(e) = &result {
        reporter.failed(EventPhase::Capture, None, e);
    }
    result
}

fn capture(
    req: &Request,
    preflight: &check::Request,
    gathered: check::Gathered,
    reporter: &Reporter,
) -> Result<CaptureOutcome> {
    let (root, config) = (req.root, req.config);
    let agents = read_agents(&req.agents)?;
    // a capture needs a store (a check does not)
    store::resolve_url(req.store.as_deref(), config)?;
    // Preflight first: a blocker not acknowledged stops here, before the store is touched.
    let check::Evaluation {
        mut findings,
        blockers,
        ..
    } = preflight.evaluate(&gathered);
    let check::Gathered {
        target,
        mut data_paths,
        state,
        secrets,
        ..
    } = gathered;
    // the agent the new OS needs comes with this capture (--agent)
    if agents
        .iter()
        .any(|(p, _)| *p == check::agent_needed(target))
    {
        findings.retain(|f| f.key != check::AGENT_MISSING);
    }
    if !blockers.is_empty() {
        reporter.send(EventPhase::Capture, EventState::Blocked, None, |e| {
            e.set_findings(&findings)
        });
        return Ok(CaptureOutcome::Blocked { findings, blockers });
    }

    let (url, store) = store::open_configured(root, config, req.store.as_deref(), true)?;
    let _lock = StoreLock::acquire(&store)?;
    for key in store.remove_leftovers()? {
        tracing::info!("removed {key}, left by a capture that did not finish");
    }

    let id = store::new_snapshot_id();
    let hook_env = HookEnv {
        root,
        snapshot_id: &id,
        store: &url,
        timeout: Duration::from_secs(config.hooks_timeout_seconds),
    };
    // A failing pre-capture hook (a database that could not be quiesced) stops the capture.
    hooks::run(Phase::PreCapture, &hook_env)?;
    // The agents go into the store while the data is read: on S3 the 16 MB of this binary
    // are a few round trips on one connection, the data many on all of them.
    let keeping = {
        let store = store.clone();
        Joined::spawn(move || {
            let this = keep_agent(&store);
            let others: Result<()> = agents.iter().try_for_each(|(platform, bytes)| {
                crate::agent::keep(store.backend(), bytes)
                    .map(|_| ())
                    .with_context(|| format!("keeping the agent for {platform} in the store"))
            });
            (this, others)
        })
    };
    // a data path missing before the hooks (a warning then) must be there now
    if !req
        .ack
        .iter()
        .chain(&config.ack)
        .any(|k| k == check::DATA_PATH_MISSING)
    {
        let missing: Vec<String> = data_paths
            .iter()
            .filter(|p| std::fs::symlink_metadata(root.follow(p)).is_err())
            .map(|p| p.display().to_string())
            .collect();
        if !missing.is_empty() {
            tracing::error!(
                "data-path-missing: {} still missing after the pre-capture hooks ran",
                missing.join(", ")
            );
            reporter.send(EventPhase::Capture, EventState::Blocked, None, |e| {
                e.set_findings(&findings)
            });
            return Err(Error::Blocked(vec![check::DATA_PATH_MISSING.into()]).into());
        }
    }

    // the homes on the system disk that [capture] homes (or its default) takes, without
    // their caches
    let mut exclude = config.data_exclude.clone();
    for h in state
        .homes
        .iter()
        .filter(|h| h.captured && !h.in_data_paths)
    {
        data_paths.push(h.path.clone().into());
        exclude.extend(state::homes::exclude_patterns(&h.path));
    }
    let mut skipped = state.problems.clone();
    // The damaged blobs this capture treated as absent, and the blobs it stored.
    let mut heal = None;
    let data = if data_paths.is_empty() {
        None
    } else {
        let (mut index, warnings) = Index::load(&store)?;
        for w in warnings {
            tracing::warn!("store index {w}: its blobs will be stored again");
        }
        // Never build on damage: what verify found (or --heal finds now) is stored again.
        let suspect = data::damaged::before_capture(&store, &mut index, req.heal)?;
        let parent = store
            .list()?
            .into_iter()
            .rev()
            .find(|m| m.instance_id == state.identity.instance_id && m.data.is_some())
            .and_then(|m| m.data);
        // never the store into itself, never carryover's own state (its record of what
        // this system took must not reach the new OS)
        let skip_host = vec![store_host_dir(&url), root.follow(crate::paths::STATE_DIR)];
        // The total for the bar's ETA: the parent's size, or a quick scan of the metadata.
        let total = req.progress.then(|| match &parent {
            Some(p) => p.bytes,
            None => data_paths
                .iter()
                .map(|p| data::capture::estimate_bytes(&root.follow(p)))
                .sum(),
        });
        let progress = std::sync::Arc::new(Progress::new(req.progress, total, None, "capture"));
        let out = data::capture::capture(
            &store,
            index,
            root,
            &data_paths,
            &exclude,
            &skip_host,
            parent.as_ref(),
            &progress,
        )?;
        progress.finish();
        skipped.extend(out.problems);
        heal = Some((suspect, out.stored));
        Some(out.manifest)
    };
    let state_ref = store
        .put_object(&id, "state.json", &serde_json::to_vec_pretty(&state)?)
        .context("storing the state")?;
    let secrets_ref = if secrets.ssh_host_keys.is_empty()
        && secrets.shadow.is_empty()
        && secrets.configs.is_empty()
        && secrets.report_token.is_none()
    {
        None
    } else {
        Some(
            store
                .put_object(&id, "secrets.json", &serde_json::to_vec(&secrets)?)
                .context("storing the secrets")?,
        )
    };
    let manifest = Manifest {
        id: id.clone(),
        instance_id: state.identity.instance_id.clone(),
        hostname: state.identity.hostname.clone(),
        created_at: store::now_rfc3339(),
        files: data.as_ref().map_or(0, |d| d.files),
        bytes: data.as_ref().map_or(0, |d| d.bytes),
        stored_bytes: state_ref.size
            + secrets_ref.as_ref().map_or(0, |r| r.size)
            + data.as_ref().map_or(0, |d| d.stored_bytes),
        data,
        state: Some(state_ref),
        secrets: secrets_ref,
        skipped: skipped.clone(),
        origin: Some(crate::origin::Origin::of(root, &state)),
        parent: store
            .list()?
            .into_iter()
            .rev()
            .find(|m| m.instance_id.is_some() && m.instance_id == state.identity.instance_id)
            .map(|m| m.id),
        ..Manifest::default()
    };
    // The new OS has no carryover: the user-data installs the one kept in the store. Without
    // it the change cannot restore by itself: the capture is degraded, not a success.
    let (this_agent, other_agents) = keeping.join()?;
    if let Err(e) = this_agent {
        tracing::warn!("could not keep the agent in the store: {e:#}");
        skipped.push(Problem {
            path: format!(
                "{} (the agent for the new OS)",
                crate::agent::Platform::this().key().unwrap_or("agent/")
            ),
            error: format!("{e:#}"),
        });
    }
    other_agents?;
    // "This system took snapshot X" is durable before the snapshot exists: a capture killed
    // right after the commit must not leave an old OS that the restore unit would roll back.
    let mut local = LocalState::load_for_update(root);
    local.record_taken(&id);
    local.see(state.identity.instance_id.as_deref(), &id);
    local
        .save(root)
        .context("recording the snapshot in this system's own state before committing it")?;
    store.commit(&manifest)?;
    store::seen::record_in_store(&store, state.identity.instance_id.as_deref(), &id);
    if let Some((suspect, stored)) = &heal
        && let Err(e) = data::damaged::after_capture(&store, suspect, stored)
    {
        tracing::warn!("updating the store's list of damaged blobs: {e:#}");
    }
    if let Err(e) = hooks::run(Phase::PostCapture, &hook_env) {
        tracing::warn!("{e:#}");
        skipped.push(Problem {
            path: hooks::HOOKS_DIR.to_string() + "/post-capture.d",
            error: format!("{e:#}"),
        });
    }
    let sealed = Sealed {
        snapshot_id: id,
        instance_id: manifest.instance_id.clone(),
        store: store.describe(),
        files: manifest.files,
        bytes: manifest.bytes,
        stored_bytes: manifest.stored_bytes,
        skipped,
        findings,
    };
    let exit = sealed.exit();

    local.last_capture = Some(CaptureRecord {
        snapshot_id: sealed.snapshot_id.clone(),
        store: url.clone(),
        at: manifest.created_at.clone(),
        exit: exit.code(),
    });
    if let Err(e) = local.save(root) {
        tracing::warn!("could not record the capture locally: {e:#}");
    }

    reporter.send(
        EventPhase::Capture,
        if exit == Exit::Success {
            EventState::Succeeded
        } else {
            EventState::Degraded
        },
        Some(&sealed.snapshot_id),
        |e| {
            e.set_failed_files(&sealed.skipped);
            e.set_findings(&sealed.findings);
        },
    );
    Ok(CaptureOutcome::Sealed(sealed))
}

/// The other agents to keep: read and identified before anything, a wrong file is a
/// usage error.
fn read_agents(files: &[PathBuf]) -> Result<Vec<(crate::agent::Platform, Vec<u8>)>> {
    let mut agents = Vec::new();
    for file in files {
        let bytes = std::fs::read(file)
            .map_err(|e| Error::Usage(format!("--agent {}: {e}", file.display())))?;
        match crate::agent::identify(&bytes[..bytes.len().min(crate::agent::HEADER_BYTES)]) {
            Some(p) if p.key().is_ok() => agents.push((p, bytes)),
            _ => {
                return Err(Error::Usage(format!(
                    "--agent {}: not a carryover agent for x86_64/aarch64 Linux or x86-64 Windows",
                    file.display()
                ))
                .into());
            }
        }
    }
    Ok(agents)
}

/// A thread that is waited for wherever its owner goes, an early return included: the
/// store lock taken before it outlives it.
struct Joined<T>(Option<std::thread::JoinHandle<T>>);

impl<T: Send + 'static> Joined<T> {
    fn spawn(f: impl FnOnce() -> T + Send + 'static) -> Joined<T> {
        Joined(Some(std::thread::spawn(f)))
    }

    fn join(mut self) -> Result<T> {
        let handle = self.0.take().expect("joined once");
        handle
            .join()
            .map_err(|_| anyhow::anyhow!("keeping the agents in the store panicked"))
    }
}

impl<T> Drop for Joined<T> {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            let _ = h.join();
        }
    }
}

/// The store's directory on this machine, so a store inside a data path is not captured
/// into itself.
fn store_host_dir(url: &str) -> PathBuf {
    let p = store::local_dir(url).unwrap_or_else(|| PathBuf::from(url));
    std::fs::canonicalize(&p).unwrap_or(p)
}

/// Puts this very binary into the store under its platform's key (once per version), for
/// the new OS to install.
fn keep_agent(store: &store::Store) -> Result<()> {
    let exe = std::fs::read(std::env::current_exe()?)?;
    crate::agent::keep(store.backend(), &exe)?;
    Ok(())
}
