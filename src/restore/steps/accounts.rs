//! Restore step for local accounts: groups and users merged into the new OS's
//! passwd/group/shadow/gshadow, and their home directories where missing.

use anyhow::Result;

use crate::restore::Loaded;
use crate::restore::apply::{Apply, Outcome};
use crate::state::accounts::{self, AccountFiles};

pub fn accounts(a: &Apply, l: &Loaded) -> Result<Outcome> {
    let s = &l.state;
    if s.users.is_empty() && s.groups.is_empty() {
        return Ok(Outcome::skipped("no local users or groups were captured"));
    }
    // a name or field that cannot be a real account's is refused, the rest restored
    let mut refused = Vec::new();
    let users: Vec<accounts::User> = s
        .users
        .iter()
        .filter(|u| {
            let fields = [&u.gecos, &u.home, &u.shell];
            // gid 0 would make a captured user a member of root's group
            let ok = valid_name(&u.name)
                && u.gid != 0
                && u.uid != 0
                && !fields.iter().any(|f| f.chars().any(|c| c == ':' || c.is_control()));
            if !ok {
                refused.push(format!(
                    "refusing the user '{}' from the snapshot: not a valid account name, uid or gid 0, or a field holds ':' or a control character",
                    u.name.escape_debug()
                ));
            }
            ok
        })
        .cloned()
        .collect();
    let groups: Vec<accounts::Group> = s
        .groups
        .iter()
        .filter(|g| {
            let ok = valid_name(&g.name) && g.members.iter().all(|m| valid_name(m));
            if !ok {
                refused.push(format!(
                    "refusing the group '{}' from the snapshot: not a valid group",
                    g.name.escape_debug()
                ));
            }
            ok
        })
        .cloned()
        .collect();
    // a password hash line is exactly one line of nine fields for its own user
    let shadow: Vec<accounts::ShadowEntry> = l
        .secrets
        .shadow
        .iter()
        .filter(|e| {
            let f: Vec<&str> = e.line.split(':').collect();
            let ok = f.len() == 9
                && f[0] == e.name
                && users.iter().any(|u| u.name == e.name)
                && !e.line.chars().any(|c| c.is_control());
            if !ok {
                refused.push(format!(
                    "refusing the password line of '{}' from the snapshot: not one shadow line of its own user",
                    e.name.escape_debug()
                ));
            }
            ok
        })
        .cloned()
        .collect();
    let files = account_files(a);
    let (image_passwd, image_groups) = image_accounts(a);
    let range = a
        .read("/etc/login.defs")
        .map(|t| accounts::parse_login_defs(&t))
        .unwrap_or_default();
    let (_, new_groups) = a.accounts();
    let admin = accounts::admin_group(&new_groups, a.read("/etc/sudoers").as_deref());
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86400)
        .unwrap_or(0);
    // An existing shadow line keeps its "last changed" day, so a rerun is a no-op.
    let accounts::Merged {
        files: merged,
        notes: mut warnings,
        conflicts,
    } = accounts::merge(&accounts::MergeInput {
        files: &files,
        image_passwd: &image_passwd,
        image_groups: &image_groups,
        range,
        users: &users,
        groups: &groups,
        shadow: &shadow,
        days_since_epoch: days,
        admin_group: admin.as_deref(),
    });
    // what carryover creates is recorded before it exists: later steps, a resumed or a
    // second restore (of another snapshot too) tell the image's accounts from these
    let mut record = Record::load(a);
    let before = (
        accounts::parse_passwd(&files.passwd).0,
        accounts::parse_group(&files.group).0,
    );
    for p in accounts::parse_passwd(&merged.passwd).0 {
        if !before.0.iter().any(|b| b.name == p.name) {
            record.created_users.insert(p.name, p.uid);
        }
    }
    for g in accounts::parse_group(&merged.group).0 {
        if !before.1.iter().any(|b| b.name == g.name) {
            record.created_groups.insert(g.name, g.gid);
        }
    }
    record.save(a)?;
    a.rewrite("/etc/group", &merged.group)?;
    if let Some(g) = &merged.gshadow {
        a.rewrite("/etc/gshadow", g)?;
    }
    a.rewrite("/etc/passwd", &merged.passwd)?;
    match &merged.shadow {
        Some(sh) => {
            a.rewrite("/etc/shadow", sh)?;
        }
        None => {
            // A new OS without /etc/shadow: create it root-only.
            let lines: Vec<String> = users
                .iter()
                .map(|u| {
                    shadow
                        .iter()
                        .find(|x| x.name == u.name)
                        .map(|x| x.line.clone())
                        .unwrap_or_else(|| format!("{}:!:{days}:0:99999:7:::", u.name))
                })
                .collect();
            if !lines.is_empty() && !a.exists("/etc/shadow") {
                a.install(
                    "/etc/shadow",
                    format!("{}\n", lines.join("\n")).as_bytes(),
                    0o600,
                    Some((0, 0)),
                )?;
            }
        }
    }
    if l.secrets.shadow.is_empty() {
        warnings.push("password hashes were not captured ([capture] password_hashes): the users' passwords are locked; SSH keys in their homes still work".into());
    }
    // Homes: created where missing (a home on a data disk or in a data path comes back
    // with it).
    let (passwd, _) = accounts::parse_passwd(&merged.passwd);
    for u in users.iter().filter(|u| !conflicts.contains(&u.name)) {
        let Some(p) = passwd.iter().find(|p| p.name == u.name) else {
            continue;
        };
        if p.home.is_empty()
            || p.home == "/"
            || p.home.starts_with("/nonexistent")
            || p.home == "/dev/null"
        {
            continue;
        }
        if let Err(why) = home_allowed(&p.home, p.uid) {
            warnings.push(format!("user {}: {why}; not created", u.name));
            continue;
        }
        a.mkdir(&p.home, 0o700, Some((p.uid, p.gid)))?;
    }
    let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
    let mut out = a.finish(
        format!(
            "{} ({}), {}",
            crate::units::count(users.len(), "user"),
            names.join(", "),
            crate::units::count(groups.len(), "group")
        ),
        warnings,
    );
    out.attention = conflicts
        .iter()
        .map(|n| format!("user {n}: the new OS has its own account of that name with another uid; the old user's files, groups and keys were not given to it — decide by hand"))
        .chain(refused)
        .collect();
    Ok(out)
}

/// What carryover did to the accounts of this system, across restores (root-only, in
/// `/var/lib/carryover/accounts.json`): the accounts it created, and the id moves whose
/// files on the data disks it has re-owned (never again: the image's own user may own
/// new files with that number since).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Record {
    pub created_users: std::collections::BTreeMap<String, u32>,
    pub created_groups: std::collections::BTreeMap<String, u32>,
    /// (`uid` or `gid`, old, new).
    pub reowned: Vec<(String, u32, u32)>,
}

/// Where the record is, in-root.
fn record_path() -> String {
    format!("{}/accounts.json", crate::paths::STATE_DIR)
}

impl Record {
    pub fn load(a: &Apply) -> Record {
        crate::sys::read_opt(&a.root.follow(record_path()))
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Written durably (a dry run writes nothing).
    pub fn save(&self, a: &Apply) -> Result<()> {
        if a.dry_run {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(self)?;
        let path = a.root.path(record_path());
        if crate::sys::read_opt(&path).ok().flatten().as_deref() == Some(&bytes[..]) {
            return Ok(()); // a rerun changes nothing
        }
        crate::local::private_dir(a.root, crate::paths::STATE_DIR)?;
        crate::sys::write_atomic(&path, &bytes, 0o600)?;
        Ok(())
    }
}

/// The new OS's own accounts, as its image brought them: the account files on disk (not
/// a dry run's plan) without the accounts carryover created (its record).
pub fn image_accounts(a: &Apply) -> (Vec<accounts::PasswdLine>, Vec<accounts::Group>) {
    let record = Record::load(a);
    let (mut users, mut groups) = accounts::load(a.root);
    users.retain(|u| !record.created_users.contains_key(&u.name));
    groups.retain(|g| !record.created_groups.contains_key(&g.name));
    (users, groups)
}

/// The captured users whose name the new OS's image uses for an account of its own with
/// another uid: nothing of the old user (files by name, keys, sudo rights) goes to it.
pub fn conflicts(a: &Apply, users: &[accounts::User]) -> Vec<String> {
    let (image_passwd, _) = image_accounts(a);
    users
        .iter()
        .filter(|u| {
            image_passwd
                .iter()
                .any(|p| p.name == u.name && p.uid != u.uid)
        })
        .map(|u| u.name.clone())
        .collect()
}

/// The account files of the new OS as they are (a dry run's plan included).
pub fn account_files(a: &Apply) -> AccountFiles {
    AccountFiles {
        passwd: a.read("/etc/passwd").unwrap_or_default(),
        group: a.read("/etc/group").unwrap_or_default(),
        shadow: a.read("/etc/shadow"),
        gshadow: a.read("/etc/gshadow"),
    }
}

/// Adds system accounts (`name`, uid, primary gid; groups `name`, gid) for owners of files
/// the new OS lacks, through the account files (see `accounts::add_system_accounts`).
pub fn make_system_accounts(
    a: &Apply,
    users: &[(String, u32, u32)],
    groups: &[(String, u32)],
) -> Result<()> {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86400)
        .unwrap_or(0);
    let out = accounts::add_system_accounts(&account_files(a), users, groups, days);
    a.rewrite("/etc/group", &out.group)?;
    if let Some(g) = &out.gshadow {
        a.rewrite("/etc/gshadow", g)?;
    }
    a.rewrite("/etc/passwd", &out.passwd)?;
    if let Some(sh) = &out.shadow {
        a.rewrite("/etc/shadow", sh)?;
    }
    Ok(())
}

/// The captured groups (and users' primary groups) whose name the image uses for a group
/// of its own with another gid: no member and no sudo rule of the old group goes to it.
pub fn group_conflicts(
    a: &Apply,
    users: &[accounts::User],
    groups: &[accounts::Group],
) -> Vec<String> {
    let (_, image_groups) = image_accounts(a);
    let captured = groups.iter().map(|g| (g.name.as_str(), g.gid)).chain(
        users
            .iter()
            .filter_map(|u| u.group.as_deref().map(|g| (g, u.gid))),
    );
    let mut out: Vec<String> = captured
        .filter(|(n, gid)| image_groups.iter().any(|i| i.name == *n && i.gid != *gid))
        .map(|(n, _)| n.to_string())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A home restore may create or write into: a plain absolute path that is not a place of
/// the OS (`/etc/ssh/sshd_config.d` as a home would hand sshd's drop-ins to the user), and
/// `/root` only for root.
pub fn home_allowed(home: &str, uid: u32) -> Result<(), String> {
    if super::safe_path(home, &["/"]).is_err() {
        return Err(format!("home '{home}' is not a plain absolute path"));
    }
    let under = |p: &str| home == p || home.starts_with(&format!("{p}/"));
    let os_place = crate::paths::is_system_location(home)
        || ["/etc", "/usr", "/var/spool", "/var/log", "/opt/carryover"]
            .iter()
            .any(|p| under(p));
    if os_place || (uid != 0 && under("/root")) {
        return Err(format!(
            "home {} is a place of the OS, refused",
            crate::units::quoted(home)
        ));
    }
    Ok(())
}

/// A POSIX-ish account name: no separators, no path characters.
pub fn valid_name(n: &str) -> bool {
    // `ALL` is sudoers' word for everyone (and other all-caps words are its aliases)
    let sudoers_word = n
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    !sudoers_word
        && !n.is_empty()
        && n.len() <= 32
        && !n.starts_with('-')
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$'))
        && n != "."
        && n != ".."
}
