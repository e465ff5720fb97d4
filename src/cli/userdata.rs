//! `carryover userdata`: the user-data for the Change OS call that brings carryover back
//! on the new OS and runs the restore — parse, call `userdata::run`, print.

use std::path::Path;

use anyhow::Result;

use super::{Ctx, StoreArg};
use crate::agent::Arch;
use crate::config::Target;
use crate::error::Exit;

pub fn run(
    ctx: &Ctx,
    os: Target,
    arch: Option<Arch>,
    agent: Option<&Path>,
    store: StoreArg,
) -> Result<Exit> {
    let text = crate::userdata::run(&crate::userdata::Request {
        root: &ctx.root,
        config: &ctx.config,
        os,
        arch,
        agent,
        store: store.store.as_deref(),
    })?;
    print!("{text}");
    Ok(Exit::Success)
}
