//! The restore plan of a Windows target: the settings a Windows server keeps in its
//! registry and managers (computer name, DNS per adapter, accounts, time zone, time
//! service, services) set through them, from a Windows snapshot or — where the idea is
//! the same — from a Linux one; the hosts file, the token and the data as on Linux.

use anyhow::Result;

use super::{Section, StepDef, Verify};
use crate::restore::Loaded;
use crate::restore::apply::{Apply, Outcome};
use crate::state::windows::{self as ws, BUILTIN_USERS, WinNtp};
use crate::sys::win;

/// The plan, in the order it runs.
pub const STEPS: &[StepDef] = &[
    super::REPORT_TOKEN,
    StepDef {
        name: "hostname",
        about: "set the computer name (in effect after the next boot)",
        needs: &[Section::Identity],
        run: hostname,
        verify: Verify::DryRun,
    },
    super::HOSTS,
    StepDef {
        name: "dns",
        about: "set each adapter's DNS servers and suffix (found again by MAC) and the search list",
        needs: &[Section::Dns, Section::Windows],
        run: dns,
        verify: Verify::DryRun,
    },
    StepDef {
        name: "accounts",
        about: "recreate local users (without passwords) and groups with their members",
        needs: &[Section::Windows],
        run: accounts,
        verify: Verify::DryRun,
    },
    StepDef {
        name: "timezone",
        about: "set the time zone",
        needs: &[Section::Windows],
        run: timezone,
        verify: Verify::DryRun,
    },
    StepDef {
        name: "ntp",
        about: "point the Windows Time service at the old time servers",
        needs: &[Section::Ntp, Section::Windows],
        run: ntp,
        verify: Verify::DryRun,
    },
    super::DATA,
    StepDef {
        name: "services",
        about: "set services' start types again and register services whose programs survived",
        needs: &[Section::Windows],
        run: services,
        verify: Verify::DryRun,
    },
];

/// Windows settings live in the running system, not in a directory tree.
fn not_live(a: &Apply) -> Option<Outcome> {
    (!a.root.is_live()).then(|| {
        Outcome::skipped(
            "a Windows setting: applied only to the running system (--root of a drive)",
        )
    })
}

fn hostname(a: &Apply, l: &Loaded) -> Result<Outcome> {
    if let Some(o) = not_live(a) {
        return Ok(o);
    }
    let name = l.state.identity.hostname.trim();
    let name = name.split('.').next().unwrap_or(name);
    if name.is_empty() {
        return Ok(Outcome::skipped("the snapshot has no hostname"));
    }
    if name.len() > 63
        || name.starts_with('-')
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Ok(Outcome::failed(format!(
            "refusing the computer name {}: not a valid host name",
            crate::units::quoted(name)
        )));
    }
    let mut warnings = Vec::new();
    if !win::pending_hostname().eq_ignore_ascii_case(name) {
        a.mark_changed();
        if !a.dry_run {
            crate::sys::set_live_hostname(name)?;
        }
    }
    if !win::computer().dns_hostname.eq_ignore_ascii_case(name) {
        warnings.push(format!(
            "the computer is renamed {name} at its next restart"
        ));
    }
    if name.len() > 15 {
        warnings.push(format!(
            "'{name}' is longer than 15 characters: its NetBIOS name is cut short"
        ));
    }
    Ok(a.finish(format!("computer name {name}"), warnings))
}

/// Addresses a Linux stub resolver listens on: meaningless on Windows.
fn is_local_resolver(s: &str) -> bool {
    s.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

fn dns(a: &Apply, l: &Loaded) -> Result<Outcome> {
    if let Some(o) = not_live(a) {
        return Ok(o);
    }
    let mut done = Vec::new();
    let mut warnings = Vec::new();
    let set = |mac: &str, name: &str, servers: &[String], suffix: Option<&str>| -> Result<()> {
        a.mark_changed();
        if !a.dry_run {
            win::set_adapter_dns(mac, name, servers, suffix)?;
        }
        Ok(())
    };
    let search_wanted;
    if let Some(w) = l.state.windows.as_ref().filter(|w| !w.dns.is_empty()) {
        for ad in &w.dns {
            if ad.static_servers.is_empty() && ad.static_suffix.is_none() {
                continue; // DHCP's: the new OS gets the same from DHCP
            }
            let Some(cur) = win::adapter_static_dns(&ad.mac, &ad.adapter)? else {
                warnings.push(format!(
                    "no adapter {} ({}) on this system: its DNS servers {} were not set",
                    ad.adapter,
                    ad.mac,
                    ad.static_servers.join(", ")
                ));
                continue;
            };
            let suffix_differs =
                ad.static_suffix.is_some() && cur.static_suffix != ad.static_suffix;
            if cur.static_servers != ad.static_servers || suffix_differs {
                set(
                    &ad.mac,
                    &ad.adapter,
                    &ad.static_servers,
                    ad.static_suffix.as_deref(),
                )?;
            }
            done.push(format!("{}: {}", cur.adapter, ad.static_servers.join(", ")));
        }
        search_wanted = w.search_list.clone();
    } else {
        // A Linux snapshot: its resolvers for every adapter that does not already use them.
        let ns: Vec<String> = l
            .state
            .dns
            .nameservers
            .iter()
            .filter(|s| !is_local_resolver(s))
            .cloned()
            .collect();
        if !ns.is_empty() {
            for ad in win::physical_adapters()? {
                if ad.servers != ns && ad.static_servers != ns {
                    set(&ad.mac, &ad.adapter, &ns, None)?;
                }
                done.push(format!("{}: {}", ad.adapter, ns.join(", ")));
            }
        }
        search_wanted = l.state.dns.search.clone();
    }
    if !search_wanted.is_empty() && win::search_list()? != search_wanted {
        a.mark_changed();
        if !a.dry_run {
            win::set_search_list(&search_wanted)?;
        }
    }
    if !search_wanted.is_empty() {
        done.push(format!("search {}", search_wanted.join(",")));
    }
    if done.is_empty() {
        return Ok(Outcome::skipped("no DNS settings beyond what DHCP gives"));
    }
    Ok(a.finish(done.join("; "), warnings))
}

fn accounts(a: &Apply, l: &Loaded) -> Result<Outcome> {
    if let Some(o) = not_live(a) {
        return Ok(o);
    }
    let Some(w) = &l.state.windows else {
        return Ok(Outcome::skipped(
            "a Linux snapshot: its accounts have no Windows counterpart",
        ));
    };
    let have: Vec<String> = win::users()?.into_iter().map(|u| u.name).collect();
    let mut created = Vec::new();
    for u in &w.users {
        let builtin = BUILTIN_USERS
            .iter()
            .any(|b| b.eq_ignore_ascii_case(&u.name));
        if builtin || have.iter().any(|h| h.eq_ignore_ascii_case(&u.name)) {
            continue;
        }
        a.mark_changed();
        if !a.dry_run {
            win::add_user(u)?;
        }
        created.push(u.name.clone());
    }
    let old_computer = &w.computer.netbios_name;
    let groups_now: Vec<String> = win::groups()?.into_iter().map(|g| g.name).collect();
    let mut memberships = 0;
    for g in &w.groups {
        let exists = groups_now.iter().any(|h| h.eq_ignore_ascii_case(&g.name));
        if !exists {
            a.mark_changed();
            if !a.dry_run {
                win::add_group(g)?;
            }
        }
        let now = if exists {
            win::group_members(&g.name)?
        } else {
            Vec::new()
        };
        for m in &g.members {
            // an account of the old computer is the same-named account of this one
            let (domain, name) = m.split_once('\\').unwrap_or(("", m));
            let member = if domain.eq_ignore_ascii_case(old_computer) {
                name
            } else {
                m.as_str()
            };
            let present = now.iter().any(|x| {
                let (_, n) = x.split_once('\\').unwrap_or(("", x));
                x.eq_ignore_ascii_case(m) || (member == name && n.eq_ignore_ascii_case(name))
            });
            if present {
                continue;
            }
            a.mark_changed();
            if !a.dry_run {
                win::add_group_member(&g.name, member)?;
            }
            memberships += 1;
        }
    }
    let mut warnings = Vec::new();
    if !created.is_empty() {
        warnings.push(format!(
            "passwords are not carried over: set them for {} (net user NAME *)",
            created.join(", ")
        ));
    }
    Ok(a.finish(
        format!(
            "{} users, {} groups checked; {} users created, {memberships} memberships added",
            w.users.len(),
            w.groups.len(),
            created.len()
        ),
        warnings,
    ))
}

fn timezone(a: &Apply, l: &Loaded) -> Result<Outcome> {
    if let Some(o) = not_live(a) {
        return Ok(o);
    }
    let from_windows = l.state.windows.as_ref().and_then(|w| w.timezone.clone());
    let want = match (from_windows, l.state.timezone.as_deref()) {
        (Some(w), _) => w,
        (None, Some(iana)) => match ws::windows_zone(iana) {
            Some(w) => w.to_string(),
            None => {
                return Ok(Outcome::failed(format!(
                    "the time zone {iana} has no Windows counterpart carryover knows: set it by hand"
                )));
            }
        },
        (None, None) => return Ok(Outcome::skipped("no time zone was captured")),
    };
    if !win::timezone_known(&want) {
        return Ok(Outcome::failed(format!(
            "Windows has no time zone {}",
            crate::units::quoted(&want)
        )));
    }
    if win::timezone()?.as_deref() != Some(want.as_str()) {
        a.mark_changed();
        if !a.dry_run {
            win::set_timezone(&want)?;
        }
    }
    Ok(a.finish(want, vec![]))
}

fn ntp(a: &Apply, l: &Loaded) -> Result<Outcome> {
    if let Some(o) = not_live(a) {
        return Ok(o);
    }
    let want = match l.state.windows.as_ref().and_then(|w| w.ntp.clone()) {
        Some(n) => n,
        None if !l.state.ntp.servers.is_empty() => {
            let hosts: Vec<&str> = l
                .state
                .ntp
                .servers
                .iter()
                .map(|s| s.host.as_str())
                .collect();
            WinNtp {
                server: ws::ntp_server_value(&hosts),
                kind: "NTP".into(),
            }
        }
        None => {
            return Ok(Outcome::skipped("no NTP servers beyond the defaults"));
        }
    };
    let cur = win::ntp()?.unwrap_or_default();
    if cur.server != want.server || (!want.kind.is_empty() && cur.kind != want.kind) {
        a.mark_changed();
        if !a.dry_run {
            win::set_ntp(&want)?;
        }
    }
    Ok(a.finish(format!("{} ({})", want.server, want.kind), vec![]))
}

/// The program of a service's command line (`"C:\a b\x.exe" -k` → `C:\a b\x.exe`).
fn program_of(binary_path: &str) -> &str {
    let s = binary_path.trim();
    if let Some(rest) = s.strip_prefix('"') {
        return rest.split('"').next().unwrap_or(rest);
    }
    match s.to_ascii_lowercase().find(".exe") {
        Some(i) => &s[..i + 4],
        None => s.split_whitespace().next().unwrap_or(s),
    }
}

fn services(a: &Apply, l: &Loaded) -> Result<Outcome> {
    if let Some(o) = not_live(a) {
        return Ok(o);
    }
    let Some(w) = &l.state.windows else {
        return Ok(Outcome::skipped(
            "a Linux snapshot: its systemd units have no Windows counterpart",
        ));
    };
    let (mut retyped, mut created, mut warnings) = (0, Vec::new(), Vec::new());
    for s in &w.services {
        if !matches!(s.start_type.as_str(), "auto" | "demand" | "disabled") {
            continue;
        }
        match win::start_type_of(&s.name)? {
            Some(cur) if cur == s.start_type => {}
            Some(_) => {
                a.mark_changed();
                if !a.dry_run {
                    win::set_start_type(&s.name, &s.start_type)?;
                }
                retyped += 1;
            }
            None => {
                let program = program_of(&s.binary_path);
                if !std::path::Path::new(program).is_file() {
                    if s.start_type == "auto" {
                        warnings.push(format!(
                            "{} was not registered again: its program {program} is not on this system",
                            s.name
                        ));
                    }
                    continue;
                }
                a.mark_changed();
                if !a.dry_run {
                    win::create_service(s)?;
                    if s.running && s.start_type == "auto" {
                        if let Err(e) = win::start_service(&s.name) {
                            warnings.push(format!("{} registered but did not start: {e}", s.name));
                        }
                    }
                }
                let builtin = ["", "LocalSystem"];
                if !builtin.contains(&s.account.as_str())
                    && !s.account.to_ascii_uppercase().starts_with("NT AUTHORITY\\")
                {
                    warnings.push(format!(
                        "{} runs as {}: set its password (sc config {} password= …)",
                        s.name, s.account, s.name
                    ));
                }
                created.push(s.name.clone());
            }
        }
    }
    let mut detail = format!("{retyped} start types set");
    if !created.is_empty() {
        detail.push_str(&format!("; registered again: {}", created.join(", ")));
    }
    Ok(a.finish(detail, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_of_service_command_lines() {
        assert_eq!(
            program_of(r#""C:\Program Files\App\app.exe" -k run"#),
            r"C:\Program Files\App\app.exe"
        );
        assert_eq!(
            program_of(r"D:\svc\agent.EXE --service"),
            r"D:\svc\agent.EXE"
        );
        assert_eq!(
            program_of(r"C:\Windows\system32\svchost.exe -k netsvcs"),
            r"C:\Windows\system32\svchost.exe"
        );
    }
}
