//! SSH logins: each captured user's (and root's) `~/.ssh/authorized_keys` when the home
//! is on the system disk — without them nobody but the Change OS key pair could log in
//! to the new OS. Key lines are parsed by their grammar (options, key type, base64 blob
//! whose wire type matches) here, at capture and again at restore, where the snapshot is
//! untrusted. Public keys are not secret, but they stay out of logs and reports (counts
//! and fingerprints only).

use std::path::Path;

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::Gather;
use super::accounts::{User, parse_passwd};

/// The authorized keys of the accounts whose homes the Change OS deletes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Logins {
    pub authorized_keys: Vec<UserKeys>,
}

/// One account's `~/.ssh/authorized_keys`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserKeys {
    /// `root` or a captured user.
    pub user: String,
    /// The key lines as they were (`[options] type base64 [comment]`).
    pub keys: Vec<String>,
    /// Lines that were neither keys, comments nor blank: sshd ignores them, so does
    /// capture.
    #[serde(skip_serializing_if = "is_zero")]
    pub ignored: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The key types sshd accepts in authorized_keys (certificates included).
const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-ed25519-cert-v01@openssh.com",
    "ssh-rsa-cert-v01@openssh.com",
    "ssh-dss-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "sk-ssh-ed25519-cert-v01@openssh.com",
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
];

/// authorized_keys options (sshd(8) "AUTHORIZED_KEYS FILE FORMAT"): without a value…
const FLAG_OPTIONS: &[&str] = &[
    "agent-forwarding",
    "cert-authority",
    "no-agent-forwarding",
    "no-port-forwarding",
    "no-pty",
    "no-user-rc",
    "no-x11-forwarding",
    "port-forwarding",
    "pty",
    "no-touch-required",
    "verify-required",
    "restrict",
    "user-rc",
    "x11-forwarding",
];
/// …and with a quoted value.
const VALUE_OPTIONS: &[&str] = &[
    "command",
    "environment",
    "expiry-time",
    "from",
    "permitlisten",
    "permitopen",
    "principals",
    "tunnel",
];

/// The longest line taken (a 16384-bit RSA certificate with options fits).
const MAX_LINE: usize = 16 * 1024;

/// One parsed authorized_keys line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLine<'a> {
    pub options: Option<&'a str>,
    pub key_type: &'a str,
    pub blob: &'a str,
}

impl KeyLine<'_> {
    /// The key itself (`type base64`): two lines with the same key are one key, whatever
    /// their options and comments.
    pub fn key(&self) -> String {
        format!("{} {}", self.key_type, self.blob)
    }

    /// `SHA256:…` as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        super::ssh::fingerprint(&self.key()).unwrap_or_default()
    }
}

/// True for lines sshd skips: blank or a comment.
pub fn is_blank_or_comment(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// Parses one authorized_keys line by its grammar; anything else is refused with the
/// reason (never the line itself: it may be a key).
pub fn parse_key_line(line: &str) -> Result<KeyLine<'_>, &'static str> {
    if line.len() > MAX_LINE {
        return Err("longer than any key line");
    }
    if line.chars().any(|c| c.is_control() && c != '\t') {
        return Err("holds a control character");
    }
    let line = line.trim();
    let first = line.split_whitespace().next().unwrap_or_default();
    let (options, rest) = if KEY_TYPES.contains(&first) {
        (None, line)
    } else {
        let (opts, rest) = split_options(line)?;
        check_options(opts)?;
        (Some(opts), rest.trim_start())
    };
    let mut words = rest.split_whitespace();
    let key_type = words.next().ok_or("no key")?;
    if !KEY_TYPES.contains(&key_type) {
        return Err("not a known key type");
    }
    let blob = words.next().ok_or("no key data")?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .map_err(|_| "the key data is not base64")?;
    // the SSH wire format starts with the key type as a length-prefixed string
    let wire = raw
        .get(..4)
        .map(|n| u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize)
        .and_then(|n| raw.get(4..4 + n));
    if wire != Some(key_type.as_bytes()) {
        return Err("the key data is not a key of its type");
    }
    Ok(KeyLine {
        options,
        key_type,
        blob,
    })
}

/// Splits the options field (up to the first space outside double quotes) from the rest.
fn split_options(line: &str) -> Result<(&str, &str), &'static str> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ' ' | '\t' if !quoted => return Ok((&line[..i], &line[i..])),
            _ => {}
        }
    }
    Err(if quoted {
        "an option's quotes are not closed"
    } else {
        "no key"
    })
}

/// Every option must be one sshd knows, flags without a value, the others with a quoted
/// one.
fn check_options(opts: &str) -> Result<(), &'static str> {
    let mut items = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in opts.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(&opts[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&opts[start..]);
    for item in items {
        let (name, value) = match item.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (item, None),
        };
        let name = name.to_ascii_lowercase();
        match value {
            None if FLAG_OPTIONS.contains(&name.as_str()) => {}
            Some(v)
                if VALUE_OPTIONS.contains(&name.as_str())
                    && v.len() >= 2
                    && v.starts_with('"')
                    && v.ends_with('"') => {}
            _ => return Err("an option sshd does not know"),
        }
    }
    Ok(())
}

/// The key lines of an authorized_keys file and how many other lines it had.
pub fn key_lines(text: &str) -> (Vec<String>, usize) {
    let mut keys = Vec::new();
    let mut ignored = 0;
    for l in text.lines().filter(|l| !is_blank_or_comment(l)) {
        match parse_key_line(l) {
            Ok(_) => keys.push(l.trim().to_string()),
            Err(_) => ignored += 1,
        }
    }
    (keys, ignored)
}

/// Reads root's and each captured user's authorized_keys whose home `on_system_disk`
/// says the Change OS deletes (a home on a data disk keeps its own).
pub fn gather(g: &Gather, users: &[User], on_system_disk: &dyn Fn(&Path) -> bool) -> Logins {
    let (passwd, _) = parse_passwd(&g.read("/etc/passwd").unwrap_or_default());
    let root_home = passwd
        .iter()
        .find(|p| p.name == "root")
        .map_or_else(|| "/root".to_string(), |p| p.home.clone());
    let accounts = std::iter::once(("root".to_string(), root_home))
        .chain(users.iter().map(|u| (u.name.clone(), u.home.clone())));
    let mut out = Logins::default();
    for (user, home) in accounts {
        if !home.starts_with('/') || home == "/" || !on_system_disk(Path::new(&home)) {
            continue;
        }
        let Some(text) = g.read(&format!(
            "{}/.ssh/authorized_keys",
            home.trim_end_matches('/')
        )) else {
            continue;
        };
        let (keys, ignored) = key_lines(&text);
        if keys.is_empty() && ignored == 0 {
            continue;
        }
        out.authorized_keys.push(UserKeys {
            user,
            keys,
            ignored,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIELFsTTm6AGMDspKDm0h2i3V9DvYKztJcBi8EG7O2iTP";

    #[test]
    fn key_lines_are_parsed_by_their_grammar() {
        let line = format!("{ED25519} alice@laptop");
        let k = parse_key_line(&line).unwrap();
        assert_eq!((k.options, k.key_type), (None, "ssh-ed25519"));
        assert_eq!(
            k.fingerprint(),
            "SHA256:16m0RK1avw93Jyt93KdQDaoe3MkkYQgvCMHSnjbJy/g"
        );
        let with = format!(
            "from=\"10.0.0.0/8,192.168.1.2\",command=\"/usr/bin/rrsync -ro \\\"/srv\\\"\",no-pty,restrict {ED25519} backup"
        );
        let k = parse_key_line(&with).unwrap();
        assert!(k.options.unwrap().ends_with("no-pty,restrict"));
        assert_eq!(k.key(), ED25519);
        for bad in [
            "garbage".to_string(),
            "ssh-ed25519".to_string(),
            "ssh-ed25519 not*base64".to_string(),
            // base64, but an RSA key's bytes under the ed25519 name
            "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQC7".to_string(),
            format!("evil-option {ED25519}"),
            format!("command=unquoted {ED25519}"),
            format!("command=\"open {ED25519}"),
            format!("no-pty=\"x\" {ED25519}"),
            format!("{ED25519} a\0b"),
            "ssh-fake AAAAC3NzaC1lZDI1NTE5AAAAIELFsTTm6AGMDspKDm0h2i3V9DvYKztJcBi8EG7O2iTP"
                .to_string(),
        ] {
            assert!(parse_key_line(&bad).is_err(), "{bad:?}");
        }
        let (keys, ignored) = key_lines(&format!(
            "# mine\n\n{ED25519} a\nnot a key\n  {ED25519} b  \n"
        ));
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[1], format!("{ED25519} b"));
        assert_eq!(ignored, 1);
    }
}
