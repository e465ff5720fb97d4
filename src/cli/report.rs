//! `carryover report`: sends what waits in the outbox; `--event phase:state` queues one
//! event by hand first.

use anyhow::Result;

use super::{Ctx, ReportArgs};
use crate::error::{Error, Exit};
use crate::report::{self, Event, EventPhase, EventState};
use crate::state::{Gather, identity};

pub fn run(ctx: &Ctx, args: ReportArgs) -> Result<Exit> {
    if let Some(out) = &args.html {
        return html(ctx, out);
    }
    let extra = match &args.event {
        None => None,
        Some(spec) => {
            let (phase, state) = spec.split_once(':').unwrap_or((spec, ""));
            let phase = EventPhase::ALL.into_iter().find(|p| p.as_str() == phase);
            let state = EventState::ALL.into_iter().find(|s| s.as_str() == state);
            let (Some(phase), Some(state)) = (phase, state) else {
                let names =
                    |l: &mut dyn Iterator<Item = &'static str>| l.collect::<Vec<_>>().join(", ");
                return Err(Error::Usage(format!(
                    "--event {spec}: expected PHASE:STATE with PHASE one of {} and STATE one of {}",
                    names(&mut EventPhase::ALL.iter().map(|p| p.as_str())),
                    names(&mut EventState::ALL.iter().map(|s| s.as_str()))
                ))
                .into());
            };
            let g = Gather::new(&ctx.root, &ctx.config);
            let (id, _, _) = identity::instance(&g);
            let id =
                id.ok_or_else(|| Error::Usage("this machine's instance id is unknown".into()))?;
            Some(
                Event::new(&id, phase, state, None)
                    .with_message("sent by hand with carryover report --event"),
            )
        }
    };
    let wait = args.wait.unwrap_or(ctx.config.report_send_timeout_seconds);
    let left = report::flush_all(&ctx.root, &ctx.config, extra, wait)?;
    if left > 0 {
        anyhow::bail!("{left} events still wait in the outbox");
    }
    Ok(Exit::Success)
}

/// `report --html FILE`: the last restore's report as a page.
fn html(ctx: &Ctx, out: &std::path::Path) -> Result<Exit> {
    use crate::restore::document;
    let src = ctx
        .root
        .path(format!("{}/restore-report.json", document::LOG_DIR));
    let bytes = crate::sys::read_opt(&src)?.ok_or_else(|| {
        Error::Usage(format!(
            "no restore report at {}: no restore has run here",
            src.display()
        ))
    })?;
    let doc = document::Document::parse(&bytes)
        .map_err(|e| Error::Usage(format!("{} is not a restore report: {e}", src.display())))?;
    let page = document::html(&doc.report, &doc.meta);
    // `-`: standard output
    if out.as_os_str() == "-" {
        use std::io::Write;
        std::io::stdout().write_all(page.as_bytes())?;
        return Ok(Exit::Success);
    }
    // a bare file name is in the current folder; a folder that does not exist is not made
    let out = match out.parent() {
        Some(p) if p.as_os_str().is_empty() => std::env::current_dir()?.join(out),
        _ => out.to_path_buf(),
    };
    if !out.parent().is_some_and(|p| p.is_dir()) {
        return Err(Error::Usage(format!(
            "--html {}: its folder does not exist",
            out.display()
        ))
        .into());
    }
    // run as root: only a page replaces a page — never a device, a link, a folder or a
    // file of another kind (`--html /etc/passwd`)
    if let Ok(m) = std::fs::symlink_metadata(&out) {
        let ours = m.file_type().is_file()
            && crate::sys::read_opt(&out)
                .ok()
                .flatten()
                .is_some_and(|b| b.starts_with(b"<!DOCTYPE html>"));
        if !ours {
            return Err(Error::Usage(format!(
                "--html {}: something that is not an HTML page is there; nothing replaced (name a new file, or - for standard output)",
                out.display()
            ))
            .into());
        }
    }
    crate::sys::write_atomic(&out, page.as_bytes(), 0o600)?;
    let v = serde_json::json!({"html": out.display().to_string()});
    super::output::emit(ctx.format, &v, || format!("{}\n", out.display()))?;
    Ok(Exit::Success)
}
