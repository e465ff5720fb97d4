//! The computer's names, time zone and time service: read from and written through the
//! APIs Windows offers, with the registry where it keeps what is pending (a new name
//! takes effect at the next boot) or what has no API (the Windows Time service's source).

use std::io;

use windows_sys::Win32::System::SystemInformation::{
    COMPUTER_NAME_FORMAT, ComputerNameDnsDomain, ComputerNameDnsHostname, ComputerNameNetBIOS,
    GetComputerNameExW,
};
use windows_sys::Win32::System::Time::{
    DYNAMIC_TIME_ZONE_INFORMATION, GetDynamicTimeZoneInformation, SetDynamicTimeZoneInformation,
};

use super::{from_wide_slice, registry, wide_str};
use crate::state::windows::{Computer, WinNtp};

const TCPIP: &str = r"SYSTEM\CurrentControlSet\Services\Tcpip\Parameters";
const TZ_ACTIVE: &str = r"SYSTEM\CurrentControlSet\Control\TimeZoneInformation";
const TZ_DB: &str = r"SOFTWARE\Microsoft\Windows NT\CurrentVersion\Time Zones";
const W32TIME: &str = r"SYSTEM\CurrentControlSet\Services\W32Time\Parameters";
const CURRENT_VERSION: &str = r"SOFTWARE\Microsoft\Windows NT\CurrentVersion";

pub(super) fn name_of(kind: COMPUTER_NAME_FORMAT) -> String {
    let mut buf = [0u16; 256];
    let mut len = buf.len() as u32;
    // SAFETY: `buf` has `len` UTF-16 units of room.
    if unsafe { GetComputerNameExW(kind, buf.as_mut_ptr(), &mut len) } == 0 {
        return String::new();
    }
    String::from_utf16_lossy(&buf[..len as usize])
}

/// The computer's names and the Windows product it runs.
pub fn computer() -> Computer {
    let get = |v: &str| {
        registry::get_string(CURRENT_VERSION, v)
            .ok()
            .flatten()
            .unwrap_or_default()
    };
    let build = get("CurrentBuildNumber");
    let major = registry::get_dword(CURRENT_VERSION, "CurrentMajorVersionNumber")
        .ok()
        .flatten();
    let minor = registry::get_dword(CURRENT_VERSION, "CurrentMinorVersionNumber")
        .ok()
        .flatten();
    let version = match (major, minor) {
        (Some(a), Some(b)) => format!("{a}.{b}.{build}"),
        _ => format!("{}.{build}", get("CurrentVersion")),
    };
    Computer {
        netbios_name: name_of(ComputerNameNetBIOS),
        dns_hostname: name_of(ComputerNameDnsHostname),
        domain: name_of(ComputerNameDnsDomain),
        product: get("ProductName"),
        version,
    }
}

/// The host name the computer will have after its next boot (a rename is pending until
/// then): the Tcpip `NV Hostname`, else the current one.
pub fn pending_hostname() -> String {
    registry::get_string(TCPIP, "NV Hostname")
        .ok()
        .flatten()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| name_of(ComputerNameDnsHostname))
}

/// The time zone's Windows name (`China Standard Time`).
pub fn timezone() -> io::Result<Option<String>> {
    if let Some(k) = registry::get_string(TZ_ACTIVE, "TimeZoneKeyName")?.filter(|s| !s.is_empty()) {
        return Ok(Some(k));
    }
    let mut tz = DYNAMIC_TIME_ZONE_INFORMATION::default();
    // SAFETY: `tz` is a valid out structure.
    if unsafe { GetDynamicTimeZoneInformation(&mut tz) } == u32::MAX {
        return Err(io::Error::last_os_error());
    }
    let k = from_wide_slice(&tz.TimeZoneKeyName);
    Ok((!k.is_empty()).then_some(k))
}

/// Whether Windows knows a time zone of this name.
pub fn timezone_known(key: &str) -> bool {
    registry::get_binary(&format!(r"{TZ_DB}\{key}"), "TZI")
        .ok()
        .flatten()
        .is_some_and(|b| b.len() >= 44)
}

fn copy_wide(dst: &mut [u16], s: &str) {
    let w = wide_str(s);
    let n = w.len().min(dst.len() - 1);
    dst[..n].copy_from_slice(&w[..n]);
}

fn systemtime(b: &[u8]) -> windows_sys::Win32::Foundation::SYSTEMTIME {
    let w = |i: usize| u16::from_le_bytes([b[i * 2], b[i * 2 + 1]]);
    windows_sys::Win32::Foundation::SYSTEMTIME {
        wYear: w(0),
        wMonth: w(1),
        wDayOfWeek: w(2),
        wDay: w(3),
        wHour: w(4),
        wMinute: w(5),
        wSecond: w(6),
        wMilliseconds: w(7),
    }
}

/// Switches the time zone to the Windows zone `key` (from the zone database's `TZI`).
pub fn set_timezone(key: &str) -> io::Result<()> {
    let db = format!(r"{TZ_DB}\{key}");
    let tzi = registry::get_binary(&db, "TZI")?
        .filter(|b| b.len() >= 44)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no time zone '{key}'")))?;
    let i32_at = |i: usize| i32::from_le_bytes([tzi[i], tzi[i + 1], tzi[i + 2], tzi[i + 3]]);
    let mut tz = DYNAMIC_TIME_ZONE_INFORMATION {
        Bias: i32_at(0),
        StandardBias: i32_at(4),
        DaylightBias: i32_at(8),
        StandardDate: systemtime(&tzi[12..28]),
        DaylightDate: systemtime(&tzi[28..44]),
        ..Default::default()
    };
    copy_wide(
        &mut tz.StandardName,
        &registry::get_string(&db, "Std")?.unwrap_or_default(),
    );
    copy_wide(
        &mut tz.DaylightName,
        &registry::get_string(&db, "Dlt")?.unwrap_or_default(),
    );
    copy_wide(&mut tz.TimeZoneKeyName, key);
    if super::is_wine() {
        // SetDynamicTimeZoneInformation is a stub that aborts there, and the zone follows
        // the host's at every start
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "Wine cannot change the time zone (it follows the host's)",
        ));
    }
    super::enable_privilege("SeTimeZonePrivilege");
    // SAFETY: `tz` is fully initialised.
    if unsafe { SetDynamicTimeZoneInformation(&tz) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // What later reads trust; Windows writes it itself, some implementations do not.
    registry::set_string(TZ_ACTIVE, "TimeZoneKeyName", key)?;
    Ok(())
}

/// The Windows Time service's source.
pub fn ntp() -> io::Result<Option<WinNtp>> {
    let server = registry::get_string(W32TIME, "NtpServer")?;
    let kind = registry::get_string(W32TIME, "Type")?;
    Ok(match (server, kind) {
        (None, None) => None,
        (s, k) => Some(WinNtp {
            server: s.unwrap_or_default(),
            kind: k.unwrap_or_default(),
        }),
    })
}

/// Points the Windows Time service at `ntp` and tells it to reread its settings (when
/// w32tm is there: the next start of the service reads them anyway).
pub fn set_ntp(ntp: &WinNtp) -> io::Result<()> {
    registry::set_string(W32TIME, "NtpServer", &ntp.server)?;
    if !ntp.kind.is_empty() {
        registry::set_string(W32TIME, "Type", &ntp.kind)?;
    }
    let _ = std::process::Command::new("w32tm")
        .args(["/config", "/update"])
        .output();
    Ok(())
}
