//! The Windows service's work (`carryover service run`): what carryover-restore.service
//! and the report timer do on Linux — at every boot, the restore when one is due (as a
//! child process, so a crash of one run cannot take the service with it), then the outbox
//! until it is delivered. The service manager's side is in `sys`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How often the service retries the outbox while events wait.
const REPORT_EVERY: Duration = Duration::from_secs(300);

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
pub fn work(stopping: &dyn Fn() -> bool) -> i32 {
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
