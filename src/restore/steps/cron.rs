//! Restore step for scheduled jobs: /etc/crontab jobs merged, cron.d and periodic scripts
//! installed, user crontabs put in the new OS's spool with the user's new owner ids.

use anyhow::Result;

use crate::restore::Loaded;
use crate::restore::apply::{Apply, Outcome};
use crate::restore::merge;
use crate::state::cron::PERIODIC;

pub fn cron(a: &Apply, l: &Loaded) -> Result<Outcome> {
    let tables = &l.state.cron;
    if tables.is_empty() {
        return Ok(Outcome::skipped("no cron tables"));
    }
    let mut warnings = Vec::new();
    let mut failures = Vec::new();
    let mut attention = Vec::new();
    let conflicts = super::accounts::conflicts(a, &l.state.users);
    let debian_spool = a.is_dir("/var/spool/cron/crontabs") || a.os().is_debian_like();
    let installed = [
        "/usr/sbin/cron",
        "/usr/sbin/crond",
        "/usr/bin/crond",
        "/usr/sbin/cronie",
    ]
    .iter()
    .any(|p| a.exists(p));
    if !installed {
        warnings.push(
            "no cron daemon is installed on the new OS: the jobs are in place for when it is"
                .into(),
        );
    }
    let mut vendor = 0;
    let mut done = 0;
    for t in tables {
        if t.vendor {
            vendor += 1;
            continue;
        }
        match t.kind.as_str() {
            "crontab" => {
                let current = a.read("/etc/crontab");
                let merged = merge::crontab(current.as_deref(), &t.content);
                a.rewrite("/etc/crontab", &merged)?;
                done += 1;
            }
            "cron.d" | "periodic" => {
                let prefixes: Vec<String> = std::iter::once("/etc/cron.d".to_string())
                    .chain(PERIODIC.iter().map(|p| p.to_string()))
                    .map(|p| format!("{p}/"))
                    .collect();
                let prefixes: Vec<&str> = prefixes.iter().map(String::as_str).collect();
                let path = super::safe_path(&t.path, &prefixes)?;
                a.install(path, t.content.as_bytes(), t.mode & 0o7777, Some((0, 0)))?;
                done += 1;
            }
            "user" => {
                let user = super::safe_name(t.user.as_deref().unwrap_or(""))?;
                if conflicts.iter().any(|c| c == user) {
                    // the jobs would run as the image's account of that name
                    attention.push(format!(
                        "crontab of the old {user} not installed: the new OS's {user} is another account"
                    ));
                    continue;
                }
                let Some(uid) = a.uid_of(user) else {
                    failures.push(format!(
                        "crontab of {user}: the user does not exist on the new OS"
                    ));
                    continue;
                };
                let (path, gid) = if debian_spool {
                    (
                        format!("/var/spool/cron/crontabs/{user}"),
                        a.gid_of("crontab").unwrap_or(0),
                    )
                } else {
                    (format!("/var/spool/cron/{user}"), 0)
                };
                if debian_spool {
                    a.mkdir(
                        "/var/spool/cron/crontabs",
                        0o1730,
                        Some((0, a.gid_of("crontab").unwrap_or(0))),
                    )?;
                }
                a.install(&path, t.content.as_bytes(), 0o600, Some((uid, gid)))?;
                done += 1;
            }
            other => warnings.push(format!(
                "{}: unknown cron kind {}; skipped",
                t.path,
                crate::units::quoted(other)
            )),
        }
    }
    let detail = format!("{done} tables ({vendor} belonging to packages left to them)");
    if !failures.is_empty() {
        let mut o = Outcome::failed(format!("{detail}; {}", failures.join("; ")));
        o.warnings = warnings;
        o.attention = attention;
        return Ok(o);
    }
    let mut o = a.finish(detail, warnings);
    o.attention = attention;
    Ok(o)
}
