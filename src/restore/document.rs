//! The restore report an operator reads after the change, like Leapp's: on disk under
//! `/var/log/carryover/` as text and JSON (per snapshot and the latest), as a
//! self-contained HTML page for a browser, and a one-line login banner while a restore is
//! degraded or failed. Built from the report's JSON, so the file, the page and the
//! orchestrator's event say the same thing.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Deserialize;

use super::apply::Status;
use super::{Health, RestoreReport, RestoreState};
use crate::sys::Root;

/// Where the reports go, in-root.
pub use crate::paths::LOG_DIR;
/// The login banner while the last restore is degraded or failed, where pam_motd reads
/// `/etc/motd.d` (Linux-PAM 1.3.1 and later: Debian 10+, Ubuntu 20.04+, EL8+).
pub const MOTD: &str = "/etc/motd.d/50-carryover";
/// The same banner for interactive login shells where pam_motd reads `/etc/motd` only
/// (Linux-PAM 1.1: CentOS/RHEL 7, Ubuntu 18.04, SLES 12) — carryover does not edit the
/// operator's `/etc/motd`.
pub const PROFILE_BANNER: &str = "/etc/profile.d/zz-carryover-restore.sh";

/// Where a system's pam_motd module may be (multiarch Debian/Ubuntu, EL, SUSE).
const PAM_MOTD: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/security/pam_motd.so",
    "/lib/x86_64-linux-gnu/security/pam_motd.so",
    "/usr/lib/aarch64-linux-gnu/security/pam_motd.so",
    "/lib/aarch64-linux-gnu/security/pam_motd.so",
    "/usr/lib64/security/pam_motd.so",
    "/lib64/security/pam_motd.so",
    "/usr/lib/security/pam_motd.so",
    "/lib/security/pam_motd.so",
];

/// Whether the system's pam_motd reads a motd folder: its module knows the `motd_dir=`
/// option (added with `/etc/motd.d` in Linux-PAM 1.3.1). No module found: the folder (it
/// harms nothing).
fn pam_reads_motd_dir(root: &Root) -> bool {
    PAM_MOTD
        .iter()
        .find_map(|p| std::fs::read(root.path(p)).ok())
        .is_none_or(|so| so.windows(9).any(|w| w == b"motd_dir="))
}

/// What the report is about besides its content (written beside it in the JSON file).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Meta {
    pub hostname: String,
    pub finished_at: String,
}

/// A report file read back: the restore's report and what the file adds.
#[derive(Debug, Clone, Deserialize)]
pub struct Document {
    #[serde(flatten)]
    pub report: RestoreReport,
    #[serde(flatten)]
    pub meta: Meta,
}

impl Document {
    /// Reads a report file's JSON (written by [`write`]).
    pub fn parse(bytes: &[u8]) -> serde_json::Result<Document> {
        serde_json::from_slice(bytes)
    }
}

/// Why a restore is not `ready`, one line each: failed steps, what needs a person,
/// failed health checks, failed files.
pub fn reasons(report: &RestoreReport) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(e) = &report.error {
        out.push(format!("the restore stopped before its plan: {e}"));
    }
    for step in &report.steps {
        let name = &step.name;
        if step.status == Status::Failed {
            out.push(format!("step {name} failed: {}", step.detail));
        }
        for a in &step.attention {
            out.push(format!("{name}: {a}"));
        }
    }
    for h in report.health.iter().filter(|h| !h.status.healthy()) {
        out.push(format!("health check {}: {}", h.name, h.detail));
    }
    if !report.failed_files.is_empty() {
        out.push(format!(
            "{} files could not be restored",
            report.failed_files.len()
        ));
    }
    out
}

/// The report as text: the result and its reasons first, then every step with what it
/// changed, old → new.
pub fn text(report: &RestoreReport, meta: &Meta) -> String {
    crate::units::printable(&text_raw(report, meta)).into_owned()
}

fn text_raw(report: &RestoreReport, meta: &Meta) -> String {
    // every value on a line of its own: a newline read back from a store is shown, not
    // obeyed
    let l = |v: &str| crate::units::one_line(v).into_owned();
    let mut o = String::new();
    let _ = writeln!(o, "carryover restore report");
    let _ = writeln!(o, "  host      {}", l(&meta.hostname));
    let _ = writeln!(o, "  snapshot  {}", l(&report.snapshot_id));
    let _ = writeln!(o, "  finished  {}", l(&meta.finished_at));
    let _ = writeln!(o, "  result    {}", report.state.as_str().to_uppercase());
    let why = reasons(report);
    if !why.is_empty() {
        let _ = writeln!(o, "\nNeeds a person:");
        for r in &why {
            let _ = writeln!(o, "  - {}", l(r));
        }
    }
    let _ = writeln!(o, "\nSteps:");
    for step in &report.steps {
        let _ = writeln!(
            o,
            "  {:<16} {:<12} {}",
            l(&step.name),
            step.status.as_str(),
            l(&step.detail)
        );
        for c in &step.changes {
            let _ = writeln!(o, "      {}", l(c));
        }
        for w in &step.warnings {
            let _ = writeln!(o, "      warning: {}", l(w));
        }
        for f in &step.failed_files {
            let _ = writeln!(o, "      FAILED: {}", l(&f.to_string()));
        }
    }
    if !report.health.is_empty() {
        let _ = writeln!(
            o,
            "\nHealth checks (every step re-run as a dry run, or checked on the system):"
        );
        for h in &report.health {
            let _ = writeln!(
                o,
                "  {:<16} {}  {}",
                l(&h.name),
                h.status.label(),
                l(&h.detail)
            );
        }
    }
    o
}

fn esc(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    for c in t.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' => out.push(' '),
            c if (c.is_control() && c != '\n') || crate::units::is_bidi_control(c) => {
                out.push('\u{fffd}')
            }
            c => out.push(c),
        }
    }
    out
}

/// The report as one self-contained HTML page (no script, no outside resource): what an
/// orchestrator can show an operator who never opens a shell on the new server.
pub fn html(report: &RestoreReport, meta: &Meta) -> String {
    let state = report.state.as_str();
    let colour = match report.state {
        RestoreState::Ready => "#1a7f37",
        RestoreState::Degraded => "#9a6700",
        RestoreState::Planned => "#0969da",
        RestoreState::Failed => "#cf222e",
    };
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
<title>carryover restore {} — {}</title><style>\
body{{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;color:#1f2328;padding:0 1em}}\
h1{{font-size:1.5em}} .state{{display:inline-block;padding:.15em .6em;border-radius:1em;color:#fff;background:{colour}}}\
table{{border-collapse:collapse;width:100%}} td,th{{border-bottom:1px solid #d0d7de;padding:.35em .5em;text-align:left;vertical-align:top}}\
.changed,.would-change{{color:#0969da}} .failed{{color:#cf222e;font-weight:600}} .skipped,.unchanged{{color:#57606a}}\
ul.c{{margin:.3em 0 0 0;padding-left:1.2em;font:13px ui-monospace,monospace;color:#424a53}} .need li{{color:#9a6700}}\
</style></head><body>\n",
        esc(&report.snapshot_id),
        esc(&meta.hostname)
    );
    let _ = write!(
        o,
        "<h1>Restore of {} <span class=\"state\" id=\"state\">{}</span></h1>\n<p>snapshot <code>{}</code> · finished {}</p>\n",
        esc(&meta.hostname),
        esc(&state.to_uppercase()),
        esc(&report.snapshot_id),
        esc(&meta.finished_at)
    );
    let why = reasons(report);
    if !why.is_empty() {
        let _ = writeln!(o, "<h2>Needs a person</h2><ul class=\"need\">");
        for r in &why {
            let _ = writeln!(o, "<li>{}</li>", esc(r));
        }
        let _ = writeln!(o, "</ul>");
    }
    let _ = writeln!(
        o,
        "<h2>Steps</h2><table><tr><th>step</th><th>status</th><th>what, old → new</th></tr>"
    );
    for step in &report.steps {
        let status = step.status.as_str();
        let _ = write!(
            o,
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}",
            esc(&step.name),
            status,
            status,
            esc(&step.detail)
        );
        let extra: Vec<String> = step
            .changes
            .iter()
            .map(|c| esc(c))
            .chain(step.warnings.iter().map(|w| format!("warning: {}", esc(w))))
            .chain(step.failed_files.iter().map(|f| {
                format!(
                    "<span class=\"failed\">FAILED: {}</span>",
                    esc(&f.to_string())
                )
            }))
            .collect();
        if !extra.is_empty() {
            let _ = write!(o, "<ul class=\"c\">");
            for e in extra {
                let _ = write!(o, "<li>{e}</li>");
            }
            let _ = write!(o, "</ul>");
        }
        let _ = writeln!(o, "</td></tr>");
    }
    let _ = writeln!(o, "</table>");
    if !report.health.is_empty() {
        let _ = writeln!(
            o,
            "<h2>Health checks</h2><table><tr><th>step</th><th>result</th><th>detail</th></tr>"
        );
        for h in &report.health {
            let class = match h.status {
                Health::AsRestored => "unchanged",
                Health::RecheckFailed => "skipped",
                Health::ChangedSince | Health::Missing | Health::NotDone => "failed",
            };
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td class=\"{class}\">{}</td><td>{}</td></tr>",
                esc(&h.name),
                h.status.label().to_lowercase(),
                esc(&h.detail)
            );
        }
        let _ = writeln!(o, "</table>");
    }
    let _ = writeln!(o, "</body></html>");
    o
}

/// Whether the restore log file is written: only once a restore really runs (the old
/// OS's boot unit, which finds nothing due, leaves no trace).
static LOG_ON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// From now on the log goes to the file too.
pub fn start_log() {
    LOG_ON.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// The restore's log file, `<root>/var/log/carryover/<name>` (root-only, appended, never
/// through a link), opened at the first line written after [`start_log`]; lines before it
/// are dropped.
pub struct LazyLog {
    root_dir: PathBuf,
    name: &'static str,
    file: Option<std::fs::File>,
}

impl LazyLog {
    pub fn new(root_dir: &std::path::Path, name: &'static str) -> LazyLog {
        LazyLog {
            root_dir: root_dir.to_path_buf(),
            name,
            file: None,
        }
    }
}

impl std::io::Write for LazyLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !LOG_ON.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(buf.len());
        }
        if self.file.is_none() {
            let root = Root::new(crate::sys::default_root(&self.root_dir))?;
            no_link_on_the_way(&root, LOG_DIR)?;
            let dir = root.path(LOG_DIR);
            crate::sys::create_dirs(&dir, 0o700)?;
            self.file = Some(crate::sys::open_append(&dir.join(self.name), 0o600)?);
        }
        match &mut self.file {
            Some(f) => f.write(buf),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

/// Refuses a place whose folders (in-root) include a symbolic link: a restored link at
/// `/etc/motd.d` or `/var/log` must not carry these writes elsewhere.
fn no_link_on_the_way(root: &Root, abs: &str) -> std::io::Result<()> {
    let mut at = String::new();
    for c in abs.trim_start_matches('/').split('/') {
        at.push('/');
        at.push_str(c);
        if std::fs::symlink_metadata(root.path(&at)).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(std::io::Error::other(format!(
                "{at} is a symbolic link: nothing is written through it"
            )));
        }
    }
    Ok(())
}

/// Writes `restore-<snapshot>.{txt,json}` and the latest `restore-report.{txt,json}`
/// (root-only). Returns the files written. The login banner is [`banner`]'s.
pub fn write(root: &Root, report: &RestoreReport, meta: &Meta) -> std::io::Result<Vec<PathBuf>> {
    let id = &report.snapshot_id;
    let safe = !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    no_link_on_the_way(root, LOG_DIR)?;
    let dir = root.path(LOG_DIR);
    crate::sys::create_dirs(&dir, 0o700)?;
    let mut doc = serde_json::to_value(report).map_err(std::io::Error::other)?;
    doc["hostname"] = meta.hostname.clone().into();
    doc["finished_at"] = meta.finished_at.clone().into();
    doc["reasons"] = reasons(report).into();
    let json = serde_json::to_vec_pretty(&doc).map_err(std::io::Error::other)?;
    let txt = text(report, meta);
    let mut names = vec!["restore-report".to_string()];
    if safe {
        names.push(format!("restore-{id}"));
    }
    let mut out = Vec::new();
    for n in names {
        for (ext, bytes) in [("txt", txt.as_bytes()), ("json", json.as_slice())] {
            let p = dir.join(format!("{n}.{ext}"));
            crate::sys::write_atomic(&p, bytes, 0o600)?;
            out.push(p);
        }
    }
    Ok(out)
}

/// The report files and the banner for its state, finished now; what fails is a warning
/// in the log (the restore's result and its event stand whatever the log folder does).
pub fn publish(root: &Root, report: &RestoreReport, hostname: String) {
    let meta = Meta {
        hostname,
        finished_at: crate::store::now_rfc3339(),
    };
    if let Err(e) = write(root, report, &meta) {
        tracing::warn!("could not write the restore report under {LOG_DIR}: {e}");
    }
    if let Err(e) = banner(root, report.state) {
        tracing::warn!("could not write or remove the login banner: {e}");
    }
}

/// The login banner: written while `state` is degraded or failed (in `/etc/motd.d`, or a
/// profile.d script where pam_motd reads no folder), removed from both places otherwise;
/// never through a symbolic link on the way, neither written nor removed. None on
/// Windows. Returns the banner written.
pub fn banner(root: &Root, state: RestoreState) -> std::io::Result<Option<PathBuf>> {
    if cfg!(windows) {
        return Ok(None);
    }
    let line = format!(
        "carryover: the restore of this server after its Change OS is {} — read {LOG_DIR}/restore-report.txt (or: carryover status --long)",
        state.as_str().to_uppercase()
    );
    let bad = matches!(state, RestoreState::Degraded | RestoreState::Failed);
    let want = match bad {
        true if pam_reads_motd_dir(root) => Some((MOTD, format!("{line}\n"))),
        true => Some((
            PROFILE_BANNER,
            // the line holds no quote: it is carryover's own words and a state name
            format!(
                "# Written by carryover while the last restore is not ready (this system's\n\
                 # pam_motd reads /etc/motd only); removed once a restore is ready.\n\
                 case $- in *i*) printf '%s\\n' '{line}' >&2 ;; esac\n"
            ),
        )),
        _ => None,
    };
    for place in [MOTD, PROFILE_BANNER] {
        let path = root.path(place);
        let dir = &place[..place.rfind('/').unwrap_or(0)];
        match &want {
            Some((p, body)) if *p == place => {
                no_link_on_the_way(root, dir)?;
                if crate::sys::read_opt(&path).ok().flatten().as_deref() != Some(body.as_bytes()) {
                    crate::sys::write_atomic(&path, body.as_bytes(), 0o644)?;
                }
            }
            // a folder reached through a link holds no banner of ours: nothing removed
            _ if no_link_on_the_way(root, dir).is_err() => {}
            _ => match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            },
        }
    }
    Ok(want.map(|(p, _)| root.path(p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RestoreReport {
        serde_json::from_value(serde_json::json!({
            "snapshot_id": "20261201T120000000Z-0a1b2c3d",
            "state": "degraded",
            "steps": [
                {"name": "hostname", "status": "changed", "detail": "hostname web01",
                 "changes": ["/etc/hostname: ecs-1a2b → web01"]},
                {"name": "packages", "status": "changed", "detail": "2 to install",
                 "attention": ["packages not offered: mongodb-org"]},
                {"name": "sshd", "status": "failed", "detail": "sshd -t refused <it>"}
            ],
            "failed_files": ["/srv/x: permission denied"],
            "health": [{"name": "dns", "ok": false, "detail": "not as restored"}],
            "resumed": false
        }))
        .unwrap()
    }

    #[test]
    fn reasons_name_everything_that_is_not_ready() {
        let r = reasons(&sample());
        assert_eq!(
            r,
            vec![
                "packages: packages not offered: mongodb-org",
                "step sshd failed: sshd -t refused <it>",
                "health check dns: not as restored",
                "1 files could not be restored",
            ]
        );
    }

    #[test]
    fn text_and_html_carry_the_same_content_escaped() {
        let meta = Meta {
            hostname: "web01".into(),
            finished_at: "2026-12-01T12:05:00Z".into(),
        };
        let t = text(&sample(), &meta);
        assert!(t.contains("result    DEGRADED"), "{t}");
        assert!(t.contains("/etc/hostname: ecs-1a2b → web01"), "{t}");
        assert!(t.contains("CHANGED SINCE"), "{t}");
        // files missing after the restore are named for what they are
        let mut missing = sample();
        missing.health[0].status = Health::Missing;
        let t = text(&missing, &meta);
        assert!(
            t.contains("FILES MISSING") && !t.contains("CHANGED SINCE"),
            "{t}"
        );
        assert!(html(&missing, &meta).contains(">files missing<"));
        let h = html(&sample(), &meta);
        assert!(h.contains("sshd -t refused &lt;it&gt;"), "{h}");
        assert!(!h.contains("<it>"));
        assert!(!h.contains("<script"));
        assert!(h.contains("id=\"state\">DEGRADED<"), "{h}");
    }

    /// The reports and the banner for `report`, as the restore writes them.
    fn both(root: &Root, report: &RestoreReport) -> std::io::Result<Vec<PathBuf>> {
        let mut out = write(root, report, &Meta::default())?;
        out.extend(banner(root, report.state)?);
        Ok(out)
    }

    #[test]
    fn files_and_banner_follow_the_state() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path()).unwrap();
        // a link on the way is never written through, nor removed through (symbolic
        // links to folders: Unix)
        if cfg!(unix) {
            std::fs::create_dir_all(t.path().join("etc/sudoers.d")).unwrap();
            crate::sys::symlink(
                std::path::Path::new("sudoers.d"),
                &t.path().join("etc/motd.d"),
            )
            .unwrap();
            assert!(
                write(&root, &sample(), &Meta::default()).is_ok(),
                "the reports are written"
            );
            assert!(banner(&root, RestoreState::Degraded).is_err());
            assert!(!t.path().join("etc/sudoers.d/50-carryover").exists());
            std::fs::write(t.path().join("etc/sudoers.d/50-carryover"), "keep").unwrap();
            banner(&root, RestoreState::Ready).unwrap();
            assert!(
                t.path().join("etc/sudoers.d/50-carryover").exists(),
                "not removed through the link"
            );
            std::fs::remove_file(t.path().join("etc/motd.d")).unwrap();
        }
        let written = both(&root, &sample()).unwrap();
        // the two reports twice (by snapshot, the latest) and, on Linux, the banner
        assert_eq!(
            written.len(),
            if cfg!(windows) { 4 } else { 5 },
            "{written:?}"
        );
        assert!(written[0].starts_with(root.path(LOG_DIR)), "{written:?}");
        if cfg!(not(windows)) {
            let motd = std::fs::read_to_string(root.path(MOTD)).unwrap();
            assert!(motd.contains("DEGRADED"), "{motd}");
            assert!(!root.path(PROFILE_BANNER).exists());
        }
        let mut ready = sample();
        ready.state = RestoreState::Ready;
        both(&root, &ready).unwrap();
        assert!(
            !root.path(MOTD).exists(),
            "the banner goes with a ready restore"
        );
        let latest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(root.path(format!("{LOG_DIR}/restore-report.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(latest["state"], "ready");
        // and it reads back as the typed report
        let doc = Document::parse(
            &std::fs::read(root.path(format!("{LOG_DIR}/restore-report.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(doc.report.state, RestoreState::Ready);
        assert_eq!(reasons(&doc.report), reasons(&ready));
    }

    #[cfg(unix)]
    #[test]
    fn an_old_pam_motd_gets_the_banner_through_login_shells() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path()).unwrap();
        let module = t.path().join("usr/lib64/security/pam_motd.so");
        std::fs::create_dir_all(module.parent().unwrap()).unwrap();
        // Linux-PAM 1.1.8's module (CentOS 7) knows motd= and /etc/motd, no motd_dir=
        std::fs::write(&module, b"\x7fELF..motd=\0/etc/motd\0MOTD_SHOWN=pam\0").unwrap();
        let mut failed = sample();
        failed.state = RestoreState::Failed;
        let written = both(&root, &failed).unwrap();
        assert_eq!(written.last().unwrap(), &root.path(PROFILE_BANNER));
        assert!(!root.path(MOTD).exists());
        let script = std::fs::read_to_string(root.path(PROFILE_BANNER)).unwrap();
        // a real shell prints it when interactive, and nothing otherwise
        let run = |flags: &[&str]| {
            let o = std::process::Command::new("sh")
                .args(flags)
                .arg(root.path(PROFILE_BANNER))
                .output()
                .unwrap();
            assert!(o.status.success(), "{script}");
            String::from_utf8(o.stderr).unwrap()
        };
        assert!(run(&["-i"]).contains("is FAILED — read /var/log/carryover/restore-report.txt"));
        assert_eq!(run(&[]), "");
        // Linux-PAM 1.5's module reads /etc/motd.d: the banner moves there
        std::fs::write(
            &module,
            b"\x7fELF..motd=\0motd_dir=\0/etc/motd.d:/run/motd.d\0",
        )
        .unwrap();
        both(&root, &failed).unwrap();
        assert!(root.path(MOTD).exists() && !root.path(PROFILE_BANNER).exists());
        let mut ready = sample();
        ready.state = RestoreState::Ready;
        std::fs::write(&module, b"motd=").unwrap();
        both(&root, &failed).unwrap();
        both(&root, &ready).unwrap();
        assert!(!root.path(MOTD).exists() && !root.path(PROFILE_BANNER).exists());
    }
}
