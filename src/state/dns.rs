//! Name resolution: the DNS servers, search domains and options a server really uses,
//! read through whichever manager is in charge (systemd-resolved, NetworkManager,
//! netplan, ifcfg, ifupdown, SUSE netconfig or a plain resolv.conf).

use serde::{Deserialize, Serialize};
use yaml_rust2::{Yaml, YamlLoader};

use super::{Gather, ini, push_unique};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Dns {
    /// Who writes /etc/resolv.conf: `systemd-resolved`, `NetworkManager`, `netconfig`,
    /// `resolvconf`, `file`, or `none` when there is no resolv.conf.
    pub manager: String,
    /// Which configuration sources contributed (`netplan`, `resolved.conf`, `ifcfg`,
    /// `ifupdown`, `NetworkManager`, `netconfig`, `resolv.conf`).
    pub configured_by: Vec<String>,
    pub nameservers: Vec<String>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

/// What one resolv.conf says.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<String>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

pub fn parse_resolv_conf(text: &str) -> ResolvConf {
    let mut r = ResolvConf::default();
    for line in text.lines() {
        let line = line.split([';', '#']).next().unwrap_or("");
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["nameserver", ns, ..] => push_unique(&mut r.nameservers, ns),
            ["search", rest @ ..] => {
                // the last search line wins, as in glibc
                r.search = rest.iter().map(|s| s.to_string()).collect();
            }
            ["domain", d, ..] if r.search.is_empty() => {
                r.search = vec![d.to_string()];
            }
            ["options", rest @ ..] => {
                for o in rest {
                    push_unique(&mut r.options, o);
                }
            }
            _ => {}
        }
    }
    r
}

/// True for the addresses of systemd-resolved's local stub.
pub fn is_stub(ns: &str) -> bool {
    ns == "127.0.0.53" || ns == "127.0.0.54"
}

/// `[Resolve] DNS=` and `Domains=` of resolved.conf and its drop-ins, in order.
pub fn parse_resolved_conf(text: &str) -> (Vec<String>, Vec<String>) {
    let e = ini::parse(text);
    let mut ns = Vec::new();
    let mut search = Vec::new();
    for v in ini::values(&e, "Resolve", "DNS") {
        for s in v.split_whitespace() {
            // `1.1.1.1#cloudflare-dns.com` and `1.1.1.1:53%eth0` keep only the address
            let addr = s.split('#').next().unwrap_or(s);
            push_unique(&mut ns, addr);
        }
    }
    for v in ini::values(&e, "Resolve", "Domains") {
        for d in v.split_whitespace() {
            if !d.starts_with('~') {
                push_unique(&mut search, d);
            }
        }
    }
    (ns, search)
}

/// The `nameservers` of every interface in a netplan YAML file.
pub fn parse_netplan(text: &str) -> Result<(Vec<String>, Vec<String>), String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
    let mut ns = Vec::new();
    let mut search = Vec::new();
    for doc in &docs {
        let Some(net) = doc["network"].as_hash() else {
            continue;
        };
        for (_kind, ifaces) in net.iter() {
            let Some(ifaces) = ifaces.as_hash() else {
                continue;
            };
            for (_name, iface) in ifaces.iter() {
                let servers = &iface["nameservers"];
                for a in yaml_strings(&servers["addresses"]) {
                    push_unique(&mut ns, &a);
                }
                for s in yaml_strings(&servers["search"]) {
                    push_unique(&mut search, &s);
                }
            }
        }
    }
    Ok((ns, search))
}

fn yaml_strings(y: &Yaml) -> Vec<String> {
    match y {
        Yaml::Array(a) => a
            .iter()
            .filter_map(|x| match x {
                Yaml::String(s) => Some(s.clone()),
                Yaml::Real(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        Yaml::String(s) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// `dns=` and `dns-search=` of a NetworkManager keyfile (both address families).
pub fn parse_nm_keyfile(text: &str) -> (Vec<String>, Vec<String>) {
    let e = ini::parse(text);
    let mut ns = Vec::new();
    let mut search = Vec::new();
    for sec in ["ipv4", "ipv6"] {
        for v in ini::values(&e, sec, "dns") {
            for s in v.split([';', ',']).map(str::trim) {
                push_unique(&mut ns, s);
            }
        }
        for v in ini::values(&e, sec, "dns-search") {
            for s in v.split([';', ',']).map(str::trim) {
                push_unique(&mut search, s);
            }
        }
    }
    (ns, search)
}

/// `DNS1=`…`DNS9=` and `DOMAIN=` of a Red Hat ifcfg file.
pub fn parse_ifcfg(text: &str) -> (Vec<String>, Vec<String>) {
    let vars = ini::parse_shell_vars(text);
    let mut ns = Vec::new();
    let mut search = Vec::new();
    for i in 1..=9 {
        let key = format!("DNS{i}");
        if let Some((_, v)) = vars.iter().find(|(k, _)| *k == key) {
            push_unique(&mut ns, v);
        }
    }
    for (k, v) in &vars {
        if k == "DOMAIN" {
            for d in v.split_whitespace() {
                push_unique(&mut search, d);
            }
        }
    }
    (ns, search)
}

/// `dns-nameservers` and `dns-search` of ifupdown's interfaces files.
pub fn parse_ifupdown(text: &str) -> (Vec<String>, Vec<String>) {
    let mut ns = Vec::new();
    let mut search = Vec::new();
    for line in text.lines() {
        let w = super::words(line);
        match w.split_first() {
            Some((&"dns-nameservers", rest)) => rest.iter().for_each(|s| push_unique(&mut ns, s)),
            Some((&"dns-search", rest)) => rest.iter().for_each(|s| push_unique(&mut search, s)),
            _ => {}
        }
    }
    (ns, search)
}

/// SUSE's `NETCONFIG_DNS_STATIC_SERVERS` / `NETCONFIG_DNS_STATIC_SEARCHLIST`.
pub fn parse_netconfig(text: &str) -> (Vec<String>, Vec<String>) {
    let vars = ini::parse_shell_vars(text);
    let get = |key: &str| -> Vec<String> {
        vars.iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split_whitespace().map(str::to_string))
            .collect()
    };
    (
        get("NETCONFIG_DNS_STATIC_SERVERS"),
        get("NETCONFIG_DNS_STATIC_SEARCHLIST"),
    )
}

/// Decides the manager from what resolv.conf is and says.
pub fn manager_of(link_target: Option<&str>, text: Option<&str>) -> &'static str {
    let target = link_target.unwrap_or("");
    let Some(text) = text else {
        return if target.is_empty() { "none" } else { "file" };
    };
    let parsed = parse_resolv_conf(text);
    if target.contains("systemd/resolve")
        || (!parsed.nameservers.is_empty() && parsed.nameservers.iter().all(|n| is_stub(n)))
    {
        "systemd-resolved"
    } else if target.contains("NetworkManager") || text.contains("Generated by NetworkManager") {
        "NetworkManager"
    } else if target.contains("netconfig") || text.contains("netconfig") {
        "netconfig"
    } else if target.contains("resolvconf") || text.contains("resolvconf(8)") {
        "resolvconf"
    } else {
        "file"
    }
}

pub fn gather(g: &Gather) -> Dns {
    let link = std::fs::read_link(g.root.path("/etc/resolv.conf"))
        .ok()
        .map(|p| p.display().to_string());
    let text = g.read("/etc/resolv.conf");
    let manager = manager_of(link.as_deref(), text.as_deref()).to_string();
    let mut dns = Dns {
        manager: manager.clone(),
        ..Dns::default()
    };
    let add = |dns: &mut Dns, source: &str, (ns, search): (Vec<String>, Vec<String>)| {
        if ns.is_empty() && search.is_empty() {
            return;
        }
        push_unique(&mut dns.configured_by, source);
        for n in ns.iter().filter(|n| !is_stub(n)) {
            push_unique(&mut dns.nameservers, n);
        }
        for s in search.iter().filter(|s| *s != ".") {
            push_unique(&mut dns.search, s);
        }
    };

    // What resolv.conf says is what the resolver uses right now, unless it is the stub.
    if let Some(t) = &text {
        let r = parse_resolv_conf(t);
        if manager != "systemd-resolved" {
            dns.options = r.options.clone();
        }
        add(&mut dns, "resolv.conf", (r.nameservers, r.search));
    }
    // Static configuration of each manager.
    let mut resolved = (Vec::new(), Vec::new());
    let mut files = vec![g.root.follow("/etc/systemd/resolved.conf")];
    files.extend(g.list("/etc/systemd/resolved.conf.d"));
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "conf"))
    {
        if let Some(t) = g.read_path(&g.inner(f)) {
            let (n, s) = parse_resolved_conf(&t);
            n.iter().for_each(|x| push_unique(&mut resolved.0, x));
            s.iter().for_each(|x| push_unique(&mut resolved.1, x));
        }
    }
    add(&mut dns, "resolved.conf", resolved);
    for f in g.list("/etc/netplan") {
        if f.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let inner = g.inner(&f);
            if let Some(t) = g.read_path(&inner) {
                match parse_netplan(&t) {
                    Ok(v) => add(&mut dns, "netplan", v),
                    Err(e) => g.problem(&inner, format!("not valid YAML: {e}")),
                }
            }
        }
    }
    for dir in [
        "/etc/NetworkManager/system-connections",
        "/run/NetworkManager/system-connections",
    ] {
        for f in g.list(dir) {
            if let Some(t) = g.read_path(&g.inner(&f)) {
                add(&mut dns, "NetworkManager", parse_nm_keyfile(&t));
            }
        }
    }
    for f in g.list("/etc/sysconfig/network-scripts") {
        let name = f.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with("ifcfg-")
            && name != "ifcfg-lo"
            && let Some(t) = g.read_path(&g.inner(&f))
        {
            add(&mut dns, "ifcfg", parse_ifcfg(&t));
        }
    }
    let mut ifupdown = vec![g.root.follow("/etc/network/interfaces")];
    ifupdown.extend(g.list("/etc/network/interfaces.d"));
    for f in ifupdown {
        if let Some(t) = g.read_path(&g.inner(&f)) {
            add(&mut dns, "ifupdown", parse_ifupdown(&t));
        }
    }
    if let Some(t) = g.read("/etc/sysconfig/network/config") {
        add(&mut dns, "netconfig", parse_netconfig(&t));
    }
    // The upstream servers resolved learnt (DHCP), after the static ones.
    if manager == "systemd-resolved"
        && let Some(t) = g.read("/run/systemd/resolve/resolv.conf")
    {
        let r = parse_resolv_conf(&t);
        add(&mut dns, "systemd-resolved", (r.nameservers, r.search));
    }
    dns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ubuntu_stub_resolv_conf() {
        let stub = "# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n";
        assert_eq!(
            manager_of(Some("../run/systemd/resolve/stub-resolv.conf"), Some(stub)),
            "systemd-resolved"
        );
        assert_eq!(manager_of(None, Some(stub)), "systemd-resolved");
    }

    #[test]
    fn ubuntu_netplan_cloud_init() {
        let y = "# This file is generated from information provided by the datasource.\nnetwork:\n    ethernets:\n        eth0:\n            dhcp4: true\n            match:\n                macaddress: fa:16:3e:aa:bb:cc\n            nameservers:\n                addresses: [100.125.1.250, 100.125.129.250]\n                search:\n                - corp.example.com\n            set-name: eth0\n    version: 2\n";
        let (ns, s) = parse_netplan(y).unwrap();
        assert_eq!(ns, vec!["100.125.1.250", "100.125.129.250"]);
        assert_eq!(s, vec!["corp.example.com"]);
        assert!(parse_netplan("network: [unclosed").is_err());
    }

    #[test]
    fn resolved_conf_drop_in() {
        let (ns, s) = parse_resolved_conf(
            "[Resolve]\nDNS=9.9.9.9#dns.quad9.net 1.1.1.1\nDomains=example.com ~internal\n#DNS=8.8.8.8\n",
        );
        assert_eq!(ns, vec!["9.9.9.9", "1.1.1.1"]);
        assert_eq!(s, vec!["example.com"]);
    }

    #[test]
    fn rhel_network_manager() {
        let k = "[connection]\nid=System eth0\ntype=ethernet\ninterface-name=eth0\n\n[ipv4]\ndns=10.0.0.2;10.0.0.3;\ndns-search=corp.example.com;\nmethod=auto\n\n[ipv6]\nmethod=ignore\n";
        assert_eq!(
            parse_nm_keyfile(k),
            (
                vec!["10.0.0.2".into(), "10.0.0.3".into()],
                vec!["corp.example.com".into()]
            )
        );
        let nm = "# Generated by NetworkManager\nsearch corp.example.com\nnameserver 10.0.0.2\n";
        assert_eq!(manager_of(None, Some(nm)), "NetworkManager");
    }

    #[test]
    fn centos7_ifcfg() {
        let t = "DEVICE=eth0\nBOOTPROTO=dhcp\nONBOOT=yes\nPEERDNS=no\nDNS1=100.125.1.250\nDNS2=\"100.125.21.250\"\nDOMAIN=\"a.example b.example\"\n";
        assert_eq!(
            parse_ifcfg(t),
            (
                vec!["100.125.1.250".into(), "100.125.21.250".into()],
                vec!["a.example".into(), "b.example".into()]
            )
        );
    }

    #[test]
    fn debian_ifupdown_and_plain_file() {
        let t = "auto eth0\niface eth0 inet static\n  address 10.0.0.9/24\n  dns-nameservers 10.0.0.2 10.0.0.3\n  dns-search example.org\n";
        assert_eq!(
            parse_ifupdown(t),
            (
                vec!["10.0.0.2".into(), "10.0.0.3".into()],
                vec!["example.org".into()]
            )
        );
        let r = parse_resolv_conf(
            "domain example.org\nsearch a.org b.org\nnameserver 10.0.0.2\nnameserver 10.0.0.2\noptions timeout:2 rotate\n",
        );
        assert_eq!(r.nameservers, vec!["10.0.0.2"]);
        assert_eq!(r.search, vec!["a.org", "b.org"]);
        assert_eq!(r.options, vec!["timeout:2", "rotate"]);
        assert_eq!(manager_of(None, Some("nameserver 10.0.0.2\n")), "file");
    }

    #[test]
    fn suse_netconfig() {
        let t = "NETCONFIG_DNS_POLICY=\"auto\"\nNETCONFIG_DNS_STATIC_SEARCHLIST=\"suse.example\"\nNETCONFIG_DNS_STATIC_SERVERS=\"10.1.1.1 10.1.1.2\"\n";
        assert_eq!(
            parse_netconfig(t),
            (
                vec!["10.1.1.1".into(), "10.1.1.2".into()],
                vec!["suse.example".into()]
            )
        );
        assert_eq!(
            manager_of(
                Some("/run/netconfig/resolv.conf"),
                Some("nameserver 10.1.1.1\n")
            ),
            "netconfig"
        );
    }
}
