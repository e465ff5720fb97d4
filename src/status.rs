//! The `status` use case: where this machine stands — the last capture and restore,
//! whether a restore runs or is due, why the last one is not `ready`, the store and the
//! events waiting — and the wait for a restore to end (`status --wait`).

use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use crate::config::Config;
use crate::error::{Error, Exit};
use crate::local::LocalState;
use crate::restore::document;
use crate::sys::Root;

/// Whether a restore runs here now, or is expected (serialized lowercase).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RestorePhase {
    Running,
    /// The user-data expects one and none has finished.
    Due,
    /// The expected one stopped before its plan.
    Failed,
    None,
}

impl RestorePhase {
    pub fn as_str(self) -> &'static str {
        match self {
            RestorePhase::Running => "running",
            RestorePhase::Due => "due",
            RestorePhase::Failed => "failed",
            RestorePhase::None => "none",
        }
    }

    /// Still to end by itself: what `--wait` waits for.
    fn pending(self) -> bool {
        matches!(self, RestorePhase::Running | RestorePhase::Due)
    }
}

/// What `status` asks.
pub struct Request<'a> {
    pub root: &'a Root,
    pub config: &'a Config,
    /// A store named on the command line: it must be there (else the configured one, if
    /// it can be reached).
    pub store: Option<&'a str>,
    /// Wait for a restore that runs or is due to end, at most this long (`None`: forever).
    pub wait: Option<Option<Duration>>,
}

/// Where this machine stands: the JSON of `status --format json`.
#[derive(Debug, Serialize)]
pub struct Status {
    pub last_capture: Option<crate::local::CaptureRecord>,
    pub last_restore: Option<crate::local::RestoreRecord>,
    pub restore: RestorePhase,
    /// The expected restore that stopped before its plan, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<crate::local::FailureRecord>,
    /// Why the last restore is not `ready`, from its report.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    pub store: Option<String>,
    pub snapshots: Option<usize>,
    pub outbox: crate::report::OutboxState,
    /// `--long`: the last restore's report file (its JSON as written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<serde_json::Value>,
    /// The same report, read as one.
    #[serde(skip)]
    pub document: Option<document::Document>,
}

impl Status {
    /// With `--wait`, the restore's result (one that failed before its plan is a failure).
    pub fn exit(&self) -> Exit {
        if self.restore == RestorePhase::Failed {
            return Exit::Failure;
        }
        self.last_restore
            .as_ref()
            .map_or(Exit::Success, |r| r.state.exit())
    }
}

/// Whether a restore runs here now, or is due.
pub fn restore_phase(root: &Root, config: &Config, local: &LocalState) -> RestorePhase {
    if crate::local::restore_running(root).is_some() {
        RestorePhase::Running
    } else if config.restore_expected && local.last_restore.is_none() {
        // one that failed before its plan is not coming by itself — in this boot: one
        // that failed in an earlier boot is tried again by this boot's restore unit
        if local
            .last_failure
            .as_ref()
            .is_some_and(|f| !failed_before_this_boot(f))
        {
            RestorePhase::Failed
        } else {
            RestorePhase::Due
        }
    } else {
        RestorePhase::None
    }
}

/// Whether a failure was recorded in an earlier boot: by the boot's id, never by the
/// wall clock (which can step); one without a boot id is taken as this boot's (final).
fn failed_before_this_boot(f: &crate::local::FailureRecord) -> bool {
    f.boot
        .as_ref()
        .is_some_and(|b| crate::sys::boot_id().is_some_and(|now| &now != b))
}

/// Reads where this machine stands (after waiting, when asked). `long` keeps the last
/// restore's report file whole.
pub fn run(req: &Request, long: bool) -> Result<Status> {
    let (root, config) = (req.root, req.config);
    let mut local = LocalState::load(root)?;
    if let Some(timeout) = req.wait {
        let deadline = timeout.map(|t| Instant::now() + t);
        // a restore that is due starts within moments of boot: wait for it to run and end
        while restore_phase(root, config, &local).pending() {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::Timeout(format!(
                    "a restore is still {} after {} s",
                    restore_phase(root, config, &local).as_str(),
                    timeout.unwrap_or_default().as_secs()
                ))
                .into());
            }
            std::thread::sleep(Duration::from_millis(500));
            local = LocalState::load(root)?;
        }
    }
    let url = req
        .store
        .map(str::to_string)
        .or_else(|| config.store.url.clone());
    let count = |u: &str| {
        crate::store::open_configured(root, config, Some(u), false)
            .and_then(|(_, s)| s.list())
            .map(|l| l.len())
    };
    let snapshots = match &url {
        // a store named on the command line must be there (a failure, exit 1, as for
        // `snapshots list`); the configured one may not be reachable (a new OS before its
        // disk is mounted)
        Some(u) if req.store.is_some() => Some(count(u)?),
        Some(u) => count(u).ok(),
        None => None,
    };
    let outbox = if root.path(crate::report::OUTBOX).is_dir() {
        crate::report::Outbox::open(root)?.state()?
    } else {
        Default::default()
    };
    let file = root.path(format!("{}/restore-report.json", document::LOG_DIR));
    let bytes = crate::sys::read_opt(&file).ok().flatten();
    let document = bytes
        .as_deref()
        .and_then(|b| document::Document::parse(b).ok());
    let report = long
        .then(|| bytes.and_then(|b| serde_json::from_slice(&b).ok()))
        .flatten();
    Ok(Status {
        restore: restore_phase(root, config, &local),
        last_failure: local.last_failure.clone(),
        reasons: document
            .as_ref()
            .map(|d| document::reasons(&d.report))
            .unwrap_or_default(),
        outbox,
        last_capture: local.last_capture,
        last_restore: local.last_restore,
        store: url,
        snapshots,
        report,
        document,
    })
}
