//! Files' security descriptors: read as SDDL (owner, group, DACL) with the names of the
//! accounts they name, and written back with those accounts' SIDs on this system.

use std::io;
use std::path::Path;

use windows_sys::Win32::Foundation::LocalFree;
use windows_sys::Win32::Security::Authorization::{
    ConvertSecurityDescriptorToStringSecurityDescriptorW, ConvertSidToStringSidW,
    ConvertStringSecurityDescriptorToSecurityDescriptorW, ConvertStringSidToSidW,
    GetNamedSecurityInfoW, SDDL_REVISION_1, SE_FILE_OBJECT, SetNamedSecurityInfoW,
};
use windows_sys::Win32::Security::{
    DACL_SECURITY_INFORMATION, GROUP_SECURITY_INFORMATION, GetSecurityDescriptorControl,
    GetSecurityDescriptorDacl, GetSecurityDescriptorGroup, GetSecurityDescriptorOwner,
    LookupAccountNameW, LookupAccountSidW, OWNER_SECURITY_INFORMATION,
    PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, PSID, SE_DACL_PROTECTED,
    UNPROTECTED_DACL_SECURITY_INFORMATION,
};

use super::{from_wide, wide, wide_str};
use crate::data::winmeta as sddl;

const WHAT: u32 =
    OWNER_SECURITY_INFORMATION | GROUP_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION;

fn win32(code: u32) -> io::Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(code as i32))
    }
}

/// `DOMAIN\name` of a SID on this system.
fn name_of_sid(sid: PSID) -> Option<String> {
    // SAFETY: `sid` is a valid SID for the caller's lifetime; the string is freed.
    let key = unsafe {
        let mut s = std::ptr::null_mut();
        if ConvertSidToStringSidW(sid, &mut s) == 0 {
            return lookup_sid(sid);
        }
        let k = from_wide(s);
        LocalFree(s.cast());
        k
    };
    // a data path names the same few accounts on every file: look each up once
    thread_local! {
        static NAMES: std::cell::RefCell<std::collections::HashMap<String, Option<String>>> =
            Default::default();
    }
    if let Some(hit) = NAMES.with(|n| n.borrow().get(&key).cloned()) {
        return hit;
    }
    let found = lookup_sid(sid);
    NAMES.with(|n| n.borrow_mut().insert(key, found.clone()));
    found
}

fn lookup_sid(sid: PSID) -> Option<String> {
    let (mut name, mut domain) = ([0u16; 256], [0u16; 256]);
    let (mut n, mut d, mut kind) = (256u32, 256u32, 0);
    // SAFETY: the buffers have the sizes passed.
    let ok = unsafe {
        LookupAccountSidW(
            std::ptr::null(),
            sid,
            name.as_mut_ptr(),
            &mut n,
            domain.as_mut_ptr(),
            &mut d,
            &mut kind,
        )
    };
    (ok != 0).then(|| {
        let (name, domain) = (
            String::from_utf16_lossy(&name[..n as usize]),
            String::from_utf16_lossy(&domain[..d as usize]),
        );
        if domain.is_empty() {
            name
        } else {
            format!("{domain}\\{name}")
        }
    })
}

/// The SID string of an account name on this system.
fn sid_of_name(name: &str) -> Option<String> {
    let w = wide_str(name);
    let mut sid = [0u8; 128];
    let mut domain = [0u16; 256];
    let (mut n, mut d, mut kind) = (sid.len() as u32, 256u32, 0);
    // SAFETY: the buffers have the sizes passed; the SID string is freed with LocalFree.
    unsafe {
        if LookupAccountNameW(
            std::ptr::null(),
            w.as_ptr(),
            sid.as_mut_ptr().cast(),
            &mut n,
            domain.as_mut_ptr(),
            &mut d,
            &mut kind,
        ) == 0
        {
            return None;
        }
        let mut s = std::ptr::null_mut();
        if ConvertSidToStringSidW(sid.as_mut_ptr().cast(), &mut s) == 0 {
            return None;
        }
        let out = from_wide(s);
        LocalFree(s.cast());
        Some(out)
    }
}

/// True when a SID string names an account this system knows.
fn sid_known(sid: &str) -> bool {
    let w = wide_str(sid);
    let mut p: PSID = std::ptr::null_mut();
    // SAFETY: `p` is freed with LocalFree.
    unsafe {
        if ConvertStringSidToSidW(w.as_ptr(), &mut p) == 0 {
            return false;
        }
        let known = name_of_sid(p).is_some();
        LocalFree(p.cast());
        known
    }
}

/// A file's security descriptor as the `windows.security` attribute value.
pub fn security_of(path: &Path) -> io::Result<Vec<u8>> {
    let w = wide(path.as_os_str());
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: out pointers are valid; `sd` and the string are freed with LocalFree.
    unsafe {
        win32(GetNamedSecurityInfoW(
            w.as_ptr(),
            SE_FILE_OBJECT,
            WHAT,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut sd,
        ))?;
        let mut s = std::ptr::null_mut();
        let mut len = 0u32;
        let ok = ConvertSecurityDescriptorToStringSecurityDescriptorW(
            sd,
            SDDL_REVISION_1,
            WHAT,
            &mut s,
            &mut len,
        );
        LocalFree(sd);
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        let text = from_wide(s);
        LocalFree(s.cast());
        let names: Vec<(String, String)> = sddl::account_sids(&text)
            .into_iter()
            .filter_map(|sid| {
                let w = wide_str(&sid);
                let mut p: PSID = std::ptr::null_mut();
                if ConvertStringSidToSidW(w.as_ptr(), &mut p) == 0 {
                    return None;
                }
                let name = name_of_sid(p);
                LocalFree(p.cast());
                name.map(|n| (sid, n))
            })
            .collect();
        Ok(sddl::encode(&text, &names))
    }
}

/// Sets a file's owner, group and DACL from a `windows.security` value: an account SID
/// this system does not know is replaced by the SID of the same-named account here
/// (`OLDPC\app` → this computer's `app`); one with no such account stays as it was.
pub fn set_security(path: &Path, value: &[u8]) -> io::Result<()> {
    let (text, names) = sddl::decode(value);
    let map: Vec<(String, String)> = names
        .into_iter()
        .filter(|(sid, _)| !sid_known(sid))
        .filter_map(|(sid, name)| {
            let bare = name.rsplit('\\').next().unwrap_or(&name).to_string();
            sid_of_name(&name)
                .or_else(|| sid_of_name(&bare))
                .map(|new| (sid, new))
        })
        .collect();
    let text = sddl::rewrite(&text, &map);
    super::enable_privilege("SeRestorePrivilege");
    super::enable_privilege("SeTakeOwnershipPrivilege");
    let w = wide_str(&text);
    let p = wide(path.as_os_str());
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: `sd` is freed with LocalFree; the SIDs and ACL point into it.
    unsafe {
        if ConvertStringSecurityDescriptorToSecurityDescriptorW(
            w.as_ptr(),
            SDDL_REVISION_1,
            &mut sd,
            std::ptr::null_mut(),
        ) == 0
        {
            return Err(io::Error::other(format!(
                "not a security descriptor ({}): {text}",
                io::Error::last_os_error()
            )));
        }
        let (mut owner, mut group): (PSID, PSID) = (std::ptr::null_mut(), std::ptr::null_mut());
        let (mut dacl, mut present, mut defaulted) = (std::ptr::null_mut(), 0, 0);
        let (mut control, mut revision) = (0u16, 0u32);
        GetSecurityDescriptorOwner(sd, &mut owner, &mut defaulted);
        GetSecurityDescriptorGroup(sd, &mut group, &mut defaulted);
        GetSecurityDescriptorDacl(sd, &mut present, &mut dacl, &mut defaulted);
        GetSecurityDescriptorControl(sd, &mut control, &mut revision);
        let mut what = 0;
        if !owner.is_null() {
            what |= OWNER_SECURITY_INFORMATION;
        }
        if !group.is_null() {
            what |= GROUP_SECURITY_INFORMATION;
        }
        if present != 0 {
            what |= DACL_SECURITY_INFORMATION
                | if control & SE_DACL_PROTECTED != 0 {
                    PROTECTED_DACL_SECURITY_INFORMATION
                } else {
                    UNPROTECTED_DACL_SECURITY_INFORMATION
                };
        }
        let r = SetNamedSecurityInfoW(
            p.as_ptr(),
            SE_FILE_OBJECT,
            what,
            owner,
            group,
            dacl,
            std::ptr::null(),
        );
        LocalFree(sd);
        win32(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wine accepts a file's security descriptor but keeps only what its Unix mode can
    /// hold (it reads back its default descriptor): there, the calls are checked, not the
    /// round trip.
    #[test]
    fn a_security_descriptor_round_trips_through_its_value() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f.txt");
        std::fs::write(&f, "x").unwrap();
        let want = "O:BAG:SYD:PAI(A;;FA;;;SY)(A;;FR;;;BU)";
        set_security(&f, want.as_bytes()).unwrap();
        let e = set_security(&f, b"D:(this is not SDDL").unwrap_err();
        assert!(e.to_string().contains("not a security descriptor"), "{e}");
        let (got, names) = sddl::decode(&security_of(&f).unwrap());
        assert!(got.contains("D:"), "{got}");
        for (sid, name) in &names {
            assert!(got.contains(sid.as_str()) && !name.is_empty(), "{names:?}");
        }
        if super::super::is_wine() {
            return;
        }
        assert!(
            got.contains("(A;;FR;;;BU)") && got.contains("D:PAI"),
            "{got}"
        );
        assert!(got.starts_with("O:BA"), "{got}");
    }
}
