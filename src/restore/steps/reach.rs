//! The one way the repositories step asks a host whether a repository index exists. The
//! store names the URLs, so a hostile store must not make the agent fetch the metadata
//! service (its answers hold credentials) or anything else link-local, by number or by a
//! name that resolves there, nor be redirected there: the host is resolved once, every
//! address checked, the connection pinned to those addresses, and only redirects to the
//! same host are followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::Result;
use reqwest::Url;
use reqwest::redirect::Policy;

/// The metadata services outside the link-local ranges (Alibaba's 100.100.100.200, AWS's
/// IPv6 fd00:ec2::254).
const METADATA: &[IpAddr] = &[
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
];

/// True for an address no repository check goes to: link-local (169.254.0.0/16, where
/// 169.254.169.254 answers; fe80::/10), a metadata service, or one of those written as
/// an IPv4-mapped IPv6 address.
pub fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local() || METADATA.contains(&ip),
        IpAddr::V6(v6) => {
            (v6.segments()[0] & 0xffc0) == 0xfe80
                || METADATA.contains(&ip)
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| forbidden(IpAddr::V4(v4)))
        }
    }
}

/// A way to turn a host name and port into addresses (the system's resolver, or a table
/// in tests).
pub type Resolve<'r> = &'r dyn Fn(&str, u16) -> std::io::Result<Vec<SocketAddr>>;

/// The system's resolver.
pub fn system_resolve(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    Ok((host, port).to_socket_addrs()?.collect())
}

/// The addresses `url` may be fetched from — all of them its host has, each checked — or
/// why not (the caller names the URL). Nothing is sent but the name lookup.
pub fn addresses(url: &Url, resolve: Resolve) -> Result<Vec<SocketAddr>, String> {
    let port = url.port_or_known_default().ok_or("it names no port")?;
    let addrs = match url.host() {
        Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        Some(url::Host::Domain(name)) => {
            resolve(name, port).map_err(|e| format!("its host cannot be resolved: {e}"))?
        }
        None => return Err("it names no host".into()),
    };
    if addrs.is_empty() {
        return Err("its host has no address".into());
    }
    if let Some(a) = addrs.iter().find(|a| forbidden(a.ip())) {
        return Err(format!(
            "refused: its host is at {}, a link-local or metadata-service address",
            a.ip()
        ));
    }
    Ok(addrs)
}

/// Whether the index at `url` answers: a success, or 401/403 (the repository is there and
/// wants credentials the section holds, which the agent does not send), or a redirect to
/// another host (not followed: the first host serves the path). An error when the URL is
/// refused or the host cannot be reached.
pub fn index_answers(url: &str, resolve: Resolve) -> Result<bool> {
    crate::sys::tls_provider();
    let parsed = Url::parse(url)?;
    if !["http", "https"].contains(&parsed.scheme()) {
        anyhow::bail!("not an http(s) URL");
    }
    let addrs = addresses(&parsed, resolve).map_err(anyhow::Error::msg)?;
    let mut b = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(20))
        .redirect(Policy::custom(|attempt| {
            let same =
                attempt.previous().first().map(|u| u.host_str()) == Some(attempt.url().host_str());
            if !same {
                attempt.stop()
            } else if attempt.previous().len() >= 10 {
                attempt.error("too many redirects")
            } else {
                attempt.follow()
            }
        }));
    if let Some(url::Host::Domain(name)) = parsed.host() {
        b = b.resolve_to_addrs(name, &addrs);
    }
    let r = b.build()?.get(parsed).send()?;
    let s = r.status();
    Ok(s.is_success()
        || s == reqwest::StatusCode::UNAUTHORIZED
        || s == reqwest::StatusCode::FORBIDDEN
        || s.is_redirection())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A resolver that knows a few names under `.invalid` and sends nothing.
    fn table(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        let ips: &[&str] = match host {
            "imds.invalid" => &["169.254.169.254"],
            "mixed.invalid" => &["127.0.0.1", "fe80::1"],
            "mapped.invalid" => &["::ffff:169.254.169.254"],
            "alibaba.invalid" => &["100.100.100.200"],
            "fine.invalid" => &["127.0.0.1", "::1"],
            _ => return Err(std::io::Error::other("no such name")),
        };
        Ok(ips
            .iter()
            .map(|i| SocketAddr::new(i.parse().unwrap(), port))
            .collect())
    }

    fn check(url: &str) -> Result<Vec<SocketAddr>, String> {
        addresses(&Url::parse(url).unwrap(), &table)
    }

    #[test]
    fn the_metadata_service_and_link_local_hosts_are_refused_before_any_request() {
        for url in [
            "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            "http://[fe80::1%25eth0]/repodata/repomd.xml",
            "http://[fe80::1]/repodata/repomd.xml",
            "http://[fd00:ec2::254]/latest/",
            "http://100.100.100.200/latest/meta-data/",
            "http://imds.invalid/openstack/latest/meta_data.json",
            "http://mixed.invalid/repodata/repomd.xml",
            "http://mapped.invalid/repodata/repomd.xml",
            "https://alibaba.invalid/repodata/repomd.xml",
        ] {
            let Ok(u) = Url::parse(url) else { continue };
            let e = addresses(&u, &table).unwrap_err();
            assert!(e.starts_with("refused: its host is at "), "{url}: {e}");
            // index_answers refuses it the same way, before it builds a client
            let e = index_answers(url, &table).unwrap_err().to_string();
            assert!(e.starts_with("refused: its host is at "), "{url}: {e}");
        }
        assert_eq!(check("http://fine.invalid:8080/x").unwrap().len(), 2);
        assert_eq!(
            check("https://127.0.0.1/x").unwrap(),
            vec!["127.0.0.1:443".parse().unwrap()]
        );
        assert!(
            check("http://nowhere.invalid/")
                .unwrap_err()
                .contains("cannot be resolved")
        );
        assert!(forbidden("169.254.0.1".parse().unwrap()));
        assert!(forbidden("febf::1".parse().unwrap()));
        assert!(!forbidden("fec0::1".parse().unwrap()));
        assert!(!forbidden("10.0.0.1".parse().unwrap()));
    }

    /// A loopback server answering each request line's path with `answer(path)` (status
    /// line and headers); the paths it saw.
    fn serve(answer: fn(&str) -> String) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        use std::io::{BufRead, BufReader, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for mut s in l.incoming().flatten() {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                let _ = r.read_line(&mut line);
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let head = answer(&path);
                log.lock().unwrap().push(path);
                let _ = write!(
                    s,
                    "{head}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        (port, seen)
    }

    #[test]
    fn the_checked_addresses_are_the_ones_connected_to_and_redirects_stay_on_the_host() {
        let (port, seen) = serve(|path| match path {
            "/a" => "HTTP/1.1 302 Found\r\nLocation: /b".into(),
            "/b" => "HTTP/1.1 200 OK".into(),
            "/away" => "HTTP/1.1 302 Found\r\nLocation: http://elsewhere.invalid/x".into(),
            "/locked" => "HTTP/1.1 403 Forbidden".into(),
            _ => "HTTP/1.1 404 Not Found".into(),
        });
        // fine.invalid never resolves but through the table: the request reaches the
        // address checked, not a second lookup
        let url = |p: &str| format!("http://fine.invalid:{port}{p}");
        assert!(index_answers(&url("/a"), &table).unwrap());
        assert!(index_answers(&url("/away"), &table).unwrap());
        assert!(index_answers(&url("/locked"), &table).unwrap());
        assert!(!index_answers(&url("/gone"), &table).unwrap());
        assert_eq!(
            *seen.lock().unwrap(),
            vec!["/a", "/b", "/away", "/locked", "/gone"]
        );
    }
}
