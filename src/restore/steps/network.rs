//! Restore step for name resolution: the captured DNS servers and search domains written
//! through the resolver manager the new OS actually uses.

use anyhow::Result;

use crate::restore::Loaded;
use crate::restore::apply::{Apply, Outcome};
use crate::restore::merge::set_block;
use crate::state::{dns, grammar};

pub const RESOLVED_DROPIN: &str = "/etc/systemd/resolved.conf.d/90-carryover.conf";
pub const NM_DROPIN: &str = "/etc/NetworkManager/conf.d/90-carryover-dns.conf";

/// Which manager is in charge of resolv.conf on the new OS.
pub fn new_os_manager(a: &Apply) -> String {
    let link = std::fs::read_link(a.root.path("/etc/resolv.conf"))
        .ok()
        .map(|p| p.display().to_string());
    let text = a.read("/etc/resolv.conf");
    let m = dns::manager_of(link.as_deref(), text.as_deref());
    if m == "file" || m == "none" {
        let enabled = |unit: &str| {
            [
                "multi-user.target.wants",
                "sysinit.target.wants",
                "network-online.target.wants",
            ]
            .iter()
            .any(|d| a.exists(&format!("/etc/systemd/system/{d}/{unit}")))
        };
        if enabled("systemd-resolved.service") {
            return "systemd-resolved".into();
        }
        if enabled("NetworkManager.service") {
            return "NetworkManager".into();
        }
    }
    m.to_string()
}

pub fn dns(a: &Apply, l: &Loaded) -> Result<Outcome> {
    let d = &l.state.dns;
    // each value parsed as what it is (they go into resolv.conf, resolved and
    // NetworkManager drop-ins and quoted into dhclient.conf)
    let bad = |what: &str, v: &String| {
        Some(Outcome::failed(format!(
            "refusing the {what} '{}': not {}",
            v.escape_debug(),
            match what {
                "nameserver" => "an IP address",
                "search domain" => "a domain name",
                _ => "a resolver option (`name` or `name:number`)",
            }
        )))
    };
    let refused = (d.nameservers.iter())
        .filter(|n| !grammar::address(n))
        .find_map(|n| bad("nameserver", n))
        .or_else(|| {
            (d.search.iter())
                .filter(|s| !grammar::domain(s))
                .find_map(|s| bad("search domain", s))
        })
        .or_else(|| {
            (d.options.iter())
                .filter(|o| !grammar::resolver_option(o))
                .find_map(|o| bad("option", o))
        });
    if let Some(o) = refused {
        return Ok(o);
    }
    if d.nameservers.is_empty() && d.search.is_empty() {
        return Ok(Outcome::skipped(
            "no DNS servers or search domains were captured",
        ));
    }
    let manager = new_os_manager(a);
    let mut warnings = Vec::new();
    let where_ = match manager.as_str() {
        "systemd-resolved" => {
            let mut body = String::from(
                "# Written by carryover: DNS of the server before its OS was changed.\n[Resolve]\n",
            );
            if !d.nameservers.is_empty() {
                body.push_str(&format!("DNS={}\n", d.nameservers.join(" ")));
            }
            if !d.search.is_empty() {
                body.push_str(&format!("Domains={}\n", d.search.join(" ")));
            }
            if !d.options.is_empty() {
                warnings.push(format!(
                    "resolv.conf options '{}' have no systemd-resolved equivalent: not carried",
                    d.options.join(" ")
                ));
            }
            a.install(RESOLVED_DROPIN, body.as_bytes(), 0o644, None)?;
            RESOLVED_DROPIN.to_string()
        }
        "NetworkManager" => {
            let mut body = String::from(
                "# Written by carryover: DNS of the server before its OS was changed.\n[global-dns]\n",
            );
            if !d.search.is_empty() {
                body.push_str(&format!("searches={}\n", d.search.join(",")));
            }
            if !d.options.is_empty() {
                body.push_str(&format!("options={}\n", d.options.join(",")));
            }
            body.push_str(&format!(
                "\n[global-dns-domain-*]\nservers={}\n",
                d.nameservers.join(",")
            ));
            a.install(NM_DROPIN, body.as_bytes(), 0o644, None)?;
            NM_DROPIN.to_string()
        }
        "netconfig" => {
            let path = "/etc/sysconfig/network/config";
            let current = a.read(path).unwrap_or_default();
            let text = set_shell_var(
                &current,
                "NETCONFIG_DNS_STATIC_SERVERS",
                &d.nameservers.join(" "),
            );
            let text = set_shell_var(
                &text,
                "NETCONFIG_DNS_STATIC_SEARCHLIST",
                &d.search.join(" "),
            );
            a.rewrite(path, &text)?;
            path.to_string()
        }
        "resolvconf" => {
            let path = "/etc/resolvconf/resolv.conf.d/base";
            a.install(path, render_resolv_conf(d).as_bytes(), 0o644, None)?;
            path.to_string()
        }
        _ => {
            a.install(
                "/etc/resolv.conf",
                render_resolv_conf(d).as_bytes(),
                0o644,
                None,
            )?;
            "/etc/resolv.conf".to_string()
        }
    };
    // A DHCP client would put the cloud's servers back at the next lease.
    if matches!(manager.as_str(), "file" | "none" | "resolvconf")
        && a.exists("/etc/dhcp/dhclient.conf")
    {
        let current = a.read("/etc/dhcp/dhclient.conf").unwrap_or_default();
        let mut body = String::new();
        if !d.nameservers.is_empty() {
            body.push_str(&format!(
                "supersede domain-name-servers {};\n",
                d.nameservers.join(", ")
            ));
        }
        if !d.search.is_empty() {
            let quoted: Vec<String> = d.search.iter().map(|s| format!("\"{s}\"")).collect();
            body.push_str(&format!("supersede domain-search {};\n", quoted.join(", ")));
        }
        a.rewrite("/etc/dhcp/dhclient.conf", &set_block(&current, &body))?;
    }
    Ok(a.finish(
        format!(
            "{} via {} ({where_})",
            d.nameservers.join(", "),
            // no resolver manager: the file itself
            if manager == "none" {
                "file"
            } else {
                manager.as_str()
            }
        ),
        warnings,
    ))
}

/// A resolv.conf for the captured settings.
pub fn render_resolv_conf(d: &dns::Dns) -> String {
    let mut s =
        String::from("# Written by carryover: DNS of the server before its OS was changed.\n");
    for n in &d.nameservers {
        s.push_str(&format!("nameserver {n}\n"));
    }
    if !d.search.is_empty() {
        s.push_str(&format!("search {}\n", d.search.join(" ")));
    }
    if !d.options.is_empty() {
        s.push_str(&format!("options {}\n", d.options.join(" ")));
    }
    s
}

/// Sets `KEY="value"` in a shell-style file, replacing the existing assignment.
pub fn set_shell_var(text: &str, key: &str, value: &str) -> String {
    let line = format!("{key}=\"{value}\"");
    let mut found = false;
    let mut out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with(&format!("{key}=")) {
                found = true;
                line.clone()
            } else {
                l.to_string()
            }
        })
        .collect();
    if !found {
        out.push(line);
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}
