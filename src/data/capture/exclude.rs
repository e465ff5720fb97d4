//! Exclude patterns of a capture, compiled once into `globset` matchers (automata: no
//! backtracking, whatever the pattern). A pattern starting with `/` matches the whole
//! in-root path, any other the file name; `*` and `?` stay within one component, `**` as
//! a whole component crosses them. Only `*` and `?` are special: `[`, `]`, `{`, `}` and
//! `\` are themselves (home paths become patterns as they are).

use std::path::Path;

use anyhow::{Context, Result};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// The compiled exclude patterns.
pub struct Exclude {
    /// Patterns starting with `/`: against the in-root path.
    full: GlobSet,
    /// The others: against the file name.
    name: GlobSet,
}

impl Exclude {
    pub fn new(patterns: &[String]) -> Result<Exclude> {
        let mut full = GlobSetBuilder::new();
        let mut name = GlobSetBuilder::new();
        for p in patterns {
            let glob = GlobBuilder::new(&literal_but_wildcards(p))
                .literal_separator(true)
                .backslash_escape(false)
                .build()
                .with_context(|| format!("the exclude pattern '{p}'"))?;
            if p.starts_with('/') {
                full.add(glob);
            } else {
                name.add(glob);
            }
        }
        Ok(Exclude {
            full: full.build()?,
            name: name.build()?,
        })
    }

    /// True when no pattern is given (nothing is ever excluded).
    pub fn is_empty(&self) -> bool {
        self.full.is_empty() && self.name.is_empty()
    }

    /// Whether the entry at `inner` (its in-root path) is left out.
    pub fn matches(&self, inner: &Path) -> bool {
        (!self.full.is_empty() && self.full.is_match(inner))
            || (!self.name.is_empty()
                && self
                    .name
                    .is_match(inner.file_name().map_or(Path::new(""), Path::new)))
    }
}

/// The pattern with every character globset treats specially, other than `*` and `?`,
/// made literal (`[x]`).
fn literal_but_wildcards(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for c in p.chars() {
        if matches!(c, '[' | ']' | '{' | '}') {
            out.push('[');
            out.push(c);
            out.push(']');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exclude(pats: &[&str]) -> Exclude {
        Exclude::new(&pats.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn exclude_patterns() {
        let e = exclude(&["*.tmp", "/var/lib/mysql/*.sock", "/srv/**/cache"]);
        assert!(e.matches(Path::new("/srv/a/b.tmp")));
        assert!(e.matches(Path::new("/var/lib/mysql/mysqld.sock")));
        assert!(!e.matches(Path::new("/var/lib/mysql/sub/x.sock")));
        assert!(e.matches(Path::new("/srv/x/y/cache")));
        assert!(!e.matches(Path::new("/srv/x/y/cache2")));
        assert!(!e.matches(Path::new("/srv/a/b.tmpx")));
        assert!(!exclude(&[]).matches(Path::new("/srv/a")));
    }

    #[test]
    fn question_marks_and_stars_stay_within_a_component() {
        let e = exclude(&["/srv/?", "/data/*"]);
        assert!(e.matches(Path::new("/srv/a")));
        assert!(!e.matches(Path::new("/srv/ab")));
        assert!(e.matches(Path::new("/data/x")));
        assert!(!e.matches(Path::new("/data/x/y")));
        assert!(exclude(&["/data/**"]).matches(Path::new("/data/x/y")));
    }

    #[test]
    fn brackets_braces_and_backslashes_are_literal() {
        let e = exclude(&["/home/a[1]/.cache", "{x,y}", "a\\b"]);
        assert!(e.matches(Path::new("/home/a[1]/.cache")));
        assert!(!e.matches(Path::new("/home/a1/.cache")));
        assert!(e.matches(Path::new("/srv/{x,y}")));
        assert!(!e.matches(Path::new("/srv/x")));
        // (on Windows a backslash separates path components: no name holds one)
        if cfg!(unix) {
            assert!(e.matches(Path::new("/srv/a\\b")));
        }
    }

    /// The hand-written matcher this replaced backtracked: a star per `a` tried every
    /// split of the name, 2^n ways for a name that almost matches. An automaton answers
    /// at once.
    #[test]
    fn a_pathological_pattern_does_not_backtrack() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let e = exclude(&[
                "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b",
                "/**a**a**a**a**a**a**a**a**b",
            ]);
            let name = format!("/srv/{}", "a".repeat(200));
            let _ = tx.send(e.matches(Path::new(&name)));
        });
        let matched = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the match finishes in well under 10 s");
        assert!(!matched);
    }
}
