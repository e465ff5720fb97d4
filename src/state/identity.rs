//! Who the server is: hostname, FQDN, instance id, OS release and kernel — the identity
//! a Change OS resets and restore puts back.

use serde::{Deserialize, Serialize};

use super::{Gather, hosts};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Identity {
    pub hostname: String,
    pub fqdn: Option<String>,
    pub instance_id: Option<String>,
    /// Where the instance id came from: `metadata`, `dmi` or `machine-id`.
    pub instance_id_source: Option<String>,
    /// The flavor, from the metadata service (e.g. `s6.large.2`).
    pub instance_type: Option<String>,
    pub os: OsRelease,
    pub kernel: Option<String>,
    pub agent_version: String,
}

/// The fields of os-release that tell distributions apart.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct OsRelease {
    pub id: String,
    pub id_like: Vec<String>,
    pub version_id: Option<String>,
    pub pretty_name: Option<String>,
    /// `bookworm`, `jammy`: what apt suites name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_codename: Option<String>,
}

impl OsRelease {
    /// True for the Debian family (Debian, Ubuntu, ...).
    pub fn is_debian_like(&self) -> bool {
        self.id == "debian" || self.id == "ubuntu" || self.id_like.iter().any(|x| x == "debian")
    }

    /// True for the Red Hat family (RHEL, CentOS, Rocky, Fedora, openEuler, ...).
    pub fn is_redhat_like(&self) -> bool {
        [
            "rhel",
            "centos",
            "fedora",
            "rocky",
            "almalinux",
            "openEuler",
            "euleros",
        ]
        .contains(&self.id.as_str())
            || self
                .id_like
                .iter()
                .any(|x| x == "rhel" || x == "fedora" || x == "centos")
    }
}

/// Parses an os-release file.
pub fn parse_os_release(text: &str) -> OsRelease {
    let mut os = OsRelease::default();
    for (k, v) in super::ini::parse_shell_vars(text) {
        match k.as_str() {
            "ID" => os.id = v,
            "ID_LIKE" => os.id_like = v.split_whitespace().map(str::to_string).collect(),
            "VERSION_ID" => os.version_id = Some(v),
            "PRETTY_NAME" => os.pretty_name = Some(v),
            "VERSION_CODENAME" if !v.is_empty() => os.version_codename = Some(v),
            _ => {}
        }
    }
    os
}

/// The first word of /etc/hostname, comments skipped.
pub fn parse_hostname(text: &str) -> Option<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

/// The FQDN: the canonical name of the hosts line that lists the short hostname, when it
/// has a dot; else the hostname itself when it has one.
pub fn fqdn_from_hosts(hostname: &str, hosts_text: &str) -> Option<String> {
    let short = hostname.split('.').next().unwrap_or(hostname);
    for e in hosts::parse(hosts_text) {
        if e.names.iter().any(|n| n == short || n == hostname)
            && let Some(first) = e.names.iter().find(|n| n.contains('.'))
            && first.split('.').next() == Some(short)
        {
            return Some(first.clone());
        }
    }
    hostname.contains('.').then(|| hostname.to_string())
}

/// Normalises a DMI product UUID; placeholder values some hypervisors report are refused.
pub fn normalize_uuid(raw: &str) -> Option<String> {
    let u = raw.trim().to_ascii_lowercase();
    let hex: String = u.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    if hex.chars().all(|c| c == '0') || hex.chars().all(|c| c == 'f') {
        return None;
    }
    Some(u)
}

pub fn gather(g: &Gather) -> Identity {
    let hostname = g
        .read("/etc/hostname")
        .and_then(|t| parse_hostname(&t))
        .or_else(|| {
            g.read("/proc/sys/kernel/hostname")
                .map(|t| t.trim().to_string())
        })
        // Windows (and a Linux without either file): the running system's own name
        .or_else(|| g.root.is_live().then(crate::sys::hostname))
        .filter(|h| !h.is_empty())
        .unwrap_or_default();
    let fqdn = g
        .read(crate::paths::HOSTS_FILE)
        .and_then(|t| fqdn_from_hosts(&hostname, &t))
        .or_else(|| hostname.contains('.').then(|| hostname.clone()));
    let os = g
        .read("/etc/os-release")
        .or_else(|| g.read("/usr/lib/os-release"))
        .map(|t| parse_os_release(&t))
        .unwrap_or_default();
    let (instance_id, source, instance_type) = instance(g);
    Identity {
        hostname,
        fqdn,
        instance_id,
        instance_id_source: source,
        instance_type,
        os,
        kernel: g
            .read("/proc/sys/kernel/osrelease")
            .map(|t| t.trim().to_string()),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// The instance id, where it came from, and the instance type. The metadata service
/// knows the id for sure: it is asked on the live system, or wherever the config names
/// one; DMI and machine-id are the fallback.
pub fn instance(g: &Gather) -> (Option<String>, Option<String>, Option<String>) {
    let (mut instance_id, mut source) = local_instance_id(g);
    let mut instance_type = None;
    if g.root.is_live() || g.config.metadata_url_configured {
        let timeout = std::time::Duration::from_millis(g.config.metadata_timeout_ms);
        match crate::metadata::fetch(&g.config.metadata_url, timeout) {
            Ok(m) => {
                if let Some(id) = m.instance_id {
                    instance_id = Some(id);
                    source = Some("metadata".into());
                }
                instance_type = m.instance_type;
            }
            Err(e) => tracing::info!(
                "metadata service: {e:#}; the instance id comes from {}",
                source.as_deref().unwrap_or("nowhere")
            ),
        }
    }
    (instance_id, source, instance_type)
}

/// The instance id known without the network: the DMI product UUID (the server UUID on
/// OpenStack/Huawei Cloud KVM), else the machine-id.
fn local_instance_id(g: &Gather) -> (Option<String>, Option<String>) {
    if let Some(id) = g
        .read("/sys/class/dmi/id/product_uuid")
        .and_then(|t| normalize_uuid(&t))
    {
        return (Some(id), Some("dmi".into()));
    }
    if g.root.is_live()
        && let Some(id) = crate::sys::smbios_table()
            .and_then(|t| smbios_uuid(&t))
            .and_then(|t| normalize_uuid(&t))
    {
        return (Some(id), Some("dmi".into()));
    }
    if let Some(id) = g.read("/etc/machine-id").map(|t| t.trim().to_string())
        && !id.is_empty()
    {
        return (Some(id), Some("machine-id".into()));
    }
    (None, None)
}

/// The system UUID of the SMBIOS "System Information" structure (type 1), from the raw
/// table Windows hands out (`RSMB`: an 8-byte header, then the structures). The first
/// three fields are little-endian, as SMBIOS 2.6 and Linux's `product_uuid` read them.
pub fn smbios_uuid(raw: &[u8]) -> Option<String> {
    let mut at = 8;
    while at + 4 <= raw.len() {
        let (kind, len) = (raw[at], raw[at + 1] as usize);
        if len < 4 {
            return None;
        }
        if kind == 1 && len >= 0x19 && at + 0x18 <= raw.len() {
            let u = &raw[at + 8..at + 0x18];
            if u.iter().all(|&b| b == 0) || u.iter().all(|&b| b == 0xff) {
                return None;
            }
            return Some(format!(
                "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{}-{}",
                u[3],
                u[2],
                u[1],
                u[0],
                u[5],
                u[4],
                u[7],
                u[6],
                hex::encode(&u[8..10]),
                hex::encode(&u[10..16])
            ));
        }
        if kind == 127 {
            return None;
        }
        // the formatted part, then strings up to a double NUL
        let mut next = at + len;
        while next + 1 < raw.len() && !(raw[next] == 0 && raw[next + 1] == 0) {
            next += 1;
        }
        at = next + 2;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smbios_system_uuid_is_found_past_other_structures() {
        let mut t = vec![0u8; 8];
        // type 0 (BIOS), length 4, strings "a", "b"
        t.extend([0, 4, 0, 0, b'a', 0, b'b', 0, 0]);
        // type 1, length 0x1b
        let mut s1 = vec![1u8, 0x1b, 1, 0, 1, 2, 3, 4];
        s1.extend([
            0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ]);
        s1.extend([6, 0, 0]);
        t.extend(s1);
        t.extend([0, 0]);
        assert_eq!(
            smbios_uuid(&t).as_deref(),
            Some("00112233-4455-6677-8899-aabbccddeeff")
        );
        assert_eq!(smbios_uuid(&t[..20]), None);
        assert_eq!(smbios_uuid(&[0u8; 3]), None);
    }

    #[test]
    fn ubuntu_os_release() {
        let os = parse_os_release(
            "PRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nID=ubuntu\nID_LIKE=debian\n",
        );
        assert_eq!(os.id, "ubuntu");
        assert_eq!(os.version_id.as_deref(), Some("22.04"));
        assert!(os.is_debian_like());
        assert!(!os.is_redhat_like());
    }

    #[test]
    fn rocky_os_release() {
        let os = parse_os_release(
            "NAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\n",
        );
        assert!(os.is_redhat_like());
    }

    #[test]
    fn fqdn_from_debian_hosts() {
        let hosts = "127.0.0.1\tlocalhost\n127.0.1.1\tweb01.prod.example.com\tweb01\n";
        assert_eq!(
            fqdn_from_hosts("web01", hosts).as_deref(),
            Some("web01.prod.example.com")
        );
        assert_eq!(fqdn_from_hosts("db", hosts), None);
        assert_eq!(fqdn_from_hosts("db.x.org", "").as_deref(), Some("db.x.org"));
    }

    #[test]
    fn uuid_normalised() {
        assert_eq!(
            normalize_uuid("4C4C4544-0042-3510-8053-B4C04F4A4D32\n").as_deref(),
            Some("4c4c4544-0042-3510-8053-b4c04f4a4d32")
        );
        assert_eq!(normalize_uuid("00000000-0000-0000-0000-000000000000"), None);
        assert_eq!(normalize_uuid("Not Settable"), None);
    }

    #[test]
    fn hostname_skips_comments() {
        assert_eq!(parse_hostname("# x\n\nweb01\n").as_deref(), Some("web01"));
        assert_eq!(parse_hostname("\n"), None);
    }
}
