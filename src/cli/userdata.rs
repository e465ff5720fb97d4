//! `carryover userdata`: the user-data for the Change OS call that brings carryover back
//! on the new OS and runs the restore.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use super::{Ctx, StoreArg};
use crate::agent::{self, Arch, Platform};
use crate::config::Target;
use crate::error::{Error, Exit};
use crate::store::s3;
use crate::userdata::{self, StoreAccess};

/// How long the presigned agent URL of an S3 store stays valid (SigV4's maximum).
const AGENT_URL_VALID: Duration = Duration::from_secs(7 * 24 * 3600);

pub fn run(
    ctx: &Ctx,
    os: Target,
    arch: Option<Arch>,
    agent: Option<&Path>,
    store: StoreArg,
) -> Result<Exit> {
    let url = crate::store::resolve_url(store.store.as_deref(), &ctx.config)?;
    // the agent for the new OS: its family, on this machine's architecture unless named
    // (Windows has one build, x86_64)
    let want = Platform {
        os,
        arch: arch.unwrap_or(match os {
            Target::Linux => Arch::this(),
            Target::Windows => Arch::X86_64,
        }),
    };
    want.key()
        .map_err(|e| Error::Usage(format!("--arch: {e}")))?;
    // where the store is first: a store the change would delete is refused before anything
    let disk = match crate::store::StoreUrl::parse(&url)?.local_dir() {
        Some(dir) => Some(userdata::locate_store(&ctx.root, dir)?),
        None => None,
    };
    if let (Some(d), Target::Windows) = (&disk, os) {
        userdata::windows_can_read(d)?;
    }
    let (_, st) = ctx.open_store(Some(&url), false)?;
    if let Some(file) = agent {
        let bytes =
            std::fs::read(file).with_context(|| format!("reading the agent {}", file.display()))?;
        let got = agent::keep(st.backend(), &bytes)
            .map_err(|e| Error::Usage(format!("--agent {}: {e}", file.display())))?;
        if got != want {
            return Err(Error::Usage(format!(
                "--agent {} is the agent for {got}, not for {want}",
                file.display()
            ))
            .into());
        }
    }
    let Some((key, bytes)) = agent::load(st.backend(), want)? else {
        anyhow::bail!(
            "{} holds no agent for {want} ({}): run `carryover capture` there with it, or give it with --agent FILE (packaging/build-linux builds both Linux architectures)",
            st.describe(),
            want.key()?
        );
    };
    // the user-data pins the agent by its SHA-256: the new OS installs it only if the
    // store still holds this very file
    let agent_sha256 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    let access = match disk {
        Some(d) => StoreAccess::Disk(d),
        None => StoreAccess::S3 {
            url: url.clone(),
            endpoint: s3::setting(
                ctx.config.store.endpoint.as_ref(),
                &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"],
            ),
            region: s3::setting(
                ctx.config.store.region.as_ref(),
                &["AWS_REGION", "AWS_DEFAULT_REGION"],
            ),
            agent_url: st
                .backend()
                .presigned_get(key, AGENT_URL_VALID)
                .ok_or(Error::NotAvailable("a download URL for this store"))?,
        },
    };
    // the instance the user-data's own failure report is about (the old OS's id is the
    // new one's: Change OS keeps it)
    let report = ctx.config.report_url.as_ref().map(|url| {
        let g = crate::state::Gather::new(&ctx.root, &ctx.config);
        userdata::ReportTo {
            url: url.clone(),
            instance_id: crate::state::identity::instance(&g).0,
        }
    });
    // the newest snapshot of this instance now: the new OS refuses to restore an older one
    let g = crate::state::Gather::new(&ctx.root, &ctx.config);
    let instance = crate::state::identity::instance(&g).0;
    let not_before = st
        .list()?
        .into_iter()
        .rev()
        .find(|m| m.instance_id.is_some() && m.instance_id == instance)
        .map(|m| m.id);
    let pins = userdata::Pins {
        agent_sha256,
        not_before,
        packages_report: !ctx.config.restore_install_packages,
        ready_timeout_seconds: (ctx.config.ready_timeout_seconds
            != crate::config::Config::default().ready_timeout_seconds)
            .then_some(ctx.config.ready_timeout_seconds),
    };
    let text = match os {
        Target::Linux => userdata::cloud_config(&access, report.as_ref(), key, &pins)?,
        Target::Windows => userdata::ps1_user_data(&access, report.as_ref(), &pins)?,
    };
    if text.len() > userdata::MAX_BYTES {
        anyhow::bail!(
            "the user-data is {} bytes, over the cloud's 32 KB",
            text.len()
        );
    }
    print!("{text}");
    Ok(Exit::Success)
}
