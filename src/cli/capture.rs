//! `carryover capture`: record the system state into the store and seal the snapshot.

use anyhow::{Context, Result};
use serde::Serialize;

use std::io::IsTerminal;

use super::output::{emit, field};
use super::{CaptureArgs, Ctx, Format};
use crate::data::lock::StoreLock;
use crate::data::repo::Index;
use crate::data::{self, Progress};
use std::time::Duration;

use crate::check;
use crate::error::{Error, Exit};
use crate::hooks::{self, HookEnv, Phase};
use crate::local::{CaptureRecord, LocalState};
use crate::report::Reporter;
use crate::state::{self, Problem};
use crate::store::{self, Manifest};

#[derive(Debug, Serialize)]
struct CaptureResult {
    snapshot_id: String,
    instance_id: Option<String>,
    store: String,
    files: u64,
    bytes: u64,
    stored_bytes: u64,
    skipped: Vec<Problem>,
    findings: Vec<serde_json::Value>,
}

pub fn run(ctx: &Ctx, args: CaptureArgs) -> Result<Exit> {
    // The state first: it names the instance every event is about.
    let (state, secrets) = state::gather(&ctx.root, &ctx.config);
    let reporter = Reporter::new(
        &ctx.root,
        &ctx.config,
        state.identity.instance_id.as_deref(),
    );
    reporter.send("capture", "started", None, |_| {});
    reporter.arm_panic("capture");
    let result = capture(ctx, args, state, secrets, &reporter);
    match &result {
        // blocked has its own event, sent with the findings
        Err(e) if crate::error::exit_for(e) != Exit::Blocked => reporter.failed("capture", None, e),
        _ => {}
    }
    result
}

fn capture(
    ctx: &Ctx,
    args: CaptureArgs,
    state: state::SystemState,
    secrets: state::Secrets,
    reporter: &Reporter,
) -> Result<Exit> {
    let mut data_paths = ctx.config.data_paths.clone();
    for p in &args.paths {
        // a path in the system under --root: from its root ("/srv"; on Windows also "C:\srv")
        if !p.has_root() {
            return Err(
                Error::Usage(format!("--path {}: not an absolute path", p.display())).into(),
            );
        }
        data_paths.push(p.clone());
    }
    // The other agents to keep: read and identified before anything, a wrong file is a
    // usage error
    let mut agents = Vec::new();
    for file in &args.agents {
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
    // Preflight first: a blocker not acknowledged stops here, before the store is touched.
    let target = args.target.unwrap_or(ctx.config.target);
    let url_for_check = store::resolve_url(args.store.store.as_deref(), &ctx.config)?;
    let check::Evaluation {
        mut findings,
        blockers,
        ..
    } = check::evaluate(
        &ctx.root,
        &ctx.config,
        &state,
        target,
        &data_paths,
        Some(&url_for_check),
        &args.ack,
    );
    // the agent the new OS needs comes with this capture (--agent)
    if agents
        .iter()
        .any(|(p, _)| *p == check::agent_needed(target))
    {
        findings.retain(|f| f.key != "agent-missing");
    }
    if !blockers.is_empty() {
        for f in findings.iter().filter(|f| blockers.contains(&f.key)) {
            eprintln!(
                "carryover: blocker {}: {} ({})",
                f.key, f.message, f.remediation
            );
        }
        reporter.send("capture", "blocked", None, |e| e.set_findings(&findings));
        return Err(Error::Blocked(blockers).into());
    }

    let (url, store) = ctx.open_store(args.store.store.as_deref(), true)?;
    let _lock = StoreLock::acquire(&store)?;
    for key in store
        .remove_orphans()?
        .into_iter()
        .chain(store.remove_unindexed_packs()?)
    {
        tracing::info!("removed {key}, left by a capture that did not finish");
    }

    let id = store::new_snapshot_id();
    let hook_env = HookEnv {
        root: &ctx.root,
        snapshot_id: &id,
        store: &url,
        timeout: Duration::from_secs(ctx.config.hooks_timeout_seconds),
    };
    // A failing pre-capture hook (a database that could not be quiesced) stops the capture.
    hooks::run(Phase::PreCapture, &hook_env)?;
    // a data path missing before the hooks (a warning then) must be there now
    if !args
        .ack
        .iter()
        .chain(&ctx.config.ack)
        .any(|k| k == "data-path-missing")
    {
        let missing: Vec<String> = data_paths
            .iter()
            .filter(|p| std::fs::symlink_metadata(ctx.root.follow(p)).is_err())
            .map(|p| p.display().to_string())
            .collect();
        if !missing.is_empty() {
            eprintln!(
                "carryover: blocker data-path-missing: {} still missing after the pre-capture hooks ran",
                missing.join(", ")
            );
            reporter.send("capture", "blocked", None, |e| e.set_findings(&findings));
            return Err(Error::Blocked(vec!["data-path-missing".into()]).into());
        }
    }

    // the homes on the system disk that [capture] homes (or its default) takes, without
    // their caches
    let mut exclude = ctx.config.data_exclude.clone();
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
        let suspect = data::damaged::before_capture(&store, &mut index, args.heal)?;
        let parent = store
            .list()?
            .into_iter()
            .rev()
            .find(|m| m.instance_id == state.identity.instance_id && m.data.is_some())
            .and_then(|m| m.data);
        // never the store into itself, never carryover's own state (its record of what
        // this system took must not reach the new OS)
        let skip_host = vec![
            store_host_dir(&url),
            ctx.root.follow(crate::paths::STATE_DIR),
        ];
        let show = ctx.format == Format::Text && std::io::stderr().is_terminal();
        // The total for the bar's ETA: the parent's size, or a quick scan of the metadata.
        let total = show.then(|| match &parent {
            Some(p) => p.bytes,
            None => data_paths
                .iter()
                .map(|p| data::capture::estimate_bytes(&ctx.root.follow(p)))
                .sum(),
        });
        let progress = std::sync::Arc::new(Progress::new(show, total, "capture"));
        let out = data::capture::capture(
            &store,
            index,
            &ctx.root,
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
        origin: Some(crate::origin::Origin::of(&ctx.root, &state)),
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
    if let Err(e) = keep_agent(&store) {
        tracing::warn!("could not keep the agent in the store: {e:#}");
        skipped.push(Problem {
            path: format!(
                "{} (the agent for the new OS)",
                crate::agent::Platform::this().key().unwrap_or("agent/")
            ),
            error: format!("{e:#}"),
        });
    }
    for (platform, bytes) in &agents {
        crate::agent::keep(store.backend(), bytes)
            .with_context(|| format!("keeping the agent for {platform} in the store"))?;
    }
    // "This system took snapshot X" is durable before the snapshot exists: a capture killed
    // right after the commit must not leave an old OS that the restore unit would roll back.
    let mut local = LocalState::load(&ctx.root).unwrap_or_default();
    local.record_taken(&id);
    local.see(state.identity.instance_id.as_deref(), &id);
    local
        .save(&ctx.root)
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
    let exit = if skipped.is_empty() {
        Exit::Success
    } else {
        Exit::Degraded
    };

    local.last_capture = Some(CaptureRecord {
        snapshot_id: id.clone(),
        store: url.clone(),
        at: manifest.created_at.clone(),
        exit: exit.code(),
    });
    if let Err(e) = local.save(&ctx.root) {
        tracing::warn!("could not record the capture locally: {e:#}");
    }

    reporter.send(
        "capture",
        if exit == Exit::Success {
            "succeeded"
        } else {
            "degraded"
        },
        Some(&id),
        |e| {
            let failed: Vec<String> = skipped
                .iter()
                .map(|p| format!("{}: {}", p.path, p.error))
                .collect();
            e.set_failed_files(&failed);
            e.set_findings(&findings);
        },
    );

    let result = CaptureResult {
        snapshot_id: id,
        instance_id: manifest.instance_id.clone(),
        store: store.describe(),
        files: manifest.files,
        bytes: manifest.bytes,
        stored_bytes: manifest.stored_bytes,
        skipped,
        findings: findings
            .iter()
            .map(|f| serde_json::to_value(f).unwrap_or_default())
            .collect(),
    };
    emit(ctx.format, &result, || {
        let mut o = String::new();
        field(&mut o, "snapshot", &result.snapshot_id);
        field(
            &mut o,
            "instance",
            result.instance_id.as_deref().unwrap_or("-"),
        );
        field(&mut o, "store", &result.store);
        field(&mut o, "files", result.files);
        field(&mut o, "bytes", result.bytes);
        field(&mut o, "stored bytes", result.stored_bytes);
        for p in &result.skipped {
            field(&mut o, "NOT CAPTURED", format!("{}: {}", p.path, p.error));
        }
        o
    })?;
    Ok(exit)
}

/// The store's directory on this machine, so a store inside a data path is not captured
/// into itself.
fn store_host_dir(url: &str) -> std::path::PathBuf {
    let p = store::local_dir(url).unwrap_or(std::path::Path::new(url));
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Puts this very binary into the store under its platform's key (once per version), for
/// the new OS to install.
fn keep_agent(store: &store::Store) -> anyhow::Result<()> {
    let exe = std::fs::read(std::env::current_exe()?)?;
    crate::agent::keep(store.backend(), &exe)?;
    Ok(())
}
