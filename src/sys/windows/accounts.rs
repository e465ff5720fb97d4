//! Local users and groups through the NetAPI: listed at capture, recreated at restore
//! (accounts without their passwords: Windows never gives those out).

use std::io;

use windows_sys::Win32::NetworkManagement::NetManagement::{
    FILTER_NORMAL_ACCOUNT, LOCALGROUP_INFO_1, LOCALGROUP_MEMBERS_INFO_3, MAX_PREFERRED_LENGTH,
    NetApiBufferFree, NetLocalGroupAdd, NetLocalGroupAddMembers, NetLocalGroupEnum,
    NetLocalGroupGetMembers, NetUserAdd, NetUserEnum, NetUserSetInfo, UF_ACCOUNTDISABLE,
    UF_NORMAL_ACCOUNT, UF_SCRIPT, USER_INFO_1, USER_INFO_20, USER_INFO_1011, USER_PRIV_USER,
};

use super::{from_wide, wide_str};
use crate::state::windows::{WinGroup, WinUser};

const ERROR_MORE_DATA: u32 = 234;
const NERR_USER_EXISTS: u32 = 2224;
const NERR_GROUP_EXISTS: u32 = 2223;
const ERROR_MEMBER_IN_ALIAS: u32 = 1378;
const ERROR_ALIAS_EXISTS: u32 = 1379;

fn net_error(what: &str, code: u32) -> io::Error {
    io::Error::other(format!(
        "{what}: {} (NetAPI status {code})",
        io::Error::from_raw_os_error(code as i32)
    ))
}

/// Calls a NetAPI enumeration until it has everything, handing each buffer's entries of
/// type `T` to `each`.
///
/// # Safety
/// `call` must be a NetAPI enumeration that fills buffers of `T` entries.
unsafe fn enumerate<T>(
    what: &str,
    mut call: impl FnMut(*mut *mut u8, &mut u32, &mut u32, &mut usize) -> u32,
    mut each: impl FnMut(&T),
) -> io::Result<()> {
    let mut resume = 0usize;
    loop {
        let (mut buf, mut read, mut total) = (std::ptr::null_mut::<u8>(), 0u32, 0u32);
        let r = call(&mut buf, &mut read, &mut total, &mut resume);
        if r != 0 && r != ERROR_MORE_DATA {
            if !buf.is_null() {
                // SAFETY: the NetAPI allocated it.
                unsafe { NetApiBufferFree(buf.cast()) };
            }
            return Err(net_error(what, r));
        }
        if !buf.is_null() {
            // SAFETY: the NetAPI filled `read` entries of `T`, freed right after.
            unsafe {
                for e in std::slice::from_raw_parts(buf as *const T, read as usize) {
                    each(e);
                }
                NetApiBufferFree(buf.cast());
            }
        }
        if r != ERROR_MORE_DATA {
            return Ok(());
        }
    }
}

/// The local user accounts.
pub fn users() -> io::Result<Vec<WinUser>> {
    let mut out = Vec::new();
    // SAFETY: level 20 fills USER_INFO_20 entries.
    unsafe {
        enumerate::<USER_INFO_20>(
            "NetUserEnum",
            |buf, read, total, resume| {
                let mut h = *resume as u32;
                let r = NetUserEnum(
                    std::ptr::null(),
                    20,
                    FILTER_NORMAL_ACCOUNT,
                    buf,
                    MAX_PREFERRED_LENGTH,
                    read,
                    total,
                    &mut h,
                );
                *resume = h as usize;
                r
            },
            |u| {
                out.push(WinUser {
                    name: from_wide(u.usri20_name),
                    full_name: from_wide(u.usri20_full_name),
                    comment: from_wide(u.usri20_comment),
                    disabled: u.usri20_flags & UF_ACCOUNTDISABLE != 0,
                })
            },
        )?;
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The local groups with their members.
pub fn groups() -> io::Result<Vec<WinGroup>> {
    let mut out = Vec::new();
    // SAFETY: level 1 fills LOCALGROUP_INFO_1 entries.
    unsafe {
        enumerate::<LOCALGROUP_INFO_1>(
            "NetLocalGroupEnum",
            |buf, read, total, resume| {
                NetLocalGroupEnum(
                    std::ptr::null(),
                    1,
                    buf,
                    MAX_PREFERRED_LENGTH,
                    read,
                    total,
                    resume,
                )
            },
            |g| {
                out.push(WinGroup {
                    name: from_wide(g.lgrpi1_name),
                    comment: from_wide(g.lgrpi1_comment),
                    members: Vec::new(),
                })
            },
        )?;
    }
    for g in &mut out {
        g.members = group_members(&g.name)?;
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// A local group's members as `DOMAIN\name`.
pub fn group_members(group: &str) -> io::Result<Vec<String>> {
    let w = wide_str(group);
    let mut out = Vec::new();
    // SAFETY: level 3 fills LOCALGROUP_MEMBERS_INFO_3 entries.
    unsafe {
        enumerate::<LOCALGROUP_MEMBERS_INFO_3>(
            "NetLocalGroupGetMembers",
            |buf, read, total, resume| {
                NetLocalGroupGetMembers(
                    std::ptr::null(),
                    w.as_ptr(),
                    3,
                    buf,
                    MAX_PREFERRED_LENGTH,
                    read,
                    total,
                    resume,
                )
            },
            |m| out.push(from_wide(m.lgrmi3_domainandname)),
        )?;
    }
    out.sort();
    Ok(out)
}

/// Creates a local user with a long random password nobody knows (the old password
/// cannot be carried): the operator sets one. Returns false when it already exists.
pub fn add_user(u: &WinUser) -> io::Result<bool> {
    if users()?
        .iter()
        .any(|x| x.name.eq_ignore_ascii_case(&u.name))
    {
        return Ok(false);
    }
    let mut name = wide_str(&u.name);
    let mut password = wide_str(&random_password());
    let mut comment = wide_str(&u.comment);
    let info = USER_INFO_1 {
        usri1_name: name.as_mut_ptr(),
        usri1_password: password.as_mut_ptr(),
        usri1_priv: USER_PRIV_USER,
        usri1_comment: comment.as_mut_ptr(),
        usri1_flags: UF_SCRIPT | UF_NORMAL_ACCOUNT | if u.disabled { UF_ACCOUNTDISABLE } else { 0 },
        ..Default::default()
    };
    let mut bad = 0u32;
    // SAFETY: `info` and its strings live across the call.
    let r = unsafe {
        NetUserAdd(
            std::ptr::null(),
            1,
            (&info as *const USER_INFO_1).cast(),
            &mut bad,
        )
    };
    password.fill(0);
    match r {
        0 => {}
        NERR_USER_EXISTS => return Ok(false),
        e => return Err(net_error(&format!("creating the user {}", u.name), e)),
    }
    if !u.full_name.is_empty() {
        let mut full = wide_str(&u.full_name);
        let fi = USER_INFO_1011 {
            usri1011_full_name: full.as_mut_ptr(),
        };
        // SAFETY: `fi` and its string live across the call.
        let r = unsafe {
            NetUserSetInfo(
                std::ptr::null(),
                name.as_ptr(),
                1011,
                (&fi as *const USER_INFO_1011).cast(),
                &mut bad,
            )
        };
        if r != 0 {
            return Err(net_error(&format!("naming the user {}", u.name), r));
        }
    }
    Ok(true)
}

/// Creates a local group; false when it already exists.
pub fn add_group(g: &WinGroup) -> io::Result<bool> {
    let mut name = wide_str(&g.name);
    let mut comment = wide_str(&g.comment);
    let info = LOCALGROUP_INFO_1 {
        lgrpi1_name: name.as_mut_ptr(),
        lgrpi1_comment: comment.as_mut_ptr(),
    };
    let mut bad = 0u32;
    // SAFETY: `info` and its strings live across the call.
    match unsafe {
        NetLocalGroupAdd(
            std::ptr::null(),
            1,
            (&info as *const LOCALGROUP_INFO_1).cast(),
            &mut bad,
        )
    } {
        0 => Ok(true),
        NERR_GROUP_EXISTS | ERROR_ALIAS_EXISTS => Ok(false),
        e => Err(net_error(&format!("creating the group {}", g.name), e)),
    }
}

/// Adds `member` (`name` or `DOMAIN\name`) to a local group; false when it was already in.
pub fn add_group_member(group: &str, member: &str) -> io::Result<bool> {
    let g = wide_str(group);
    let mut m = wide_str(member);
    let info = LOCALGROUP_MEMBERS_INFO_3 {
        lgrmi3_domainandname: m.as_mut_ptr(),
    };
    // SAFETY: `info` and its string live across the call.
    match unsafe {
        NetLocalGroupAddMembers(
            std::ptr::null(),
            g.as_ptr(),
            3,
            (&info as *const LOCALGROUP_MEMBERS_INFO_3).cast(),
            1,
        )
    } {
        0 => Ok(true),
        ERROR_MEMBER_IN_ALIAS => Ok(false),
        e => Err(net_error(&format!("adding {member} to {group}"), e)),
    }
}

/// 32 characters from every class a password policy asks for.
fn random_password() -> String {
    const CLASSES: [&[u8]; 4] = [
        b"ABCDEFGHJKLMNPQRSTUVWXYZ",
        b"abcdefghijkmnopqrstuvwxyz",
        b"23456789",
        b"!#%*+-=?@^_",
    ];
    let pick = |n: usize| rand::random::<u32>() as usize % n;
    (0..32)
        .map(|i| {
            let class = CLASSES[if i < 4 { i } else { pick(4) }];
            class[pick(class.len())] as char
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the NetAPI of the Windows running the tests. Wine's accepts a new user
    /// and forgets it (NetUserEnum lists only the logged-on user; the local-group calls
    /// are stubs), so there only the call itself is checked.
    #[test]
    fn accounts_and_groups_are_created_and_listed() {
        let wine = super::super::is_wine();
        let u = WinUser {
            name: "carryover-t1".into(),
            full_name: if wine {
                String::new()
            } else {
                "Carry Over".into()
            },
            comment: "test account".into(),
            disabled: false,
        };
        assert!(add_user(&u).unwrap(), "created");
        assert_eq!(random_password().len(), 32);
        if wine {
            return;
        }
        assert!(!add_user(&u).unwrap(), "exists: nothing to do");
        let users = users().unwrap();
        assert!(users.iter().any(|x| x.name == u.name), "{users:?}");
        let g = WinGroup {
            name: "carryover-g1".into(),
            comment: "test group".into(),
            members: vec![],
        };
        assert!(add_group(&g).unwrap());
        assert!(!add_group(&g).unwrap());
        assert!(add_group_member(&g.name, &u.name).unwrap());
        assert!(!add_group_member(&g.name, &u.name).unwrap());
        let m = group_members(&g.name).unwrap();
        assert!(m.iter().any(|x| x.ends_with(&u.name)), "{m:?}");
    }
}
