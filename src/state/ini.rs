//! A reader for the INI-like files Linux keeps settings in (systemd's `*.conf`,
//! NetworkManager keyfiles) and for shell-style `KEY=value` files (ifcfg, sysconfig).

/// One `key=value` inside a `[section]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub section: String,
    pub key: String,
    pub value: String,
}

/// Parses `[section]` headers and `key=value` lines; `#` and `;` start comments.
pub fn parse(text: &str) -> Vec<Entry> {
    let mut section = String::new();
    let mut out = Vec::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            if let Some(name) = rest.strip_suffix(']') {
                section = name.trim().to_string();
            }
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.push(Entry {
                section: section.clone(),
                key: k.trim().to_string(),
                value: v.trim().to_string(),
            });
        }
    }
    out
}

/// The values of `key` in `section`, in file order.
pub fn values<'a>(entries: &'a [Entry], section: &str, key: &str) -> Vec<&'a str> {
    entries
        .iter()
        .filter(|e| e.section.eq_ignore_ascii_case(section) && e.key == key)
        .map(|e| e.value.as_str())
        .collect()
}

/// Parses shell-style `KEY=value` assignments (quotes stripped, `export` allowed).
pub fn parse_shell_vars(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                return None;
            }
            let l = l.strip_prefix("export ").unwrap_or(l);
            let (k, v) = l.split_once('=')?;
            let k = k.trim();
            if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return None;
            }
            let v = v.split(" #").next().unwrap_or(v);
            Some((k.to_string(), super::unquote(v).to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_and_comments() {
        let e = parse(
            "# c\n[Resolve]\nDNS=1.1.1.1 8.8.8.8\n;x=y\nDomains=a.com\n[Other]\nDNS=9.9.9.9\n",
        );
        assert_eq!(values(&e, "Resolve", "DNS"), vec!["1.1.1.1 8.8.8.8"]);
        assert_eq!(values(&e, "Other", "DNS"), vec!["9.9.9.9"]);
    }

    #[test]
    fn shell_vars() {
        let v = parse_shell_vars(
            "DNS1=10.0.0.2\nDOMAIN=\"a.com b.com\"\n# DNS2=x\nexport ZONE='Asia/Shanghai'\n",
        );
        assert_eq!(
            v,
            vec![
                ("DNS1".into(), "10.0.0.2".into()),
                ("DOMAIN".into(), "a.com b.com".into()),
                ("ZONE".into(), "Asia/Shanghai".into())
            ]
        );
    }
}
