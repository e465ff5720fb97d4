//! What runs on the live old OS — the active services and the programs listening on
//! TCP/UDP ports — so the new OS can be proven to run the same after the restore (the
//! readiness check). Sockets come from `/proc/net/*` and `/proc/<pid>/fd`, the programs
//! behind them from `sysinfo`; the machine's own daemons (DHCP, resolver, time, getty)
//! are left out: the new OS brings its own.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::Gather;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Baseline {
    /// False when the system was not the live one (a tree under `--root`): nothing to
    /// compare with.
    pub taken: bool,
    /// Active service units, the machine's own left out.
    pub services: Vec<String>,
    pub listening: Vec<Listener>,
}

/// A listening socket and the program behind it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(default)]
pub struct Listener {
    /// `tcp` or `udp` (IPv4 and IPv6 alike).
    pub proto: String,
    pub port: u16,
    /// The bound address (`0.0.0.0`, `::`, `127.0.0.1`).
    pub address: String,
    /// The program's name (`nginx`), when it could be found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
}

/// Programs of the machine itself, not of the service.
const PLATFORM_PROGRAMS: &[&str] = &[
    "dhclient",
    "dhcpcd",
    "systemd-network",
    "systemd-networkd",
    "systemd-resolve",
    "systemd-resolved",
    "systemd-timesyn",
    "chronyd",
    "ntpd",
    "avahi-daemon",
    "rpcbind",
    "cloud-init",
    "qemu-ga",
    "dnsmasq",
    "NetworkManager",
    "carryover",
];

/// Service units of the machine itself.
const PLATFORM_UNITS: &[&str] = &[
    "systemd-",
    "getty@",
    "serial-getty@",
    "user@",
    "user-runtime-dir@",
    "dbus",
    "polkit",
    "cloud-",
    "networking",
    "NetworkManager",
    "wpa_supplicant",
    "ModemManager",
    "rsyslog",
    "syslog",
    "auditd",
    "chrony",
    "ntp",
    "qemu-guest-agent",
    "hv-",
    "google-",
    "walinuxagent",
    "waagent",
    "snapd",
    "unattended-upgrades",
    "apt-daily",
    "packagekit",
    "multipathd",
    "irqbalance",
    "lvm2-",
    "blk-availability",
    "kmod",
    "console-",
    "keyboard-setup",
    "ifup@",
    "dhcpcd",
    "resolvconf",
    "carryover",
    "uuidd",
    "e2scrub",
    "fstrim",
    "logrotate",
    "man-db",
    "apport",
    "accounts-daemon",
    "dm-event",
    "udisks2",
    "haveged",
    "rng-tools",
    "atd",
    "emergency",
    "rescue",
    "plymouth",
    "setvtrgb",
    "finalrd",
    "modprobe@",
    "lxd-agent",
    "ssh-keygen",
    "sshd-keygen",
];

pub fn is_platform_unit(unit: &str) -> bool {
    PLATFORM_UNITS.iter().any(|p| unit.starts_with(p))
}

pub fn is_platform_program(name: &str) -> bool {
    PLATFORM_PROGRAMS.contains(&name)
}

/// A socket line of `/proc/net/{tcp,tcp6,udp,udp6}`: (local address, port, state, inode).
pub fn parse_proc_net(text: &str) -> Vec<(String, u16, u8, u64)> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.len() < 10 {
            continue;
        }
        let Some((addr, port)) = w[1].split_once(':') else {
            continue;
        };
        let (Ok(port), Ok(state), Ok(inode)) = (
            u16::from_str_radix(port, 16),
            u8::from_str_radix(w[3], 16),
            w[9].parse::<u64>(),
        ) else {
            continue;
        };
        let Some(addr) = hex_address(addr) else {
            continue;
        };
        out.push((addr, port, state, inode));
    }
    out
}

/// The kernel's hex address (each 32-bit word printed as the host stores it) as text.
fn hex_address(hex: &str) -> Option<String> {
    if !hex.len().is_multiple_of(8) || !hex.is_ascii() {
        return None;
    }
    let mut b = Vec::with_capacity(hex.len() / 2);
    for i in (0..hex.len()).step_by(8) {
        let word = u32::from_str_radix(&hex[i..i + 8], 16).ok()?;
        b.extend_from_slice(&word.to_ne_bytes());
    }
    match b.len() {
        4 => Some(std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()),
        16 => {
            let a: [u8; 16] = b.try_into().ok()?;
            Some(std::net::Ipv6Addr::from(a).to_string())
        }
        _ => None,
    }
}

/// TCP LISTEN is state 0x0A; a bound UDP socket with no peer is 0x07.
const TCP_LISTEN: u8 = 0x0a;
const UDP_UNCONNECTED: u8 = 0x07;
/// Ports from here up are ephemeral (a client's, or a server's bound to port 0 and
/// different at every start), not a service's.
const EPHEMERAL: u16 = 32768;

/// The listening sockets of `/proc/net/*` under `root`, with the program of each
/// (`inode → pid` from `/proc/<pid>/fd`, the program's name from `names`).
pub fn listeners(root: &crate::sys::Root, names: &BTreeMap<u32, String>) -> Vec<Listener> {
    let mut sockets: Vec<(String, String, u16, u64)> = Vec::new();
    for (file, proto) in [
        ("tcp", "tcp"),
        ("tcp6", "tcp"),
        ("udp", "udp"),
        ("udp6", "udp"),
    ] {
        let Ok(Some(text)) = crate::sys::read_opt(&root.path(format!("/proc/net/{file}"))) else {
            continue;
        };
        for (addr, port, state, inode) in parse_proc_net(&String::from_utf8_lossy(&text)) {
            let listening = port < EPHEMERAL
                && match proto {
                    "tcp" => state == TCP_LISTEN,
                    _ => state == UDP_UNCONNECTED,
                };
            if listening {
                sockets.push((proto.to_string(), addr, port, inode));
            }
        }
    }
    let owners = socket_owners(root);
    let mut out: BTreeSet<Listener> = BTreeSet::new();
    for (proto, address, port, inode) in sockets {
        // a service's socket: its process runs in a system service's cgroup (a program a
        // user started by hand in a session is not part of the baseline)
        let Some(pid) = owners.get(&inode) else {
            continue;
        };
        if !in_system_service(root, *pid) {
            continue;
        }
        let program = names.get(pid).cloned();
        if program.as_deref().is_some_and(is_platform_program) {
            continue;
        }
        out.insert(Listener {
            proto,
            port,
            address,
            program,
        });
    }
    out.into_iter().collect()
}

/// True when the process runs in a system service's cgroup (`…/system.slice/x.service`).
fn in_system_service(root: &crate::sys::Root, pid: u32) -> bool {
    crate::sys::read_opt(&root.path(format!("/proc/{pid}/cgroup")))
        .ok()
        .flatten()
        .is_some_and(|b| parse_cgroup_is_service(&String::from_utf8_lossy(&b)))
}

/// `0::/system.slice/nginx.service` → true; a user session's scope → false.
pub fn parse_cgroup_is_service(text: &str) -> bool {
    text.lines().any(|l| {
        l.rsplit(':')
            .next()
            .is_some_and(|p| p.contains("/system.slice/") && p.contains(".service"))
    })
}

/// Socket inode → pid, from the `socket:[N]` links in `/proc/<pid>/fd`.
fn socket_owners(root: &crate::sys::Root) -> BTreeMap<u64, u32> {
    let mut out = BTreeMap::new();
    let Ok(procs) = std::fs::read_dir(root.path("/proc")) else {
        return out;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(t) = std::fs::read_link(fd.path())
                && let Some(n) = t
                    .to_str()
                    .and_then(|s| s.strip_prefix("socket:["))
                    .and_then(|s| s.strip_suffix(']'))
                    .and_then(|s| s.parse().ok())
            {
                out.entry(n).or_insert(pid);
            }
        }
    }
    out
}

/// The programs' names by pid, from sysinfo (the live system's process table).
pub fn program_names() -> BTreeMap<u32, String> {
    let Ok(mut sys) = sysinfo::System::new() else {
        return BTreeMap::new();
    };
    sys.refresh_processes(sysinfo::ProcessesToUpdate::All, true);
    sys.processes()
        .iter()
        .map(|(pid, p)| (pid.as_u32(), p.name().to_string_lossy().into_owned()))
        .collect()
}

/// The active service units (`systemctl list-units`), the machine's own left out.
pub fn active_services() -> Vec<String> {
    let Ok(out) = crate::sys::run(
        "systemctl",
        &[
            "list-units",
            "--type=service",
            "--state=active",
            "--no-legend",
            "--plain",
            "--no-pager",
        ],
    ) else {
        return Vec::new();
    };
    parse_list_units(&out)
}

/// The unit names of `systemctl list-units --plain --no-legend`.
pub fn parse_list_units(text: &str) -> Vec<String> {
    let set: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|u| u.ends_with(".service") && !is_platform_unit(u))
        .map(str::to_string)
        .collect();
    set.into_iter().collect()
}

pub fn gather(g: &Gather) -> Baseline {
    if !g.root.is_live() {
        return Baseline::default();
    }
    Baseline {
        taken: true,
        services: active_services(),
        listening: listeners(g.root, &program_names()),
    }
}

/// One line of the readiness check.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Readiness {
    /// `nginx.service`, `tcp/80 (nginx)`.
    pub what: String,
    pub ready: bool,
    pub detail: String,
}

/// Compares what runs now with the baseline: each service active before is active, each
/// port listened on before is listened on again (by the same program where both are known).
/// Two unit names that differ only in the version numbers in them
/// (`postgresql@15-main.service` and `postgresql@17-main.service`, `php8.2-fpm.service`
/// and `php8.4-fpm.service`): the same service of another release.
pub fn same_but_version(a: &str, b: &str) -> bool {
    a != b && unversioned_unit(a) == unversioned_unit(b)
}

pub fn compare(before: &Baseline, services_now: &[String], now: &[Listener]) -> Vec<Readiness> {
    let mut out = Vec::new();
    for s in &before.services {
        // another version's unit stands for it: postgresql@15-main → postgresql@17-main,
        // php8.2-fpm → php8.4-fpm
        let same = services_now.iter().find(|n| *n == s).or_else(|| {
            services_now
                .iter()
                .find(|n| unversioned_unit(n) == unversioned_unit(s))
        });
        out.push(Readiness {
            what: s.clone(),
            ready: same.is_some(),
            detail: match same {
                Some(n) if n == s => "active".into(),
                Some(n) => format!("active as {n}"),
                None => "not active".into(),
            },
        });
    }
    let mut seen = BTreeSet::new();
    for l in &before.listening {
        if !seen.insert((l.proto.clone(), l.port)) {
            continue;
        }
        let what = match &l.program {
            Some(p) => format!("{}/{} ({p})", l.proto, l.port),
            None => format!("{}/{}", l.proto, l.port),
        };
        let found: Vec<&Listener> = now
            .iter()
            .filter(|n| n.proto == l.proto && n.port == l.port)
            .collect();
        let (ready, detail) = match found.first() {
            None => (false, "nothing listens".to_string()),
            Some(n) => match (&l.program, &n.program) {
                (Some(a), Some(b)) if a != b => (false, format!("{b} listens instead of {a}")),
                _ => (true, format!("listening on {}", n.address)),
            },
        };
        out.push(Readiness {
            what,
            ready,
            detail,
        });
    }
    out
}

/// A unit name with its version numbers blanked: `postgresql@15-main.service` →
/// `postgresql@#-main.service`, `php8.2-fpm.service` → `php#-fpm.service`.
pub fn unversioned_unit(unit: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    for c in unit.strip_suffix(".service").unwrap_or(unit).chars() {
        if c.is_ascii_digit() || (in_number && c == '.') {
            if !in_number {
                out.push('#');
                in_number = true;
            }
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_cgroups() {
        assert_eq!(
            unversioned_unit("postgresql@15-main.service"),
            "postgresql@#-main"
        );
        assert_eq!(unversioned_unit("php8.2-fpm.service"), "php#-fpm");
        assert!(parse_cgroup_is_service("0::/system.slice/nginx.service\n"));
        assert!(!parse_cgroup_is_service(
            "0::/user.slice/user-0.slice/session-3.scope\n"
        ));
        let before = Baseline {
            taken: true,
            services: vec!["postgresql@15-main.service".into()],
            listening: vec![],
        };
        let r = compare(&before, &["postgresql@17-main.service".into()], &[]);
        assert!(r[0].ready, "{r:?}");
        assert_eq!(r[0].detail, "active as postgresql@17-main.service");
    }

    #[test]
    fn proc_net_lines() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   105        0 2222 1 0000000000000000 100 0 0 10 0\n";
        let s = parse_proc_net(t);
        assert_eq!(s[0], ("0.0.0.0".into(), 80, 0x0a, 12345));
        if cfg!(target_endian = "little") {
            assert_eq!(s[1], ("127.0.0.1".into(), 5432, 0x0a, 2222));
        }
        let t6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(parse_proc_net(t6)[0], ("::".into(), 22, 0x0a, 999));
    }

    #[test]
    fn readiness_names_each_difference() {
        let before = Baseline {
            taken: true,
            services: vec!["nginx.service".into(), "postgresql@15-main.service".into()],
            listening: vec![
                Listener {
                    proto: "tcp".into(),
                    port: 80,
                    address: "0.0.0.0".into(),
                    program: Some("nginx".into()),
                },
                Listener {
                    proto: "tcp".into(),
                    port: 5432,
                    address: "127.0.0.1".into(),
                    program: Some("postgres".into()),
                },
            ],
        };
        let now = vec![Listener {
            proto: "tcp".into(),
            port: 80,
            address: "::".into(),
            program: Some("apache2".into()),
        }];
        let r = compare(&before, &["nginx.service".into()], &now);
        let bad: Vec<&str> = r
            .iter()
            .filter(|r| !r.ready)
            .map(|r| r.what.as_str())
            .collect();
        assert_eq!(
            bad,
            vec![
                "postgresql@15-main.service",
                "tcp/80 (nginx)",
                "tcp/5432 (postgres)"
            ]
        );
        assert!(r[2].detail.contains("apache2 listens instead of nginx"));
    }

    #[test]
    fn a_service_of_another_release_is_the_same_service() {
        let before = Baseline {
            taken: true,
            services: vec![
                "postgresql@15-main.service".into(),
                "php8.2-fpm.service".into(),
                "redis-server.service".into(),
            ],
            listening: Vec::new(),
        };
        let now: Vec<String> = [
            "postgresql@17-main.service",
            "php8.4-fpm.service",
            "redis-sentinel.service",
        ]
        .map(String::from)
        .into();
        let r = compare(&before, &now, &[]);
        assert_eq!(
            r.iter()
                .map(|r| (r.what.as_str(), r.ready, r.detail.as_str()))
                .collect::<Vec<_>>(),
            vec![
                (
                    "postgresql@15-main.service",
                    true,
                    "active as postgresql@17-main.service"
                ),
                ("php8.2-fpm.service", true, "active as php8.4-fpm.service"),
                ("redis-server.service", false, "not active"),
            ]
        );
        assert!(!same_but_version("nginx.service", "nginx.service"));
        assert!(!same_but_version(
            "postgresql@15-main.service",
            "postgresql@15-replica.service"
        ));
    }

    #[test]
    fn platform_units_are_left_out() {
        let t = "nginx.service loaded active running A high performance web server\nsystemd-journald.service loaded active running Journal\ngetty@tty1.service loaded active running Getty\nssh.service loaded active running OpenBSD Secure Shell server\n";
        assert_eq!(parse_list_units(t), vec!["nginx.service", "ssh.service"]);
    }
}
