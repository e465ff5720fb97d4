//! /etc/hosts: the lines an operator added beyond the distribution's defaults, and the
//! merge that puts them into a new OS's file while keeping that file's own lines.

use serde::{Deserialize, Serialize};

use super::{Gather, grammar};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostsEntry {
    pub address: String,
    pub names: Vec<String>,
}

/// Parses the address lines of a hosts file.
pub fn parse(text: &str) -> Vec<HostsEntry> {
    text.lines()
        .filter_map(|l| {
            let w = super::words(l);
            let (addr, names) = w.split_first()?;
            if names.is_empty() {
                return None;
            }
            Some(HostsEntry {
                address: addr.to_string(),
                names: names.iter().map(|s| s.to_string()).collect(),
            })
        })
        .collect()
}

/// True for lines every distribution ships: loopback names and the IPv6 multicast set.
pub fn is_default(e: &HostsEntry) -> bool {
    let loopback = e.address.starts_with("127.") || e.address == "::1";
    let ip6_default = matches!(
        e.address.as_str(),
        "fe00::0" | "fe00::" | "ff00::0" | "ff00::" | "ff02::1" | "ff02::2" | "ff02::3"
    );
    let default_name = |n: &str| {
        n.starts_with("localhost") || n.starts_with("ip6-") || n == "localhost.localdomain"
    };
    (loopback || ip6_default) && e.names.iter().all(|n| default_name(n))
}

pub fn gather(g: &Gather, _hostname: &str) -> Vec<HostsEntry> {
    g.read(crate::paths::HOSTS_FILE)
        .map(|t| parse(&t).into_iter().filter(|e| !is_default(e)).collect())
        .unwrap_or_default()
}

/// The address Debian-family images give their own hostname (`127.0.1.1 debian`).
pub const SELF_ADDRESS: &str = "127.0.1.1";

/// One entry as a hosts line.
fn render(e: &HostsEntry) -> String {
    format!("{}\t{}", e.address, e.names.join(" "))
}

/// Why an entry from a snapshot cannot go into a hosts file (`None` when it can). An entry
/// is an IP address and host names (`grammar`); the names of the machine itself
/// (`localhost`, `ip6-loopback`…) only on a loopback address — pointed elsewhere they
/// would send this machine's own connections to another host. Any other mapping is the
/// operator's to make: a plain store may carry it.
pub fn refused(e: &HostsEntry) -> Option<String> {
    let shown = || {
        format!(
            "{} {}",
            e.address.escape_debug(),
            e.names.join(" ").escape_debug()
        )
    };
    if !grammar::address(&e.address)
        || e.names.is_empty()
        || !e.names.iter().all(|n| grammar::host_name(n))
    {
        return Some(format!(
            "refusing the hosts entry '{}': not an IP address and host names",
            shown()
        ));
    }
    if !grammar::loopback(&e.address) && e.names.iter().any(|n| grammar::local_name(n)) {
        return Some(format!(
            "refusing the hosts entry '{}': the names of the machine itself belong to a loopback address",
            shown()
        ));
    }
    None
}

/// Merges captured entries into a new hosts file. Every line of the new file stays and
/// every captured entry is added unless the file has that very line; one address may
/// carry several names on several lines. The one replacement: when a captured entry is
/// for 127.0.1.1, the new file's 127.0.1.1 lines lose the image's hostname (`image`, its
/// short name and `short.*` names) and the names the captured entries bring back — the
/// captured lines take the place of the first such line, and a line keeps whatever other
/// names it had. Idempotent.
pub fn merge(new_text: &str, captured: &[HostsEntry], image: &str) -> String {
    let entry = |l: &str| parse(l).into_iter().next();
    let lines: Vec<&str> = new_text.lines().collect();
    let own: Vec<&HostsEntry> = captured
        .iter()
        .filter(|e| e.address == SELF_ADDRESS)
        .collect();
    let short = image.split('.').next().unwrap_or("");
    let dropped = |n: &str| {
        (!short.is_empty()
            && (n == image
                || n == short
                || n.strip_prefix(short).is_some_and(|r| r.starts_with('.'))))
            || own.iter().any(|e| e.names.iter().any(|o| o == n))
    };
    let rewritten = |e: &HostsEntry| {
        !own.is_empty()
            && e.address == SELF_ADDRESS
            && !captured.contains(e)
            && e.names.iter().any(|n| dropped(n))
    };
    let mut out: Vec<String> = Vec::new();
    let mut own_placed = false;
    for l in &lines {
        match entry(l) {
            Some(e) if rewritten(&e) => {
                if !own_placed {
                    own_placed = true;
                    for o in &own {
                        let there = lines.iter().any(|x| entry(x).as_ref() == Some(*o));
                        let placed = out.iter().any(|x| entry(x).as_ref() == Some(*o));
                        if !there && !placed {
                            out.push(render(o));
                        }
                    }
                }
                let rest: Vec<&str> = e
                    .names
                    .iter()
                    .map(String::as_str)
                    .filter(|n| !dropped(n))
                    .collect();
                if !rest.is_empty() {
                    out.push(format!("{SELF_ADDRESS}\t{}", rest.join(" ")));
                }
            }
            _ => out.push(l.to_string()),
        }
    }
    let mut header = false;
    for e in captured {
        if out.iter().any(|l| entry(l).as_ref() == Some(e)) {
            continue;
        }
        if !header {
            out.push("# restored by carryover".into());
            header = true;
        }
        out.push(render(e));
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = "127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n\n# The following lines are desirable for IPv6 capable hosts\n::1     localhost ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n";
    const RHEL: &str = "127.0.0.1   localhost localhost.localdomain localhost4 localhost4.localdomain4\n::1         localhost localhost.localdomain localhost6 localhost6.localdomain6\n";

    #[test]
    fn defaults_are_not_captured() {
        for t in [DEBIAN, RHEL] {
            let custom: Vec<_> = parse(t).into_iter().filter(|e| !is_default(e)).collect();
            assert!(
                custom.iter().all(|e| e.address == "127.0.1.1"),
                "{custom:?}"
            );
        }
    }

    #[test]
    fn additions_are_captured() {
        let t = format!("{RHEL}10.0.0.5 db01.internal db01 # primary\n");
        let custom: Vec<_> = parse(&t).into_iter().filter(|e| !is_default(e)).collect();
        assert_eq!(
            custom,
            vec![HostsEntry {
                address: "10.0.0.5".into(),
                names: vec!["db01.internal".into(), "db01".into()]
            }]
        );
    }

    #[test]
    fn merge_replaces_same_address_and_appends_the_rest() {
        let captured = vec![
            HostsEntry {
                address: "127.0.1.1".into(),
                names: vec!["web01.example.com".into(), "web01".into()],
            },
            HostsEntry {
                address: "10.0.0.5".into(),
                names: vec!["db01".into()],
            },
        ];
        let merged = merge(DEBIAN, &captured, "debian");
        assert!(merged.contains("127.0.1.1\tweb01.example.com web01\n"));
        assert!(!merged.contains("debian"));
        assert!(merged.contains("10.0.0.5\tdb01\n"));
        assert!(merged.contains("ff02::2 ip6-allrouters"));
        assert_eq!(
            merge(&merged, &captured, "debian"),
            merged,
            "second merge changes nothing"
        );
    }
}
