//! DNS per network adapter: read through the IP Helper API (what is in use) and the
//! interface's registry key (what was set by hand), written back with
//! SetInterfaceDnsSettings where Windows has it, else the registry `NameServer`.

use std::io;

use windows_sys::Win32::NetworkManagement::IpHelper::{
    DNS_INTERFACE_SETTINGS, DNS_SETTING_DOMAIN, DNS_SETTING_NAMESERVER, GAA_FLAG_SKIP_ANYCAST,
    GAA_FLAG_SKIP_MULTICAST, GAA_FLAG_SKIP_UNICAST, GetAdaptersAddresses, IP_ADAPTER_ADDRESSES_LH,
};
use windows_sys::Win32::Networking::WinSock::{
    AF_INET, AF_INET6, AF_UNSPEC, SOCKADDR_IN, SOCKADDR_IN6,
};
use windows_sys::core::GUID;

use super::{from_wide, registry, wide_str};
use crate::state::windows::AdapterDns;

const TCPIP: &str = r"SYSTEM\CurrentControlSet\Services\Tcpip\Parameters";

/// One adapter as GetAdaptersAddresses shows it.
struct Adapter {
    dns: AdapterDns,
    loopback: bool,
}

fn interface_key(guid: &str) -> String {
    format!(r"{TCPIP}\Interfaces\{guid}")
}

/// `a,b c` (the registry separates by comma or space) → `[a, b, c]`.
fn split_list(s: &str) -> Vec<String> {
    s.split([',', ' '])
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

fn adapters() -> io::Result<Vec<Adapter>> {
    let flags = GAA_FLAG_SKIP_UNICAST | GAA_FLAG_SKIP_ANYCAST | GAA_FLAG_SKIP_MULTICAST;
    let mut size: u32 = 16 * 1024;
    let mut buf: Vec<u64> = Vec::new();
    for _ in 0..4 {
        buf = vec![0u64; (size as usize).div_ceil(8)];
        // SAFETY: `buf` has `size` bytes, 8-aligned.
        let r = unsafe {
            GetAdaptersAddresses(
                AF_UNSPEC as u32,
                flags,
                std::ptr::null(),
                buf.as_mut_ptr() as *mut IP_ADAPTER_ADDRESSES_LH,
                &mut size,
            )
        };
        match r {
            0 => break,
            111 => continue, // ERROR_BUFFER_OVERFLOW: `size` says how much
            232 => return Ok(Vec::new()), // ERROR_NO_DATA: no adapters
            e => return Err(io::Error::from_raw_os_error(e as i32)),
        }
    }
    let mut out = Vec::new();
    let mut p = buf.as_ptr() as *const IP_ADAPTER_ADDRESSES_LH;
    // SAFETY: the list and its strings live in `buf`, as GetAdaptersAddresses built them.
    unsafe {
        while !p.is_null() {
            let a = &*p;
            let mut servers = Vec::new();
            let mut d = a.FirstDnsServerAddress;
            while !d.is_null() {
                let sa = (*d).Address.lpSockaddr;
                if !sa.is_null() {
                    match (*sa).sa_family {
                        AF_INET => {
                            let v4 = &*(sa as *const SOCKADDR_IN);
                            let b = v4.sin_addr.S_un.S_addr.to_ne_bytes();
                            servers.push(std::net::Ipv4Addr::from(b).to_string());
                        }
                        AF_INET6 => {
                            let v6 = &*(sa as *const SOCKADDR_IN6);
                            servers.push(std::net::Ipv6Addr::from(v6.sin6_addr.u.Byte).to_string());
                        }
                        _ => {}
                    }
                }
                d = (*d).Next;
            }
            let suffix = from_wide(a.DnsSuffix);
            let mac = a.PhysicalAddress[..(a.PhysicalAddressLength as usize).min(8)]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":");
            // AdapterName is the interface's `{GUID}`, in the ANSI code page.
            let guid = std::ffi::CStr::from_ptr(a.AdapterName.cast())
                .to_string_lossy()
                .into_owned();
            out.push(Adapter {
                loopback: a.IfType == 24, // IF_TYPE_SOFTWARE_LOOPBACK
                dns: AdapterDns {
                    adapter: from_wide(a.FriendlyName),
                    mac,
                    guid,
                    servers,
                    suffix: (!suffix.is_empty()).then_some(suffix),
                    ..AdapterDns::default()
                },
            });
            p = a.Next;
        }
    }
    for a in &mut out {
        let key = interface_key(&a.dns.guid);
        a.dns.static_servers = registry::get_string(&key, "NameServer")?
            .map(|s| split_list(&s))
            .unwrap_or_default();
        a.dns.static_suffix = registry::get_string(&key, "Domain")?.filter(|s| !s.is_empty());
    }
    Ok(out)
}

/// The DNS servers and suffix of each adapter (loopback left out).
pub fn dns_by_adapter() -> io::Result<Vec<AdapterDns>> {
    Ok(adapters()?
        .into_iter()
        .filter(|a| !a.loopback)
        .map(|a| a.dns)
        .collect())
}

/// The global DNS suffix search list.
pub fn search_list() -> io::Result<Vec<String>> {
    Ok(registry::get_string(TCPIP, "SearchList")?
        .map(|s| split_list(&s))
        .unwrap_or_default())
}

/// Sets the global DNS suffix search list.
pub fn set_search_list(list: &[String]) -> io::Result<()> {
    registry::set_string(TCPIP, "SearchList", &list.join(","))
}

/// `{4D36E972-E325-11CE-BFC1-08002BE10318}` → its GUID.
fn parse_guid(s: &str) -> Option<GUID> {
    let h = s.trim_matches(['{', '}']);
    let parts: Vec<&str> = h.split('-').collect();
    if parts.len() != 5 || parts[3].len() != 4 || parts[4].len() != 12 {
        return None;
    }
    let tail = format!("{}{}", parts[3], parts[4]);
    let mut data4 = [0u8; 8];
    for (i, b) in data4.iter_mut().enumerate() {
        *b = u8::from_str_radix(tail.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(GUID {
        data1: u32::from_str_radix(parts[0], 16).ok()?,
        data2: u16::from_str_radix(parts[1], 16).ok()?,
        data3: u16::from_str_radix(parts[2], 16).ok()?,
        data4,
    })
}

type SetInterfaceDnsSettingsFn =
    unsafe extern "system" fn(GUID, *const DNS_INTERFACE_SETTINGS) -> u32;

/// SetInterfaceDnsSettings (Windows 10 2004 and later), looked up at run time so the
/// agent still starts on older Windows.
fn set_interface_dns_settings() -> Option<SetInterfaceDnsSettingsFn> {
    use windows_sys::Win32::System::LibraryLoader::{GetProcAddress, LoadLibraryW};
    let lib = wide_str("iphlpapi.dll");
    // SAFETY: plain loader calls; the transmuted pointer has the documented signature.
    unsafe {
        let h = LoadLibraryW(lib.as_ptr());
        if h.is_null() {
            return None;
        }
        let f = GetProcAddress(h, c"SetInterfaceDnsSettings".as_ptr().cast())?;
        Some(std::mem::transmute::<
            unsafe extern "system" fn() -> isize,
            SetInterfaceDnsSettingsFn,
        >(f))
    }
}

/// What the adapter with this MAC (else this name) has set by hand now.
pub fn adapter_static_dns(mac: &str, name: &str) -> io::Result<Option<AdapterDns>> {
    Ok(find(mac, name)?.map(|a| a.dns))
}

fn find(mac: &str, name: &str) -> io::Result<Option<Adapter>> {
    let all = adapters()?;
    let by_mac = all
        .iter()
        .position(|a| !mac.is_empty() && a.dns.mac.eq_ignore_ascii_case(mac));
    let by_name = all.iter().position(|a| a.dns.adapter == name);
    Ok(by_mac
        .or(by_name)
        .map(|i| all.into_iter().nth(i).expect("index")))
}

/// The adapters a Linux resolver list would apply to: every one with a MAC, not loopback.
pub fn physical_adapters() -> io::Result<Vec<AdapterDns>> {
    Ok(adapters()?
        .into_iter()
        .filter(|a| !a.loopback && !a.dns.mac.is_empty())
        .map(|a| a.dns)
        .collect())
}

/// Sets the DNS servers (and the suffix, when given) of the adapter with this MAC (else
/// this name). Returns how it was done.
pub fn set_adapter_dns(
    mac: &str,
    name: &str,
    servers: &[String],
    suffix: Option<&str>,
) -> io::Result<&'static str> {
    let a = find(mac, name)?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("no adapter {name} ({mac})"),
        )
    })?;
    let list = servers.join(",");
    if let (Some(f), Some(guid)) = (set_interface_dns_settings(), parse_guid(&a.dns.guid)) {
        let mut ns = wide_str(&list);
        let mut dom = wide_str(suffix.unwrap_or(""));
        let mut s = DNS_INTERFACE_SETTINGS {
            Version: 1, // DNS_INTERFACE_SETTINGS_VERSION1
            Flags: DNS_SETTING_NAMESERVER as u64,
            NameServer: ns.as_mut_ptr(),
            ..Default::default()
        };
        if suffix.is_some() {
            s.Flags |= DNS_SETTING_DOMAIN as u64;
            s.Domain = dom.as_mut_ptr();
        }
        // SAFETY: `s` and the strings it points to live across the call.
        if unsafe { f(guid, &s) } == 0 {
            return Ok("SetInterfaceDnsSettings");
        }
    }
    let key = interface_key(&a.dns.guid);
    registry::set_string(&key, "NameServer", &list)?;
    if let Some(d) = suffix {
        registry::set_string(&key, "Domain", d)?;
    }
    Ok("the interface's registry key")
}
