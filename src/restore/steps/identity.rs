//! Restore steps for who the server is: the cloud-init guard, the hostname and /etc/hosts.

use anyhow::Result;

use crate::restore::Loaded;
use crate::restore::apply::{Apply, Outcome};
use crate::state::hosts as hosts_file;

/// The drop-in that keeps cloud-init's first boot from undoing the restore.
pub const CLOUD_INIT_DROPIN: &str = "/etc/cloud/cloud.cfg.d/99-carryover.cfg";

pub fn cloud_init_guard(a: &Apply, _l: &Loaded) -> Result<Outcome> {
    if !a.is_dir("/etc/cloud") {
        return Ok(Outcome::skipped(
            "cloud-init is not installed on the new OS",
        ));
    }
    let body = "# Written by carryover: keep what it restored from the old OS.\n\
                preserve_hostname: true\n\
                manage_etc_hosts: false\n\
                ssh_deletekeys: false\n";
    a.install(CLOUD_INIT_DROPIN, body.as_bytes(), 0o644, None)?;
    Ok(a.finish(
        format!(
            "{CLOUD_INIT_DROPIN}: preserve_hostname, manage_etc_hosts: false, ssh_deletekeys: false"
        ),
        vec![],
    ))
}

pub fn hostname(a: &Apply, l: &Loaded) -> Result<Outcome> {
    let name = l.state.identity.hostname.trim();
    if name.is_empty() {
        return Ok(Outcome::skipped("the snapshot has no hostname"));
    }
    if name.len() > 253
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Ok(Outcome::failed(format!(
            "refusing the hostname {}: not a valid host name",
            crate::units::quoted(name)
        )));
    }
    a.install("/etc/hostname", format!("{name}\n").as_bytes(), 0o644, None)?;
    if a.root.is_live() && !a.dry_run {
        crate::sys::set_live_hostname(name)?;
    }
    Ok(a.finish(format!("hostname {name}"), vec![]))
}

pub fn hosts(a: &Apply, l: &Loaded) -> Result<Outcome> {
    if l.state.hosts.is_empty() {
        return Ok(Outcome::skipped(
            "no /etc/hosts entries beyond the defaults",
        ));
    }
    if let Some(why) = l.state.hosts.iter().find_map(hosts_file::refused) {
        return Ok(Outcome::failed(why));
    }
    let current = a.read(crate::paths::HOSTS_FILE).unwrap_or_default();
    let merged = hosts_file::merge(&current, &l.state.hosts, &image_hostname(a));
    a.rewrite(crate::paths::HOSTS_FILE, &merged)?;
    Ok(a.finish(format!("{} entries", l.state.hosts.len()), vec![]))
}

/// The new OS's hostname before the restore set its own: the copy the hostname step kept
/// of /etc/hostname, else the file as it is.
fn image_hostname(a: &Apply) -> String {
    // the original, never a dry run's planned name
    a.original("/etc/hostname")
        .map(|t| t.trim().to_string())
        .unwrap_or_default()
}
