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
    for name in s
        .users
        .iter()
        .map(|u| &u.name)
        .chain(s.groups.iter().map(|g| &g.name))
    {
        if !valid_name(name) {
            return Ok(Outcome::failed(format!(
                "refusing the account name '{name}'"
            )));
        }
    }
    for u in &s.users {
        let fields = [&u.gecos, &u.home, &u.shell];
        if fields.iter().any(|f| f.contains(':') || f.contains('\n')) {
            return Ok(Outcome::failed(format!(
                "refusing user {}: a field holds ':' or a newline",
                u.name
            )));
        }
    }
    let files = AccountFiles {
        passwd: a.read("/etc/passwd").unwrap_or_default(),
        group: a.read("/etc/group").unwrap_or_default(),
        shadow: a.read("/etc/shadow"),
        gshadow: a.read("/etc/gshadow"),
    };
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
        users: &s.users,
        groups: &s.groups,
        shadow: &l.secrets.shadow,
        days_since_epoch: days,
        admin_group: admin.as_deref(),
    });
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
            let lines: Vec<String> = s
                .users
                .iter()
                .map(|u| {
                    l.secrets
                        .shadow
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
    for u in s.users.iter().filter(|u| !conflicts.contains(&u.name)) {
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
        if super::safe_path(&p.home, &["/"]).is_err() {
            warnings.push(format!(
                "user {}: home '{}' is not a plain absolute path; not created",
                u.name, p.home
            ));
            continue;
        }
        a.mkdir(&p.home, 0o700, Some((p.uid, p.gid)))?;
    }
    let names: Vec<&str> = s.users.iter().map(|u| u.name.as_str()).collect();
    let mut out = a.finish(
        format!(
            "{} users ({}), {} groups",
            s.users.len(),
            names.join(", "),
            s.groups.len()
        ),
        warnings,
    );
    out.attention = conflicts
        .iter()
        .map(|n| format!("user {n}: the new OS has its own account of that name with another uid; the old user's files, groups and keys were not given to it — decide by hand"))
        .collect();
    Ok(out)
}

/// The new OS's own accounts, as its image brought them: the first backup of the account
/// files when this snapshot's restore already changed them.
pub fn image_accounts(a: &Apply) -> (Vec<accounts::PasswdLine>, Vec<accounts::Group>) {
    (
        accounts::parse_passwd(&a.original("/etc/passwd").unwrap_or_default()).0,
        accounts::parse_group(&a.original("/etc/group").unwrap_or_default()).0,
    )
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

/// A POSIX-ish account name: no separators, no path characters.
pub fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 32
        && !n.starts_with('-')
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$'))
        && n != "."
        && n != ".."
}
