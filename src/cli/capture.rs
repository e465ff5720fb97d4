//! `carryover capture`: parse the request, run the capture use case (`crate::capture`),
//! print the sealed snapshot or the blockers.

use std::io::IsTerminal;

use anyhow::Result;

use super::output::{emit, field};
use super::{CaptureArgs, Ctx, Format};
use crate::capture::{self, CaptureOutcome, Request};
use crate::error::{Error, Exit};

pub fn run(ctx: &Ctx, args: CaptureArgs) -> Result<Exit> {
    let request = Request {
        root: &ctx.root,
        config: &ctx.config,
        target: args.target,
        ack: args.ack,
        paths: args.paths,
        heal: args.heal,
        agents: args.agents,
        store: args.store.store,
        progress: ctx.format == Format::Text && std::io::stderr().is_terminal(),
    };
    let sealed = match capture::run(&request)? {
        CaptureOutcome::Sealed(s) => s,
        CaptureOutcome::Blocked { findings, blockers } => {
            for f in findings.iter().filter(|f| blockers.contains(&f.key)) {
                eprintln!(
                    "carryover: blocker {}: {} ({})",
                    f.key, f.message, f.remediation
                );
            }

            return Err(Error::Blocked(blockers).into());
        }
    };
    emit(ctx.format, &sealed, || {
        let mut o = String::new();
        field(&mut o, "snapshot", &sealed.snapshot_id);
        field(
            &mut o,
            "instance",
            sealed.instance_id.as_deref().unwrap_or("-"),
        );
        field(&mut o, "store", &sealed.store);
        field(&mut o, "files", sealed.files);
        field(&mut o, "bytes", crate::units::bytes(sealed.bytes));
        field(
            &mut o,
            "stored bytes",
            crate::units::bytes(sealed.stored_bytes),
        );
        for p in &sealed.skipped {
            field(&mut o, "NOT CAPTURED", p);
        }
        // every finding of the preflight, not only the blockers: what was acknowledged,
        // what needs a look, what was noted
        for f in &sealed.findings {
            field(
                &mut o,
                f.severity.as_str(),
                format!("{}: {} ({})", f.key, f.message, f.remediation),
            );
        }
        o
    })?;
    Ok(sealed.exit())
}
