//! What a Windows file has beyond what the snapshot format has fields for, carried as
//! pseudo extended attributes (`windows.*`, never written to a Linux file): its security
//! descriptor — the SDDL text plus the account name of every machine- or domain-specific
//! SID in it (`S-1-5-21-…`: a new Windows gives its accounts new SIDs; the names let
//! restore point the entries at the same-named accounts there) — and its attributes.

/// The pseudo extended attribute that holds the security descriptor.
pub const XATTR: &[u8] = b"windows.security";
/// The one that holds the file attributes (hidden, system, archive, not indexed) as a
/// decimal number; read-only travels in the mode.
pub const ATTRIBUTES: &[u8] = b"windows.attributes";
/// The attribute bits carried.
pub const ATTRIBUTE_MASK: u32 = 0x2 | 0x4 | 0x20 | 0x2000;
/// The prefix of every Windows-only pseudo attribute.
pub const PREFIX: &[u8] = b"windows.";

/// Where the SID at the start of `tail` (`S-1-…`) ends.
fn sid_end(tail: &str) -> usize {
    tail[1..]
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .map_or(tail.len(), |i| i + 1)
}

/// The SIDs in an SDDL string that belong to one machine or domain (well-known ones,
/// `S-1-5-18`, `BA`, are the same everywhere).
pub fn account_sids(sddl: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = sddl;
    while let Some(i) = rest.find("S-1-5-21-") {
        let tail = &rest[i..];
        let end = sid_end(tail);
        let sid = tail[..end].trim_end_matches('-').to_string();
        if !out.contains(&sid) {
            out.push(sid);
        }
        rest = &tail[end..];
    }
    out
}

/// The attribute's value: the SDDL, then a `SID<TAB>DOMAIN\name` line per account SID.
pub fn encode(sddl: &str, names: &[(String, String)]) -> Vec<u8> {
    let mut s = sddl.to_string();
    for (sid, name) in names {
        s.push('\n');
        s.push_str(sid);
        s.push('\t');
        s.push_str(name);
    }
    s.into_bytes()
}

/// The SDDL and the account names of a value (malformed lines are ignored).
pub fn decode(value: &[u8]) -> (String, Vec<(String, String)>) {
    let text = String::from_utf8_lossy(value);
    let mut lines = text.lines();
    let sddl = lines.next().unwrap_or_default().to_string();
    let names = lines
        .filter_map(|l| l.split_once('\t'))
        .filter(|(sid, _)| sid.starts_with("S-1-"))
        .map(|(s, n)| (s.to_string(), n.to_string()))
        .collect();
    (sddl, names)
}

/// Replaces whole SIDs in an SDDL string (`S-1-5-21-1-2-3-1001` is not touched by a
/// rule for `S-1-5-21-1-2-3-100`).
pub fn rewrite(sddl: &str, map: &[(String, String)]) -> String {
    let mut out = String::with_capacity(sddl.len());
    let mut rest = sddl;
    while let Some(i) = rest.find("S-1-") {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let end = sid_end(tail);
        let sid = &tail[..end];
        match map.iter().find(|(old, _)| old == sid) {
            Some((_, new)) => out.push_str(new),
            None => out.push_str(sid),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDDL: &str = "O:S-1-5-21-11-22-33-1001G:SYD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;;0x1200a9;;;S-1-5-21-11-22-33-1001)(A;;FR;;;S-1-5-21-11-22-33-10012)";

    #[test]
    fn account_sids_are_found_named_and_rewritten_whole() {
        assert_eq!(
            account_sids(SDDL),
            vec!["S-1-5-21-11-22-33-1001", "S-1-5-21-11-22-33-10012"]
        );
        let names = vec![
            (
                "S-1-5-21-11-22-33-1001".to_string(),
                r"OLDPC\app".to_string(),
            ),
            (
                "S-1-5-21-11-22-33-10012".to_string(),
                r"OLDPC\ops".to_string(),
            ),
        ];
        let v = encode(SDDL, &names);
        assert_eq!(decode(&v), (SDDL.to_string(), names));
        let new = rewrite(
            SDDL,
            &[(
                "S-1-5-21-11-22-33-1001".into(),
                "S-1-5-21-7-8-9-1005".into(),
            )],
        );
        assert_eq!(
            new,
            "O:S-1-5-21-7-8-9-1005G:SYD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;;0x1200a9;;;S-1-5-21-7-8-9-1005)(A;;FR;;;S-1-5-21-11-22-33-10012)"
        );
        assert_eq!(decode(b"only sddl"), ("only sddl".to_string(), vec![]));
        assert_eq!(account_sids("D:(A;;FA;;;SY)"), Vec::<String>::new());
        assert_eq!(
            account_sids("O:S-1-5-21-1-2-3-500S:NO_ACCESS"),
            vec!["S-1-5-21-1-2-3-500"]
        );
    }
}
