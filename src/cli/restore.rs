//! `carryover restore`: parse the request, run the restore use case (`crate::restore::run`),
//! print the report (or why nothing was due).

use anyhow::Result;

use super::output::{emit, field};
use super::{Ctx, RestoreArgs};
use crate::error::Exit;
use crate::restore::{self, Request, RestoreOutcome, RestoreReport};

pub fn run(ctx: &Ctx, args: RestoreArgs) -> Result<Exit> {
    let request = Request {
        root: &ctx.root,
        config: &ctx.config,
        store: args.store.store,
        snapshot: args.snapshot,
        dry_run: args.dry_run,
        if_due: args.if_due,
        progress: ctx.format == super::Format::Text
            && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    match restore::run(&request)? {
        RestoreOutcome::NotDue { reason } => {
            let v = serde_json::json!({"state": "not-due", "reason": reason});
            emit(ctx.format, &v, || format!("no restore due: {reason}\n"))?;
            Ok(Exit::Success)
        }
        RestoreOutcome::Finished(report) => {
            emit(ctx.format, &report, || render(&report))?;
            Ok(report.state.exit())
        }
    }
}

fn render(r: &RestoreReport) -> String {
    let mut o = String::new();
    field(&mut o, "snapshot", &r.snapshot_id);
    for s in &r.steps {
        o.push_str(&format!(
            "  {:<18} {:<13} {}\n",
            s.name,
            s.status.as_str(),
            s.detail
        ));
        for c in &s.changes {
            o.push_str(&format!("  {:<18} {:<13} {c}\n", "", ""));
        }
        for w in &s.warnings {
            o.push_str(&format!("  {:<18} {:<13} {w}\n", "", "warning"));
        }
        for w in &s.attention {
            o.push_str(&format!("  {:<18} {:<13} {w}\n", "", "ATTENTION"));
        }
        for f in &s.failed_files {
            o.push_str(&format!("  {:<18} {:<13} {f}\n", "", "not restored"));
        }
    }
    for h in r.health.iter().filter(|h| !h.status.healthy()) {
        o.push_str(&format!(
            "  health {:<11} FAILED        {}\n",
            h.name, h.detail
        ));
    }
    if r.resumed {
        field(
            &mut o,
            "resumed",
            "yes: an interrupted restore was picked up",
        );
    }
    field(&mut o, "state", r.state);
    o
}
