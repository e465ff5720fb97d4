//! Restore steps for SSH access: the captured authorized_keys back into the homes on the
//! new OS (root's merged with the key pair of the Change OS call), and the old OS's sshd
//! settings that the new OS lacks as one checked drop-in. Every line from the snapshot is
//! parsed by its grammar first; a home that is not its user's own, or a `.ssh` that is a
//! link, is never written through.

use anyhow::{Result, bail};

use crate::restore::Loaded;
use crate::restore::apply::{Apply, Outcome};
use crate::restore::merge;
use crate::state::accounts::PasswdLine;
use crate::state::logins::parse_key_line;
use crate::state::sshd::{self, MAIN, Setting};

use super::validate::{self, Checked};

/// A name or text from the snapshot, shown without its control characters.
pub(super) fn shown(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

pub fn authorized_keys(a: &Apply, l: &Loaded) -> Result<Outcome> {
    let entries = &l.state.logins.authorized_keys;
    if entries.is_empty() {
        return Ok(Outcome::skipped(
            "no authorized_keys were captured (none in a home on the system disk)",
        ));
    }
    let conflicts = super::accounts::conflicts(a, &l.state.users);
    let (passwd, _) = a.accounts();
    let (mut warnings, mut attention, mut done) = (Vec::new(), Vec::new(), Vec::new());
    for e in entries {
        let user = e.user.as_str();
        if user != "root" && !l.state.users.iter().any(|u| u.name == user) {
            attention.push(format!(
                "refusing the authorized_keys of '{}': not root and not a captured user",
                shown(user)
            ));
            continue;
        }
        if conflicts.contains(&e.user) {
            warnings.push(format!(
                "user {user}: the new OS's {user} is another account: the old user's {} keys were not given to it",
                e.keys.len()
            ));
            continue;
        }
        let keys: Vec<&str> = e
            .keys
            .iter()
            .map(String::as_str)
            .filter(|k| parse_key_line(k).is_ok())
            .collect();
        let refused = e.keys.len() - keys.len();
        if refused > 0 {
            attention.push(format!(
                "user {user}: {refused} captured authorized_keys lines are not key lines; refused"
            ));
        }
        if keys.is_empty() {
            continue;
        }
        let Some(p) = passwd.iter().find(|p| p.name == user) else {
            warnings.push(format!(
                "user {user} does not exist on the new OS: its {} keys were not installed",
                keys.len()
            ));
            continue;
        };
        match install_keys(a, p, &keys) {
            Ok(added) => done.push(format!("{user}: {} of {} keys added", added, keys.len())),
            Err(err) => {
                attention.push(format!("user {user}: {err:#}; its keys were not installed"))
            }
        }
    }
    let detail = if done.is_empty() {
        "no keys installed".to_string()
    } else {
        done.join(", ")
    };
    let mut out = a.finish(detail, warnings);
    out.attention = attention;
    Ok(out)
}

/// `AllowGroups`/`DenyGroups` name groups of the old OS: an admin group of another family
/// (`wheel` on Rocky) becomes the new OS's (`sudo` on Ubuntu), as the accounts step made
/// its members; a group the new OS still lacks is named for a person (an `AllowGroups`
/// of a group nobody is in would lock everyone out of SSH).
fn map_groups(a: &Apply, mut x: Setting, attention: &mut Vec<String>) -> Setting {
    if !x.key.eq_ignore_ascii_case("AllowGroups") && !x.key.eq_ignore_ascii_case("DenyGroups") {
        return x;
    }
    let (_, groups) = a.accounts();
    let admin = crate::state::accounts::admin_group(&groups, a.read("/etc/sudoers").as_deref());
    let words: Vec<String> = x
        .value
        .split_whitespace()
        .map(|w| {
            let exists = groups.iter().any(|g| g.name == w);
            match &admin {
                Some(admin) if !exists && crate::state::accounts::ADMIN_GROUPS.contains(&w) => {
                    admin.clone()
                }
                _ => w.to_string(),
            }
        })
        .collect();
    for w in &words {
        let pattern = w.contains(['*', '?', '!']);
        if !pattern && !groups.iter().any(|g| &g.name == w) {
            attention.push(format!(
                "sshd {} names the group {w}, which the new OS does not have: check who can log in",
                x.key
            ));
        }
    }
    x.value = words.join(" ");
    x
}

/// The largest `authorized_keys` read (a file of millions of keys is not one).
const KEYS_LIMIT: u64 = 16 << 20;

/// True when an account (uid, gid) may read a file by its owner and mode bits.
fn readable_by(m: &std::fs::Metadata, (uid, gid): (u32, u32)) -> bool {
    let mode = crate::sys::mode_of(m);
    let (fu, fg) = crate::sys::owner_of(m);
    if fu == uid {
        mode & 0o400 != 0
    } else if fg == gid {
        mode & 0o040 != 0
    } else {
        mode & 0o004 != 0
    }
}

/// Puts `keys` into the account's `~/.ssh/authorized_keys` (0700/0600, its own), keeping
/// every line the file has; returns how many keys it lacked.
fn install_keys(a: &Apply, p: &PasswdLine, keys: &[&str]) -> Result<usize> {
    let home = super::safe_path(&p.home, &["/"])?;
    super::accounts::home_allowed(home, p.uid).map_err(anyhow::Error::msg)?;
    let owner = (p.uid, p.gid);
    if !a.is_dir(home) {
        a.mkdir(home, 0o700, Some(owner))?;
    } else if let Ok(m) = std::fs::metadata(a.root.follow(home))
        && crate::sys::owner_of(&m).0 != p.uid
    {
        bail!(
            "its home {home} belongs to uid {}, not to it",
            crate::sys::owner_of(&m).0
        );
    }
    let dir = format!("{}/.ssh", home.trim_end_matches('/'));
    let file = format!("{dir}/authorized_keys");
    // the home is its user's: every step from it on goes through descriptors (the user
    // may be logged in and swap `~/.ssh` for a link to /etc between a check and a write)
    let ssh = match a.dry_run {
        true => {
            a.ensure_dir(&dir, 0o700, owner)?;
            None
        }
        false => Some(a.ensure_dir_at(&dir, 0o700, owner)?),
    };
    // what is there now: read on `.ssh`'s descriptor (with its metadata), or by name in a
    // dry run, which writes nothing
    let (old, current) = match &ssh {
        Some(d) => {
            let old = d
                .read_plain(std::ffi::OsStr::new("authorized_keys"), KEYS_LIMIT)
                .map_err(|e| anyhow::anyhow!("{dir}: {e}"))?;
            // a file the account could not read (root's, another user's, moved in by a
            // user who can write that folder) never becomes the account's own
            if let Some((_, m)) = &old
                && !readable_by(m, owner)
            {
                bail!("{file} is not readable by its account (moved in from elsewhere?); refused")
            }
            let current = old
                .as_ref()
                .map(|(b, _)| String::from_utf8_lossy(b).into_owned());
            (old, current)
        }
        None => {
            if let Ok(m) = std::fs::symlink_metadata(a.root.path(&file))
                && (!m.is_file() || crate::sys::link_count(&m) > 1)
            {
                bail!("{file} is a link or not a plain file");
            }
            (None, a.read(&file))
        }
    };
    let have: Vec<String> = current
        .as_deref()
        .map(|c| {
            c.lines()
                .filter_map(|l| parse_key_line(l).ok().map(|k| k.key()))
                .collect()
        })
        .unwrap_or_default();
    let added = keys
        .iter()
        .filter_map(|k| parse_key_line(k).ok())
        .filter(|k| !have.contains(&k.key()))
        .count();
    let merged = merge::authorized_keys(current.as_deref(), keys);
    match &ssh {
        Some(d) => a.install_at(d, &file, old.as_ref(), merged.as_bytes(), 0o600, owner)?,
        None => a.install(&file, merged.as_bytes(), 0o600, Some(owner))?,
    };
    Ok(added)
}

/// carryover's sshd drop-in: its name sorts first, so its values win (sshd keeps the
/// first value of a keyword).
const DROPIN_DIR: &str = "/etc/ssh/sshd_config.d";
const DROPIN_NAME: &str = "00-carryover.conf";
const DROPIN: &str = "/etc/ssh/sshd_config.d/00-carryover.conf";

/// What sshd on the new OS would read: its configuration with `main` as the main file
/// and `ours` as carryover's drop-in (`None`: without it).
fn new_os_read(a: &Apply, main: Option<&str>, ours: Option<&str>) -> sshd::Read {
    let read = |p: &str| match p {
        DROPIN => ours.map(str::to_string),
        MAIN => main.map(str::to_string),
        _ => a.read(p),
    };
    let list = |dir: &str| {
        let mut names: Vec<String> = crate::sys::list_dir(&a.root.follow(dir))
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .filter(|n| dir != DROPIN_DIR || n != DROPIN_NAME)
            .collect();
        if dir == DROPIN_DIR && ours.is_some() {
            names.push(DROPIN_NAME.to_string());
        }
        names
    };
    sshd::read(MAIN, &read, &list)
}

pub fn sshd(a: &Apply, l: &Loaded) -> Result<Outcome> {
    let s = &l.state.sshd;
    if s.settings.is_empty() && s.not_carried.is_empty() {
        return Ok(Outcome::skipped("no sshd settings were captured"));
    }
    let mut warnings: Vec<String> = s
        .not_carried
        .iter()
        .map(|n| format!("not carried: {}", shown(n)))
        .collect();
    let mut attention = Vec::new();
    let captured: Vec<Setting> = s
        .settings
        .iter()
        .filter(|x| {
            let ok = sshd::valid(&x.key, &x.value);
            if !ok {
                attention.push(format!(
                    "refusing the sshd setting '{} {}' from the snapshot",
                    shown(&x.key),
                    shown(&x.value)
                ));
            }
            ok
        })
        .cloned()
        .collect();
    let captured: Vec<Setting> = captured
        .into_iter()
        .map(|x| map_groups(a, x, &mut attention))
        .collect();
    // what the new OS has without carryover's drop-in, and what of the old OS's it lacks
    let main = a.read(MAIN);
    let theirs = sshd::effective(&new_os_read(a, main.as_deref(), None).lines);
    let mut keys: Vec<&str> = Vec::new();
    for c in &captured {
        if !keys.contains(&c.key.as_str()) && !sshd::same(&captured, &theirs, &c.key) {
            keys.push(&c.key);
        }
    }
    if keys.is_empty() {
        let mut out = a.finish(
            format!(
                "the new OS has every captured setting already ({} settings)",
                captured.len()
            ),
            warnings,
        );
        out.attention = attention;
        return Ok(out);
    }
    let wanted: Vec<&Setting> = captured
        .iter()
        .filter(|c| keys.contains(&c.key.as_str()))
        .collect();
    let body: Vec<String> = wanted
        .iter()
        .map(|c| format!("{} {}", c.key, c.value))
        .collect();
    let content = format!(
        "# Written by carryover: the old OS's sshd settings the new OS did not have.\n{}\n",
        body.join("\n")
    );
    for key in keys.iter().filter(|k| sshd::is_multi(k)) {
        let also: Vec<&str> = sshd::words_of(&theirs, key);
        if !also.is_empty() {
            warnings.push(format!(
                "{key}: the new OS sets {} too: sshd uses both",
                also.join(" ")
            ));
        }
    }
    // the drop-in must be read, and first: a main file that does not include it gets an
    // Include of it at its top
    let mut main_new = main.clone();
    let mut sim = new_os_read(a, main_new.as_deref(), Some(&content));
    if let Some(m) = &main
        && !sim.files.iter().any(|f| f == DROPIN)
    {
        main_new = Some(merge::set_block_first(m, &format!("Include {DROPIN}")));
        sim = new_os_read(a, main_new.as_deref(), Some(&content));
    }
    let in_effect = sshd::effective(&sim.lines);
    for key in &keys {
        let wins = if sshd::is_multi(key) {
            let have = sshd::words_of(&in_effect, key);
            sshd::words_of(&captured, key)
                .iter()
                .all(|w| have.contains(w))
        } else {
            sshd::same(&captured, &in_effect, key)
        };
        if !wins {
            let by = in_effect
                .iter()
                .find(|x| &x.key == key)
                .map_or("the new OS", |x| x.file.as_str());
            warnings.push(format!(
                "{key}: {by} sets it before carryover's drop-in is read: the old value is not in effect"
            ));
        }
    }
    if main.is_none() {
        warnings.push(format!(
            "the OpenSSH server is not installed on the new OS ({MAIN} is missing): the drop-in is in place for when it is"
        ));
    }
    if wanted
        .iter()
        .any(|c| c.key == "PermitRootLogin" && c.value.eq_ignore_ascii_case("no"))
    {
        warnings.push("PermitRootLogin no is carried: root cannot log in with the key pair of the Change OS call; log in as a captured user".into());
    }
    // checked as the new OS's sshd would read it, before anything is put in place
    let main_text = main.clone().unwrap_or_default();
    let checked = validate::check(
        a,
        "sshd",
        false,
        |dir| {
            vec![
                (DROPIN_NAME, content.clone()),
                (
                    "sshd_config",
                    format!("Include {}\n{main_text}", dir.join(DROPIN_NAME).display()),
                ),
            ]
        },
        &[DROPIN, MAIN],
        // the whole configuration with the drop-in first, as the running sshd will read it
        |p| vec!["-t".into(), "-f".into(), p[1].display().to_string()],
    );
    let how = match &checked {
        Checked::Failed(why) => {
            return Ok(Outcome::failed(format!("{why}; {DROPIN} not written")));
        }
        Checked::Passed(how) => how.clone(),
        Checked::NotRun(why) => {
            warnings.push(format!("{DROPIN}: {why}"));
            "not checked".into()
        }
    };
    a.mkdir(DROPIN_DIR, 0o755, Some((0, 0)))?;
    let mut changed = a.install(DROPIN, content.as_bytes(), 0o644, Some((0, 0)))?;
    if let (Some(m), Some(n)) = (&main, &main_new)
        && m != n
    {
        changed |= a.rewrite(MAIN, n)?;
    }
    if changed && a.root.is_live() && !a.dry_run {
        warnings.extend(reload(&keys));
    }
    let mut out = a.finish(format!("{} → {DROPIN} ({how})", keys.join(", ")), warnings);
    out.attention = attention;
    Ok(out)
}

/// Makes the running sshd read its configuration again; what fails is a warning (the
/// files are in place for the next start).
fn reload(keys: &[&str]) -> Vec<String> {
    let mut warnings = Vec::new();
    let units = ["ssh.service", "sshd.service"];
    let unit = units
        .iter()
        .find(|u| crate::sys::run("systemctl", &["cat", u]).is_ok());
    match unit {
        Some(u) => {
            if let Err(e) = crate::sys::run("systemctl", &["try-reload-or-restart", u]) {
                warnings.push(format!("sshd not reloaded: {e}"));
            }
        }
        None => warnings.push("no ssh or sshd unit: sshd not reloaded".into()),
    }
    // a socket-activated sshd (Ubuntu 24.04) listens where its generated socket says
    if keys.iter().any(|k| *k == "Port" || *k == "ListenAddress")
        && crate::sys::run("systemctl", &["is-active", "--quiet", "ssh.socket"]).is_ok()
    {
        for args in [&["daemon-reload"][..], &["restart", "ssh.socket"]] {
            if let Err(e) = crate::sys::run("systemctl", args) {
                warnings.push(format!("ssh.socket not restarted: {e}"));
            }
        }
    }
    warnings
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// Whether an account could read a file, by owner, group and mode as the kernel
    /// decides (root's 0600 file is not readable by a user; root's 0644 is).
    #[test]
    fn readable_by_follows_owner_group_and_other_bits() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        std::fs::write(&f, "k").unwrap();
        let me = crate::sys::owner_of(&std::fs::metadata(&f).unwrap());
        let other = (me.0 + 4242, me.1 + 4242);
        let group = (me.0 + 4242, me.1);
        for (mode, mine, in_group, others) in [
            (0o600, true, false, false),
            (0o640, true, true, false),
            (0o644, true, true, true),
            (0o004, false, false, true),
            (0o040, false, true, false),
        ] {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
            let m = std::fs::metadata(&f).unwrap();
            assert_eq!(readable_by(&m, me), mine, "{mode:o}");
            assert_eq!(readable_by(&m, group), in_group, "{mode:o}");
            assert_eq!(readable_by(&m, other), others, "{mode:o}");
        }
    }
}
