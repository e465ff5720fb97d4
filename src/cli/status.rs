//! `carryover status`: where this machine stands — the last capture and restore, whether a
//! restore runs or is due, why the last one is not `ready`; `--wait` waits for a restore
//! to end (as `cloud-init status --wait` does), `--long` prints its whole report.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use super::output::{emit, field};
use super::{Ctx, StatusArgs};
use crate::error::{Error, Exit};
use crate::local::LocalState;
use crate::restore::document;

#[derive(Debug, Serialize)]
struct Status {
    last_capture: Option<crate::local::CaptureRecord>,
    last_restore: Option<crate::local::RestoreRecord>,
    /// `running`, `due` (the user-data expects one and none has finished), `failed` (the
    /// expected one stopped before its plan) or `none`.
    restore: &'static str,
    /// The expected restore that stopped before its plan, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_failure: Option<crate::local::FailureRecord>,
    /// Why the last restore is not `ready`, from its report.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reasons: Vec<String>,
    store: Option<String>,
    snapshots: Option<usize>,
    outbox: crate::report::OutboxState,
    /// `--long`: the last restore's report (its JSON form).
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<serde_json::Value>,
}

/// Whether a restore runs here now, or is due (expected by the user-data, none finished).
fn restore_phase(ctx: &Ctx, local: &LocalState) -> &'static str {
    if crate::local::restore_running(&ctx.root).is_some() {
        "running"
    } else if ctx.config.restore_expected && local.last_restore.is_none() {
        // one that failed before its plan is not coming by itself
        if local.last_failure.is_some() {
            "failed"
        } else {
            "due"
        }
    } else {
        "none"
    }
}

/// The last restore's report on disk, when there is one.
fn last_report(ctx: &Ctx) -> Option<serde_json::Value> {
    let p = ctx
        .root
        .path(format!("{}/restore-report.json", document::LOG_DIR));
    let b = crate::sys::read_opt(&p).ok().flatten()?;
    serde_json::from_slice(&b).ok()
}

pub fn run(ctx: &Ctx, args: StatusArgs) -> Result<Exit> {
    let mut local = LocalState::load(&ctx.root)?;
    if args.wait {
        let deadline = args
            .timeout
            .map(|t| Instant::now() + Duration::from_secs(t));
        // a restore that is due starts within moments of boot: wait for it to run and end
        while matches!(restore_phase(ctx, &local), "running" | "due") {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::Timeout(format!(
                    "a restore is still {} after {} s",
                    restore_phase(ctx, &local),
                    args.timeout.unwrap_or(0)
                ))
                .into());
            }
            std::thread::sleep(Duration::from_millis(500));
            local = LocalState::load(&ctx.root)?;
        }
    }
    let url = args.store.clone().or_else(|| ctx.config.store.url.clone());
    let snapshots = match &url {
        // a store named on the command line must be there (a failure, exit 1, as for
        // `snapshots list`); the configured one may not be reachable (a new OS before its
        // disk is mounted)
        Some(u) if args.store.is_some() => Some(
            ctx.open_store(Some(u), false)
                .and_then(|(_, s)| s.list())?
                .len(),
        ),
        Some(u) => ctx
            .open_store(Some(u), false)
            .and_then(|(_, s)| s.list())
            .map(|l| l.len())
            .ok(),
        None => None,
    };
    let outbox = if ctx.root.path(crate::report::OUTBOX).is_dir() {
        crate::report::Outbox::open(&ctx.root)?.state()?
    } else {
        Default::default()
    };
    let report = last_report(ctx);
    let st = Status {
        restore: restore_phase(ctx, &local),
        last_failure: local.last_failure.clone(),
        reasons: report.as_ref().map(document::reasons).unwrap_or_default(),
        outbox,
        last_capture: local.last_capture,
        last_restore: local.last_restore,
        store: url,
        snapshots,
        report: if args.long { report.clone() } else { None },
    };
    emit(ctx.format, &st, || {
        let mut o = String::new();
        match &st.last_capture {
            Some(c) => field(
                &mut o,
                "last capture",
                format!("{} at {} (exit {})", c.snapshot_id, c.at, c.exit),
            ),
            None => field(&mut o, "last capture", "none"),
        }
        match &st.last_restore {
            Some(r) => field(
                &mut o,
                "last restore",
                format!("{} at {}: {}", r.snapshot_id, r.at, r.state),
            ),
            None => field(&mut o, "last restore", "none"),
        }
        if st.restore != "none" {
            field(&mut o, "restore", st.restore);
        }
        if st.restore == "failed"
            && let Some(f) = &st.last_failure
        {
            field(
                &mut o,
                "why it failed",
                format!("{} (at {})", f.error, f.at),
            );
        }
        for r in &st.reasons {
            field(&mut o, "why not ready", r);
        }
        field(&mut o, "store", st.store.as_deref().unwrap_or("-"));
        field(&mut o, "events waiting", st.outbox.pending.len());
        for f in &st.outbox.failed {
            field(&mut o, "event refused", f);
        }
        if let Some(n) = st.snapshots {
            field(&mut o, "snapshots", n);
        }
        if args.long
            && let Some(r) = &report
        {
            let meta = document::Meta {
                hostname: r["hostname"].as_str().unwrap_or("").into(),
                finished_at: r["finished_at"].as_str().unwrap_or("").into(),
            };
            o.push('\n');
            o.push_str(&document::text(r, &meta));
        }
        o
    })?;
    // with --wait, the exit code is the restore's result (the status printed either way;
    // one that failed before its plan is a failure)
    Ok(if args.wait {
        if st.restore == "failed" {
            return Ok(Exit::Failure);
        }
        st.last_restore
            .as_ref()
            .map_or(Exit::Success, |r| r.state.exit())
    } else {
        Exit::Success
    })
}
