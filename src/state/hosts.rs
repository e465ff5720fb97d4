//! /etc/hosts: the lines an operator added beyond the distribution's defaults, and the
//! merge that puts them into a new OS's file while keeping that file's own lines.

use serde::{Deserialize, Serialize};

use super::Gather;

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

/// Merges captured entries into a new hosts file: an entry replaces the new file's line
/// for the same address (so `127.0.1.1 image-default` becomes `127.0.1.1 web01`), or is
/// appended; every other line of the new file stays as it is. Idempotent.
pub fn merge(new_text: &str, captured: &[HostsEntry]) -> String {
    let mut lines: Vec<String> = new_text.lines().map(str::to_string).collect();
    let mut appended = Vec::new();
    for entry in captured {
        let rendered = format!("{}\t{}", entry.address, entry.names.join(" "));
        let existing = lines.iter().position(|l| {
            parse(l)
                .first()
                .is_some_and(|e| e.address == entry.address && !is_default(e))
        });
        match existing {
            Some(i) => {
                if parse(&lines[i]).first().map(|e| &e.names) != Some(&entry.names) {
                    lines[i] = rendered;
                }
            }
            None => {
                // Same names already present under a loopback default? still add: the
                // operator's line is what they relied on.
                if !lines.iter().any(|l| {
                    parse(l)
                        .first()
                        .is_some_and(|e| e.address == entry.address && e.names == entry.names)
                }) {
                    appended.push(rendered);
                }
            }
        }
    }
    if !appended.is_empty() {
        lines.push("# restored by carryover".into());
        lines.extend(appended);
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
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
        let merged = merge(DEBIAN, &captured);
        assert!(merged.contains("127.0.1.1\tweb01.example.com web01\n"));
        assert!(!merged.contains("debian"));
        assert!(merged.contains("10.0.0.5\tdb01\n"));
        assert!(merged.contains("ff02::2 ip6-allrouters"));
        assert_eq!(
            merge(&merged, &captured),
            merged,
            "second merge changes nothing"
        );
    }
}
