//! `carryover service install|uninstall|status|run`: registers, removes and shows the
//! Windows service; `run` hands the service manager its work (`crate::service::work`).

use anyhow::{Context, Result};

use super::{Ctx, ServiceCommand};
use crate::error::{Error, Exit};

pub fn run(_ctx: &Ctx, cmd: ServiceCommand) -> Result<Exit> {
    let unsupported = |e: std::io::Error| -> anyhow::Error {
        if e.kind() == std::io::ErrorKind::Unsupported {
            Error::Usage(e.to_string()).into()
        } else {
            anyhow::Error::from(e)
        }
    };
    match cmd {
        ServiceCommand::Install => {
            let exe = std::env::current_exe().context("finding this program")?;
            crate::sys::install_service(&exe).map_err(unsupported)?;
            println!(
                "installed the {} service ({} service run), started at every boot",
                crate::sys::SERVICE_NAME,
                exe.display()
            );
        }
        ServiceCommand::Uninstall => {
            if crate::sys::uninstall_service().map_err(unsupported)? {
                println!("removed the {} service", crate::sys::SERVICE_NAME);
            } else {
                println!("the {} service was not installed", crate::sys::SERVICE_NAME);
            }
        }
        ServiceCommand::Status => match crate::sys::service_state().map_err(unsupported)? {
            Some(s) => println!("{}: {s}", crate::sys::SERVICE_NAME),
            None => println!("{}: not installed", crate::sys::SERVICE_NAME),
        },
        ServiceCommand::Run => {
            crate::sys::run_service(crate::service::work).map_err(unsupported)?
        }
    }
    Ok(Exit::Success)
}
