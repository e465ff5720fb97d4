//! Restore steps for the rest of the system's settings: SSH host keys, timezone, NTP,
//! sysctl, and the live activation of all of it.

use anyhow::Result;

use crate::restore::apply::{Apply, Outcome, Status};
use crate::restore::merge;
use crate::restore::{Health, Loaded, StepReport};
use crate::state::clock::NtpSource;
use crate::state::services::UNIT_DIRS;
use crate::state::sysctl::SYSCTL_CONF_DROPIN;

pub fn ssh_host_keys(a: &Apply, l: &Loaded) -> Result<Outcome> {
    let keys = &l.secrets.ssh_host_keys;
    if keys.is_empty() {
        return Ok(Outcome::skipped("no SSH host keys were captured"));
    }
    let mut warnings = Vec::new();
    if !a.is_dir("/etc/ssh") {
        warnings.push(
            "OpenSSH is not installed on the new OS: the host keys are in place for when it is"
                .into(),
        );
        a.mkdir("/etc/ssh", 0o755, None)?;
    }
    for k in keys {
        let path = super::safe_path(&k.path, &["/etc/ssh/"])?;
        a.install(path, k.content.as_bytes(), 0o600, Some((0, 0)))?;
        if let Some(public) = l.state.ssh_host_keys.iter().find(|p| p.path == k.path)
            && !public.public.is_empty()
        {
            a.install(
                &format!("{path}.pub"),
                format!("{}\n", public.public).as_bytes(),
                0o644,
                Some((0, 0)),
            )?;
        }
    }
    let types: Vec<&str> = l
        .state
        .ssh_host_keys
        .iter()
        .map(|k| k.key_type.as_str())
        .collect();
    Ok(a.finish(types.join(", "), warnings))
}

/// Where the token goes when the old path is not in the new OS's config directory.
use crate::paths::TOKEN_FILE as DEFAULT_TOKEN_FILE;

pub fn report_token(a: &Apply, l: &Loaded) -> Result<Outcome> {
    let Some(t) = &l.secrets.report_token else {
        return Ok(Outcome::skipped("no orchestrator token was captured"));
    };
    let mut warnings = Vec::new();
    // below /etc/carryover, but never where a config drop-in or a hook would be read from
    let config_like = |p: &str| {
        p.ends_with(".toml")
            || p.starts_with(&format!("{}/config.d/", crate::paths::CONFIG_DIR))
            || p.starts_with(&format!("{}/", crate::paths::HOOKS_DIR))
    };
    let path = match super::safe_path(&t.path, &[&format!("{}/", crate::paths::CONFIG_DIR)]) {
        Ok(p) if !config_like(p) => p,
        _ => {
            warnings.push(format!(
                "the token was at {} on the old OS: written to {DEFAULT_TOKEN_FILE}",
                t.path
            ));
            DEFAULT_TOKEN_FILE
        }
    };
    if a.exists(path) {
        return Ok(a.finish(format!("{path} exists: kept the new OS's token"), warnings));
    }
    if t.token.is_empty() || t.token.contains(['\n', '\r', '\0']) {
        return Ok(Outcome::failed("the captured token is not a single line"));
    }
    a.mkdir(crate::paths::CONFIG_DIR, 0o700, Some((0, 0)))?;
    a.install(
        path,
        format!("{}\n", t.token).as_bytes(),
        0o600,
        Some((0, 0)),
    )?;
    Ok(a.finish(path.to_string(), warnings))
}

pub fn timezone(a: &Apply, l: &Loaded) -> Result<Outcome> {
    let Some(zone) = l.state.timezone.as_deref() else {
        return Ok(Outcome::skipped("no timezone was captured"));
    };
    let zone_path = format!("/usr/share/zoneinfo/{zone}");
    if super::safe_path(&zone_path, &["/usr/share/zoneinfo/"]).is_err() {
        return Ok(Outcome::failed(format!(
            "refusing the timezone {}",
            crate::units::quoted(zone)
        )));
    }
    if !a.root.follow(&zone_path).is_file() {
        return Ok(Outcome::failed(format!(
            "timezone {zone} is not installed on the new OS (install tzdata, then restore again)"
        )));
    }
    a.link("/etc/localtime", &format!("../usr/share/zoneinfo/{zone}"))?;
    if a.exists("/etc/timezone") || a.os().is_debian_like() {
        a.install("/etc/timezone", format!("{zone}\n").as_bytes(), 0o644, None)?;
    }
    Ok(a.finish(zone.to_string(), vec![]))
}

/// The enabled services whose configuration folder (`/etc/<name>/`, `-server`, `-fpm`
/// or a trailing `d` dropped: nginx, redis-server → /etc/redis, sshd → /etc/ssh) holds a
/// file the config-files step restored.
fn units_with_restored_config(a: &Apply, l: &Loaded) -> Vec<String> {
    let mut out = Vec::new();
    for e in &l.state.services.enabled {
        let Some(name) = e.unit.strip_suffix(".service") else {
            continue;
        };
        if name.contains('@') || !unit_installed(a, &e.unit) || out.contains(&e.unit) {
            continue;
        }
        let stems = [
            name,
            name.trim_end_matches("-server"),
            name.trim_end_matches("-fpm"),
            name.trim_end_matches('d'),
        ];
        let restored = l.state.configs.iter().any(|c| {
            stems
                .iter()
                .any(|s| !s.is_empty() && c.file.path.starts_with(&format!("/etc/{s}/")))
        });
        if restored {
            out.push(e.unit.clone());
        }
    }
    out
}

fn unit_installed(a: &Apply, unit: &str) -> bool {
    UNIT_DIRS
        .iter()
        .any(|d| a.root.follow(format!("{d}/{unit}")).is_file())
}

fn source_lines(servers: &[NtpSource]) -> Result<String> {
    let mut out = String::new();
    for s in servers {
        let ok = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_graphic());
        if !(s.kind == "server" || s.kind == "pool")
            || !ok(&s.host)
            || !s.options.iter().all(|o| ok(o))
        {
            anyhow::bail!("refusing the NTP source '{} {}'", s.kind, s.host);
        }
        out.push_str(&format!("{} {}", s.kind, s.host));
        for o in &s.options {
            out.push(' ');
            out.push_str(o);
        }
        out.push('\n');
    }
    Ok(out)
}

/// The time clients whose configuration the ntp step writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeClient {
    Chrony,
    Timesyncd,
    Ntpd,
}

impl TimeClient {
    /// In the order the step prefers them among those the new OS has.
    const ALL: [TimeClient; 3] = [TimeClient::Chrony, TimeClient::Timesyncd, TimeClient::Ntpd];

    fn name(self) -> &'static str {
        match self {
            TimeClient::Chrony => "chrony",
            TimeClient::Timesyncd => "systemd-timesyncd",
            TimeClient::Ntpd => "ntpd",
        }
    }

    /// The client of the old OS as the state names it (`Ntp::manager`).
    fn of_manager(manager: &str) -> Option<TimeClient> {
        match manager {
            "chrony" => Some(TimeClient::Chrony),
            "timesyncd" => Some(TimeClient::Timesyncd),
            "ntpd" => Some(TimeClient::Ntpd),
            _ => None,
        }
    }

    /// Its program or unit is on the new OS (a configuration file alone is not: it may be
    /// a leftover, or carryover's own from an earlier run).
    fn installed(self, a: &Apply) -> bool {
        let (units, programs): (&[&str], &[&str]) = match self {
            TimeClient::Chrony => (&["chronyd.service", "chrony.service"], &["chronyd"]),
            TimeClient::Timesyncd => (&["systemd-timesyncd.service"], &[]),
            TimeClient::Ntpd => (
                &["ntp.service", "ntpd.service", "ntpsec.service"],
                &["ntpd"],
            ),
        };
        units.iter().any(|u| unit_installed(a, u)) || a.has_tool(programs)
    }

    /// Writes the sources where this client reads them; returns the file.
    fn write(self, a: &Apply, servers: &[NtpSource], lines: &str) -> Result<String> {
        let first = |paths: [&'static str; 2]| paths.into_iter().find(|p| a.exists(p));
        match self {
            TimeClient::Chrony => {
                let conf = first(["/etc/chrony/chrony.conf", "/etc/chrony.conf"]);
                // Debian's chrony reads sources.d; the others have one chrony.conf
                if a.is_dir("/etc/chrony/sources.d") || (conf.is_none() && a.os().is_debian_like())
                {
                    let p = "/etc/chrony/sources.d/carryover.sources";
                    a.install(p, lines.as_bytes(), 0o644, None)?;
                    return Ok(p.into());
                }
                let conf = conf.unwrap_or("/etc/chrony.conf");
                let cur = a.read(conf).unwrap_or_default();
                a.rewrite(conf, &merge::ntp_sources(&cur, lines))?;
                Ok(conf.into())
            }
            TimeClient::Timesyncd => {
                let p = "/etc/systemd/timesyncd.conf.d/90-carryover.conf";
                let hosts: Vec<&str> = servers.iter().map(|s| s.host.as_str()).collect();
                let body = format!("# Written by carryover\n[Time]\nNTP={}\n", hosts.join(" "));
                a.install(p, body.as_bytes(), 0o644, None)?;
                Ok(p.into())
            }
            TimeClient::Ntpd => {
                let conf =
                    first(["/etc/ntpsec/ntp.conf", "/etc/ntp.conf"]).unwrap_or("/etc/ntp.conf");
                let cur = a.read(conf).unwrap_or_default();
                a.rewrite(conf, &merge::ntp_sources(&cur, lines))?;
                Ok(conf.into())
            }
        }
    }
}

/// The servers go to the time client the new OS has (chrony, then timesyncd, then ntpd);
/// with none installed, to the one the old OS used, for when it is installed.
pub fn ntp(a: &Apply, l: &Loaded) -> Result<Outcome> {
    let servers = &l.state.ntp.servers;
    if servers.is_empty() {
        return Ok(Outcome::skipped(
            "no NTP servers beyond the distribution's defaults",
        ));
    }
    let lines = source_lines(servers)?;
    let mut warnings = Vec::new();
    let client = match TimeClient::ALL.into_iter().find(|c| c.installed(a)) {
        Some(c) => c,
        None => {
            let old = TimeClient::of_manager(&l.state.ntp.manager);
            let c = old.unwrap_or(TimeClient::Chrony);
            warnings.push(format!(
                "no NTP client (chrony, systemd-timesyncd, ntpd) is installed on the new OS: the servers are written for {}, {}, for when it is installed",
                c.name(),
                if old.is_some() { "the old OS's client" } else { "the old OS's client being unknown" }
            ));
            c
        }
    };
    let path = client.write(a, servers, &lines)?;
    let hosts: Vec<&str> = servers.iter().map(|s| s.host.as_str()).collect();
    let mut detail = format!("{} via {} ({path})", hosts.join(", "), client.name());
    if !warnings.is_empty() {
        detail.push_str(&format!(
            ", written for {}, which is not installed yet",
            client.name()
        ));
    }
    Ok(a.finish(detail, warnings))
}

pub fn sysctl(a: &Apply, l: &Loaded) -> Result<Outcome> {
    let files = &l.state.sysctl;
    if files.is_empty() {
        return Ok(Outcome::skipped("no sysctl settings"));
    }
    let mut done = 0;
    let mut vendor = 0;
    for f in files {
        if f.vendor {
            vendor += 1;
            continue;
        }
        let path = if f.path == "/etc/sysctl.conf" {
            SYSCTL_CONF_DROPIN
        } else {
            super::safe_path(&f.path, &["/etc/sysctl.d/"])?
        };
        let merged = merge::sysctl(a.read(path).as_deref(), &f.content);
        a.rewrite(path, &merged)?;
        done += 1;
    }
    Ok(a.finish(
        format!("{done} files ({vendor} belonging to packages left to them)"),
        vec![],
    ))
}

/// On the live system only: make the restored files take effect now.
pub fn activate(a: &Apply, l: &Loaded) -> Result<Outcome> {
    if !a.root.is_live() {
        return Ok(Outcome::skipped("not the live system (--root is not /)"));
    }
    if a.dry_run {
        return Ok(Outcome::skipped("dry run"));
    }
    let mut warnings = Vec::new();
    let mut failures = Vec::new();
    let mut run = |what: &str, args: &[&str], fatal: bool| {
        if let Err(e) = crate::sys::run(args[0], &args[1..]) {
            if fatal {
                failures.push(format!("{what}: {e}"));
            } else {
                warnings.push(format!("{what}: {e}"));
            }
        }
    };
    run("reloading systemd", &["systemctl", "daemon-reload"], false);
    run("applying sysctl", &["sysctl", "--system"], false);
    let resolvers: Vec<&str> = ["systemd-resolved.service", "NetworkManager.service"]
        .into_iter()
        .filter(|u| unit_installed(a, u))
        .collect();
    if !resolvers.is_empty() {
        run(
            "restarting the resolver",
            &[&["systemctl", "try-restart"][..], &resolvers].concat(),
            false,
        );
    }
    run("mounting data disks", &["mount", "-a"], true);
    // the packages' services of the baseline that already run (the packages step started
    // them with the new OS's default configuration) restart to read what config-files put
    // back; custom units are the user's own and are only started below
    let vendor = |u: &String| {
        l.state
            .services
            .enabled
            .iter()
            .any(|e| &e.unit == u && e.origin != "custom")
    };
    let running: Vec<&str> = l
        .state
        .baseline
        .services
        .iter()
        .filter(|u| !u.contains('@') && vendor(u) && unit_installed(a, u))
        .map(String::as_str)
        .collect();
    if !running.is_empty() {
        run(
            "restarting the services to read their restored configuration",
            &[&["systemctl", "try-restart"][..], &running].concat(),
            false,
        );
    }
    // what was enabled starts now: the custom units (a failure fails the step) and the
    // packages' own units the old OS had enabled (the readiness check names those that
    // do not come up)
    for (unit, custom) in units_to_start(a, l) {
        run(
            &format!("starting {unit}"),
            &["systemctl", "start", "--no-block", unit],
            custom,
        );
    }
    // a service already running (the image had it, or it came up before its configuration
    // was restored) reads the restored configuration only when restarted
    for unit in units_with_restored_config(a, l) {
        run(
            &format!("restarting {unit} for its restored configuration"),
            &["systemctl", "try-restart", "--no-block", &unit],
            false,
        );
    }
    if !failures.is_empty() {
        let mut o = Outcome::failed(failures.join("; "));
        o.warnings = warnings;
        return Ok(o);
    }
    Ok(Outcome {
        status: Status::Changed,
        detail: "systemd reloaded, sysctl applied, data disks mounted, enabled units started"
            .into(),
        warnings,
        failed_files: Vec::new(),
        attention: Vec::new(),
        changes: Vec::new(),
    })
}

/// The units activate starts: those the old OS had enabled in `multi-user`, `default` or
/// `timers.target.wants` that the new OS has; true for the user's own (custom) ones.
fn units_to_start<'l>(a: &Apply, l: &'l Loaded) -> Vec<(&'l str, bool)> {
    l.state
        .services
        .enabled
        .iter()
        .filter(|e| {
            (e.dir == "multi-user.target.wants"
                || e.dir == "default.target.wants"
                || e.dir == "timers.target.wants")
                && unit_installed(a, &e.unit)
                && crate::state::services::UNIT_SUFFIXES
                    .iter()
                    .any(|s| e.unit.ends_with(&format!(".{s}")))
                && !e.unit.contains('@')
        })
        .map(|e| (e.unit.as_str(), e.origin == "custom"))
        .collect()
}

/// The activate step's health check. Activate runs on the live system only: elsewhere a
/// report that says it ran (from a forged journal) is not believed. On the live system,
/// every unit it starts that the readiness check does not wait for (readiness waits for
/// the old OS's active services) must have been started since boot — and a custom one
/// must not have failed, as the step itself fails then. Units still starting are waited
/// for up to `[restore] ready_timeout_seconds`.
pub fn activate_check(a: &Apply, l: &Loaded, done: &StepReport) -> (Health, String) {
    let claims_done = matches!(done.status, Status::Changed | Status::Unchanged);
    if !a.root.is_live() {
        if claims_done {
            return (
                Health::NotDone,
                format!(
                    "the step says {}, but it runs only on the live system (--root is not /)",
                    done.status.as_str()
                ),
            );
        }
        return (Health::AsRestored, done.detail.clone());
    }
    let baseline = &l.state.baseline;
    let units: Vec<(&str, bool)> = units_to_start(a, l)
        .into_iter()
        .filter(|(u, _)| !(baseline.taken && baseline.services.iter().any(|s| s == u)))
        .collect();
    if units.is_empty() {
        return (
            Health::AsRestored,
            "every unit it starts is one the readiness check waits for".into(),
        );
    }
    let names: Vec<&str> = units.iter().map(|(u, _)| *u).collect();
    let deadline = std::time::Instant::now() + a.options.ready_timeout;
    let bad = loop {
        let mut args = vec!["show", "--property", SHOW_PROPERTIES];
        args.extend_from_slice(&names);
        let shown = match crate::sys::run("systemctl", &args) {
            Ok(out) => parse_unit_states(&out),
            Err(e) => return (Health::RecheckFailed, format!("{e}")),
        };
        let bad: Vec<String> = units
            .iter()
            .zip(states_of(&shown, &names))
            .filter_map(|((u, custom), st)| match st {
                Some(s) if s.failed() && *custom => Some(format!("{u} failed")),
                Some(s) if s.started() => None,
                _ => Some(format!("{u} not started")),
            })
            .collect();
        if bad.is_empty() || std::time::Instant::now() >= deadline {
            break bad;
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    };
    if bad.is_empty() {
        (
            Health::AsRestored,
            format!(
                "{} started ({})",
                crate::units::count(names.len(), "unit"),
                names.join(", ")
            ),
        )
    } else {
        (
            Health::NotDone,
            format!(
                "the step says {}, but {}",
                done.status.as_str(),
                bad.join(", ")
            ),
        )
    }
}

/// What `systemctl show` is asked of each unit.
const SHOW_PROPERTIES: &str = "Id,Names,LoadState,ActiveState,ConditionTimestampMonotonic";

/// A unit's state as `systemctl show` tells it.
#[derive(Debug, PartialEq, Eq)]
struct UnitState {
    /// The unit's main name: an alias asked for (bind9.service) shows its unit's
    /// (named.service).
    id: String,
    /// Every name of the unit, aliases included.
    names: Vec<String>,
    active: String,
    /// When its start was last attempted (its conditions checked), in µs since boot; 0:
    /// never since boot.
    tried: u64,
    /// Masked on the new OS: it cannot be started, and the step said so in a warning.
    masked: bool,
}

impl UnitState {
    /// Started since boot: running, on its way, or tried (a oneshot that ran and exited,
    /// a unit whose condition did not hold) — or masked on the new OS (nothing can start
    /// it; the step named it in a warning).
    fn started(&self) -> bool {
        self.masked
            || matches!(
                self.active.as_str(),
                "active" | "activating" | "reloading" | "deactivating" | "failed"
            )
            || self.tried > 0
    }

    fn failed(&self) -> bool {
        self.active == "failed"
    }
}

/// The units of `systemctl show --property Id,ActiveState,…` (blocks of `key=value` lines
/// separated by a blank line, one a unit).
fn parse_unit_states(text: &str) -> Vec<UnitState> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut st = UnitState {
                id: String::new(),
                names: Vec::new(),
                active: String::new(),
                tried: 0,
                masked: false,
            };
            for line in block.lines() {
                match line.split_once('=') {
                    Some(("Id", v)) => st.id = v.to_string(),
                    Some(("Names", v)) => {
                        st.names = v.split_whitespace().map(str::to_string).collect()
                    }
                    Some(("ActiveState", v)) => st.active = v.to_string(),
                    Some(("LoadState", v)) => st.masked = v == "masked",
                    Some(("ConditionTimestampMonotonic", v)) => st.tried = v.parse().unwrap_or(0),
                    _ => {}
                }
            }
            (!st.id.is_empty()).then_some(st)
        })
        .collect()
}

/// The state of each unit asked for, in order: the block naming it (its `Id`, or one of
/// its `Names` for an alias), else the block at its place — `systemctl show` prints one
/// block per argument, in order.
fn states_of<'s>(states: &'s [UnitState], asked: &[&str]) -> Vec<Option<&'s UnitState>> {
    let one_each = states.len() == asked.len();
    asked
        .iter()
        .enumerate()
        .map(|(i, u)| {
            states
                .iter()
                .find(|s| s.id == *u || s.names.iter().any(|n| n == u))
                .or_else(|| one_each.then(|| &states[i]))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review #25 (E): `systemctl show bind9.service` answers with the unit's main name
    /// (named.service); the alias asked for must not read "not started".
    #[test]
    fn an_aliased_unit_is_found_by_its_place_or_its_names() {
        // what `systemctl show --property Id,Names,ActiveState,... bind9.service
        // cron.service gone.service` prints where bind9 is an alias of named (written
        // by hand in its shape, not captured)
        let out = "Id=named.service\nNames=named.service bind9.service\nActiveState=active\n\
ConditionTimestampMonotonic=8123456\n\n\
Id=cron.service\nNames=cron.service\nActiveState=active\nConditionTimestampMonotonic=7000000\n\n\
Id=gone.service\nNames=gone.service\nActiveState=inactive\nConditionTimestampMonotonic=0\n";
        let st = parse_unit_states(out);
        let asked = ["bind9.service", "cron.service", "gone.service"];
        let found = states_of(&st, &asked);
        assert!(found[0].is_some_and(|s| s.id == "named.service" && s.started()));
        assert!(found[1].is_some_and(|s| s.id == "cron.service"));
        assert!(found[2].is_some_and(|s| !s.started()));
        // without Names (an older systemd), by its place among the blocks
        let bare = out.replace("Names=named.service bind9.service\n", "");
        let st = parse_unit_states(&bare);
        assert_eq!(states_of(&st, &asked)[0].unwrap().id, "named.service");
        // blocks that do not line up with the arguments: only names count
        assert!(states_of(&st[1..], &asked)[0].is_none());
    }

    #[test]
    fn unit_states_tell_started_from_never_started() {
        let out = "Id=app.service\nActiveState=active\nConditionTimestampMonotonic=5123456\n\n\
Id=backup.service\nActiveState=inactive\nConditionTimestampMonotonic=6000000\n\n\
Id=never.service\nActiveState=inactive\nConditionTimestampMonotonic=0\n\n\
Id=broken.service\nActiveState=failed\nConditionTimestampMonotonic=7000000\n\n\
Id=apt-daily.timer\nLoadState=masked\nActiveState=inactive\nConditionTimestampMonotonic=0\n";
        let st = parse_unit_states(out);
        let get = |id: &str| st.iter().find(|s| s.id == id).unwrap();
        assert_eq!(st.len(), 5);
        assert!(get("app.service").started() && !get("app.service").failed());
        // a oneshot that ran and exited: tried since boot
        assert!(get("backup.service").started());
        // what a journal claims was started but never was
        assert!(!get("never.service").started());
        assert!(get("broken.service").failed());
        // regression (VM): an image that masks the apt timers the old OS had enabled; the
        // step warns that it cannot start them, and the check must not call that undone
        assert!(get("apt-daily.timer").started());
        assert!(parse_unit_states("").is_empty());
    }
}
