//! `carryover check`: the preflight findings; changes nothing. Exit 3 while a blocker is
//! not acknowledged. The use case is `crate::check::run`.

use anyhow::Result;

use super::output::emit;
use super::{CheckArgs, Ctx};
use crate::check::{self, Request};
use crate::error::Exit;

pub fn run(ctx: &Ctx, args: CheckArgs) -> Result<Exit> {
    let result = check::run(&Request {
        root: &ctx.root,
        config: &ctx.config,
        target: args.target,
        ack: &args.ack,
        paths: &args.paths,
        store: args.store.store.as_deref(),
    })?;
    emit(ctx.format, &result, || {
        let mut o = format!("target {}\n", result.target);
        if result.findings.is_empty() {
            o.push_str("no findings\n");
        }
        for f in &result.findings {
            let acked = if result.ack.contains(&f.key) {
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
    Ok(result.exit())
}
