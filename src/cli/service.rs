//! `carryover service install|uninstall|status|run`: the Windows service that does on
//! Windows what carryover-restore.service and the report timer do on Linux — at every
//! boot, restore when a restore is due, then deliver the outbox.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::{Ctx, ServiceCommand};
use crate::error::{Error, Exit};

/// How often the service retries the outbox while events wait.
const REPORT_EVERY: Duration = Duration::from_secs(300);

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
        ServiceCommand::Run => crate::sys::run_service(work).map_err(unsupported)?,
    }
    Ok(Exit::Success)
}

/// Runs `carryover ARGS…` as a child (a crash of one run cannot take the service with
/// it), its output appended to the service log; stops it when the service is stopped.
fn child(exe: &Path, args: &[&str], stopping: &dyn Fn() -> bool) -> i32 {
    let log_dir = crate::sys::default_root(Path::new("/")).join(&crate::paths::STATE_DIR[1..]);
    let _ = std::fs::create_dir_all(&log_dir);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_dir.join("service.log"));
    let mut cmd = Command::new(exe);
    cmd.args(args);
    if let Ok(f) = log {
        if let Ok(g) = f.try_clone() {
            cmd.stdout(g);
        }
        cmd.stderr(f);
    }
    let Ok(mut c) = cmd.spawn() else { return 1 };
    loop {
        match c.try_wait() {
            Ok(Some(st)) => return st.code().unwrap_or(1),
            Ok(None) if stopping() => {
                // the restore is journaled: the next start resumes it
                let _ = c.kill();
                let _ = c.wait();
                return 1;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(200)),
            Err(_) => return 1,
        }
    }
}

/// The service's work: the restore when one is due, then the outbox until it is empty.
fn work(stopping: &dyn Fn() -> bool) -> i32 {
    let Ok(exe) = std::env::current_exe() else {
        return 1;
    };
    let code = child(&exe, &["restore", "--if-due", "-v"], stopping);
    let outbox = crate::sys::default_root(Path::new("/")).join(&crate::paths::OUTBOX[1..]);
    let waiting = || crate::sys::list_dir(&outbox).is_ok_and(|l| !l.is_empty());
    while waiting() && !stopping() {
        child(&exe, &["report"], stopping);
        let since = Instant::now();
        while since.elapsed() < REPORT_EVERY && !stopping() && waiting() {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    code
}
