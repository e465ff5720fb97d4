//! Typed parses of the values a snapshot carries into configuration files (host names,
//! addresses, resolver search domains and options): read back from an untrusted store, a
//! value is accepted when it parses as what it must be — never by a list of characters
//! that are bad — so a quote, `;`, newline or comment sign cannot reach a file.

use std::net::IpAddr;

/// A host name as resolvers and `/etc/hosts` take it: dot-separated labels of 1–63
/// letters, digits, `-` and `_` (used by internal names), none starting or ending with
/// `-`; 253 characters at most.
pub fn host_name(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// A domain of a resolver's search list: a host name, with a root dot allowed at the end.
pub fn domain(s: &str) -> bool {
    host_name(s.strip_suffix('.').unwrap_or(s))
}

/// An IP address; an IPv6 one may carry a zone (`fe80::1%eth0`): an interface name
/// (1–15 letters, digits, `.`, `_`, `-`) or number.
pub fn address(s: &str) -> bool {
    match s.split_once('%') {
        None => s.parse::<IpAddr>().is_ok(),
        Some((ip, zone)) => {
            ip.parse::<std::net::Ipv6Addr>().is_ok()
                && (1..=15).contains(&zone.len())
                && zone
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        }
    }
}

/// True for a loopback address (`127.0.0.0/8`, `::1`).
pub fn loopback(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok_and(|a| a.is_loopback())
}

/// A resolv.conf option: a name of lower-case letters, digits and `-`, with a number
/// after `:` for those that take one (`rotate`, `edns0`, `ndots:2`, `timeout:1`).
pub fn resolver_option(s: &str) -> bool {
    let (name, value) = s.split_once(':').unwrap_or((s, ""));
    (1..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && (!s.contains(':') || (1..=4).contains(&value.len()))
        && value.bytes().all(|b| b.is_ascii_digit())
}

/// The names that mean this machine itself: they belong to loopback addresses only.
pub fn local_name(n: &str) -> bool {
    let n = n.to_ascii_lowercase();
    n == "localhost"
        || n.ends_with(".localhost")
        || n.starts_with("localhost.")
        || matches!(
            n.as_str(),
            "localhost6" | "ip6-localhost" | "ip6-loopback" | "localhost6.localdomain6"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_or_are_refused() {
        for ok in ["web01", "db.internal", "_srv.example.com", "a-b.c", "x1"] {
            assert!(host_name(ok), "{ok}");
        }
        for bad in [
            "", "a..b", "-a", "a-", "a b", "a;b", "a\"b", "a#b", "a\nb", "é.com", ".a",
        ] {
            assert!(!host_name(bad), "{bad:?}");
        }
        assert!(domain("example.com.") && !domain("example.com\";"));
        for ok in [
            "10.0.0.1",
            "::1",
            "fe80::1%eth0",
            "fe80::1%2",
            "2001:db8::5",
        ] {
            assert!(address(ok), "{ok}");
        }
        for bad in [
            "10.0.0.1%eth0",
            "fe80::1%eth0\";",
            "fe80::1%",
            "10.0.0",
            "1.2.3.4 ",
            "fe80::1%averyveryverylongname",
        ] {
            assert!(!address(bad), "{bad:?}");
        }
        for ok in [
            "rotate",
            "edns0",
            "ndots:2",
            "timeout:10",
            "single-request-reopen",
        ] {
            assert!(resolver_option(ok), "{ok}");
        }
        for bad in [
            "", "ndots:", "a;b", "ROTATE", "x:1:2", "x:y", "-x", "opt\"", "a\nb",
        ] {
            assert!(!resolver_option(bad), "{bad:?}");
        }
        assert!(loopback("127.0.1.1") && loopback("::1") && !loopback("10.0.0.1"));
        assert!(local_name("localhost") && local_name("ip6-loopback") && !local_name("web01"));
    }
}
