//! `carryover check`: the preflight findings; changes nothing. Exit 3 while a blocker is
//! not acknowledged.

use anyhow::Result;
use serde::Serialize;

use super::output::emit;
use super::{CheckArgs, Ctx};
use crate::check::{self, Finding};
use crate::config::Target;
use crate::error::Exit;
use crate::report::{EventPhase, EventState};
use crate::state;

#[derive(Serialize)]
struct CheckResult {
    target: Target,
    findings: Vec<Finding>,
}

pub fn run(ctx: &Ctx, args: CheckArgs) -> Result<Exit> {
    let target = args.target.unwrap_or(ctx.config.target);
    let mut paths = ctx.config.data_paths.clone();
    paths.extend(args.paths.iter().cloned());
    let mut with_paths = ctx.config.clone();
    with_paths.data_paths = paths.clone();
    let (st, _) = state::gather(&ctx.root, &with_paths);
    let url = args
        .store
        .store
        .clone()
        .or_else(|| ctx.config.store.url.clone());
    let check::Evaluation {
        findings,
        blockers,
        ack,
    } = check::evaluate(
        &ctx.root,
        &ctx.config,
        &st,
        target,
        &paths,
        url.as_deref(),
        &args.ack,
    );
    crate::report::Reporter::new(&ctx.root, &ctx.config, st.identity.instance_id.as_deref()).send(
        EventPhase::Check,
        if blockers.is_empty() {
            EventState::Succeeded
        } else {
            EventState::Blocked
        },
        None,
        |e| e.set_findings(&findings),
    );
    let result = CheckResult { target, findings };
    emit(ctx.format, &result, || {
        let mut o = format!("target {target}\n");
        if result.findings.is_empty() {
            o.push_str("no findings\n");
        }
        for f in &result.findings {
            let acked = if ack.contains(&f.key) {
                " (acknowledged)"
            } else {
                ""
            };
            o.push_str(&format!(
                "{:<8} {}{acked}: {}\n         evidence: {}\n         do: {}\n",
                f.severity, f.key, f.message, f.evidence, f.remediation
            ));
        }
        o
    })?;
    Ok(if blockers.is_empty() {
        Exit::Success
    } else {
        Exit::Blocked
    })
}
