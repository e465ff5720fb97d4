//! `carryover userdata`: the user-data for the Change OS call that brings carryover back
//! on the new OS and runs the restore.

use std::time::Duration;

use anyhow::Result;

use super::{Ctx, StoreArg};
use crate::config::Target;
use crate::error::{Error, Exit};
use crate::store::s3;
use crate::userdata::{self, StoreAccess};

/// How long the presigned agent URL of an S3 store stays valid (SigV4's maximum).
const AGENT_URL_VALID: Duration = Duration::from_secs(7 * 24 * 3600);

pub fn run(ctx: &Ctx, os: Target, store: StoreArg) -> Result<Exit> {
    if os == Target::Windows {
        return Err(Error::NotAvailable("userdata --os windows (Cloudbase-Init)").into());
    }
    let url = crate::store::resolve_url(store.store.as_deref(), &ctx.config)?;
    let access = match crate::store::local_dir(&url) {
        Some(dir) => {
            let disk = userdata::locate_store(&ctx.root, dir)?;
            if !dir.join(userdata::AGENT_KEY).is_file() {
                anyhow::bail!(
                    "{} holds no agent ({}): run `carryover capture` into it first",
                    dir.display(),
                    userdata::AGENT_KEY
                );
            }
            StoreAccess::Disk(disk)
        }
        None => {
            let (_, st) = ctx.open_store(Some(&url), false)?;
            if st.backend().get_range(userdata::AGENT_KEY, 0, 1).is_err() {
                anyhow::bail!(
                    "{} holds no agent ({}): run `carryover capture` into it first",
                    st.describe(),
                    userdata::AGENT_KEY
                );
            }
            let agent_url = st
                .backend()
                .presigned_get(userdata::AGENT_KEY, AGENT_URL_VALID)
                .ok_or(Error::NotAvailable("a download URL for this store"))?;
            StoreAccess::S3 {
                url: url.clone(),
                endpoint: s3::setting(
                    ctx.config.store.endpoint.as_ref(),
                    &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"],
                ),
                region: s3::setting(
                    ctx.config.store.region.as_ref(),
                    &["AWS_REGION", "AWS_DEFAULT_REGION"],
                ),
                agent_url,
            }
        }
    };
    let text = userdata::cloud_config(&access, ctx.config.report_url.as_deref());
    if text.len() > userdata::MAX_BYTES {
        anyhow::bail!(
            "the user-data is {} bytes, over the cloud's 32 KB",
            text.len()
        );
    }
    print!("{text}");
    Ok(Exit::Success)
}
