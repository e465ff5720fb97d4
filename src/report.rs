//! Readiness reporting to the orchestrator: events queued in a durable outbox (one fsynced
//! file each, root-only) and delivered in order, each exactly once by its idempotency key,
//! with exponential backoff and full jitter on connection errors, timeouts, 408, 425, 429
//! and 5xx (honouring Retry-After). Other 4xx are kept aside, shown by `status`, never
//! retried forever. The protocol is in docs/protocol.md.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::sys::Root;

pub use crate::paths::OUTBOX;
const FAILED: &str = "failed";
/// Lists in an event are cut at this length (and counted).
pub const MAX_LIST: usize = 200;
pub const MAX_MESSAGE: usize = 4096;

/// Which command an event is about (serialized `check`, `capture`, `restore`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventPhase {
    Check,
    Capture,
    Restore,
}

/// Where the command stands (serialized `started`, `succeeded`, `degraded`, `failed`,
/// `blocked`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventState {
    Started,
    Succeeded,
    Degraded,
    Failed,
    Blocked,
}

impl EventPhase {
    pub const ALL: [EventPhase; 3] = [EventPhase::Check, EventPhase::Capture, EventPhase::Restore];

    pub fn as_str(self) -> &'static str {
        match self {
            EventPhase::Check => "check",
            EventPhase::Capture => "capture",
            EventPhase::Restore => "restore",
        }
    }
}

impl EventState {
    pub const ALL: [EventState; 5] = [
        EventState::Started,
        EventState::Succeeded,
        EventState::Degraded,
        EventState::Failed,
        EventState::Blocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventState::Started => "started",
            EventState::Succeeded => "succeeded",
            EventState::Degraded => "degraded",
            EventState::Failed => "failed",
            EventState::Blocked => "blocked",
        }
    }
}

impl std::fmt::Display for EventPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for EventState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A restore step as an event carries it: its name, how it ended, the detail.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EventStep {
    pub name: String,
    pub status: crate::restore::apply::Status,
    pub detail: String,
    /// What needs a person (up to 20 lines).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attention: Vec<String>,
    /// The readiness step's lines (up to 50).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readiness: Vec<String>,
    /// What the step changed: the paths only (up to 20), never lines of content.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// Its warnings (up to 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One event of the protocol.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub event_id: String,
    pub instance_id: String,
    pub phase: EventPhase,
    pub state: EventState,
    pub snapshot_id: Option<String>,
    pub agent_version: String,
    pub at: String,
    #[serde(default)]
    pub findings: Vec<crate::check::Finding>,
    #[serde(default)]
    pub steps: Vec<EventStep>,
    #[serde(default)]
    pub failed_files: Vec<String>,
    #[serde(default)]
    pub failed_files_total: usize,
    /// Why a restore is not `ready`, one line each (the restore report's reasons).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    #[serde(default)]
    pub message: Option<String>,
}

impl Event {
    pub fn new(
        instance_id: &str,
        phase: EventPhase,
        state: EventState,
        snapshot_id: Option<&str>,
    ) -> Event {
        Event {
            event_id: uuid_v4(),
            instance_id: instance_id.to_string(),
            phase,
            state,
            snapshot_id: snapshot_id.map(str::to_string),
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            at: crate::store::now_rfc3339(),
            findings: Vec::new(),
            steps: Vec::new(),
            failed_files: Vec::new(),
            failed_files_total: 0,
            reasons: Vec::new(),
            message: None,
        }
    }

    /// Sets the failed files (`path: reason` lines), cut to `MAX_LIST` and counted.
    pub fn set_failed_files(&mut self, files: &[crate::error::Problem]) {
        self.failed_files_total = files.len();
        self.failed_files = files.iter().take(MAX_LIST).map(|p| p.to_string()).collect();
    }

    pub fn with_message(mut self, m: &str) -> Event {
        self.set_message(m);
        self
    }

    /// The preflight findings.
    pub fn set_findings(&mut self, f: &[crate::check::Finding]) {
        self.findings = f.to_vec();
    }

    /// The restore's steps (name, status, detail).
    pub fn set_steps(&mut self, steps: &[crate::restore::StepReport]) {
        self.steps = steps
            .iter()
            .map(|s| EventStep {
                name: s.name.clone(),
                status: s.status,
                detail: s.detail.clone(),
                attention: s.attention.iter().take(20).cloned().collect(),
                readiness: if s.name == "readiness" {
                    s.changes.iter().take(50).cloned().collect()
                } else {
                    Vec::new()
                },
                // what was touched, by name only: a line of a configuration file may hold a
                // secret even where the file is readable (the report on the server has them)
                changes: if s.name == "readiness" {
                    Vec::new()
                } else {
                    let mut names: Vec<String> = Vec::new();
                    for c in &s.changes {
                        // a file by its path; other lines (`install nginx …`) as they are
                        let name = if c.starts_with('/') {
                            c.split([':', ' ']).next().unwrap_or("").to_string()
                        } else {
                            c.clone()
                        };
                        if !name.is_empty() && !names.contains(&name) && names.len() < 20 {
                            names.push(name);
                        }
                    }
                    names
                },
                warnings: s.warnings.iter().take(10).cloned().collect(),
            })
            .collect();
    }

    /// Sets the message, cut to `MAX_MESSAGE` bytes.
    pub fn set_message(&mut self, m: &str) {
        let mut m = m.to_string();
        if m.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !m.is_char_boundary(cut) {
                cut -= 1;
            }
            m.truncate(cut);
            m.push('…');
        }
        self.message = Some(m);
    }
}

fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    crate::disks::probe::uuid_be(&b)
}

/// The durable queue of events under the root.
pub struct Outbox {
    dir: PathBuf,
}

/// What is waiting, for `status`.
#[derive(Debug, Default, Serialize)]
pub struct OutboxState {
    pub pending: Vec<String>,
    pub failed: Vec<String>,
}

impl Outbox {
    pub fn open(root: &Root) -> Result<Outbox> {
        let dir = crate::local::private_dir(root, &format!("{OUTBOX}/{FAILED}"))?
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_else(|| root.path(OUTBOX));
        crate::sys::set_dir_mode(&dir, 0o700)?;
        Ok(Outbox { dir })
    }

    /// Queues an event durably (fsynced before this returns).
    pub fn push(&self, e: &Event) -> Result<()> {
        let next = self.pending()?.last().map_or(0, |(n, _)| n + 1);
        let path = self.dir.join(format!("{next:020}-{}.json", e.event_id));
        crate::sys::write_atomic(&path, &serde_json::to_vec_pretty(e)?, 0o600)?;
        Ok(())
    }

    /// The queued events in order: (sequence, file).
    fn pending(&self) -> Result<Vec<(u64, PathBuf)>> {
        let mut out = Vec::new();
        for p in crate::sys::list_dir(&self.dir)? {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            if crate::sys::is_temp_name(&name) || !name.ends_with(".json") {
                continue;
            }
            if let Some(n) = name.split('-').next().and_then(|n| n.parse::<u64>().ok()) {
                out.push((n, p));
            }
        }
        out.sort();
        Ok(out)
    }

    pub fn state(&self) -> Result<OutboxState> {
        let name = |p: &PathBuf| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string()
        };
        Ok(OutboxState {
            pending: self.pending()?.iter().map(|(_, p)| name(p)).collect(),
            failed: crate::sys::list_dir(&self.dir.join(FAILED))?
                .iter()
                .map(name)
                .collect(),
        })
    }

    /// Delivers what is queued, in order, until `deadline`. Returns how many are still
    /// waiting.
    pub fn flush(&self, sender: &Sender, deadline: Instant) -> Result<usize> {
        let queue = self.pending()?;
        let total = queue.len();
        for (i, (_, path)) in queue.iter().enumerate() {
            let bytes = std::fs::read(path)?;
            let event: Event = match serde_json::from_slice(&bytes) {
                Ok(e) => e,
                Err(e) => {
                    self.set_aside(path, &format!("unreadable: {e}"))?;
                    continue;
                }
            };
            match sender.deliver(&event, deadline) {
                Delivery::Accepted => {
                    std::fs::remove_file(path)?;
                    crate::sys::sync_dir(&self.dir)?;
                }
                Delivery::Refused(why) => {
                    tracing::warn!("event {} refused: {why}", event.event_id);
                    self.set_aside(path, &why)?;
                }
                Delivery::Later(why) => {
                    tracing::warn!(
                        "the orchestrator is not reachable now ({why}); events stay in the outbox"
                    );
                    return Ok(total - i);
                }
            }
        }
        Ok(0)
    }

    fn set_aside(&self, path: &std::path::Path, why: &str) -> Result<()> {
        let dest = self
            .dir
            .join(FAILED)
            .join(path.file_name().unwrap_or_default());
        std::fs::rename(path, &dest)?;
        crate::sys::write_atomic(&dest.with_extension("why"), why.as_bytes(), 0o600)?;
        Ok(())
    }
}

/// True for an `http://` URL whose host is not this machine (a bearer token sent there
/// travels in clear text).
pub fn plain_http_off_host(url: &str) -> bool {
    let Ok(u) = url::Url::parse(url) else {
        return false;
    };
    let loopback = match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => true,
    };
    u.scheme() == "http" && !loopback
}

/// The outcome of one event's delivery.
pub enum Delivery {
    Accepted,
    /// A hard failure (4xx): not retried.
    Refused(String),
    /// Still failing when the deadline came: try again later.
    Later(String),
}

/// The HTTP side: where to send, with which token.
pub struct Sender {
    url: String,
    token: Option<String>,
    client: reqwest::blocking::Client,
    budget: Duration,
}

impl Sender {
    /// `None` when no orchestrator is configured.
    pub fn from_config(root: &Root, config: &Config) -> Result<Option<Sender>> {
        let Some(url) = &config.report_url else {
            return Ok(None);
        };
        // a token file that cannot be read is warned about and the event goes without
        // one (the orchestrator may refuse it, and says so): never no event at all
        let token = match crate::sys::read_opt(&root.follow(&config.token_file)) {
            Ok(t) => t.map(|b| String::from_utf8_lossy(&b).trim().to_string()),
            Err(e) => {
                tracing::warn!(
                    "reading the token file {}: {e}; sending without a token",
                    config.token_file.display()
                );
                None
            }
        };
        if token.is_some() && plain_http_off_host(url) {
            tracing::warn!(
                "the orchestrator's token goes to {url} over plain http: anyone on the way can read it; use https"
            );
        }
        crate::sys::tls_provider();
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_millis(config.report_request_timeout_ms))
            .build()?;
        Ok(Some(Sender {
            url: url.clone(),
            token,
            client,
            budget: Duration::from_secs(config.report_budget_seconds),
        }))
    }

    /// Sends one event, retrying what is worth retrying until `deadline`.
    pub fn deliver(&self, e: &Event, deadline: Instant) -> Delivery {
        let age =
            time::OffsetDateTime::parse(&e.at, &time::format_description::well_known::Rfc3339)
                .ok()
                .map(|t| (time::OffsetDateTime::now_utc() - t).whole_seconds().max(0) as u64);
        if age.is_some_and(|a| a > self.budget.as_secs()) {
            return Delivery::Refused(format!(
                "not delivered within the budget of {} s",
                self.budget.as_secs()
            ));
        }
        let url = format!("{}/v1/instances/{}/events", self.url, e.instance_id);
        let mut attempt = 0u32;
        loop {
            let mut req = self
                .client
                .post(&url)
                .header("Idempotency-Key", &e.event_id)
                .json(e);
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            let (why, retry_after) = match req.send() {
                Ok(r) => {
                    let st = r.status().as_u16();
                    if r.status().is_success() || st == 409 {
                        return Delivery::Accepted;
                    }
                    let retry_after = r
                        .headers()
                        .get("Retry-After")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    if self.token.is_none() && (st == 401 || st == 403) {
                        // Before restore has put the token in place (its first step), or
                        // when the store could not be read at all: kept, and sent again
                        // with the token once it is there.
                        return Delivery::Later(format!(
                            "the orchestrator answered {} and no token is in place yet",
                            r.status()
                        ));
                    }
                    if !crate::retry::retryable(st) {
                        return Delivery::Refused(format!(
                            "the orchestrator answered {}",
                            r.status()
                        ));
                    }
                    (
                        format!("the orchestrator answered {}", r.status()),
                        retry_after,
                    )
                }
                Err(err) => (format!("{}", err.without_url()), None),
            };
            attempt += 1;
            let wait = retry_after.unwrap_or_else(|| {
                crate::retry::backoff(attempt, Duration::from_millis(250), Duration::from_secs(60))
            });
            if Instant::now() + wait >= deadline {
                return Delivery::Later(why);
            }
            std::thread::sleep(wait);
        }
    }
}

/// The events of one job for the orchestrator: where they go (root, config) and for
/// which instance. Sending never fails the job: problems are warnings, and what is not
/// delivered waits in the outbox for `carryover report`.
#[derive(Clone)]
pub struct Reporter {
    root: Root,
    config: Config,
    instance: Option<String>,
}

impl Reporter {
    pub fn new(root: &Root, config: &Config, instance: Option<&str>) -> Reporter {
        Reporter {
            root: root.clone(),
            config: config.clone(),
            instance: instance.map(str::to_string),
        }
    }

    /// Queues an event and tries to send it for `[report] send_timeout_seconds`; `fill`
    /// adds the findings, steps or failed files.
    pub fn send(
        &self,
        phase: EventPhase,
        state: EventState,
        snapshot: Option<&str>,
        fill: impl FnOnce(&mut Event),
    ) {
        self.send_within(
            phase,
            state,
            snapshot,
            fill,
            self.config.report_send_timeout_seconds,
        );
    }

    fn send_within(
        &self,
        phase: EventPhase,
        state: EventState,
        snapshot: Option<&str>,
        fill: impl FnOnce(&mut Event),
        seconds: u64,
    ) {
        if self.config.report_url.is_none() {
            return;
        }
        let Some(instance) = &self.instance else {
            tracing::warn!("the instance id is unknown: no {phase} event for the orchestrator");
            return;
        };
        let mut ev = Event::new(instance, phase, state, snapshot);
        fill(&mut ev);
        if let Err(e) = queue_and_send(&self.root, &self.config, ev, seconds) {
            tracing::warn!("reporting to the orchestrator: {e:#}");
        }
    }

    /// `phase`/`failed` with the error as the message.
    pub fn failed(&self, phase: EventPhase, snapshot: Option<&str>, err: &anyhow::Error) {
        let message = format!("{err:#}");
        self.send(phase, EventState::Failed, snapshot, |e| {
            e.set_message(&message)
        });
    }

    /// From now on a panic of this process queues `phase`/`failed` (see
    /// `install_panic_hook`).
    pub fn arm_panic(&self, phase: EventPhase) {
        if let Ok(mut slot) = PANIC_REPORT.lock() {
            *slot = Some((self.clone(), phase));
        }
    }
}

/// The reporter a panic tells the orchestrator through, once armed.
static PANIC_REPORT: std::sync::Mutex<Option<(Reporter, EventPhase)>> = std::sync::Mutex::new(None);

/// Installs a panic hook that, after the usual message, queues a `failed` event for the
/// job that armed it (and tries to send it for a few seconds): a bug still reaches the
/// orchestrator instead of leaving it waiting.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        let armed = PANIC_REPORT.try_lock().ok().and_then(|mut s| s.take());
        if let Some((reporter, phase)) = armed {
            let message = format!("carryover crashed: {info}");
            reporter.send_within(
                phase,
                EventState::Failed,
                None,
                |e| e.set_message(&message),
                5,
            );
        }
    }));
}

/// Sends an event the outbox could not keep (`why`), from memory.
fn deliver_unqueued(
    sender: &Sender,
    event: &Event,
    deadline: Instant,
    why: &anyhow::Error,
) -> Result<usize> {
    tracing::warn!("the outbox cannot keep the event ({why:#}): sending it without it");
    match sender.deliver(event, deadline) {
        Delivery::Accepted => Ok(0),
        Delivery::Refused(why) | Delivery::Later(why) => bail!(
            "the {} event was not delivered and cannot wait in the outbox: {why}",
            event.phase.as_str()
        ),
    }
}

/// Queues an event and tries to deliver the outbox for `seconds`; never fails the caller's
/// job: problems are warnings, and what is left waits for `carryover report`.
pub fn queue_and_send(root: &Root, config: &Config, event: Event, seconds: u64) -> Result<usize> {
    let Some(sender) = Sender::from_config(root, config)? else {
        return Ok(0);
    };
    let deadline = Instant::now() + Duration::from_secs(seconds);
    // an outbox that cannot take the event (a damaged state folder, a full or read-only
    // system disk): it is sent from memory, never dropped unsent
    let outbox = match Outbox::open(root) {
        Ok(o) => o,
        Err(e) => return deliver_unqueued(&sender, &event, deadline, &e),
    };
    if let Err(e) = outbox.push(&event) {
        // the events queued before it go first, as far as they can (in order)
        if let Err(f) = outbox.flush(&sender, deadline) {
            tracing::warn!("delivering the outbox: {f:#}");
        }
        return deliver_unqueued(&sender, &event, deadline, &e);
    }
    let left = outbox.flush(&sender, deadline)?;
    if left > 0 {
        tracing::warn!("{left} events wait in the outbox: `carryover report` sends them");
    }
    Ok(left)
}

/// `carryover report`: delivers the outbox, trying for `seconds` (the systemd timer runs
/// it again; events older than the budget are set aside).
pub fn flush_all(
    root: &Root,
    config: &Config,
    extra: Option<Event>,
    seconds: u64,
) -> Result<usize> {
    let Some(sender) = Sender::from_config(root, config)? else {
        bail!("no orchestrator: set [report] url");
    };
    let outbox = Outbox::open(root)?;
    if let Some(e) = extra {
        outbox.push(&e)?;
    }
    outbox.flush(&sender, Instant::now() + Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_keeps_the_protocol_words_and_typed_lists() {
        let mut e = Event::new("i-1", EventPhase::Capture, EventState::Blocked, None);
        e.set_findings(&[crate::check::Finding {
            key: "lvm-to-windows".into(),
            severity: crate::check::Severity::Blocker,
            message: "m".into(),
            evidence: "e".into(),
            remediation: "r".into(),
        }]);
        e.set_failed_files(&[crate::error::Problem::new("/srv/x", "gone")]);
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            (v["phase"].as_str(), v["state"].as_str()),
            (Some("capture"), Some("blocked"))
        );
        assert_eq!(v["findings"][0]["severity"], "blocker");
        assert_eq!(v["failed_files"], serde_json::json!(["/srv/x: gone"]));
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
        for p in EventPhase::ALL {
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
        for s in EventState::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn a_token_over_plain_http_is_only_fine_on_this_machine() {
        assert!(plain_http_off_host("http://orchestrator.invalid/api"));
        assert!(plain_http_off_host("http://10.0.2.100:8080"));
        assert!(!plain_http_off_host("https://orchestrator.invalid/api"));
        assert!(!plain_http_off_host("http://127.0.0.1:8080/api"));
        assert!(!plain_http_off_host("http://[::1]:8080/api"));
        assert!(!plain_http_off_host("http://localhost/api"));
    }

    #[test]
    fn a_panic_queues_a_failed_event_for_the_armed_job() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path()).unwrap();
        // nobody listens there: the event stays in the outbox
        let config = Config {
            report_url: Some("http://127.0.0.1:9/api".into()),
            report_request_timeout_ms: 200,
            ..Config::default()
        };
        install_panic_hook();
        Reporter::new(&root, &config, Some("i-123")).arm_panic(EventPhase::Restore);
        let r = std::panic::catch_unwind(|| panic!("a bug in a step"));
        assert!(r.is_err());
        let outbox = Outbox::open(&root).unwrap();
        let queued: Vec<Event> = outbox
            .pending()
            .unwrap()
            .iter()
            .map(|(_, p)| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect();
        assert_eq!(queued.len(), 1, "{queued:?}");
        let e = &queued[0];
        assert_eq!(
            (e.phase, e.state),
            (EventPhase::Restore, EventState::Failed)
        );
        assert_eq!(e.instance_id, "i-123");
        assert!(
            e.message.as_deref().unwrap().contains("a bug in a step"),
            "{e:?}"
        );
    }
}
