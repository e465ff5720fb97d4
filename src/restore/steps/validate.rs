//! Configuration is checked by the program that reads it before it is put in place
//! (`sshd -t`, `visudo -c`): a broken sshd drop-in locks everyone out at the next reload,
//! a broken sudoers file breaks sudo for everyone. On the live system the new OS's own
//! program checks it; on a directory tree this machine's, when it has one and can check
//! the file alone (`visudo -cf`; `sshd -t` checks a whole live system), else nothing —
//! and the step says which.

use std::path::{Path, PathBuf};

use crate::restore::apply::Apply;

/// How a check went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Checked; the text says with what.
    Passed(String),
    /// The program refused it; its message.
    Failed(String),
    /// Not checked; why.
    NotRun(String),
}

const BIN_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// Writes the `files` (name → content; given the private directory they go in, so one
/// can name another) into a fresh private directory and runs `program` with the
/// arguments `args(paths)` gives for them — on a directory tree only when `on_trees`.
/// `shown` replaces each temporary path in the program's message (the file's real place).
pub fn check(
    a: &Apply,
    program: &str,
    on_trees: bool,
    files: impl Fn(&Path) -> Vec<(&'static str, String)>,
    shown: &[&str],
    args: impl Fn(&[PathBuf]) -> Vec<String>,
) -> Checked {
    let live = a.root.is_live();
    if !live && !on_trees {
        return Checked::NotRun(format!(
            "not checked: {program} checks the live system, not a directory tree"
        ));
    }
    let found = BIN_DIRS
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file());
    let Some(exe) = found else {
        return Checked::NotRun(if live {
            format!("not checked: {program} is not installed")
        } else {
            format!("not checked: {program} is not on this machine (a directory tree)")
        });
    };
    let dir = match private_dir() {
        Ok(d) => d,
        Err(e) => return Checked::NotRun(format!("not checked: {e}")),
    };
    let result = (|| -> std::io::Result<Checked> {
        let mut paths = Vec::new();
        for (name, content) in files(&dir) {
            let p = dir.join(name);
            let mut f = crate::sys::create_new_nofollow(&p, 0o600)?;
            std::io::Write::write_all(&mut f, content.as_bytes())?;
            crate::sys::set_mode(&p, 0o440)?;
            paths.push(p);
        }
        let argv = args(&paths);
        let out = std::process::Command::new(&exe).args(&argv).output()?;
        let how = format!("checked with {program} {}", argv[0]);
        if out.status.success() {
            return Ok(Checked::Passed(how));
        }
        let mut msg = String::from_utf8_lossy(&out.stderr).into_owned();
        msg.push_str(&String::from_utf8_lossy(&out.stdout));
        for (p, real) in paths.iter().zip(shown) {
            msg = msg.replace(&p.display().to_string(), real);
        }
        let msg: Vec<&str> = msg
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(5)
            .collect();
        Ok(Checked::Failed(format!(
            "{program} refused it: {}",
            msg.join("; ")
        )))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result.unwrap_or_else(|e| Checked::NotRun(format!("not checked: running {program}: {e}")))
}

/// A new directory only root can enter, for the files under check.
fn private_dir() -> std::io::Result<PathBuf> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "carryover-check-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    // 0700 from the start (not the umask's mode, then a chmod by name)
    crate::sys::mkdir_mode(&dir, 0o700)?;
    Ok(dir)
}
