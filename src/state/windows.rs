//! The settings only a Windows server has — DNS per adapter, the time zone and time
//! service, local users and groups, the services of the Service Control Manager, the
//! volumes — as data every build can read (a Windows snapshot is inspected on Linux
//! too), gathered through the platform layer on Windows.

use serde::{Deserialize, Serialize};

use super::Gather;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WindowsState {
    pub computer: Computer,
    pub dns: Vec<AdapterDns>,
    /// The global DNS suffix search list (empty: Windows derives it).
    pub search_list: Vec<String>,
    /// The time zone's Windows name (`China Standard Time`).
    pub timezone: Option<String>,
    pub ntp: Option<WinNtp>,
    pub users: Vec<WinUser>,
    pub groups: Vec<WinGroup>,
    pub services: Vec<WinService>,
    pub volumes: Vec<WinVolume>,
    /// The physical disks, read raw: what is on them even where Windows cannot mount it.
    pub disks: Vec<WinDisk>,
}

/// A physical disk (`\\.\PhysicalDriveN`) and what the probe found on it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WinDisk {
    pub number: u32,
    /// Holds the system drive (deleted by Change OS).
    pub system: bool,
    pub contents: Vec<DiskContent>,
}

/// One partition (or the whole disk, number 0) and its signature, as blkid names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiskContent {
    pub partition: u32,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub uuid: Option<String>,
    pub label: Option<String>,
}

/// The computer's names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Computer {
    pub netbios_name: String,
    pub dns_hostname: String,
    /// The DNS domain (or workgroup member's primary suffix), empty when none.
    pub domain: String,
    /// `Windows Server 2022 Datacenter` and the build, `10.0.20348`.
    pub product: String,
    pub version: String,
}

/// DNS servers and suffix of one network adapter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdapterDns {
    pub adapter: String,
    /// The MAC address (`fa:16:3e:…`): survives Change OS, so it finds the adapter again.
    pub mac: String,
    /// The interface's `{GUID}` (its registry key; new with every OS install).
    pub guid: String,
    /// The servers in use (DHCP's or static).
    pub servers: Vec<String>,
    /// The servers set by hand (the interface's `NameServer`): what restore sets again.
    pub static_servers: Vec<String>,
    pub suffix: Option<String>,
    /// The suffix set by hand (the interface's `Domain`).
    pub static_suffix: Option<String>,
}

/// The Windows Time service's source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WinNtp {
    /// `NtpServer`, e.g. `ntp.myhuaweicloud.com,0x9`.
    pub server: String,
    /// `Type`: `NTP`, `NT5DS`, `AllSync` or `NoSync`.
    pub kind: String,
}

/// A local user account (passwords are never read).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WinUser {
    pub name: String,
    pub full_name: String,
    pub comment: String,
    pub disabled: bool,
}

/// A local group and its members as `DOMAIN\name`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WinGroup {
    pub name: String,
    pub comment: String,
    pub members: Vec<String>,
}

/// A volume with a drive letter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WinVolume {
    /// `C:\`.
    pub mount: String,
    pub label: String,
    /// `NTFS`, `ReFS`, `FAT32`, …
    pub filesystem: String,
    /// The volume serial number as `dir` shows it (`1A2B-3C4D`).
    pub serial: String,
    pub total_bytes: u64,
    pub free_bytes: u64,
    /// Holds the Windows directory (deleted by Change OS).
    pub system: bool,
}

/// The accounts every Windows has: never recreated, never reported missing.
pub const BUILTIN_USERS: &[&str] = &[
    "Administrator",
    "Guest",
    "DefaultAccount",
    "WDAGUtilityAccount",
];

/// A Windows service as the Service Control Manager knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WinService {
    pub name: String,
    pub display_name: String,
    /// `boot`, `system`, `auto`, `demand` or `disabled`.
    pub start_type: String,
    pub binary_path: String,
    pub account: String,
    pub running: bool,
}

/// Windows time zone names and the IANA zone each stands for (CLDR's windowsZones,
/// territory "001"), for the zones cloud regions and their users live in.
const ZONES: &[(&str, &str)] = &[
    ("Dateline Standard Time", "Etc/GMT+12"),
    ("Hawaiian Standard Time", "Pacific/Honolulu"),
    ("Alaskan Standard Time", "America/Anchorage"),
    ("Pacific Standard Time", "America/Los_Angeles"),
    ("US Mountain Standard Time", "America/Phoenix"),
    ("Mountain Standard Time", "America/Denver"),
    ("Central Standard Time", "America/Chicago"),
    ("Central Standard Time (Mexico)", "America/Mexico_City"),
    ("Eastern Standard Time", "America/New_York"),
    ("SA Pacific Standard Time", "America/Bogota"),
    ("Atlantic Standard Time", "America/Halifax"),
    ("Pacific SA Standard Time", "America/Santiago"),
    ("SA Western Standard Time", "America/La_Paz"),
    ("E. South America Standard Time", "America/Sao_Paulo"),
    ("Argentina Standard Time", "America/Buenos_Aires"),
    ("UTC", "Etc/UTC"),
    ("GMT Standard Time", "Europe/London"),
    ("Greenwich Standard Time", "Atlantic/Reykjavik"),
    ("W. Europe Standard Time", "Europe/Berlin"),
    ("Romance Standard Time", "Europe/Paris"),
    ("Central Europe Standard Time", "Europe/Budapest"),
    ("Central European Standard Time", "Europe/Warsaw"),
    ("W. Central Africa Standard Time", "Africa/Lagos"),
    ("GTB Standard Time", "Europe/Bucharest"),
    ("FLE Standard Time", "Europe/Kiev"),
    ("Egypt Standard Time", "Africa/Cairo"),
    ("South Africa Standard Time", "Africa/Johannesburg"),
    ("Israel Standard Time", "Asia/Jerusalem"),
    ("Turkey Standard Time", "Europe/Istanbul"),
    ("Arab Standard Time", "Asia/Riyadh"),
    ("Russian Standard Time", "Europe/Moscow"),
    ("E. Africa Standard Time", "Africa/Nairobi"),
    ("Iran Standard Time", "Asia/Tehran"),
    ("Arabian Standard Time", "Asia/Dubai"),
    ("Pakistan Standard Time", "Asia/Karachi"),
    ("West Asia Standard Time", "Asia/Tashkent"),
    ("India Standard Time", "Asia/Calcutta"),
    ("Nepal Standard Time", "Asia/Katmandu"),
    ("Bangladesh Standard Time", "Asia/Dhaka"),
    ("Myanmar Standard Time", "Asia/Rangoon"),
    ("SE Asia Standard Time", "Asia/Bangkok"),
    ("China Standard Time", "Asia/Shanghai"),
    ("Singapore Standard Time", "Asia/Singapore"),
    ("Taipei Standard Time", "Asia/Taipei"),
    ("W. Australia Standard Time", "Australia/Perth"),
    ("Tokyo Standard Time", "Asia/Tokyo"),
    ("Korea Standard Time", "Asia/Seoul"),
    ("AUS Central Standard Time", "Australia/Darwin"),
    ("Cen. Australia Standard Time", "Australia/Adelaide"),
    ("E. Australia Standard Time", "Australia/Brisbane"),
    ("AUS Eastern Standard Time", "Australia/Sydney"),
    ("New Zealand Standard Time", "Pacific/Auckland"),
];

/// Other IANA names Linux systems use for the same zones.
const IANA_ALIASES: &[(&str, &str)] = &[
    ("UTC", "Etc/UTC"),
    ("Etc/UCT", "Etc/UTC"),
    ("Etc/GMT", "Etc/UTC"),
    ("GMT", "Etc/UTC"),
    ("Asia/Kolkata", "Asia/Calcutta"),
    ("Asia/Kathmandu", "Asia/Katmandu"),
    ("Asia/Yangon", "Asia/Rangoon"),
    ("Europe/Kyiv", "Europe/Kiev"),
    ("America/Argentina/Buenos_Aires", "America/Buenos_Aires"),
    ("Asia/Chongqing", "Asia/Shanghai"),
    ("Asia/Harbin", "Asia/Shanghai"),
    ("Asia/Hong_Kong", "Asia/Shanghai"),
    ("PRC", "Asia/Shanghai"),
    ("Europe/Amsterdam", "Europe/Berlin"),
    ("Europe/Rome", "Europe/Berlin"),
    ("Europe/Madrid", "Europe/Paris"),
    ("Europe/Brussels", "Europe/Paris"),
    ("Asia/Ho_Chi_Minh", "Asia/Bangkok"),
    ("Asia/Jakarta", "Asia/Bangkok"),
    ("Asia/Kuala_Lumpur", "Asia/Singapore"),
    ("Asia/Manila", "Asia/Singapore"),
];

/// The Windows zone for an IANA zone (`Asia/Shanghai` → `China Standard Time`).
pub fn windows_zone(iana: &str) -> Option<&'static str> {
    let canonical = IANA_ALIASES
        .iter()
        .find(|(a, _)| *a == iana)
        .map_or(iana, |(_, c)| c);
    ZONES.iter().find(|(_, i)| *i == canonical).map(|(w, _)| *w)
}

/// The IANA zone for a Windows zone.
pub fn iana_zone(windows: &str) -> Option<&'static str> {
    ZONES.iter().find(|(w, _)| *w == windows).map(|(_, i)| *i)
}

/// The time server every Windows is set to out of the box.
pub const DEFAULT_NTP: &str = "time.windows.com";

/// Linux NTP sources as the Windows Time service's `NtpServer` (`host,0x9 …`: client
/// mode, special poll interval).
pub fn ntp_server_value(hosts: &[&str]) -> String {
    hosts
        .iter()
        .map(|h| format!("{h},0x9"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The host names of an `NtpServer` value (flags after the comma dropped).
pub fn ntp_hosts(value: &str) -> Vec<String> {
    value
        .split_whitespace()
        .filter_map(|x| x.split(',').next())
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .collect()
}

impl WindowsState {
    /// The data volumes as Linux fstab entries (`D:` NTFS → `UUID=… /mnt/d ntfs`), so a
    /// change to Linux mounts them (through ntfs-3g). A volume is found by its serial at
    /// the end of the filesystem UUID the raw probe read; one whose disk could not be read
    /// is named in the second list.
    pub fn linux_mounts(&self) -> (Vec<super::mounts::MountEntry>, Vec<String>) {
        let (mut found, mut unknown) = (Vec::new(), Vec::new());
        for v in self.volumes.iter().filter(|v| !v.system) {
            let fstype = match v.filesystem.as_str() {
                "NTFS" => "ntfs",
                "exFAT" => "exfat",
                "FAT32" | "FAT" => "vfat",
                _ => continue,
            };
            let serial: String = v.serial.chars().filter(|c| *c != '-').collect();
            let uuid = self
                .disks
                .iter()
                .filter(|d| !d.system)
                .flat_map(|d| &d.contents)
                .filter_map(|c| c.uuid.as_deref())
                .find(|u| {
                    let hex: String = u.chars().filter(|c| *c != '-').collect();
                    serial.len() == 8 && hex.to_ascii_uppercase().ends_with(&serial)
                });
            let Some(letter) = v.mount.chars().next().filter(char::is_ascii_alphabetic) else {
                continue;
            };
            match uuid {
                Some(u) => found.push(super::mounts::MountEntry {
                    spec: format!("UUID={u}"),
                    spec_kind: "uuid".into(),
                    mountpoint: format!("/mnt/{}", letter.to_ascii_lowercase()),
                    fstype: fstype.into(),
                    options: vec!["defaults".into(), "nofail".into()],
                    ..super::mounts::MountEntry::default()
                }),
                None => unknown.push(v.mount.clone()),
            }
        }
        (found, unknown)
    }

    /// The DNS servers and suffixes of all adapters, in adapter order, without repeats.
    pub fn nameservers_and_search(&self) -> (Vec<String>, Vec<String>) {
        let (mut ns, mut search) = (Vec::new(), Vec::new());
        for a in &self.dns {
            for s in &a.servers {
                super::push_unique(&mut ns, s);
            }
            if let Some(x) = &a.suffix {
                super::push_unique(&mut search, x);
            }
        }
        (ns, search)
    }
}

/// Asks the running Windows (only for the live root: a directory tree has no SCM).
#[cfg(windows)]
pub fn gather(g: &Gather) -> Option<WindowsState> {
    if !g.root.is_live() {
        return None;
    }
    use crate::sys::win;
    fn or_note<T: Default, E: std::fmt::Display>(g: &Gather, what: &str, r: Result<T, E>) -> T {
        r.map_err(|e| g.problem(what, e)).unwrap_or_default()
    }
    Some(WindowsState {
        computer: win::computer(),
        dns: or_note(g, "GetAdaptersAddresses", win::dns_by_adapter()),
        search_list: or_note(g, "the DNS search list", win::search_list()),
        timezone: or_note(g, "the time zone", win::timezone()),
        ntp: or_note(g, "the Windows Time settings", win::ntp()),
        users: or_note(g, "the local users (NetUserEnum)", win::users()),
        groups: or_note(g, "the local groups (NetLocalGroupEnum)", win::groups()),
        services: or_note(g, "the Service Control Manager", win::services()),
        volumes: or_note(g, "the volumes", win::volumes()),
        disks: raw_disks(),
    })
}

/// Every physical disk Windows lets us open, probed like a Linux block device.
#[cfg(windows)]
fn raw_disks() -> Vec<WinDisk> {
    let system = crate::sys::win::system_disk_number();
    crate::sys::win::physical_disks()
        .into_iter()
        .map(|(number, f)| WinDisk {
            number,
            system: system == Some(number),
            contents: crate::disks::probe::probe_disk(&crate::disks::probe::Aligned(f))
                .into_iter()
                .filter(|(_, s)| s.kind.is_some())
                .map(|(partition, s)| DiskContent {
                    partition,
                    kind: s.kind,
                    uuid: s.uuid,
                    label: s.label,
                })
                .collect(),
        })
        .collect()
}

/// No Windows settings on other systems.
#[cfg(not(windows))]
pub fn gather(_g: &Gather) -> Option<WindowsState> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapters_merge_into_one_resolver_list() {
        let w = WindowsState {
            dns: vec![
                AdapterDns {
                    adapter: "Ethernet".into(),
                    servers: vec!["100.125.1.250".into(), "100.125.64.250".into()],
                    suffix: Some("corp.example".into()),
                    ..AdapterDns::default()
                },
                AdapterDns {
                    adapter: "Ethernet 2".into(),
                    servers: vec!["100.125.1.250".into()],
                    suffix: None,
                    ..AdapterDns::default()
                },
            ],
            ..WindowsState::default()
        };
        let (ns, search) = w.nameservers_and_search();
        assert_eq!(ns, vec!["100.125.1.250", "100.125.64.250"]);
        assert_eq!(search, vec!["corp.example"]);
    }

    #[test]
    fn data_volumes_become_fstab_entries_by_the_probed_uuid() {
        let vol = |mount: &str, fs: &str, serial: &str, system| WinVolume {
            mount: mount.into(),
            filesystem: fs.into(),
            serial: serial.into(),
            system,
            ..WinVolume::default()
        };
        let w = WindowsState {
            volumes: vec![
                vol("C:\\", "NTFS", "1111-2222", true),
                vol("D:\\", "NTFS", "49FF-9A0D", false),
                vol("E:\\", "NTFS", "0000-0001", false),
                vol("F:\\", "ReFS", "0000-0002", false),
            ],
            disks: vec![WinDisk {
                number: 1,
                system: false,
                contents: vec![DiskContent {
                    partition: 2,
                    kind: Some("ntfs".into()),
                    uuid: Some("0729013E49FF9A0D".into()),
                    label: None,
                }],
            }],
            ..WindowsState::default()
        };
        let (mounts, unknown) = w.linux_mounts();
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].spec, "UUID=0729013E49FF9A0D");
        assert_eq!(mounts[0].mountpoint, "/mnt/d");
        assert_eq!(mounts[0].fstype, "ntfs");
        assert!(mounts[0].is_data());
        assert_eq!(
            unknown,
            vec!["E:\\"],
            "ReFS has no Linux reader: not listed at all"
        );
    }

    #[test]
    fn zones_map_both_ways() {
        assert_eq!(windows_zone("Asia/Shanghai"), Some("China Standard Time"));
        assert_eq!(windows_zone("Asia/Kolkata"), Some("India Standard Time"));
        assert_eq!(windows_zone("UTC"), Some("UTC"));
        assert_eq!(windows_zone("Mars/Olympus"), None);
        assert_eq!(iana_zone("China Standard Time"), Some("Asia/Shanghai"));
        for (w, i) in ZONES {
            assert_eq!(windows_zone(i), Some(*w), "{i}");
        }
        for (alias, c) in IANA_ALIASES {
            assert!(ZONES.iter().any(|(_, i)| i == c), "{alias} → {c}");
        }
    }

    #[test]
    fn ntp_values_round_trip() {
        let v = ntp_server_value(&["ntp.myhuaweicloud.com", "10.0.0.1"]);
        assert_eq!(v, "ntp.myhuaweicloud.com,0x9 10.0.0.1,0x9");
        assert_eq!(ntp_hosts(&v), vec!["ntp.myhuaweicloud.com", "10.0.0.1"]);
        assert_eq!(ntp_hosts("time.windows.com"), vec!["time.windows.com"]);
    }
}
