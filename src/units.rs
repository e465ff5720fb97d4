//! Sizes and times as people read them in text output: `1.02 GiB`, `2026-12-01 14:05:09`
//! in the machine's own time zone. JSON keeps the exact numbers and RFC 3339 times.

/// Bytes in binary units with three significant digits: `512 B`, `1.50 KiB`, `1.02 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: &[&str] = &["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    let digits = if v < 10.0 {
        2
    } else if v < 100.0 {
        1
    } else {
        0
    };
    format!("{v:.digits$} {}", UNITS[unit])
}

/// An RFC 3339 time as `YYYY-MM-DD HH:MM:SS` in the local time zone (UTC when the
/// zone cannot be read); the text as it is when it does not parse.
pub fn local_time(rfc3339: &str) -> String {
    let Ok(t) =
        time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
    else {
        return rfc3339.to_string();
    };
    let local = time::UtcOffset::current_local_offset()
        .map(|o| t.to_offset(o))
        .unwrap_or(t);
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    local.format(&fmt).unwrap_or_else(|_| rfc3339.to_string())
}

/// `1 user`, `2 users`, `0 users`.
pub fn count(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// A value read back from the store, quoted for a message: `'…'` with newlines, control
/// characters and quotes escaped, so a crafted value cannot forge lines of a report or log.
pub fn quoted(s: &str) -> String {
    format!("'{}'", s.escape_debug())
}

/// Bidirectional-text controls: shown as they are they reorder what follows them on the
/// screen (a value read back from a store could make a line read backwards).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn escaped(s: &str, keep: impl Fn(char) -> bool) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| (c.is_control() || is_bidi_control(c)) && !keep(c);
    if !s.chars().any(bad) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars()
            .map(|c| {
                if bad(c) {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// Text for a terminal: control characters (an escape sequence read back from a store)
/// and bidirectional controls shown as `\u{..}` instead of being sent to the terminal;
/// newlines and tabs kept.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    escaped(s, |c| c == '\n' || c == '\t')
}

/// One value on one line of a report or table: like [`printable`], and a newline or a
/// carriage return in it is shown as `\u{a}` / `\u{d}`, so a crafted value cannot make a
/// line of its own (a fake `result READY` under the real one).
pub fn one_line(s: &str) -> std::borrow::Cow<'_, str> {
    escaped(s, |c| c == '\t')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_never_reach_a_terminal() {
        assert_eq!(printable("a\tb\nc"), "a\tb\nc");
        assert_eq!(printable("x\u{1b}[31my"), "x\\u{1b}[31my");
        assert_eq!(printable("a\u{202e}b"), "a\\u{202e}b");
        assert_eq!(
            one_line("web01\n  result    READY\r"),
            "web01\\u{a}  result    READY\\u{d}"
        );
        assert_eq!(one_line("plain é"), "plain é");
    }

    #[test]
    fn sizes() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(1_096_558_400), "1.02 GiB");
        assert_eq!(bytes(150 << 20), "150 MiB");
        assert_eq!(bytes(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn times_to_the_second() {
        let t = local_time("2026-12-01T14:05:09.123456789Z");
        assert_eq!(t.len(), 19, "{t}");
        assert!(t.starts_with("2026-12-0"), "{t}");
        assert_eq!(local_time("garbage"), "garbage");
    }
}
