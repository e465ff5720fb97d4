//! Privileges: the sudo rules the old OS gave its captured users and groups — the files of
//! `/etc/sudoers.d` and the lines of `/etc/sudoers` that name them — so an operator can
//! still `sudo` after the change. A pure reader of sudoers lines decides what each line
//! is; restore carries only lines that grant captured accounts something (no global
//! `Defaults`, no rule for `ALL` or a uid, no include of a file outside `/etc/sudoers.d`).

use serde::{Deserialize, Serialize};

use super::Gather;
use super::accounts::{Group, User};

pub const MAIN: &str = "/etc/sudoers";
pub const DIR: &str = "/etc/sudoers.d";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sudoers {
    /// The files of /etc/sudoers.d that sudo reads, as they are.
    pub files: Vec<SudoersFile>,
    /// The lines of /etc/sudoers that name a captured user or group, and the command,
    /// host and runas aliases they use.
    pub lines: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SudoersFile {
    pub name: String,
    pub content: String,
}

/// A name sudo reads in an included directory and carryover writes: no `.` or `~` (sudo
/// skips those), nothing but letters, digits, `-` and `_`.
pub fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The logical lines of a sudoers text: a line ending in `\` goes on on the next one.
pub fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for l in text.lines() {
        match l.strip_suffix('\\') {
            Some(head) => {
                cur.push_str(head);
                cur.push(' ');
            }
            None => {
                cur.push_str(l);
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// What a sudoers line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    /// Blank, or a comment.
    Nothing,
    /// `@include` / `#include` (and the `dir` forms) with their argument.
    Include { dir: bool, path: &'a str },
    /// `Defaults…`: the binding after the keyword (`:alice`, `@host`, `` for global).
    Defaults { binding: &'a str },
    /// `User_Alias NAME = …`, and the other alias kinds.
    Alias { kind: &'a str, body: &'a str },
    /// A user specification: the users it is for and the rest.
    Spec { users: Vec<&'a str>, rest: &'a str },
}

const ALIAS_KINDS: &[&str] = &[
    "User_Alias",
    "Runas_Alias",
    "Host_Alias",
    "Cmnd_Alias",
    "Cmd_Alias",
];

/// Reads one logical line.
pub fn classify(line: &str) -> Line<'_> {
    let t = line.trim();
    if t.is_empty() {
        return Line::Nothing;
    }
    for (word, dir) in [
        ("@includedir", true),
        ("#includedir", true),
        ("@include", false),
        ("#include", false),
    ] {
        if let Some(rest) = t.strip_prefix(word)
            && rest.starts_with([' ', '\t'])
        {
            return Line::Include {
                dir,
                path: rest.trim(),
            };
        }
    }
    // `#` starts a comment, but `#1000` at the start is a uid's rule
    if t.starts_with('#') && !t[1..].starts_with(|c: char| c.is_ascii_digit()) {
        return Line::Nothing;
    }
    if let Some(rest) = t.strip_prefix("Defaults") {
        let binding = rest.split_whitespace().next().unwrap_or("");
        let binding = if rest.starts_with([' ', '\t']) {
            ""
        } else {
            binding
        };
        return Line::Defaults { binding };
    }
    for kind in ALIAS_KINDS {
        if let Some(rest) = t.strip_prefix(kind)
            && rest.starts_with([' ', '\t'])
        {
            return Line::Alias {
                kind,
                body: rest.trim(),
            };
        }
    }
    // the user list: up to the first blank that is not beside a comma
    let b = t.as_bytes();
    let mut end = t.len();
    for i in 0..b.len() {
        if b[i].is_ascii_whitespace() {
            let before = t[..i].trim_end().ends_with(',');
            let after = t[i..].trim_start().starts_with(',');
            if !before && !after {
                end = i;
                break;
            }
        }
    }
    let users = t[..end]
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    Line::Spec {
        users,
        rest: t[end..].trim(),
    }
}

/// The accounts a line may name: captured users (`alice`), captured groups (`%devs`) and
/// the user aliases defined with them before it.
#[derive(Debug, Clone, Default)]
pub struct Allowed {
    pub users: Vec<String>,
    pub groups: Vec<String>,
    pub aliases: Vec<String>,
}

impl Allowed {
    fn item(&self, item: &str) -> bool {
        match item.strip_prefix('%') {
            Some(g) => self.groups.iter().any(|x| x == g),
            None => self.users.iter().any(|x| x == item) || self.aliases.iter().any(|x| x == item),
        }
    }

    fn items(&self, list: &str) -> bool {
        let items: Vec<&str> = list.split(',').map(str::trim).collect();
        !items.is_empty() && items.iter().all(|i| self.item(i))
    }
}

/// Decides whether a line may be carried: `Ok(true)` a rule to write, `Ok(false)` nothing
/// to write (a comment), `Err` why it is refused. A `User_Alias` it accepts is added to
/// `allowed` for the lines after it.
pub fn check_line(line: &str, allowed: &mut Allowed) -> Result<bool, String> {
    if line.chars().any(|c| c.is_control() && c != '\t') {
        return Err("holds a control character".into());
    }
    match classify(line) {
        Line::Nothing => Ok(false),
        Line::Include { dir: false, path } => match path.strip_prefix("/etc/sudoers.d/") {
            Some(name) if plain_name(name) => Ok(true),
            _ => Err(format!("includes {path}, which is not a file of {DIR}")),
        },
        Line::Include { dir: true, path } => Err(format!("includes the directory {path}")),
        Line::Defaults { binding } => match binding.strip_prefix(':') {
            Some(users) if allowed.items(users) => Ok(true),
            Some(_) => Err("Defaults for accounts that were not captured".into()),
            None => Err("Defaults for everyone (only a captured account's are carried)".into()),
        },
        Line::Alias {
            kind: "User_Alias",
            body,
        } => {
            let mut names = Vec::new();
            for def in body.split(':') {
                let Some((name, members)) = def.split_once('=') else {
                    return Err("a User_Alias without members".into());
                };
                let name = name.trim();
                if !alias_name(name) || !allowed.items(members) {
                    return Err("a User_Alias of accounts that were not captured".into());
                }
                names.push(name.to_string());
            }
            allowed.aliases.extend(names);
            Ok(true)
        }
        Line::Alias { .. } => Ok(true),
        Line::Spec { users, rest } => {
            if users.is_empty() || !rest.contains('=') {
                return Err("not a sudoers rule".into());
            }
            if users.iter().all(|u| allowed.item(u)) {
                Ok(true)
            } else {
                Err("a rule for accounts that were not captured".into())
            }
        }
    }
}

fn alias_name(n: &str) -> bool {
    n.starts_with(|c: char| c.is_ascii_uppercase())
        && n.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The lines of the old /etc/sudoers that name a captured account, and the definitions of
/// the (non-user) aliases they use.
pub fn main_lines(text: &str, allowed: &Allowed) -> Vec<String> {
    let lines = logical_lines(text);
    let mut allowed = allowed.clone();
    let mut picked: Vec<String> = Vec::new();
    for l in &lines {
        let names_one = match classify(l) {
            Line::Spec { users, .. } => users.iter().any(|u| allowed.item(u)),
            Line::Defaults { binding } => binding
                .strip_prefix(':')
                .is_some_and(|b| b.split(',').any(|u| allowed.item(u.trim()))),
            Line::Alias {
                kind: "User_Alias", ..
            } => check_line(l, &mut allowed).is_ok(),
            _ => false,
        };
        if names_one {
            picked.push(l.trim().to_string());
        }
    }
    // the command, host and runas aliases those lines use come first
    let words: Vec<&str> = picked
        .iter()
        .flat_map(|l| l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
        .collect();
    let mut out: Vec<String> = lines
        .iter()
        .filter(|l| match classify(l) {
            Line::Alias { kind, body } if kind != "User_Alias" => body
                .split(':')
                .filter_map(|d| d.split_once('=').map(|(n, _)| n.trim()))
                .any(|n| words.contains(&n)),
            _ => false,
        })
        .map(|l| l.trim().to_string())
        .collect();
    out.extend(picked);
    out
}

/// The captured accounts, as sudoers lines name them.
pub fn allowed_for(users: &[User], groups: &[Group]) -> Allowed {
    Allowed {
        users: users.iter().map(|u| u.name.clone()).collect(),
        groups: groups.iter().map(|g| g.name.clone()).collect(),
        aliases: Vec::new(),
    }
}

pub fn gather(g: &Gather, users: &[User], groups: &[Group]) -> Sudoers {
    let allowed = allowed_for(users, groups);
    let lines = g
        .read(MAIN)
        .map(|t| main_lines(&t, &allowed))
        .unwrap_or_default();
    let mut files = Vec::new();
    for p in g.list(DIR) {
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        // sudo skips names with a dot or ending in `~`
        if name.contains('.') || name.ends_with('~') || !p.is_file() {
            continue;
        }
        let Some(content) = g.read(&format!("{DIR}/{name}")) else {
            continue;
        };
        if logical_lines(&content)
            .iter()
            .all(|l| classify(l) == Line::Nothing)
        {
            continue;
        }
        files.push(SudoersFile { name, content });
    }
    Sudoers { files, lines }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Allowed {
        Allowed {
            users: vec!["alice".into(), "rocky".into()],
            groups: vec!["ops".into()],
            aliases: vec![],
        }
    }

    #[test]
    fn lines_are_classified_as_sudo_reads_them() {
        assert_eq!(classify("# comment"), Line::Nothing);
        assert_eq!(
            classify("#includedir /etc/sudoers.d"),
            Line::Include {
                dir: true,
                path: "/etc/sudoers.d"
            }
        );
        assert!(matches!(classify("#1000 ALL=(ALL) ALL"), Line::Spec { .. }));
        assert_eq!(
            classify("Defaults:alice !requiretty"),
            Line::Defaults { binding: ":alice" }
        );
        assert_eq!(
            classify("Defaults env_reset"),
            Line::Defaults { binding: "" }
        );
        assert_eq!(
            classify("alice , %ops ALL=(ALL) NOPASSWD: ALL"),
            Line::Spec {
                users: vec!["alice", "%ops"],
                rest: "ALL=(ALL) NOPASSWD: ALL"
            }
        );
        assert_eq!(
            logical_lines("Cmnd_Alias X = /bin/a, \\\n  /bin/b\nalice ALL = X\n"),
            vec!["Cmnd_Alias X = /bin/a,    /bin/b", "alice ALL = X"]
        );
    }

    #[test]
    fn only_captured_accounts_rules_are_carried() {
        let mut a = allowed();
        for ok in [
            "alice ALL=(ALL) NOPASSWD: /usr/bin/systemctl",
            "%ops ALL=(root) /usr/bin/journalctl",
            "Defaults:alice !requiretty",
            "Cmnd_Alias BACKUP = /usr/bin/rsync",
            "User_Alias ADMINS = alice, %ops",
            "ADMINS ALL = BACKUP",
            "@include /etc/sudoers.d/ops",
        ] {
            assert_eq!(check_line(ok, &mut a), Ok(true), "{ok}");
        }
        assert_eq!(check_line("# a comment", &mut a), Ok(false));
        for bad in [
            "ALL ALL=(ALL) NOPASSWD: ALL",
            "bob ALL=(ALL) ALL",
            "alice, bob ALL=(ALL) ALL",
            "#1000 ALL=(ALL) ALL",
            "%sudo ALL=(ALL) ALL",
            "%#27 ALL=(ALL) ALL",
            "Defaults !authenticate",
            "Defaults:bob !authenticate",
            "User_Alias EVIL = alice, bob",
            "#include /etc/shadow",
            "@include /etc/sudoers.d/../shadow",
            "@includedir /tmp",
            "alice ALL=(ALL) ALL\u{1b}",
            "alice",
        ] {
            assert!(check_line(bad, &mut a).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_main_files_lines_for_captured_accounts_and_their_aliases() {
        let rocky = "Defaults   !visiblepw\nDefaults    env_reset\nCmnd_Alias SERVICES = /usr/bin/systemctl\nCmnd_Alias NET = /usr/sbin/ip\nroot\tALL=(ALL) \tALL\n%wheel\tALL=(ALL)\tALL\nalice ALL=(ALL) NOPASSWD: SERVICES\nDefaults:alice !requiretty\nbob ALL=(ALL) ALL\n## Read drop-in files from /etc/sudoers.d\n#includedir /etc/sudoers.d\n";
        assert_eq!(
            main_lines(rocky, &allowed()),
            vec![
                "Cmnd_Alias SERVICES = /usr/bin/systemctl",
                "alice ALL=(ALL) NOPASSWD: SERVICES",
                "Defaults:alice !requiretty",
            ]
        );
    }
}
