//! `carryover status`: where this machine stands — the last capture and restore, whether a
//! restore runs or is due, why the last one is not `ready`; `--wait` waits for a restore
//! to end (as `cloud-init status --wait` does), `--long` prints its whole report.

use std::time::Duration;

use anyhow::Result;

use super::output::{emit, field};
use super::{Ctx, StatusArgs};
use crate::error::Exit;
use crate::restore::document;
use crate::status::{self, RestorePhase};

pub fn run(ctx: &Ctx, args: StatusArgs) -> Result<Exit> {
    let st = status::run(
        &status::Request {
            root: &ctx.root,
            config: &ctx.config,
            store: args.store.as_deref(),
            wait: args.wait.then_some(args.timeout.map(Duration::from_secs)),
        },
        args.long,
    )?;
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
        if st.restore != RestorePhase::None {
            field(&mut o, "restore", st.restore.as_str());
        }
        if st.restore == RestorePhase::Failed
            && let Some(f) = &st.last_failure
        {
            field(
                &mut o,
                "why it failed",
                format!("{} (at {})", crate::units::one_line(&f.error), f.at),
            );
        }
        for r in &st.reasons {
            // a reason quotes what the snapshot said: one line each
            field(&mut o, "why not ready", crate::units::one_line(r));
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
            && let Some(d) = &st.document
        {
            o.push('\n');
            o.push_str(&document::text(&d.report, &d.meta));
        }
        o
    })?;
    // with --wait, the exit code is the restore's result (the status printed either way;
    // one that failed before its plan is a failure)
    Ok(if args.wait { st.exit() } else { Exit::Success })
}
