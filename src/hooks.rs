//! Operator hooks: the executables in `<root>/etc/carryover/hooks/<phase>.d/`, run in
//! name order around capture and restore (quiesce a database before the snapshot, warm a
//! cache after the restore), each with a timeout, once per snapshot and phase.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::sys::Root;

pub use crate::paths::HOOKS_DIR;
use crate::paths::HOOKS_DONE as DONE_DIR;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    PreCapture,
    PostCapture,
    PreRestore,
    PostRestore,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::PreCapture => "pre-capture",
            Phase::PostCapture => "post-capture",
            Phase::PreRestore => "pre-restore",
            Phase::PostRestore => "post-restore",
        }
    }
}

/// What the hooks learn about the run.
pub struct HookEnv<'a> {
    pub root: &'a Root,
    pub snapshot_id: &'a str,
    pub store: &'a str,
    pub timeout: Duration,
}

/// The executables of a phase, in name order (non-executables and dotfiles skipped).
pub fn list(root: &Root, phase: Phase) -> Vec<PathBuf> {
    let dir = root.follow(format!("{HOOKS_DIR}/{}.d", phase.name()));
    let mut out: Vec<PathBuf> = crate::sys::list_dir(&dir)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            !name.starts_with('.') && crate::sys::hook_command(p).is_some()
        })
        .collect();
    out.sort();
    out
}

/// Runs the hooks of a phase unless they already ran for this snapshot. The first that
/// fails or times out stops the phase with an error naming it and its output.
pub fn run(phase: Phase, env: &HookEnv) -> Result<usize> {
    let hooks = list(env.root, phase);
    if hooks.is_empty() {
        return Ok(0);
    }
    let marker = env
        .root
        .path(format!("{DONE_DIR}/{}.{}", env.snapshot_id, phase.name()));
    if marker.exists() {
        tracing::info!(
            "{} hooks already ran for snapshot {}",
            phase.name(),
            env.snapshot_id
        );
        return Ok(0);
    }
    for hook in &hooks {
        run_one(hook, phase, env)?;
    }
    if let Some(dir) = marker.parent() {
        crate::sys::create_dirs(dir, 0o700)?;
    }
    crate::sys::write_atomic(&marker, b"", 0o600)?;
    Ok(hooks.len())
}

fn run_one(hook: &Path, phase: Phase, env: &HookEnv) -> Result<()> {
    let name = env.root.inner(hook).display().to_string();
    tracing::info!("running the {} hook {name}", phase.name());
    for p in [Some(hook), hook.parent()].into_iter().flatten() {
        if let Some(why) = crate::sys::untrusted(p) {
            bail!(
                "the {} hook {name} is refused: {why} (as sshd refuses such files)",
                phase.name()
            );
        }
    }
    let mut cmd = crate::sys::hook_command(hook)
        .with_context(|| format!("the hook {name} is no longer runnable"))?;
    crate::sys::clean_env(&mut cmd);
    cmd.env("CARRYOVER_PHASE", phase.name())
        .env("CARRYOVER_SNAPSHOT_ID", env.snapshot_id)
        .env("CARRYOVER_ROOT", env.root.dir())
        .env("CARRYOVER_STORE", env.store)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    crate::sys::own_process_group(&mut cmd);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting the hook {name}"))?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut o = Vec::new();
        let _ = out.read_to_end(&mut o);
        o
    });
    let ereader = std::thread::spawn(move || {
        let mut e = Vec::new();
        let _ = err.read_to_end(&mut e);
        e
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if start.elapsed() >= env.timeout {
            crate::sys::kill_group(child.id());
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = String::from_utf8_lossy(&reader.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&ereader.join().unwrap_or_default()).into_owned();
    for line in stdout.lines().chain(stderr.lines()) {
        tracing::info!("hook {name}: {line}");
    }
    let tail: String = stderr
        .lines()
        .rev()
        .take(5)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join(" | ");
    match status {
        None => bail!(
            "the {} hook {name} did not finish within {} s and was killed",
            phase.name(),
            env.timeout.as_secs()
        ),
        Some(st) if !st.success() => bail!(
            "the {} hook {name} failed ({st}){}",
            phase.name(),
            if tail.is_empty() {
                String::new()
            } else {
                format!(": {tail}")
            }
        ),
        Some(_) => Ok(()),
    }
}
