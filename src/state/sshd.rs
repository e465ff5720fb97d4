//! sshd's access settings — port, root and password logins, who may log in — as the old
//! OS's configuration sets them, so a server keeps answering on its port and to the same
//! people after the change. Read the way sshd reads them (`Include` in place, the first
//! value of a keyword wins, `Port`/`ListenAddress`/`Allow*`/`Deny*` add up, `Match` blocks
//! apart), only keywords of an allow-list, each value checked by its own grammar; restore
//! carries those the new OS lacks as one drop-in.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Gather;

/// sshd's main configuration file.
pub const MAIN: &str = "/etc/ssh/sshd_config";
/// Where relative `Include` paths start.
const CONFIG_DIR: &str = "/etc/ssh";
/// How deep `Include`s nest before sshd gives up (its own limit).
const MAX_DEPTH: usize = 16;

/// What capture records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sshd {
    /// The allow-listed settings in effect, in the order sshd reads them.
    pub settings: Vec<Setting>,
    /// What is not carried: `Match` blocks (conditional settings), by file and line.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_carried: Vec<String>,
}

/// One setting: the keyword as sshd documents it, its value, the file that set it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Setting {
    pub key: String,
    pub value: String,
    pub file: String,
}

/// The grammar of a value.
#[derive(Debug, Clone, Copy)]
enum Grammar {
    Port,
    Count,
    /// `30`, `2m`, `1h30m`.
    Time,
    /// `10` or `10:30:100`.
    Startups,
    /// One address, `host:port` or `[v6]:port`.
    Address,
    /// User or group patterns (`alice`, `ops*`, `bob@10.0.0.0/8`, `!guest`).
    Patterns,
    One(&'static [&'static str]),
}

const YES_NO: &[&str] = &["yes", "no"];

/// The keywords carried, with the grammar of their values.
const KEYS: &[(&str, Grammar)] = &[
    ("Port", Grammar::Port),
    ("ListenAddress", Grammar::Address),
    ("AddressFamily", Grammar::One(&["any", "inet", "inet6"])),
    (
        "PermitRootLogin",
        Grammar::One(&[
            "yes",
            "no",
            "prohibit-password",
            "without-password",
            "forced-commands-only",
        ]),
    ),
    ("PasswordAuthentication", Grammar::One(YES_NO)),
    ("PubkeyAuthentication", Grammar::One(YES_NO)),
    ("KbdInteractiveAuthentication", Grammar::One(YES_NO)),
    ("ChallengeResponseAuthentication", Grammar::One(YES_NO)),
    ("PermitEmptyPasswords", Grammar::One(YES_NO)),
    ("AllowUsers", Grammar::Patterns),
    ("AllowGroups", Grammar::Patterns),
    ("DenyUsers", Grammar::Patterns),
    ("DenyGroups", Grammar::Patterns),
    ("MaxAuthTries", Grammar::Count),
    ("MaxSessions", Grammar::Count),
    ("MaxStartups", Grammar::Startups),
    ("LoginGraceTime", Grammar::Time),
    ("ClientAliveInterval", Grammar::Time),
    ("ClientAliveCountMax", Grammar::Count),
    ("X11Forwarding", Grammar::One(YES_NO)),
    (
        "AllowTcpForwarding",
        Grammar::One(&["yes", "no", "all", "local", "remote"]),
    ),
    ("AllowAgentForwarding", Grammar::One(YES_NO)),
    (
        "GatewayPorts",
        Grammar::One(&["yes", "no", "clientspecified"]),
    ),
    (
        "PermitTunnel",
        Grammar::One(&["yes", "no", "point-to-point", "ethernet"]),
    ),
    ("UseDNS", Grammar::One(YES_NO)),
];

/// The keywords whose every line counts (sshd appends them); the others: the first wins.
const MULTI: &[&str] = &[
    "Port",
    "ListenAddress",
    "AllowUsers",
    "AllowGroups",
    "DenyUsers",
    "DenyGroups",
];

/// The documented spelling of an allow-listed keyword (sshd ignores case).
pub fn canonical(key: &str) -> Option<&'static str> {
    KEYS.iter()
        .map(|(k, _)| *k)
        .find(|k| k.eq_ignore_ascii_case(key))
}

pub fn is_multi(key: &str) -> bool {
    MULTI.contains(&key)
}

/// True when `key` is an allow-listed keyword as documented and `value` fits its grammar.
pub fn valid(key: &str, value: &str) -> bool {
    let Some((_, grammar)) = KEYS.iter().find(|(k, _)| *k == key) else {
        return false;
    };
    let words: Vec<&str> = value.split(' ').collect();
    let one = |ok: &dyn Fn(&str) -> bool| words.len() == 1 && ok(words[0]);
    let digits = |w: &str| !w.is_empty() && w.len() <= 9 && w.bytes().all(|b| b.is_ascii_digit());
    match grammar {
        Grammar::Port => one(&|w| w.parse::<u16>().is_ok_and(|p| p > 0) && digits(w)),
        Grammar::Count => one(&digits),
        Grammar::Time => one(&|w| {
            let mut number = false;
            for c in w.chars() {
                if c.is_ascii_digit() {
                    number = true;
                } else if number && "sSmMhHdDwW".contains(c) {
                    number = false;
                } else {
                    return false;
                }
            }
            !w.is_empty() && w.len() <= 16 && w.chars().next().is_some_and(|c| c.is_ascii_digit())
        }),
        Grammar::Startups => one(&|w| {
            let parts: Vec<&str> = w.split(':').collect();
            (parts.len() == 1 || parts.len() == 3) && parts.iter().all(|p| digits(p))
        }),
        Grammar::Address => one(&|w| {
            !w.is_empty()
                && w.len() <= 64
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".:[]%-_".contains(c))
        }),
        Grammar::Patterns => {
            !words.is_empty()
                && words.len() <= 256
                && words.iter().all(|w| {
                    !w.is_empty()
                        && w.len() <= 256
                        && w.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_.-*?!@/:%$".contains(c))
                })
        }
        Grammar::One(allowed) => one(&|w| allowed.iter().any(|a| a.eq_ignore_ascii_case(w))),
    }
}

/// Splits a configuration line into its keyword and value words (`Key value`,
/// `Key=value`, `Key = value`; quotes around a word dropped; a `#` word ends the line).
fn split_line(line: &str) -> Option<(&str, Vec<&str>)> {
    let t = line.trim();
    if t.is_empty() || t.starts_with('#') {
        return None;
    }
    let end = t
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(t.len());
    let (key, rest) = t.split_at(end);
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest);
    let words = rest
        .split_whitespace()
        .take_while(|w| !w.starts_with('#'))
        .map(super::unquote)
        .collect();
    Some((key, words))
}

/// What sshd reads, for the allow-listed keywords.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Read {
    /// Every allow-listed line outside `Match` blocks, in the order sshd reads them.
    pub lines: Vec<Setting>,
    /// The files read, in order.
    pub files: Vec<String>,
    /// `Match` blocks and what could not be followed.
    pub not_carried: Vec<String>,
}

/// Reads sshd's configuration from `main`: `read` gives a file's text (absent: `None`),
/// `list` the names in a directory (for `Include` patterns).
pub fn read(
    main: &str,
    read: &dyn Fn(&str) -> Option<String>,
    list: &dyn Fn(&str) -> Vec<String>,
) -> Read {
    let mut out = Read::default();
    read_file(main, 0, false, read, list, &mut out);
    out
}

fn read_file(
    path: &str,
    depth: usize,
    in_match: bool,
    read: &dyn Fn(&str) -> Option<String>,
    list: &dyn Fn(&str) -> Vec<String>,
    out: &mut Read,
) {
    if depth > MAX_DEPTH {
        out.not_carried
            .push(format!("{path}: Include nested too deep; not read"));
        return;
    }
    let Some(text) = read(path) else {
        return;
    };
    out.files.push(path.to_string());
    let mut matching = in_match;
    for (n, line) in text.lines().enumerate() {
        let Some((key, words)) = split_line(line) else {
            continue;
        };
        if key.eq_ignore_ascii_case("match") {
            matching = true;
            out.not_carried.push(format!(
                "Match {} ({path} line {}): conditional settings",
                words.join(" "),
                n + 1
            ));
        } else if key.eq_ignore_ascii_case("include") {
            for pattern in words {
                for file in expand(pattern, list) {
                    read_file(&file, depth + 1, matching, read, list, out);
                }
            }
        } else if let Some(k) = canonical(key)
            && !matching
        {
            out.lines.push(Setting {
                key: k.to_string(),
                value: words.join(" "),
                file: path.to_string(),
            });
        }
    }
}

/// The files an `Include` pattern names, sorted as glob(3) sorts them: a pattern in the
/// last component only (`sshd_config.d/*.conf`); relative to /etc/ssh.
fn expand(pattern: &str, list: &dyn Fn(&str) -> Vec<String>) -> Vec<String> {
    let full = if pattern.starts_with('/') {
        pattern.to_string()
    } else {
        format!("{CONFIG_DIR}/{pattern}")
    };
    let Some((dir, name)) = full.rsplit_once('/') else {
        return Vec::new();
    };
    if !name.contains(['*', '?']) {
        return vec![full];
    }
    let mut names: Vec<String> = list(if dir.is_empty() { "/" } else { dir })
        .into_iter()
        .filter(|n| !n.starts_with('.') && glob(name.as_bytes(), n.as_bytes()))
        .collect();
    names.sort();
    names.into_iter().map(|n| format!("{dir}/{n}")).collect()
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => (0..=s.len()).any(|i| glob(&p[1..], &s[i..])),
        (Some(b'?'), Some(_)) => glob(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => glob(&p[1..], &s[1..]),
        _ => false,
    }
}

/// The settings in effect: the first line of a keyword, every line of the ones that add
/// up.
pub fn effective(lines: &[Setting]) -> Vec<Setting> {
    let mut out: Vec<Setting> = Vec::new();
    for l in lines {
        if is_multi(&l.key) || !out.iter().any(|o| o.key == l.key) {
            out.push(l.clone());
        }
    }
    out
}

/// The words a keyword has in `settings`, over all its lines.
pub fn words_of<'a>(settings: &'a [Setting], key: &str) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for s in settings.iter().filter(|s| s.key == key) {
        for w in s.value.split(' ') {
            if !out.contains(&w) {
                out.push(w);
            }
        }
    }
    out
}

/// True when `new` has every captured setting of `key` as it was.
pub fn same(captured: &[Setting], new: &[Setting], key: &str) -> bool {
    let (c, n) = (words_of(captured, key), words_of(new, key));
    if is_multi(key) {
        let mut c2 = c.clone();
        let mut n2 = n.clone();
        c2.sort();
        n2.sort();
        c2 == n2
    } else {
        c.first()
            .zip(n.first())
            .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b))
    }
}

/// Reads the old OS's sshd settings.
pub fn gather(g: &Gather) -> Sshd {
    let list = |dir: &str| -> Vec<String> {
        g.list(dir)
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect()
    };
    let r = read(MAIN, &|p| g.read_path(Path::new(p)), &list);
    Sshd {
        settings: effective(&r.lines),
        not_carried: r.not_carried,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn files(list: &[(&str, &str)]) -> BTreeMap<String, String> {
        list.iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect()
    }

    fn read_in(fs: &BTreeMap<String, String>) -> Read {
        let list = |dir: &str| -> Vec<String> {
            fs.keys()
                .filter_map(|p| p.strip_prefix(&format!("{dir}/")))
                .filter(|rest| !rest.contains('/'))
                .map(str::to_string)
                .collect()
        };
        read(MAIN, &|p| fs.get(p).cloned(), &list)
    }

    /// Debian 12's shipped sshd_config with an operator's changes and a drop-in.
    #[test]
    fn settings_are_read_as_sshd_reads_them() {
        let fs = files(&[
            (
                MAIN,
                "# This is the sshd server system-wide configuration file.\nInclude /etc/ssh/sshd_config.d/*.conf\n#Port 22\nPort 2222\nPermitRootLogin prohibit-password\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM yes\nX11Forwarding yes\nAcceptEnv LANG LC_*\nSubsystem sftp /usr/lib/openssh/sftp-server\nAllowUsers alice\nAllowUsers bob@10.0.0.0/8 # ops\nMatch User backup\n    PasswordAuthentication no\n    ForceCommand internal-sftp\n",
            ),
            (
                "/etc/ssh/sshd_config.d/50-cloud-init.conf",
                "PasswordAuthentication no\n",
            ),
            (
                "/etc/ssh/sshd_config.d/10-port.conf",
                "port=2200\nmaxauthtries = 3\n",
            ),
            ("/etc/ssh/sshd_config.d/README", "Port 1\n"),
        ]);
        let r = read_in(&fs);
        assert_eq!(
            r.files,
            vec![
                MAIN,
                "/etc/ssh/sshd_config.d/10-port.conf",
                "/etc/ssh/sshd_config.d/50-cloud-init.conf"
            ]
        );
        let e = effective(&r.lines);
        let shown: Vec<String> = e.iter().map(|s| format!("{} {}", s.key, s.value)).collect();
        assert_eq!(
            shown,
            vec![
                "Port 2200",
                "MaxAuthTries 3",
                "PasswordAuthentication no",
                "Port 2222",
                "PermitRootLogin prohibit-password",
                "KbdInteractiveAuthentication no",
                "X11Forwarding yes",
                "AllowUsers alice",
                "AllowUsers bob@10.0.0.0/8",
            ]
        );
        assert_eq!(r.not_carried.len(), 1);
        assert!(r.not_carried[0].contains("Match User backup"));
        assert!(e.iter().all(|s| valid(&s.key, &s.value)), "{e:?}");
        assert_eq!(words_of(&e, "AllowUsers"), vec!["alice", "bob@10.0.0.0/8"]);
    }

    #[test]
    fn values_are_checked_by_their_grammar() {
        for (k, v) in [
            ("Port", "2222"),
            ("PermitRootLogin", "prohibit-password"),
            ("LoginGraceTime", "1m30s"),
            ("MaxStartups", "10:30:100"),
            ("ListenAddress", "[::1]:22"),
            ("AllowUsers", "alice bob@10.0.0.0/8 ops-*"),
        ] {
            assert!(valid(k, v), "{k} {v}");
        }
        for (k, v) in [
            ("Port", "0"),
            ("Port", "22 23"),
            ("Port", "99999"),
            ("PermitRootLogin", "maybe"),
            ("ForceCommand", "/bin/sh"),
            ("permitrootlogin", "yes"),
            ("AllowUsers", "alice\nMatch"),
            ("AllowUsers", "alice;rm"),
            ("LoginGraceTime", "m"),
            ("ListenAddress", "0.0.0.0 rdomain x"),
        ] {
            assert!(!valid(k, v), "{k} {v}");
        }
    }

    #[test]
    fn what_the_new_os_has_already_is_the_same() {
        let s = |k: &str, v: &str| Setting {
            key: k.into(),
            value: v.into(),
            file: MAIN.into(),
        };
        let captured = vec![
            s("Port", "2222"),
            s("PermitRootLogin", "no"),
            s("AllowUsers", "a b"),
        ];
        let new = vec![
            s("PermitRootLogin", "No"),
            s("AllowUsers", "b"),
            s("AllowUsers", "a"),
        ];
        assert!(!same(&captured, &new, "Port"));
        assert!(same(&captured, &new, "PermitRootLogin"));
        assert!(same(&captured, &new, "AllowUsers"));
    }
}
