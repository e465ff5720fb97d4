//! Where carryover keeps its own files in the system it runs on, as in-root paths:
//! `/etc/carryover`, `/var/lib/carryover` and `/var/log/carryover` on Linux,
//! `C:\ProgramData\carryover` (with `state\` and `log\`) on Windows. One place, so the rest of the code never asks which OS it runs on.

#[cfg(not(windows))]
macro_rules! config_dir {
    () => {
        "/etc/carryover"
    };
}
#[cfg(windows)]
macro_rules! config_dir {
    () => {
        "/ProgramData/carryover"
    };
}
#[cfg(not(windows))]
macro_rules! state_dir {
    () => {
        "/var/lib/carryover"
    };
}
#[cfg(windows)]
macro_rules! state_dir {
    () => {
        "/ProgramData/carryover/state"
    };
}

#[cfg(not(windows))]
macro_rules! log_dir {
    () => {
        "/var/log/carryover"
    };
}
#[cfg(windows)]
macro_rules! log_dir {
    () => {
        "/ProgramData/carryover/log"
    };
}

/// The restore's log and its report on disk (root-only).
pub const LOG_DIR: &str = log_dir!();
/// The configuration directory (config.toml, config.d/, hooks/, the token).
pub const CONFIG_DIR: &str = config_dir!();
/// The main config file.
pub const CONFIG_FILE: &str = concat!(config_dir!(), "/config.toml");
/// The orchestrator's token when the config names none.
pub const TOKEN_FILE: &str = concat!(config_dir!(), "/token");
/// The operator's hooks, one `<phase>.d` directory each.
pub const HOOKS_DIR: &str = concat!(config_dir!(), "/hooks");
/// The agent's own record (root-only).
pub const STATE_DIR: &str = state_dir!();
/// The last capture and restore of this system.
pub const LOCAL_STATE: &str = concat!(state_dir!(), "/state.json");
/// Which hooks already ran for which snapshot.
pub const HOOKS_DONE: &str = concat!(state_dir!(), "/hooks-done");
/// Events waiting for the orchestrator.
pub const OUTBOX: &str = concat!(state_dir!(), "/outbox");
/// The files restore replaced, kept before it replaced them.
pub const BACKUP_DIR: &str = concat!(state_dir!(), "/backup");

/// True for a place that belongs to the operating system itself, where a data path would
/// carry the old OS over the new one (`/etc` whole, `/usr`, `/var/lib`, the package
/// databases, carryover's own state…): refused as a data path by `check` (a blocker) and
/// by restore (a snapshot that names one is refused). Application folders below them
/// (`/etc/nginx`, `/var/lib/postgresql`, `/usr/local/app`) are fine.
pub fn is_system_location(p: &str) -> bool {
    let p = p.trim_end_matches('/');
    const WHOLE: &[&str] = &[
        "",
        "/etc",
        "/usr",
        "/var",
        "/var/lib",
        "/bin",
        "/sbin",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/usr/local",
    ];
    const TREES: &[&str] = &[
        "/boot",
        "/proc",
        "/sys",
        "/dev",
        "/run",
        "/usr/bin",
        "/usr/sbin",
        "/usr/lib",
        "/usr/lib32",
        "/usr/lib64",
        "/usr/libexec",
        "/usr/share",
        "/usr/include",
        "/var/lib/dpkg",
        "/var/lib/rpm",
        "/var/lib/apt",
        "/var/lib/dnf",
        "/var/lib/yum",
        "/var/lib/systemd",
        STATE_DIR,
        CONFIG_DIR,
    ];
    WHOLE.contains(&p)
        || TREES
            .iter()
            .any(|t| p == *t || p.strip_prefix(t).is_some_and(|r| r.starts_with('/')))
}

/// The hosts file.
#[cfg(not(windows))]
pub const HOSTS_FILE: &str = "/etc/hosts";
/// The hosts file.
#[cfg(windows)]
pub const HOSTS_FILE: &str = "/Windows/System32/drivers/etc/hosts";
