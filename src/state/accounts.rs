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

/// Every account of a system by name and id (system accounts too): not secret, small.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IdNames {
    pub users: Vec<(String, u32)>,
    pub groups: Vec<(String, u32)>,
}

impl IdNames {
    /// The name of user `uid`.
    pub fn user(&self, uid: u32) -> Option<&str> {
        self.users.iter().find(|u| u.1 == uid).map(|u| u.0.as_str())
    }

    /// The name of group `gid`.
    pub fn group(&self, gid: u32) -> Option<&str> {
        self.groups
            .iter()
            .find(|g| g.1 == gid)
            .map(|g| g.0.as_str())
    }

    /// The names and ids of parsed account files, in their order.
    pub fn of(users: &[PasswdLine], groups: &[Group]) -> IdNames {
        IdNames {
            users: users.iter().map(|p| (p.name.clone(), p.uid)).collect(),
            groups: groups.iter().map(|g| (g.name.clone(), g.gid)).collect(),
        }
    }

    /// The accounts of the system under `root` (unreadable files count as empty).
    pub fn load(root: &crate::sys::Root) -> IdNames {
        let (users, groups) = load(root);
        IdNames::of(&users, &groups)
    }
}

pub fn id_names(g: &Gather) -> IdNames {
    IdNames::of(
        &parse_passwd(&g.read("/etc/passwd").unwrap_or_default()).0,
        &parse_group(&g.read("/etc/group").unwrap_or_default()).0,
    )
}

/// The one lookup of account names and ids, both ways: data capture records each file's
/// owner by name, data restore finds the new OS's id for that name. Built from the same
/// pairs capture records as `ids`. Where a file lists a name or an id twice, the later
/// line wins.
#[derive(Debug, Default)]
pub struct Names {
    pub users: IdMap,
    pub groups: IdMap,
}

/// Names ↔ ids of one kind of account (users or groups).
#[derive(Debug, Default)]
pub struct IdMap {
    by_id: std::collections::HashMap<u32, String>,
    by_name: std::collections::HashMap<String, u32>,
}

impl IdMap {
    fn of(pairs: &[(String, u32)]) -> IdMap {
        IdMap {
            by_id: pairs.iter().map(|(n, i)| (*i, n.clone())).collect(),
            by_name: pairs.iter().map(|(n, i)| (n.clone(), *i)).collect(),
        }
    }

    /// The name of an id.
    pub fn name(&self, id: u32) -> Option<&str> {
        self.by_id.get(&id).map(String::as_str)
    }

    /// The id of a name.
    pub fn id(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// True when some account has this id.
    pub fn has_id(&self, id: u32) -> bool {
        self.by_id.contains_key(&id)
    }
}

impl Names {
    pub fn of(ids: &IdNames) -> Names {
        Names {
            users: IdMap::of(&ids.users),
            groups: IdMap::of(&ids.groups),
        }
    }

    /// The accounts of the system under `root`.
    pub fn load(root: &crate::sys::Root) -> Names {
        Names::of(&IdNames::load(root))
    }
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

/// What the accounts merge starts from.
pub struct MergeInput<'a> {
    /// The new OS's account files as they are now (after an earlier run, with what it
    /// created).
    pub files: &'a AccountFiles,
    /// The new OS's own accounts, as the image brought them (before any restore).
    pub image_passwd: &'a [PasswdLine],
    pub image_groups: &'a [Group],
    pub range: IdRange,
    pub users: &'a [User],
    pub groups: &'a [Group],
    pub shadow: &'a [ShadowEntry],
    pub days_since_epoch: u64,
    /// The new OS's admin group (`admin_group`): a membership in another family's admin
    /// group (`wheel` from Rocky on Ubuntu) goes to it.
    pub admin_group: Option<&'a str>,
}

/// The groups whose members may use sudo, by family: `sudo` (Debian, Ubuntu), `wheel`
/// (Red Hat, SUSE), `admin` (old Ubuntu).
pub const ADMIN_GROUPS: &[&str] = &["sudo", "wheel", "admin"];

/// The new OS's admin group: the first of `ADMIN_GROUPS` that its sudoers grants
/// (`%wheel ALL=…`), else the first it has.
pub fn admin_group(groups: &[Group], sudoers: Option<&str>) -> Option<String> {
    let has = |g: &str| groups.iter().any(|x| x.name == g);
    let granted = |g: &str| {
        sudoers.is_some_and(|t| {
            t.lines().any(|l| {
                l.trim_start()
                    .strip_prefix('%')
                    .and_then(|r| r.split_whitespace().next())
                    == Some(g)
            })
        })
    };
    ADMIN_GROUPS
        .iter()
        .find(|g| has(g) && granted(g))
        .or_else(|| ADMIN_GROUPS.iter().find(|g| has(g)))
        .map(|g| g.to_string())
}

/// The merged files and what a person should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    pub files: AccountFiles,
    /// Ids that moved, memberships that could not be restored.
    pub notes: Vec<String>,
    /// Captured users whose name the new OS already uses with another uid: the new OS's
    /// account is kept and nothing of the old one is added to it.
    pub conflicts: Vec<String>,
}

/// Merges captured users and groups into a new OS's account files. An account the image
/// has under the same name is the image's: a group keeps its gid; a user with the same
/// uid is the same account (memberships are added), one with another uid is a conflict
/// (nothing is added to it: its keys and groups would log the old user into an account
/// that is not theirs). The others are created: first every one whose id is free on the
/// new OS keeps it, then the rest get the first ids free in the range that no captured
/// account wants, so one taken id never shifts the others.
pub fn merge(m: &MergeInput) -> Merged {
    let files = m.files;
    let mut notes = Vec::new();
    let mut conflicts = Vec::new();
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

    // Groups first: users' primary groups must exist.
    let mut wanted: Vec<Group> = m.groups.to_vec();
    for u in m.users {
        if let Some(gname) = &u.group
            && !wanted.iter().any(|g| &g.name == gname)
        {
            wanted.push(Group {
                name: gname.clone(),
                gid: u.gid,
                members: Vec::new(),
            });
        }
    }
    for g in &wanted {
        if let Some(img) = m.image_groups.iter().find(|x| x.name == g.name)
            && img.gid != g.gid
        {
            notes.push(format!(
                "group {} has gid {} on the new OS (was {}): kept {}",
                g.name, img.gid, g.gid, img.gid
            ));
        }
    }
    let to_create: Vec<(String, u32)> = wanted
        .iter()
        .filter(|g| !new_groups.iter().any(|x| x.name == g.name))
        .map(|g| (g.name.clone(), g.gid))
        .collect();
    let used: BTreeSet<u32> = new_groups.iter().map(|g| g.gid).collect();
    let reserved: BTreeSet<u32> = wanted.iter().map(|g| g.gid).collect();
    for (name, gid) in allocate(
        &to_create,
        &used,
        &reserved,
        (m.range.gid_min, m.range.gid_max),
        "group",
        "gid",
        &mut notes,
    ) {
        group_lines.push(format!("{name}:x:{gid}:"));
        if let Some(gs) = gshadow_lines.as_mut() {
            gs.push(format!("{name}:!::"));
        }
        new_groups.push(Group {
            name,
            gid,
            members: Vec::new(),
        });
    }

    let mut merged_users = Vec::new();
    for u in m.users {
        match m.image_passwd.iter().find(|p| p.name == u.name) {
            Some(img) if img.uid != u.uid => {
                notes.push(format!(
                    "user {} is uid {} on the new OS (was {}): the new OS's account is kept and nothing of the old one (groups, keys) is added to it",
                    u.name, img.uid, u.uid
                ));
                conflicts.push(u.name.clone());
            }
            _ => merged_users.push(u),
        }
    }
    let to_create: Vec<(String, u32)> = merged_users
        .iter()
        .filter(|u| !passwd.iter().any(|p| p.name == u.name))
        .map(|u| (u.name.clone(), u.uid))
        .collect();
    let used: BTreeSet<u32> = passwd.iter().map(|p| p.uid).collect();
    let reserved: BTreeSet<u32> = m.users.iter().map(|u| u.uid).collect();
    for (name, uid) in allocate(
        &to_create,
        &used,
        &reserved,
        (m.range.uid_min, m.range.uid_max),
        "user",
        "uid",
        &mut notes,
    ) {
        let Some(u) = m.users.iter().find(|u| u.name == name) else {
            continue;
        };
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
            let line = m
                .shadow
                .iter()
                .find(|s| s.name == u.name)
                .map(|s| s.line.clone())
                .unwrap_or_else(|| format!("{}:!:{}:0:99999:7:::", u.name, m.days_since_epoch));
            sh.push(line);
        }
    }
    for u in merged_users {
        // Memberships: captured groups and the user's supplementary groups.
        let mut member_of: Vec<&str> = u.groups.iter().map(String::as_str).collect();
        for g in m.groups.iter().filter(|g| g.members.contains(&u.name)) {
            if !member_of.contains(&g.name.as_str()) {
                member_of.push(&g.name);
            }
        }
        let position =
            |lines: &[String], g: &str| lines.iter().position(|l| l.split(':').next() == Some(g));
        for gname in member_of {
            // the image's own group of that name (another gid) is not the old one
            if wanted.iter().any(|g| {
                g.name == gname
                    && m.image_groups
                        .iter()
                        .any(|i| i.name == g.name && i.gid != g.gid)
            }) {
                notes.push(format!(
                    "user {}: the new OS's group {gname} is another group (another gid); not added to it",
                    u.name
                ));
                continue;
            }
            // an admin group of another family is the new OS's admin group
            let gname = match (position(&group_lines, gname), m.admin_group) {
                (None, Some(admin)) if ADMIN_GROUPS.contains(&gname) && admin != gname => {
                    notes.push(format!(
                        "user {}: the admin group {gname} is {admin} on the new OS: made a member of {admin}",
                        u.name
                    ));
                    admin
                }
                _ => gname,
            };
            let Some(idx) = position(&group_lines, gname) else {
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
    Merged {
        files: AccountFiles {
            passwd: join(passwd_lines),
            group: join(group_lines),
            shadow: shadow_lines.map(join),
            gshadow: gshadow_lines.map(join),
        },
        notes,
        conflicts,
    }
}

/// The ids to create accounts with: first every one whose old id is free keeps it, then
/// the rest get the first ids in the range that are neither used nor wanted by another
/// captured account (`reserved`). A full range is noted and the account left out.
fn allocate(
    wanted: &[(String, u32)],
    used: &BTreeSet<u32>,
    reserved: &BTreeSet<u32>,
    (min, max): (u32, u32),
    kind: &str,
    id: &str,
    notes: &mut Vec<String>,
) -> Vec<(String, u32)> {
    let mut taken = used.clone();
    let mut out: Vec<Option<u32>> = Vec::with_capacity(wanted.len());
    for (_, want) in wanted {
        if taken.insert(*want) {
            out.push(Some(*want));
        } else {
            out.push(None);
        }
    }
    for (i, (name, want)) in wanted.iter().enumerate() {
        if out[i].is_some() {
            continue;
        }
        match (min..=max).find(|x| !taken.contains(x) && !reserved.contains(x)) {
            Some(free) => {
                taken.insert(free);
                notes.push(format!(
                    "{kind} {name}: {id} {want} is taken on the new OS, created with {free}"
                ));
                out[i] = Some(free);
            }
            None => notes.push(format!(
                "{kind} {name}: {id} {want} is taken and no {id} is free in {min}..={max}; not created"
            )),
        }
    }
    wanted
        .iter()
        .zip(out)
        .filter_map(|((n, _), id)| id.map(|id| (n.clone(), id)))
        .collect()
}

/// The ids that moved between the old OS and the new one, for the accounts carryover
/// created (an account the image already had is never a target): files on the surviving
/// data disks are re-owned from the old id to the new one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMoves {
    pub uids: std::collections::BTreeMap<u32, u32>,
    pub gids: std::collections::BTreeMap<u32, u32>,
}

impl IdMoves {
    pub fn is_empty(&self) -> bool {
        self.uids.is_empty() && self.gids.is_empty()
    }
}

/// Compares the captured accounts with the new OS's (`now`), leaving out every name the
/// image had (`image_*`): those are the image's accounts, not the old ones moved.
pub fn id_moves(
    users: &[User],
    groups: &[Group],
    image_passwd: &[PasswdLine],
    image_groups: &[Group],
    now_passwd: &[PasswdLine],
    now_groups: &[Group],
) -> IdMoves {
    let mut moves = IdMoves::default();
    for u in users {
        if image_passwd.iter().any(|p| p.name == u.name) {
            continue;
        }
        if let Some(p) = now_passwd.iter().find(|p| p.name == u.name)
            && p.uid != u.uid
        {
            moves.uids.insert(u.uid, p.uid);
        }
    }
    let primaries = users
        .iter()
        .filter_map(|u| u.group.as_ref().map(|g| (g.clone(), u.gid)));
    for (name, gid) in groups
        .iter()
        .map(|g| (g.name.clone(), g.gid))
        .chain(primaries)
    {
        if image_groups.iter().any(|g| g.name == name) {
            continue;
        }
        if let Some(g) = now_groups.iter().find(|g| g.name == name)
            && g.gid != gid
        {
            moves.gids.insert(gid, g.gid);
        }
    }
    moves
}

/// Adds system accounts (no login, no home) for the owners of restored files that the new
/// OS lacks — a package's user whose package is not installed yet: its files keep an
/// account of their own name, and the package's installer later finds and reuses it.
/// Names that exist already are left alone (idempotent).
pub fn add_system_accounts(
    files: &AccountFiles,
    users: &[(String, u32, u32)],
    groups: &[(String, u32)],
    days_since_epoch: u64,
) -> AccountFiles {
    let (passwd, _) = parse_passwd(&files.passwd);
    let (existing, _) = parse_group(&files.group);
    let mut out = files.clone();
    let push = |text: &mut String, line: String| {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&line);
        text.push('\n');
    };
    for (name, gid) in groups {
        if existing.iter().any(|g| &g.name == name) {
            continue;
        }
        push(&mut out.group, format!("{name}:x:{gid}:"));
        if let Some(gs) = out.gshadow.as_mut() {
            push(gs, format!("{name}:!::"));
        }
    }
    for (name, uid, gid) in users {
        if passwd.iter().any(|p| &p.name == name) {
            continue;
        }
        push(
            &mut out.passwd,
            format!("{name}:x:{uid}:{gid}:restored by carryover:/nonexistent:/usr/sbin/nologin"),
        );
        if let Some(sh) = out.shadow.as_mut() {
            push(sh, format!("{name}:!:{days_since_epoch}:0:99999:7:::"));
        }
    }
    out
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
    fn one_map_of_names_both_ways_from_the_recorded_pairs() {
        let ids = IdNames::of(&parse_passwd(PASSWD).0, &parse_group(GROUP).0);
        let n = Names::of(&ids);
        assert_eq!(n.users.name(1000), Some("alice"));
        assert_eq!(n.users.id("bob"), Some(1001));
        assert_eq!(n.groups.name(27), Some("sudo"));
        assert_eq!(n.groups.id("devs"), Some(2000));
        assert!(n.users.has_id(65534) && !n.users.has_id(1002));
        assert_eq!(n.users.id("garbage line"), None);
        // a name listed twice: the later line, as the maps built before did
        let twice = IdNames::of(
            &parse_passwd("a:x:5:5::/:/bin/sh\na:x:6:6::/:/bin/sh\n").0,
            &[],
        );
        assert_eq!(Names::of(&twice).users.id("a"), Some(6));
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

    fn input<'a>(
        files: &'a AccountFiles,
        image: &'a (Vec<PasswdLine>, Vec<Group>),
        users: &'a [User],
        groups: &'a [Group],
        shadow: &'a [ShadowEntry],
    ) -> MergeInput<'a> {
        MergeInput {
            files,
            image_passwd: &image.0,
            image_groups: &image.1,
            range: IdRange::default(),
            users,
            groups,
            shadow,
            days_since_epoch: 20000,
            admin_group: None,
        }
    }

    fn image_of(f: &AccountFiles) -> (Vec<PasswdLine>, Vec<Group>) {
        (parse_passwd(&f.passwd).0, parse_group(&f.group).0)
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
        let image = image_of(&files);
        let m = merge(&input(&files, &image, &users, &groups, &[]));
        let (out, notes) = (m.files, m.notes);
        // alice's uid 1000 and gid 1000 are taken by the image's user; bob keeps 1001 and
        // alice gets the first id no captured account wants
        assert!(
            out.passwd
                .contains("alice:x:1002:1002:Alice,,,:/home/alice:/bin/bash"),
            "{}",
            out.passwd
        );
        assert!(
            out.passwd.contains("bob:x:1001:1001::/home/bob:/bin/sh"),
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
        // idempotent: a rerun starts from what the first run wrote
        let again = merge(&input(&out, &image, &users, &groups, &[]));
        assert_eq!(again.files, out);
        assert!(again.conflicts.is_empty());
        // the ids that moved: alice 1000 → 1002 (user and group); bob stayed
        let now = image_of(&out);
        let moves = id_moves(&users, &groups, &image.0, &image.1, &now.0, &now.1);
        assert_eq!(
            moves.uids.into_iter().collect::<Vec<_>>(),
            vec![(1000, 1002)]
        );
        assert_eq!(
            moves.gids.into_iter().collect::<Vec<_>>(),
            vec![(1000, 1002)]
        );
    }

    /// #13.1: one taken id must not shift every captured account after it.
    #[test]
    fn a_taken_id_does_not_cascade() {
        let user = |name: &str, id: u32| User {
            name: name.into(),
            uid: id,
            gid: id,
            group: Some(name.into()),
            gecos: String::new(),
            home: format!("/home/{name}"),
            shell: "/bin/bash".into(),
            groups: vec![],
        };
        let users = vec![
            user("ubuntu", 1000),
            user("alice", 1001),
            user("deploy", 1002),
        ];
        let files = AccountFiles {
            passwd: "root:x:0:0:root:/root:/bin/bash\ndebian:x:1000:1000::/home/debian:/bin/bash\n"
                .into(),
            group: "root:x:0:\ndebian:x:1000:\n".into(),
            shadow: None,
            gshadow: None,
        };
        let image = image_of(&files);
        let m = merge(&input(&files, &image, &users, &[], &[]));
        let (p, _) = parse_passwd(&m.files.passwd);
        let uid = |n: &str| p.iter().find(|x| x.name == n).unwrap().uid;
        assert_eq!(
            (uid("alice"), uid("deploy"), uid("ubuntu")),
            (1001, 1002, 1003)
        );
        let now = image_of(&m.files);
        let moves = id_moves(&users, &[], &image.0, &image.1, &now.0, &now.1);
        assert_eq!(
            moves.uids.into_iter().collect::<Vec<_>>(),
            vec![(1000, 1003)]
        );
        assert_eq!(
            moves.gids.into_iter().collect::<Vec<_>>(),
            vec![(1000, 1003)]
        );
    }

    /// #13.3: an unprivileged old user with the name of the image's sudo user is not merged
    /// into it.
    #[test]
    fn a_same_name_account_with_another_uid_is_a_conflict_not_a_merge() {
        let old = User {
            name: "debian".into(),
            uid: 1003,
            gid: 1003,
            group: Some("debian".into()),
            gecos: String::new(),
            home: "/home/debian".into(),
            shell: "/bin/bash".into(),
            groups: vec!["devs".into()],
        };
        let groups = vec![Group {
            name: "devs".into(),
            gid: 2000,
            members: vec!["debian".into()],
        }];
        let files = AccountFiles {
            passwd: "root:x:0:0:root:/root:/bin/bash\ndebian:x:1000:1000::/home/debian:/bin/bash\n"
                .into(),
            group: "root:x:0:\nsudo:x:27:debian\ndebian:x:1000:\n".into(),
            shadow: None,
            gshadow: None,
        };
        let image = image_of(&files);
        let m = merge(&input(
            &files,
            &image,
            std::slice::from_ref(&old),
            &groups,
            &[],
        ));
        assert_eq!(m.conflicts, vec!["debian".to_string()]);
        assert!(
            m.files.group.contains("devs:x:2000:\n"),
            "{}",
            m.files.group
        );
        assert!(!m.files.passwd.contains(":1003:"));
        let now = image_of(&m.files);
        let moves = id_moves(
            std::slice::from_ref(&old),
            &groups,
            &image.0,
            &image.1,
            &now.0,
            &now.1,
        );
        assert!(
            moves.uids.is_empty() && !moves.gids.contains_key(&1003),
            "{moves:?}"
        );
    }

    /// #13.5: `wheel` on Rocky is `sudo` on Ubuntu, and the other way round.
    #[test]
    fn admin_groups_are_mapped_across_families() {
        let (mut users, groups) = captured();
        users[0].groups = vec!["wheel".into()];
        let files = AccountFiles {
            passwd: "root:x:0:0:root:/root:/bin/bash\n".into(),
            group: "root:x:0:\nsudo:x:27:ubuntu\nadm:x:4:\n".into(),
            shadow: None,
            gshadow: None,
        };
        let (_, new_groups) = image_of(&files);
        let admin = admin_group(&new_groups, Some("%sudo\tALL=(ALL:ALL) ALL\n"));
        assert_eq!(admin.as_deref(), Some("sudo"));
        let image = image_of(&files);
        let mut m = input(&files, &image, &users, &groups, &[]);
        m.admin_group = admin.as_deref();
        let out = merge(&m);
        assert!(
            out.files.group.contains("sudo:x:27:ubuntu,alice\n"),
            "{}",
            out.files.group
        );
        assert!(
            out.notes.iter().any(|n| n.contains("wheel is sudo")),
            "{:?}",
            out.notes
        );
        // Rocky: wheel, granted by its sudoers, though it has no sudo group
        let rocky = parse_group("root:x:0:\nwheel:x:10:rocky\nsudo:x:27:\n").0;
        assert_eq!(
            admin_group(&rocky, Some("%wheel\tALL=(ALL)\tALL\n")).as_deref(),
            Some("wheel")
        );
        assert_eq!(admin_group(&rocky, None).as_deref(), Some("sudo"));
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
        let image = image_of(&files);
        let out = merge(&input(&files, &image, &users, &groups, &shadow)).files;
        assert!(out.passwd.contains("alice:x:1000:1000:"));
        assert!(out.shadow.unwrap().contains("alice:$6$salt$hash"));
        assert!(out.gshadow.is_none());
    }
}
