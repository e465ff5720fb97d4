//! `carryover userdata`: the user-data for the Change OS call that brings carryover back
//! on the new OS and runs the restore.

use anyhow::Result;

use super::{Ctx, StoreArg};
use crate::config::Target;
use crate::error::{Error, Exit};
use crate::userdata;

pub fn run(ctx: &Ctx, os: Target, store: StoreArg) -> Result<Exit> {
    if os == Target::Windows {
        return Err(Error::NotAvailable("userdata --os windows (Cloudbase-Init)").into());
    }
    let url = crate::store::resolve_url(store.store.as_deref(), &ctx.config)?;
    let Some(dir) = crate::store::local_dir(&url) else {
        return Err(Error::NotAvailable(
            "userdata for an S3 store (the new OS needs the agent and S3 credentials, which user-data must not carry)",
        )
        .into());
    };
    let disk = userdata::locate_store(&ctx.root, dir)?;
    if !dir.join(userdata::AGENT_KEY).is_file() {
        anyhow::bail!(
            "{} holds no agent ({}): run `carryover capture` into it first",
            dir.display(),
            userdata::AGENT_KEY
        );
    }
    let text = userdata::cloud_config(&disk, ctx.config.report_url.as_deref());
    if text.len() > userdata::MAX_BYTES {
        anyhow::bail!(
            "the user-data is {} bytes, over the cloud's 32 KB",
            text.len()
        );
    }
    print!("{text}");
    Ok(Exit::Success)
}
