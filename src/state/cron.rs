//! Scheduled jobs: /etc/crontab, /etc/cron.d, the periodic script folders and the users'
//! crontabs (Debian's /var/spool/cron/crontabs, Red Hat's /var/spool/cron).

use serde::{Deserialize, Serialize};

use super::Gather;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronTable {
    /// `crontab` (/etc/crontab), `cron.d`, `periodic` (cron.daily …) or `user`.
    pub kind: String,
    pub path: String,
    /// The owner of a user crontab.
    #[serde(default)]
    pub user: Option<String>,
    pub content: String,
    pub mode: u32,
    /// Owned by a package of the old OS: comes back with the package, not restored.
    #[serde(default)]
    pub vendor: bool,
}

pub const PERIODIC: &[&str] = &[
    "/etc/cron.hourly",
    "/etc/cron.daily",
    "/etc/cron.weekly",
    "/etc/cron.monthly",
];

/// The job lines of a crontab (not comments, blanks or `VAR=value`).
pub fn job_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim_end)
        .filter(|l| {
            let t = l.trim_start();
            !t.is_empty() && !t.starts_with('#') && !is_assignment(t)
        })
        .map(str::to_string)
        .collect()
}

/// `NAME=value`: sets the environment of the jobs below it.
pub fn is_assignment(l: &str) -> bool {
    match l.split_once('=') {
        Some((k, _)) => {
            let k = k.trim();
            !k.is_empty() && !k.contains(char::is_whitespace)
        }
        None => false,
    }
}

pub fn gather(g: &Gather) -> Vec<CronTable> {
    let mut prefixes = vec!["/etc/cron.d/"];
    let periodic_prefixes: Vec<String> = PERIODIC.iter().map(|p| format!("{p}/")).collect();
    prefixes.extend(periodic_prefixes.iter().map(String::as_str));
    let vendor = super::packages::dpkg_owned(g, &prefixes);
    let mut out = Vec::new();
    let mut push = |kind: &str, host: &std::path::Path, user: Option<String>| {
        let Ok(meta) = std::fs::symlink_metadata(host) else {
            return;
        };
        if !meta.is_file() {
            return;
        }
        let name = host.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with('.') || name == "placeholder" {
            return;
        }
        let inner = g.inner(host).display().to_string();
        if let Some(content) = g.read(&inner) {
            out.push(CronTable {
                kind: kind.into(),
                vendor: vendor.contains(&inner),
                path: inner,
                user,
                content,
                mode: crate::sys::mode_of(&meta),
            });
        }
    };
    push("crontab", &g.root.follow("/etc/crontab"), None);
    for f in g.list("/etc/cron.d") {
        push("cron.d", &f, None);
    }
    for dir in PERIODIC {
        for f in g.list(dir) {
            push("periodic", &f, None);
        }
    }
    let debian_spool = g.list("/var/spool/cron/crontabs");
    for f in &debian_spool {
        let user = f.file_name().map(|n| n.to_string_lossy().to_string());
        push("user", f, user);
    }
    for f in g.list("/var/spool/cron") {
        if f.is_file() {
            let user = f.file_name().map(|n| n.to_string_lossy().to_string());
            push("user", &f, user);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_only() {
        let t = "# m h dom mon dow command\nSHELL=/bin/sh\nMAILTO=\"\"\n*/5 * * * * /usr/local/bin/backup.sh\n@reboot root /opt/app/start\n";
        assert_eq!(
            job_lines(t),
            vec![
                "*/5 * * * * /usr/local/bin/backup.sh",
                "@reboot root /opt/app/start"
            ]
        );
    }
}
