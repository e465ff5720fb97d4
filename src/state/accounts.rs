//! Local accounts: the users and groups an operator created (ids in the login.defs
//! range), their memberships, and the merge that recreates them in a new OS's
//! passwd/group/shadow files with the same names and, where free, the same ids.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::Gather;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// The primary group's name.
    pub group: Option<String>,
    pub gecos: String,
    pub home: String,
    pub shell: String,
    /// Supplementary groups, by name (system groups such as `sudo` included).
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// A user's /etc/shadow line: private, captured only when the config asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowEntry {
    pub name: String,
    pub line: String,
}

/// The id range of login.defs that regular accounts are allocated from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub uid_min: u32,
    pub uid_max: u32,
    pub gid_min: u32,
    pub gid_max: u32,
}

impl Default for IdRange {
    fn default() -> Self {
        IdRange {
            uid_min: 1000,
            uid_max: 60000,
            gid_min: 1000,
            gid_max: 60000,
        }
    }
}

pub fn parse_login_defs(text: &str) -> IdRange {
    let mut r = IdRange::default();
    for line in text.lines() {
        let w = super::words(line);
        if let [k, v] = w.as_slice()
            && let Ok(v) = v.parse::<u32>()
        {
            match *k {
                "UID_MIN" => r.uid_min = v,
                "UID_MAX" => r.uid_max = v,
                "GID_MIN" => r.gid_min = v,
                "GID_MAX" => r.gid_max = v,
                _ => {}
            }
        }
    }
    r
}

/// One passwd line's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdLine {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub gecos: String,
    pub home: String,
    pub shell: String,
}

/// Parses passwd; lines that are not seven fields with numeric ids are returned as errors
/// (line number, text) so they can be named.
pub fn parse_passwd(text: &str) -> (Vec<PasswdLine>, Vec<usize>) {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() || l.starts_with('#') || l.starts_with('+') || l.starts_with('-') {
            continue;
        }
        let f: Vec<&str> = l.split(':').collect();
        match (
            f.len(),
            f.get(2).map(|x| x.parse()),
            f.get(3).map(|x| x.parse()),
        ) {
            (7, Some(Ok(uid)), Some(Ok(gid))) => out.push(PasswdLine {
                name: f[0].to_string(),
                uid,
                gid,
                gecos: f[4].to_string(),
                home: f[5].to_string(),
                shell: f[6].to_string(),
            }),
            _ => bad.push(i + 1),
        }
    }
    (out, bad)
}

/// Parses /etc/group; bad lines by number.
pub fn parse_group(text: &str) -> (Vec<Group>, Vec<usize>) {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() || l.starts_with('#') || l.starts_with('+') || l.starts_with('-') {
            continue;
        }
        let f: Vec<&str> = l.split(':').collect();
        match (f.len(), f.get(2).map(|x| x.parse())) {
            (4, Some(Ok(gid))) => out.push(Group {
                name: f[0].to_string(),
                gid,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
            }),
            _ => bad.push(i + 1),
        }
    }
    (out, bad)
}

pub fn gather(g: &Gather) -> (Vec<User>, Vec<Group>, Vec<ShadowEntry>) {
    let range = g
        .read("/etc/login.defs")
        .map(|t| parse_login_defs(&t))
        .unwrap_or_default();
    let (passwd, bad) = parse_passwd(&g.read("/etc/passwd").unwrap_or_default());
    for n in bad {
        g.problem(
            "/etc/passwd",
            format!("line {n} is not a valid passwd entry; skipped"),
        );
    }
    let (all_groups, bad) = parse_group(&g.read("/etc/group").unwrap_or_default());
    for n in bad {
        g.problem(
            "/etc/group",
            format!("line {n} is not a valid group entry; skipped"),
        );
    }
    let users: Vec<User> = passwd
        .iter()
        .filter(|p| p.uid >= range.uid_min && p.uid <= range.uid_max)
        .map(|p| User {
            name: p.name.clone(),
            uid: p.uid,
            gid: p.gid,
            group: all_groups
                .iter()
                .find(|gr| gr.gid == p.gid)
                .map(|gr| gr.name.clone()),
            gecos: p.gecos.clone(),
            home: p.home.clone(),
            shell: p.shell.clone(),
            groups: all_groups
                .iter()
                .filter(|gr| gr.members.contains(&p.name))
                .map(|gr| gr.name.clone())
                .collect(),
        })
        .collect();
    let groups: Vec<Group> = all_groups
        .iter()
        .filter(|gr| gr.gid >= range.gid_min && gr.gid <= range.gid_max)
        .cloned()
        .collect();
    let mut shadow = Vec::new();
    if g.config.password_hashes {
        let text = g.read("/etc/shadow").unwrap_or_default();
        for l in text.lines() {
            let name = l.split(':').next().unwrap_or("");
            if users.iter().any(|u| u.name == name) {
                shadow.push(ShadowEntry {
                    name: name.to_string(),
                    line: l.to_string(),
                });
            }
        }
    }
    (users, groups, shadow)
}

/// The users and groups of the system under `root` (unreadable files count as empty).
pub fn load(root: &crate::sys::Root) -> (Vec<PasswdLine>, Vec<Group>) {
    let read = |p: &str| {
        crate::sys::read_opt(&root.follow(p))
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    (
        parse_passwd(&read("/etc/passwd")).0,
        parse_group(&read("/etc/group")).0,
    )
}

/// The account files of a new OS, as text (gshadow may be absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountFiles {
    pub passwd: String,
    pub group: String,
    pub shadow: Option<String>,
    pub gshadow: Option<String>,
}

/// Merges captured users and groups into a new OS's account files. Same name and id when
/// the id is free; a taken id gets the next free one in the range and is reported; a
/// name that exists already keeps the new OS's entry, and memberships are added to it.
/// Returns the new files and the notes (what clashed or could not be done).
pub fn merge(
    files: &AccountFiles,
    range: IdRange,
    users: &[User],
    groups: &[Group],
    shadow: &[ShadowEntry],
    days_since_epoch: u64,
) -> (AccountFiles, Vec<String>) {
    let mut notes = Vec::new();
    let (passwd, _) = parse_passwd(&files.passwd);
    let (mut new_groups, _) = parse_group(&files.group);
    let mut passwd_lines: Vec<String> = files.passwd.lines().map(str::to_string).collect();
    let mut group_lines: Vec<String> = files.group.lines().map(str::to_string).collect();
    let mut shadow_lines: Option<Vec<String>> = files
        .shadow
        .as_ref()
        .map(|s| s.lines().map(str::to_string).collect());
    let mut gshadow_lines: Option<Vec<String>> = files
        .gshadow
        .as_ref()
        .map(|s| s.lines().map(str::to_string).collect());

    let mut used_gids: BTreeSet<u32> = new_groups.iter().map(|g| g.gid).collect();
    let mut used_uids: BTreeSet<u32> = passwd.iter().map(|p| p.uid).collect();

    // Groups first: users' primary groups must exist.
    let mut wanted: Vec<Group> = groups.to_vec();
    for u in users {
        if let Some(gname) = &u.group
            && !wanted.iter().any(|g| &g.name == gname)
            && !new_groups.iter().any(|g| &g.name == gname)
        {
            wanted.push(Group {
                name: gname.clone(),
                gid: u.gid,
                members: Vec::new(),
            });
        }
    }
    for g in &wanted {
        if let Some(existing) = new_groups.iter().find(|x| x.name == g.name) {
            if existing.gid != g.gid {
                notes.push(format!(
                    "group {} has gid {} on the new OS (was {}): kept {}",
                    g.name, existing.gid, g.gid, existing.gid
                ));
            }
            continue;
        }
        let Some(gid) = pick_id(
            g.gid,
            &used_gids,
            (range.gid_min, range.gid_max),
            &format!("group {}: gid", g.name),
            &mut notes,
        ) else {
            continue;
        };
        used_gids.insert(gid);
        group_lines.push(format!("{}:x:{}:", g.name, gid));
        if let Some(gs) = gshadow_lines.as_mut() {
            gs.push(format!("{}:!::", g.name));
        }
        new_groups.push(Group {
            name: g.name.clone(),
            gid,
            members: Vec::new(),
        });
    }

    for u in users {
        if let Some(existing) = passwd.iter().find(|p| p.name == u.name) {
            if existing.uid != u.uid {
                notes.push(format!(
                    "user {} has uid {} on the new OS (was {}): kept {}",
                    u.name, existing.uid, u.uid, existing.uid
                ));
            }
        } else {
            let Some(uid) = pick_id(
                u.uid,
                &used_uids,
                (range.uid_min, range.uid_max),
                &format!("user {}: uid", u.name),
                &mut notes,
            ) else {
                continue;
            };
            used_uids.insert(uid);
            let gid = u
                .group
                .as_ref()
                .and_then(|n| new_groups.iter().find(|g| &g.name == n))
                .map(|g| g.gid)
                .unwrap_or(u.gid);
            passwd_lines.push(format!(
                "{}:x:{}:{}:{}:{}:{}",
                u.name, uid, gid, u.gecos, u.home, u.shell
            ));
            if let Some(sh) = shadow_lines.as_mut() {
                let line = shadow
                    .iter()
                    .find(|s| s.name == u.name)
                    .map(|s| s.line.clone())
                    .unwrap_or_else(|| format!("{}:!:{}:0:99999:7:::", u.name, days_since_epoch));
                sh.push(line);
            }
        }
        // Memberships: captured groups and the user's supplementary groups.
        let mut member_of: Vec<&str> = u.groups.iter().map(String::as_str).collect();
        for g in groups.iter().filter(|g| g.members.contains(&u.name)) {
            if !member_of.contains(&g.name.as_str()) {
                member_of.push(&g.name);
            }
        }
        for gname in member_of {
            let Some(idx) = group_lines
                .iter()
                .position(|l| l.split(':').next() == Some(gname))
            else {
                notes.push(format!(
                    "user {}: group {gname} does not exist on the new OS; membership not restored",
                    u.name
                ));
                continue;
            };
            group_lines[idx] = add_member(&group_lines[idx], &u.name);
            if let Some(gs) = gshadow_lines.as_mut()
                && let Some(i) = gs.iter().position(|l| l.split(':').next() == Some(gname))
            {
                gs[i] = add_member(&gs[i], &u.name);
            }
        }
    }
    let join = |v: Vec<String>| {
        let mut s = v.join("\n");
        s.push('\n');
        s
    };
    (
        AccountFiles {
            passwd: join(passwd_lines),
            group: join(group_lines),
            shadow: shadow_lines.map(join),
            gshadow: gshadow_lines.map(join),
        },
        notes,
    )
}

/// The id to create an account with: the old one when free on the new OS, else the
/// first free one in the range (noted), or `None` when the range is full (noted).
fn pick_id(
    wanted: u32,
    used: &BTreeSet<u32>,
    (min, max): (u32, u32),
    what: &str,
    notes: &mut Vec<String>,
) -> Option<u32> {
    if !used.contains(&wanted) {
        return Some(wanted);
    }
    match (min..=max).find(|x| !used.contains(x)) {
        Some(free) => {
            notes.push(format!(
                "{what} {wanted} is taken on the new OS, created with {free}"
            ));
            Some(free)
        }
        None => {
            notes.push(format!(
                "{what} {wanted} is taken and no id is free in {min}..={max}"
            ));
            None
        }
    }
}

/// Adds a member to the last field of a group or gshadow line (idempotent).
fn add_member(line: &str, user: &str) -> String {
    let mut f: Vec<String> = line.split(':').map(str::to_string).collect();
    let Some(last) = f.last_mut() else {
        return line.to_string();
    };
    let mut members: Vec<&str> = last.split(',').filter(|m| !m.is_empty()).collect();
    if members.contains(&user) {
        return line.to_string();
    }
    members.push(user);
    *last = members.join(",");
    f.join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nalice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\nbob:x:1001:1001::/home/bob:/bin/sh\ngarbage line\n";
    const GROUP: &str = "root:x:0:\nsudo:x:27:alice\nusers:x:100:\nalice:x:1000:\nbob:x:1001:\ndevs:x:2000:alice,bob\n";

    #[test]
    fn login_defs_rhel7() {
        let r = parse_login_defs(
            "UID_MIN                  1000\nUID_MAX                 60000\nSYS_UID_MIN               201\nGID_MIN   500 # old\n",
        );
        assert_eq!(r.uid_min, 1000);
        assert_eq!(r.gid_min, 500);
    }

    #[test]
    fn parses_and_flags_bad_lines() {
        let (p, bad) = parse_passwd(PASSWD);
        assert_eq!(p.len(), 5);
        assert_eq!(bad, vec![6]);
        let (g, bad) = parse_group(GROUP);
        assert_eq!(g.len(), 6);
        assert!(bad.is_empty());
    }

    fn captured() -> (Vec<User>, Vec<Group>) {
        let users = vec![
            User {
                name: "alice".into(),
                uid: 1000,
                gid: 1000,
                group: Some("alice".into()),
                gecos: "Alice,,,".into(),
                home: "/home/alice".into(),
                shell: "/bin/bash".into(),
                groups: vec!["sudo".into(), "devs".into(), "docker".into()],
            },
            User {
                name: "bob".into(),
                uid: 1001,
                gid: 1001,
                group: Some("bob".into()),
                gecos: "".into(),
                home: "/home/bob".into(),
                shell: "/bin/sh".into(),
                groups: vec!["devs".into()],
            },
        ];
        let groups = vec![
            Group {
                name: "alice".into(),
                gid: 1000,
                members: vec![],
            },
            Group {
                name: "bob".into(),
                gid: 1001,
                members: vec![],
            },
            Group {
                name: "devs".into(),
                gid: 2000,
                members: vec!["alice".into(), "bob".into()],
            },
        ];
        (users, groups)
    }

    #[test]
    fn merge_into_fresh_os() {
        let (users, groups) = captured();
        let files = AccountFiles {
            passwd: "root:x:0:0:root:/root:/bin/bash\ndebian:x:1000:1000::/home/debian:/bin/bash\n"
                .into(),
            group: "root:x:0:\nsudo:x:27:\ndebian:x:1000:\n".into(),
            shadow: Some("root:*:19000:0:99999:7:::\ndebian:!:19000:0:99999:7:::\n".into()),
            gshadow: Some("root:*::\nsudo:*::\ndebian:!::\n".into()),
        };
        let (out, notes) = merge(&files, IdRange::default(), &users, &groups, &[], 20000);
        // alice's uid 1000 and gid 1000 are taken by the image's user: next free ids.
        assert!(
            out.passwd
                .contains("alice:x:1001:1001:Alice,,,:/home/alice:/bin/bash"),
            "{}",
            out.passwd
        );
        assert!(
            out.passwd.contains("bob:x:1002:1002::/home/bob:/bin/sh"),
            "{}",
            out.passwd
        );
        assert!(out.group.contains("sudo:x:27:alice\n"));
        assert!(out.group.contains("devs:x:2000:alice,bob\n"));
        assert!(
            out.shadow
                .as_ref()
                .unwrap()
                .contains("alice:!:20000:0:99999:7:::")
        );
        assert!(out.gshadow.as_ref().unwrap().contains("devs:!::alice,bob"));
        assert!(notes.iter().any(|n| n.contains("uid 1000 is taken")));
        assert!(notes.iter().any(|n| n.contains("docker does not exist")));
        // idempotent
        let (again, _) = merge(&out, IdRange::default(), &users, &groups, &[], 20000);
        assert_eq!(again, out);
    }

    #[test]
    fn free_ids_are_kept_and_hashes_carried() {
        let (users, groups) = captured();
        let files = AccountFiles {
            passwd: "root:x:0:0:root:/root:/bin/bash\n".into(),
            group: "root:x:0:\nsudo:x:27:\n".into(),
            shadow: Some("root:*:19000:0:99999:7:::\n".into()),
            gshadow: None,
        };
        let shadow = vec![ShadowEntry {
            name: "alice".into(),
            line: "alice:$6$salt$hash:19500:0:99999:7:::".into(),
        }];
        let (out, _) = merge(&files, IdRange::default(), &users, &groups, &shadow, 20000);
        assert!(out.passwd.contains("alice:x:1000:1000:"));
        assert!(out.shadow.unwrap().contains("alice:$6$salt$hash"));
        assert!(out.gshadow.is_none());
    }
}
