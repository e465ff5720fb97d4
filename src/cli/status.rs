//! `carryover status`: where this machine stands — the last capture and restore, and
//! whether a restore is pending in the store.

use anyhow::Result;
use serde::Serialize;

use super::output::{emit, field};
use super::{Ctx, StoreArg};
use crate::error::Exit;
use crate::local::LocalState;

#[derive(Debug, Serialize)]
struct Status {
    last_capture: Option<crate::local::CaptureRecord>,
    last_restore: Option<crate::local::RestoreRecord>,
    store: Option<String>,
    snapshots: Option<usize>,
    outbox: crate::report::OutboxState,
}

pub fn run(ctx: &Ctx, args: StoreArg) -> Result<Exit> {
    let local = LocalState::load(&ctx.root)?;
    let url = args.store.or_else(|| ctx.config.store.url.clone());
    let snapshots = match &url {
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
    let st = Status {
        outbox,
        last_capture: local.last_capture,
        last_restore: local.last_restore,
        store: url,
        snapshots,
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
        field(&mut o, "store", st.store.as_deref().unwrap_or("-"));
        field(&mut o, "events waiting", st.outbox.pending.len());
        for f in &st.outbox.failed {
            field(&mut o, "event refused", f);
        }
        if let Some(n) = st.snapshots {
            field(&mut o, "snapshots", n);
        }
        o
    })?;
    Ok(Exit::Success)
}
