//! The few registry reads and writes carryover needs (under `HKEY_LOCAL_MACHINE` only):
//! where Windows keeps the settings its APIs do not expose for writing — an interface's
//! DNS servers, the time service, the DNS suffix search list.

use std::io;

use windows_sys::Win32::Foundation::ERROR_FILE_NOT_FOUND;
use windows_sys::Win32::System::Registry::{
    HKEY, HKEY_LOCAL_MACHINE, KEY_READ, KEY_SET_VALUE, REG_BINARY, REG_DWORD,
    REG_OPTION_NON_VOLATILE, REG_SZ, RRF_NOEXPAND, RRF_RT_REG_BINARY, RRF_RT_REG_DWORD,
    RRF_RT_REG_EXPAND_SZ, RRF_RT_REG_SZ, RegCloseKey, RegCreateKeyExW, RegEnumKeyExW, RegGetValueW,
    RegOpenKeyExW, RegSetValueExW,
};

use super::{from_wide_slice, wide_str};

fn check(code: u32) -> io::Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(code as i32))
    }
}

/// Reads a value's raw bytes; `None` when the key or the value does not exist.
fn get_raw(key: &str, value: &str, flags: u32) -> io::Result<Option<Vec<u8>>> {
    let (k, v) = (wide_str(key), wide_str(value));
    let mut size = 0u32;
    for _ in 0..4 {
        let mut buf = vec![0u8; size as usize];
        // SAFETY: `buf` has `size` bytes (null pointer when asking for the size).
        let r = unsafe {
            RegGetValueW(
                HKEY_LOCAL_MACHINE,
                k.as_ptr(),
                v.as_ptr(),
                flags,
                std::ptr::null_mut(),
                if size == 0 {
                    std::ptr::null_mut()
                } else {
                    buf.as_mut_ptr().cast()
                },
                &mut size,
            )
        };
        match r {
            0 if !buf.is_empty() || size == 0 => {
                buf.truncate(size as usize);
                return Ok(Some(buf));
            }
            0 => continue, // learnt the size
            ERROR_FILE_NOT_FOUND => return Ok(None),
            234 => continue, // ERROR_MORE_DATA: it grew
            e => return Err(io::Error::from_raw_os_error(e as i32)),
        }
    }
    Err(io::Error::other(format!(
        "{key}\\{value} keeps changing size"
    )))
}

/// A string value (REG_SZ or REG_EXPAND_SZ, not expanded).
pub fn get_string(key: &str, value: &str) -> io::Result<Option<String>> {
    let raw = get_raw(
        key,
        value,
        RRF_RT_REG_SZ | RRF_RT_REG_EXPAND_SZ | RRF_NOEXPAND,
    )?;
    Ok(raw.map(|b| {
        let units: Vec<u16> = b
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        from_wide_slice(&units)
    }))
}

/// A DWORD value.
pub fn get_dword(key: &str, value: &str) -> io::Result<Option<u32>> {
    Ok(get_raw(key, value, RRF_RT_REG_DWORD)?.and_then(|b| {
        b.get(..4)
            .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
    }))
}

/// A binary value.
pub fn get_binary(key: &str, value: &str) -> io::Result<Option<Vec<u8>>> {
    get_raw(key, value, RRF_RT_REG_BINARY)
}

fn create(key: &str) -> io::Result<HKEY> {
    let k = wide_str(key);
    let mut h: HKEY = std::ptr::null_mut();
    // SAFETY: `k` is NUL-terminated; `h` receives the handle, closed by the caller.
    check(unsafe {
        RegCreateKeyExW(
            HKEY_LOCAL_MACHINE,
            k.as_ptr(),
            0,
            std::ptr::null(),
            REG_OPTION_NON_VOLATILE,
            KEY_SET_VALUE,
            std::ptr::null(),
            &mut h,
            std::ptr::null_mut(),
        )
    })?;
    Ok(h)
}

fn set_raw(key: &str, value: &str, kind: u32, data: &[u8]) -> io::Result<()> {
    let h = create(key)?;
    let v = wide_str(value);
    // SAFETY: `h` is open for setting values; `data` is valid for its length.
    let r = unsafe { RegSetValueExW(h, v.as_ptr(), 0, kind, data.as_ptr(), data.len() as u32) };
    // SAFETY: `h` came from RegCreateKeyExW.
    unsafe { RegCloseKey(h) };
    check(r)
}

/// Writes a REG_SZ value, creating the key when needed.
pub fn set_string(key: &str, value: &str, s: &str) -> io::Result<()> {
    let bytes: Vec<u8> = wide_str(s).iter().flat_map(|u| u.to_le_bytes()).collect();
    set_raw(key, value, REG_SZ, &bytes)
}

/// Writes a REG_DWORD value.
pub fn set_dword(key: &str, value: &str, d: u32) -> io::Result<()> {
    set_raw(key, value, REG_DWORD, &d.to_le_bytes())
}

/// Writes a REG_BINARY value.
pub fn set_binary(key: &str, value: &str, b: &[u8]) -> io::Result<()> {
    set_raw(key, value, REG_BINARY, b)
}

/// The names of a key's subkeys (empty when the key does not exist).
pub fn subkeys(key: &str) -> io::Result<Vec<String>> {
    let k = wide_str(key);
    let mut h: HKEY = std::ptr::null_mut();
    // SAFETY: `k` is NUL-terminated; `h` is closed below.
    match unsafe { RegOpenKeyExW(HKEY_LOCAL_MACHINE, k.as_ptr(), 0, KEY_READ, &mut h) } {
        0 => {}
        ERROR_FILE_NOT_FOUND => return Ok(Vec::new()),
        e => return Err(io::Error::from_raw_os_error(e as i32)),
    }
    let mut out = Vec::new();
    for i in 0.. {
        let mut name = [0u16; 256];
        let mut len = name.len() as u32;
        // SAFETY: `name` has `len` units of room; the other out pointers may be null.
        let r = unsafe {
            RegEnumKeyExW(
                h,
                i,
                name.as_mut_ptr(),
                &mut len,
                std::ptr::null(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if r != 0 {
            break; // ERROR_NO_MORE_ITEMS (or a key that vanished meanwhile)
        }
        out.push(String::from_utf16_lossy(&name[..len as usize]));
    }
    // SAFETY: `h` came from RegOpenKeyExW.
    unsafe { RegCloseKey(h) };
    Ok(out)
}
