//! `carryover inspect`: the system state of a root, as capture would record it.

use anyhow::Result;

use super::Ctx;
use super::output::{emit, field, list};
use crate::error::Exit;
use crate::state::{self, SystemState};

pub fn run(ctx: &Ctx) -> Result<Exit> {
    let (state, _secrets) = state::gather(&ctx.root, &ctx.config);
    emit(ctx.format, &state, || render(&state))?;
    Ok(if state.problems.is_empty() {
        Exit::Success
    } else {
        Exit::Degraded
    })
}

/// The human summary of a state.
pub fn render(s: &SystemState) -> String {
    let mut o = String::new();
    let id = &s.identity;
    field(&mut o, "hostname", &id.hostname);
    field(&mut o, "fqdn", id.fqdn.as_deref().unwrap_or("-"));
    field(
        &mut o,
        "instance id",
        format!(
            "{} ({})",
            id.instance_id.as_deref().unwrap_or("-"),
            id.instance_id_source.as_deref().unwrap_or("unknown")
        ),
    );
    field(
        &mut o,
        "os",
        id.os
            .pretty_name
            .clone()
            .unwrap_or_else(|| id.os.id.clone()),
    );
    field(&mut o, "kernel", id.kernel.as_deref().unwrap_or("-"));
    field(&mut o, "dns manager", &s.dns.manager);
    field(&mut o, "nameservers", list(&s.dns.nameservers));
    field(&mut o, "search", list(&s.dns.search));
    let hosts: Vec<String> = s
        .hosts
        .iter()
        .map(|h| format!("{} {}", h.address, h.names.join(" ")))
        .collect();
    field(&mut o, "hosts", list(&hosts));
    for m in &s.mounts {
        let role = if m.root {
            "root"
        } else if m.system {
            "system"
        } else if m.pseudo {
            "pseudo"
        } else {
            "data"
        };
        field(
            &mut o,
            "mount",
            format!("{} on {} ({}, {role})", m.spec, m.mountpoint, m.fstype),
        );
    }
    if s.disks.discovered {
        field(&mut o, "system disk", list(&s.disks.system_disks));
        field(&mut o, "data disks", list(&s.disks.data_disks));
        for d in s
            .disks
            .devices
            .iter()
            .filter(|d| d.fstype.is_some() || !d.mountpoints.is_empty())
        {
            let what = [d.fstype.as_deref(), d.uuid.as_deref(), d.label.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            let mounted = if d.mountpoints.is_empty() {
                String::new()
            } else {
                format!(" on {}", d.mountpoints.join(", "))
            };
            field(
                &mut o,
                "device",
                format!(
                    "{} ({}, {}) {what}{mounted}",
                    d.dm_name.as_deref().unwrap_or(&d.name),
                    crate::units::bytes(d.size_bytes),
                    d.disks.join("+")
                ),
            );
        }
    } else {
        field(&mut o, "disks", "not discovered (/sys/block unreadable)");
    }
    for vg in &s.lvm.volume_groups {
        let pvs: Vec<String> = vg
            .pvs
            .iter()
            .map(|p| format!("{}@{}", p.name, p.disks.join("+")))
            .collect();
        let lvs: Vec<&str> = vg.lvs.iter().map(|l| l.name.as_str()).collect();
        field(
            &mut o,
            "volume group",
            format!("{} pvs {} lvs {}", vg.name, list(&pvs), list(&lvs)),
        );
    }
    let users: Vec<String> = s
        .users
        .iter()
        .map(|u| format!("{}({})", u.name, u.uid))
        .collect();
    field(&mut o, "users", list(&users));
    let groups: Vec<String> = s
        .groups
        .iter()
        .map(|g| format!("{}({})", g.name, g.gid))
        .collect();
    field(&mut o, "groups", list(&groups));
    let enabled: Vec<&str> = s.services.enabled.iter().map(|e| e.unit.as_str()).collect();
    field(&mut o, "enabled units", list(&enabled));
    let files: Vec<&str> = s
        .services
        .unit_files
        .iter()
        .map(|f| f.path.as_str())
        .collect();
    field(&mut o, "unit files", list(&files));
    field(&mut o, "masked", list(&s.services.masked));
    let cron: Vec<&str> = s
        .cron
        .iter()
        .filter(|c| !c.vendor)
        .map(|c| c.path.as_str())
        .collect();
    field(&mut o, "cron", list(&cron));
    let keys: Vec<String> = s
        .ssh_host_keys
        .iter()
        .map(|k| format!("{} {}", k.key_type, k.fingerprint.as_deref().unwrap_or("?")))
        .collect();
    field(&mut o, "ssh host keys", list(&keys));
    let logins: Vec<String> = s
        .logins
        .authorized_keys
        .iter()
        .map(|k| format!("{}({})", k.user, k.keys.len()))
        .collect();
    field(&mut o, "authorized keys", list(&logins));
    let sshd: Vec<String> = s
        .sshd
        .settings
        .iter()
        .map(|x| format!("{} {}", x.key, x.value))
        .collect();
    field(&mut o, "sshd", list(&sshd));
    let mut sudo: Vec<String> = s
        .sudoers
        .files
        .iter()
        .map(|f| format!("/etc/sudoers.d/{}", f.name))
        .collect();
    if !s.sudoers.lines.is_empty() {
        sudo.push(format!("/etc/sudoers ({} lines)", s.sudoers.lines.len()));
    }
    field(&mut o, "sudoers", list(&sudo));
    let homes: Vec<String> = s
        .homes
        .iter()
        .map(|h| {
            let taken = if h.captured {
                "captured"
            } else {
                "NOT captured"
            };
            format!("{} ({}, {taken})", h.path, crate::units::bytes(h.bytes))
        })
        .collect();
    field(&mut o, "homes on system", list(&homes));
    field(&mut o, "timezone", s.timezone.as_deref().unwrap_or("-"));
    let ntp: Vec<&str> = s.ntp.servers.iter().map(|n| n.host.as_str()).collect();
    field(&mut o, "ntp", format!("{} ({})", list(&ntp), s.ntp.manager));
    let sysctl: Vec<&str> = s
        .sysctl
        .iter()
        .filter(|f| !f.vendor)
        .map(|f| f.path.as_str())
        .collect();
    field(&mut o, "sysctl", list(&sysctl));
    field(
        &mut o,
        "packages",
        format!("{} ({})", s.packages.names.len(), s.packages.manager),
    );
    let chosen: Vec<&str> = s
        .packages
        .chosen
        .iter()
        .flatten()
        .map(|p| p.name.as_str())
        .collect();
    field(
        &mut o,
        "packages chosen",
        match &s.packages.chosen {
            Some(_) => list(&chosen),
            None => "cannot tell (the package manager keeps no record of it)".into(),
        },
    );
    let repos: Vec<String> = s
        .repos
        .apt
        .iter()
        .map(|r| format!("{} {}", r.uris.join(" "), r.suites.join(" ")))
        .chain(s.repos.rpm.iter().map(|r| r.file.path.clone()))
        .collect();
    field(&mut o, "3rd-party repos", list(&repos));
    let configs: Vec<String> = s
        .configs
        .iter()
        .map(|c| {
            let from = c.package.as_deref().unwrap_or("no package");
            let private = if c.private { ", private" } else { "" };
            format!("{} ({from}{private})", c.file.path)
        })
        .collect();
    field(&mut o, "changed configs", list(&configs));
    let apps: Vec<String> = s
        .app_dirs
        .iter()
        .map(|d| {
            let db = d
                .database
                .as_ref()
                .map(|(k, p)| format!(", {k} data in {p}"))
                .unwrap_or_default();
            let taken = if d.captured {
                "captured"
            } else {
                "NOT captured"
            };
            format!(
                "{} ({} files, {}{db}, {taken})",
                d.path,
                d.files,
                crate::units::bytes(d.bytes)
            )
        })
        .collect();
    field(&mut o, "app files", list(&apps));
    let running: Vec<String> = s
        .baseline
        .services
        .iter()
        .cloned()
        .chain(s.baseline.listening.iter().map(|l| {
            format!(
                "{}/{} {}",
                l.proto,
                l.port,
                l.program.as_deref().unwrap_or("?")
            )
        }))
        .collect();
    field(
        &mut o,
        "running baseline",
        if s.baseline.taken {
            list(&running)
        } else {
            "not taken (not the live system)".into()
        },
    );
    for p in &s.problems {
        field(&mut o, "PROBLEM", format!("{}: {}", p.path, p.error));
    }
    o
}

#[cfg(test)]
mod tests {
    /// Every label fits the column, so the values line up (`snapshots show`, `inspect`).
    #[test]
    fn labels_fit_their_column() {
        let text = super::render(&crate::state::SystemState::default());
        for line in text.lines().filter(|l| !l.starts_with(' ')) {
            assert_eq!(
                line.as_bytes().get(16),
                Some(&b' '),
                "a label longer than the column: {line:?}"
            );
        }
    }
}
