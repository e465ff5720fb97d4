//! Time: the timezone and the NTP servers (chrony, systemd-timesyncd or ntpd) a server
//! was set to, with the distributions' default pools left out.

use serde::{Deserialize, Serialize};

use super::{Gather, ini};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Ntp {
    /// `chrony`, `timesyncd`, `ntpd` or `none`.
    pub manager: String,
    pub servers: Vec<NtpSource>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NtpSource {
    /// `server` or `pool`.
    pub kind: String,
    pub host: String,
    pub options: Vec<String>,
}

/// The zone name of a /etc/localtime link target (`../usr/share/zoneinfo/Asia/Shanghai`).
pub fn zone_from_link(target: &str) -> Option<String> {
    let (_, zone) = target.split_once("zoneinfo/")?;
    let zone = zone.strip_prefix("posix/").unwrap_or(zone);
    (!zone.is_empty()).then(|| zone.to_string())
}

pub fn gather_timezone(g: &Gather) -> Option<String> {
    if let Ok(t) = std::fs::read_link(g.root.path("/etc/localtime"))
        && let Some(z) = zone_from_link(&t.display().to_string())
    {
        return Some(z);
    }
    if let Some(t) = g.read("/etc/timezone") {
        let z = t.trim();
        if !z.is_empty() {
            return Some(z.to_string());
        }
    }
    g.read("/etc/sysconfig/clock").and_then(|t| {
        ini::parse_shell_vars(&t)
            .into_iter()
            .find(|(k, _)| k == "ZONE" || k == "TIMEZONE")
            .map(|(_, v)| v)
    })
}

/// `server` and `pool` lines of chrony.conf / ntp.conf.
pub fn parse_ntp_lines(text: &str) -> Vec<NtpSource> {
    text.lines()
        .filter_map(|l| {
            let w = super::words(l);
            match w.as_slice() {
                [kind @ ("server" | "pool"), host, opts @ ..] => Some(NtpSource {
                    kind: kind.to_string(),
                    host: host.to_string(),
                    options: opts.iter().map(|s| s.to_string()).collect(),
                }),
                _ => None,
            }
        })
        .collect()
}

/// `NTP=` of timesyncd.conf.
pub fn parse_timesyncd(text: &str) -> Vec<NtpSource> {
    let e = ini::parse(text);
    ini::values(&e, "Time", "NTP")
        .iter()
        .flat_map(|v| v.split_whitespace())
        .map(|h| NtpSource {
            kind: "server".into(),
            host: h.to_string(),
            options: Vec::new(),
        })
        .collect()
}

/// The pools distributions ship as defaults: not an operator's choice.
pub fn is_distribution_default(host: &str) -> bool {
    const VENDORS: &[&str] = &[
        "debian",
        "ubuntu",
        "centos",
        "rhel",
        "fedora",
        "rocky",
        "almalinux",
        "opensuse",
        "suse",
        "openeuler",
        "amazon",
        "arch",
    ];
    if host == "ntp.ubuntu.com" {
        return true;
    }
    host.ends_with(".pool.ntp.org") && VENDORS.iter().any(|v| host.split('.').any(|l| l == *v))
}

pub fn gather_ntp(g: &Gather) -> Ntp {
    let enabled = |names: &[&str]| {
        ["multi-user.target.wants", "sysinit.target.wants"]
            .iter()
            .any(|d| {
                names
                    .iter()
                    .any(|n| g.exists(&format!("/etc/systemd/system/{d}/{n}")))
            })
    };
    let mut chrony = Vec::new();
    let mut files: Vec<String> = vec!["/etc/chrony.conf".into(), "/etc/chrony/chrony.conf".into()];
    for dir in ["/etc/chrony/conf.d", "/etc/chrony/sources.d"] {
        files.extend(g.list(dir).iter().map(|p| g.inner(p).display().to_string()));
    }
    for f in &files {
        if let Some(t) = g.read(f) {
            chrony.extend(parse_ntp_lines(&t));
        }
    }
    let mut timesyncd = Vec::new();
    let mut tfiles = vec!["/etc/systemd/timesyncd.conf".to_string()];
    tfiles.extend(
        g.list("/etc/systemd/timesyncd.conf.d")
            .iter()
            .map(|p| g.inner(p).display().to_string()),
    );
    for f in &tfiles {
        if let Some(t) = g.read(f) {
            timesyncd.extend(parse_timesyncd(&t));
        }
    }
    let mut ntpd = Vec::new();
    for f in ["/etc/ntp.conf", "/etc/ntpsec/ntp.conf"] {
        if let Some(t) = g.read(f) {
            ntpd.extend(parse_ntp_lines(&t));
        }
    }
    let (manager, servers) = if enabled(&["chronyd.service", "chrony.service"]) {
        ("chrony", chrony)
    } else if enabled(&["ntp.service", "ntpd.service", "ntpsec.service"]) {
        ("ntpd", ntpd)
    } else if enabled(&["systemd-timesyncd.service"]) {
        ("timesyncd", timesyncd)
    } else if !chrony.is_empty() {
        ("chrony", chrony)
    } else if !ntpd.is_empty() {
        ("ntpd", ntpd)
    } else if !timesyncd.is_empty() {
        ("timesyncd", timesyncd)
    } else {
        ("none", Vec::new())
    };
    Ntp {
        manager: manager.into(),
        servers: servers
            .into_iter()
            .filter(|s| !is_distribution_default(&s.host))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones() {
        assert_eq!(
            zone_from_link("../usr/share/zoneinfo/Asia/Shanghai").as_deref(),
            Some("Asia/Shanghai")
        );
        assert_eq!(
            zone_from_link("/usr/share/zoneinfo/posix/UTC").as_deref(),
            Some("UTC")
        );
        assert_eq!(zone_from_link("/etc/foo"), None);
    }

    #[test]
    fn chrony_and_defaults() {
        let t = "# Use public servers from the pool.ntp.org project.\npool 2.debian.pool.ntp.org iburst\nserver ntp.myhuaweicloud.com iburst minpoll 4\nserver 100.125.0.251\n";
        let s: Vec<_> = parse_ntp_lines(t)
            .into_iter()
            .filter(|s| !is_distribution_default(&s.host))
            .collect();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].host, "ntp.myhuaweicloud.com");
        assert_eq!(s[0].options, vec!["iburst", "minpoll", "4"]);
        assert!(is_distribution_default("0.rhel.pool.ntp.org"));
        assert!(!is_distribution_default("0.pool.ntp.org"));
    }

    #[test]
    fn timesyncd() {
        let s = parse_timesyncd("[Time]\nNTP=ntp1.example.com ntp2.example.com\n#FallbackNTP=x\n");
        assert_eq!(s.len(), 2);
    }
}
