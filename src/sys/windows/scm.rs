//! The Service Control Manager: the services at capture; at restore their start types
//! set again and services whose programs survived on a data disk registered anew.

use std::io;

use windows_sys::Win32::System::Services::{
    CloseServiceHandle, ENUM_SERVICE_STATUS_PROCESSW, EnumServicesStatusExW, OpenSCManagerW,
    OpenServiceW, QUERY_SERVICE_CONFIGW, QueryServiceConfigW, SC_ENUM_PROCESS_INFO, SC_HANDLE,
    SC_MANAGER_CONNECT, SC_MANAGER_ENUMERATE_SERVICE, SERVICE_QUERY_CONFIG, SERVICE_RUNNING,
    SERVICE_STATE_ALL, SERVICE_WIN32,
};

use super::{from_wide, wide_str};
use crate::state::windows::WinService;

/// Every Win32 service with its start type, binary and account.
pub fn services() -> io::Result<Vec<WinService>> {
    let scm = open_scm(SC_MANAGER_CONNECT | SC_MANAGER_ENUMERATE_SERVICE)?;
    let mut out = Vec::new();
    let mut resume = 0u32;
    loop {
        let (mut needed, mut count) = (0u32, 0u32);
        let mut buf = vec![0u64; 8 * 1024];
        // SAFETY: `buf` has the size passed; the entries and their strings live in it.
        let ok = unsafe {
            EnumServicesStatusExW(
                scm.0,
                SC_ENUM_PROCESS_INFO,
                SERVICE_WIN32,
                SERVICE_STATE_ALL,
                buf.as_mut_ptr() as *mut u8,
                (buf.len() * 8) as u32,
                &mut needed,
                &mut count,
                &mut resume,
                std::ptr::null(),
            )
        };
        let more = ok == 0 && io::Error::last_os_error().raw_os_error() == Some(234);
        if ok == 0 && !more {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: EnumServicesStatusExW filled `count` entries at the start of `buf`.
        let list = unsafe {
            std::slice::from_raw_parts(
                buf.as_ptr() as *const ENUM_SERVICE_STATUS_PROCESSW,
                count as usize,
            )
        };
        for s in list {
            // SAFETY: the strings live in `buf`.
            let (name, display_name) =
                unsafe { (from_wide(s.lpServiceName), from_wide(s.lpDisplayName)) };
            let mut svc = WinService {
                display_name,
                running: s.ServiceStatusProcess.dwCurrentState == SERVICE_RUNNING,
                ..WinService::default()
            };
            if let Ok(Some(h)) = open_service(&scm, &name, SERVICE_QUERY_CONFIG) {
                let _ = query_config(&h, |c| {
                    svc.start_type = start_name(c.dwStartType).into();
                    // SAFETY: the strings live in the configuration buffer.
                    unsafe {
                        svc.binary_path = from_wide(c.lpBinaryPathName);
                        svc.account = from_wide(c.lpServiceStartName);
                    }
                });
            }
            svc.name = name;
            out.push(svc);
        }
        if !more {
            break;
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn start_name(t: u32) -> &'static str {
    match t {
        0 => "boot",
        1 => "system",
        2 => "auto",
        3 => "demand",
        4 => "disabled",
        _ => "unknown",
    }
}

fn start_code(name: &str) -> io::Result<u32> {
    (0..=4)
        .find(|&c| start_name(c) == name)
        .ok_or_else(|| io::Error::other(format!("unknown start type '{name}'")))
}

/// An open SCM handle, closed when dropped.
struct Handle(SC_HANDLE);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: a handle from OpenSCManagerW/OpenServiceW/CreateServiceW.
        unsafe { CloseServiceHandle(self.0) };
    }
}

fn open_scm(access: u32) -> io::Result<Handle> {
    // SAFETY: plain SCM call.
    let h = unsafe { OpenSCManagerW(std::ptr::null(), std::ptr::null(), access) };
    if h.is_null() {
        return Err(io::Error::last_os_error());
    }
    Ok(Handle(h))
}

/// Opens a service; `None` when it does not exist.
fn open_service(scm: &Handle, name: &str, access: u32) -> io::Result<Option<Handle>> {
    let w = wide_str(name);
    // SAFETY: `w` is NUL-terminated; `scm` is open.
    let h = unsafe { OpenServiceW(scm.0, w.as_ptr(), access) };
    if h.is_null() {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(1060) => Ok(None), // ERROR_SERVICE_DOES_NOT_EXIST
            _ => Err(e),
        };
    }
    Ok(Some(Handle(h)))
}

/// Sets a service's start type (`auto`, `demand`, `disabled`). `Ok(None)` when the
/// service does not exist; `Ok(Some(changed))` otherwise.
pub fn set_start_type(name: &str, start: &str) -> io::Result<Option<bool>> {
    use windows_sys::Win32::System::Services::{
        ChangeServiceConfigW, SERVICE_CHANGE_CONFIG, SERVICE_NO_CHANGE,
    };
    let code = start_code(start)?;
    let scm = open_scm(SC_MANAGER_CONNECT)?;
    let Some(h) = open_service(&scm, name, SERVICE_QUERY_CONFIG | SERVICE_CHANGE_CONFIG)? else {
        return Ok(None);
    };
    if current_start(&h)? == code {
        return Ok(Some(false));
    }
    // SAFETY: `h` is open for changing its configuration; null means "no change".
    let ok = unsafe {
        ChangeServiceConfigW(
            h.0,
            SERVICE_NO_CHANGE,
            code,
            SERVICE_NO_CHANGE,
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Some(true))
}

/// Reads a service's configuration and hands it to `read`.
fn query_config<T>(h: &Handle, read: impl FnOnce(&QUERY_SERVICE_CONFIGW) -> T) -> io::Result<T> {
    let mut cfg = vec![0u64; 1024];
    let mut need = 0u32;
    // SAFETY: `cfg` has the size passed.
    let ok = unsafe {
        QueryServiceConfigW(
            h.0,
            cfg.as_mut_ptr() as *mut QUERY_SERVICE_CONFIGW,
            (cfg.len() * 8) as u32,
            &mut need,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: QueryServiceConfigW filled the structure at the start of `cfg`.
    Ok(read(unsafe {
        &*(cfg.as_ptr() as *const QUERY_SERVICE_CONFIGW)
    }))
}

fn current_start(h: &Handle) -> io::Result<u32> {
    query_config(h, |c| c.dwStartType)
}

/// A service's start type now; `None` when there is no such service.
pub fn start_type_of(name: &str) -> io::Result<Option<String>> {
    let scm = open_scm(SC_MANAGER_CONNECT)?;
    match open_service(&scm, name, SERVICE_QUERY_CONFIG)? {
        Some(h) => Ok(Some(start_name(current_start(&h)?).to_string())),
        None => Ok(None),
    }
}

/// Registers a service as it was captured (an own-process Win32 service). A service
/// account other than the built-in ones gets no password: the operator sets it.
pub fn create_service(s: &WinService) -> io::Result<()> {
    use windows_sys::Win32::System::Services::{
        CreateServiceW, SC_MANAGER_CREATE_SERVICE, SERVICE_ALL_ACCESS, SERVICE_ERROR_NORMAL,
        SERVICE_WIN32_OWN_PROCESS,
    };
    let scm = open_scm(SC_MANAGER_CONNECT | SC_MANAGER_CREATE_SERVICE)?;
    let (name, display, bin) = (
        wide_str(&s.name),
        wide_str(&s.display_name),
        wide_str(&s.binary_path),
    );
    let account = (!s.account.is_empty() && !s.account.eq_ignore_ascii_case("LocalSystem"))
        .then(|| wide_str(&s.account));
    // SAFETY: every string is NUL-terminated and outlives the call.
    let h = unsafe {
        CreateServiceW(
            scm.0,
            name.as_ptr(),
            display.as_ptr(),
            SERVICE_ALL_ACCESS,
            SERVICE_WIN32_OWN_PROCESS,
            start_code(&s.start_type)?,
            SERVICE_ERROR_NORMAL,
            bin.as_ptr(),
            std::ptr::null(),
            std::ptr::null_mut(),
            std::ptr::null(),
            account.as_ref().map_or(std::ptr::null(), |a| a.as_ptr()),
            std::ptr::null(),
        )
    };
    if h.is_null() {
        return Err(io::Error::last_os_error());
    }
    drop(Handle(h));
    Ok(())
}

/// Starts a service (already running counts as started).
pub fn start_service(name: &str) -> io::Result<()> {
    use windows_sys::Win32::System::Services::{SERVICE_START, StartServiceW};
    let scm = open_scm(SC_MANAGER_CONNECT)?;
    let h = open_service(&scm, name, SERVICE_START)?
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no service {name}")))?;
    // SAFETY: `h` is open for starting.
    if unsafe { StartServiceW(h.0, 0, std::ptr::null()) } == 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(1056) {
            // ERROR_SERVICE_ALREADY_RUNNING
            return Err(e);
        }
    }
    Ok(())
}
