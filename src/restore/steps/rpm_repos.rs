//! The `.repo` half of the repositories step: a yum/dnf or zypper repository file brought
//! to the new release — its `$releasever`, `$basearch`, `$arch` given the new OS's values,
//! an old release number in a URL's or key's path renamed (`/el/8/` → `/el/9/`) — and each
//! of its sections kept only when the repository answers for the new release (or is off,
//! or sits behind a proxy the agent does not use), never when it would switch dnf's or
//! zypper's signature checks off. The parts here are pure: the step gives them the two
//! releases and a way to ask whether an index exists.

use crate::state::identity::OsRelease;
use crate::state::repos::repo_list as list;

/// The keys of a section that name where its repository is.
const URL_KEYS: &[&str] = &["baseurl", "mirrorlist", "metalink"];

/// The keys that turn a signature or certificate check off when false (dnf's and
/// zypper's): a section that sets one false is refused — the packages step installs with
/// `-y`, so a hostile store must not be able to switch the checks off.
const CHECK_KEYS: &[&str] = &["gpgcheck", "repo_gpgcheck", "pkg_gpgcheck", "sslverify"];

/// The priority dnf and zypper give a repository that sets none — the distributions' own
/// repositories among them. A lower number wins over them: refused, as apt pins of 1000
/// and more are.
const DEFAULT_PRIORITY: i64 = 99;

/// The keys whose presence means the repository is reached through something the agent
/// does not have (a proxy, a client certificate): such a section cannot be checked from
/// here; it is written with a warning.
const UNCHECKABLE_KEYS: &[&str] = &["proxy", "sslclientcert", "sslclientkey"];

/// A dnf/zypper boolean: `Some(true)` for 1/yes/true/on, `Some(false)` for
/// 0/no/false/off, `None` for anything else.
fn boolean(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// A distribution line whose releases share version numbers and the names URLs give
/// them: `(tags, $releasever is the major version)`.
struct Line {
    name: &'static str,
    /// Words that stand before a release number in third-party URLs (`el/9`, `rhel-9`,
    /// `fedora-40`, `openSUSE_Leap_15.6`).
    tags: &'static [&'static str],
    /// dnf's `$releasever` on Red Hat's family is the major version (`9`, not `9.4`).
    major_releasever: bool,
}

const EL: Line = Line {
    name: "el",
    tags: &[
        "el",
        "rhel",
        "redhat",
        "centos",
        "rocky",
        "rockylinux",
        "almalinux",
        "alma",
        "epel",
        "ol",
        "oraclelinux",
    ],
    major_releasever: true,
};
const FEDORA: Line = Line {
    name: "fedora",
    tags: &["fedora", "fc"],
    major_releasever: false,
};
const SUSE: Line = Line {
    name: "suse",
    tags: &["sles", "sle", "leap", "opensuse", "suse"],
    major_releasever: false,
};
const OPENEULER: Line = Line {
    name: "openeuler",
    tags: &["openeuler"],
    major_releasever: false,
};

/// The line an OS belongs to, when carryover knows how its URLs name releases.
fn line_of(os: &OsRelease) -> Option<&'static Line> {
    let id = os.id.to_ascii_lowercase();
    let like = |x: &str| os.id_like.iter().any(|l| l.eq_ignore_ascii_case(x));
    if id == "fedora" {
        Some(&FEDORA)
    } else if ["rhel", "centos", "rocky", "almalinux", "ol"].contains(&id.as_str())
        || like("rhel")
        || like("centos")
    {
        Some(&EL)
    } else if id.starts_with("opensuse") || id.starts_with("sle") || like("suse") {
        Some(&SUSE)
    } else if id == "openeuler" {
        Some(&OPENEULER)
    } else {
        None
    }
}

/// `9.4` → `9`.
fn major(version: &str) -> &str {
    version.split('.').next().unwrap_or(version)
}

/// The values the new OS's package manager gives a `.repo` file's variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vars {
    known: Vec<(&'static str, String)>,
}

impl Vars {
    /// From the new OS's os-release and the machine's architecture (`x86_64`, `aarch64`).
    pub fn new(os: &OsRelease, arch: &str) -> Vars {
        let mut known = vec![("basearch", arch.to_string()), ("arch", arch.to_string())];
        if let Some(v) = os.version_id.as_deref().filter(|v| plain_value(v)) {
            let major_only = line_of(os).is_some_and(|l| l.major_releasever);
            known.push((
                "releasever",
                if major_only { major(v) } else { v }.to_string(),
            ));
            known.push(("releasever_major", major(v).to_string()));
            known.push((
                "releasever_minor",
                v.split_once('.').map(|x| x.1).unwrap_or("").to_string(),
            ));
        }
        Vars { known }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.known
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A variable's value as it may stand in a URL: printable ASCII, no blank, no `$`.
pub fn plain_value(v: &str) -> bool {
    !v.is_empty() && v.chars().all(|c| c.is_ascii_graphic() && c != '$')
}

/// Replaces `$name`, `${name}` and, as dnf and zypper read them, `${name:-word}` (`word`
/// when `name` is unset or empty) and `${name:+word}` (`word` when `name` is set, else
/// nothing) by their values — `word` substituted in turn; `name` as long as it has letters,
/// digits and `_`. The name of the first variable `value` does not know (and that has no
/// `:-` default) is the error. A `$` not followed by a name stays.
pub fn substitute(text: &str, value: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, alt, used) = if let Some(inner) = after.strip_prefix('{') {
            let Some(end) = closing_brace(inner) else {
                return Err(inner.to_string());
            };
            let body = &inner[..end];
            let name_end = body.find(|c: char| !word(c)).unwrap_or(body.len());
            let alt = match &body[name_end..] {
                "" => None,
                x => match (x.get(..2), x.get(2..)) {
                    (Some(op @ (":-" | ":+")), Some(w)) => Some((op, w)),
                    _ => return Err(body.to_string()),
                },
            };
            (&body[..name_end], alt, end + 2)
        } else {
            let end = after.find(|c: char| !word(c)).unwrap_or(after.len());
            (&after[..end], None, end)
        };
        if name.is_empty() {
            if alt.is_some() || used > 0 {
                return Err(after[..used].to_string());
            }
            out.push('$');
            rest = after;
            continue;
        }
        let v = value(name).filter(|v| !v.is_empty());
        out.push_str(&match (alt, v) {
            (None, Some(v)) => v,
            (None, None) => return Err(name.to_string()),
            (Some((":-", _)), Some(v)) => v,
            (Some((":+", _)), None) => String::new(),
            (Some((_, w)), _) => substitute(w, value)?,
        });
        rest = &after[used..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Where the `}` that closes a `${` stands in the text after the `{` (nested `${…}`
/// counted).
fn closing_brace(inner: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// The pairs (old → new) of release numbers a URL may name: the whole version and its
/// major (`8.9` → `9.4`, `8` → `9`), only within one distribution line.
fn release_pairs(
    old: &OsRelease,
    new: &OsRelease,
) -> Option<(&'static Line, Vec<(String, String)>)> {
    let line = line_of(old)?;
    if line_of(new)?.name != line.name {
        return None;
    }
    let (o, n) = (old.version_id.as_deref()?, new.version_id.as_deref()?);
    if !plain_value(o) || !plain_value(n) {
        return None;
    }
    let mut pairs = vec![(o.to_string(), n.to_string())];
    if major(o) != o {
        pairs.push((major(o).to_string(), major(n).to_string()));
    }
    pairs.retain(|(a, b)| a != b);
    (!pairs.is_empty()).then_some((line, pairs))
}

/// True when `word` (what stands before a release number) names the line: `el`, `rhel-`,
/// `openSUSE_Leap_` (its last word).
fn is_tag(word: &str, tags: &[&str]) -> bool {
    let w = word.trim_end_matches(['-', '_']).to_ascii_lowercase();
    let last = w.rsplit(['-', '_']).next().unwrap_or("");
    !w.is_empty() && (tags.contains(&w.as_str()) || tags.contains(&last))
}

/// One path segment with the old release renamed: `el7`, `rhel-7-x86_64`, `fedora-38`, or
/// a bare `7` after a segment that names the line (`el/7`, `centos/7`). Anything else —
/// other numbers, other words before them — stays.
fn rename_segment(
    seg: &str,
    prev: Option<&str>,
    tags: &[&str],
    pairs: &[(String, String)],
) -> Option<String> {
    let at = seg.find(|c: char| c.is_ascii_digit())?;
    let (prefix, rest) = seg.split_at(at);
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (version, tail) = rest.split_at(end);
    if !(tail.is_empty() || tail.starts_with(['-', '_'])) {
        return None;
    }
    let named = if prefix.is_empty() {
        prev.is_some_and(|p| is_tag(p, tags))
    } else {
        prefix
            .chars()
            .all(|c| c.is_ascii_alphabetic() || c == '-' || c == '_')
            && is_tag(prefix, tags)
    };
    if !named {
        return None;
    }
    let (_, new) = pairs.iter().find(|(old, _)| old == version)?;
    Some(format!("{prefix}{new}{tail}"))
}

/// A URL whose path names the old OS's release as a segment of its own, renamed to the
/// new one's (`…/el/8/…` → `…/el/9/…`, `…/fedora-38/…` → `…/fedora-40/…`); the host, the
/// query and other numbers stay. Only between releases of one line (Rocky 8 → Rocky 9 or
/// Alma 9; not Rocky → Fedora).
pub fn rename_release(url: &str, old: &OsRelease, new: &OsRelease) -> String {
    let Some((line, pairs)) = release_pairs(old, new) else {
        return url.to_string();
    };
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let Some(path_start) = url[scheme_end..].find('/').map(|i| i + scheme_end) else {
        return url.to_string();
    };
    let path_end = url[path_start..]
        .find(['?', '#'])
        .map(|i| i + path_start)
        .unwrap_or(url.len());
    let segments: Vec<&str> = url[path_start + 1..path_end].split('/').collect();
    let renamed: Vec<String> = segments
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let prev = i.checked_sub(1).map(|p| segments[p]);
            rename_segment(s, prev, line.tags, &pairs).unwrap_or_else(|| s.to_string())
        })
        .collect();
    format!(
        "{}/{}{}",
        &url[..path_start],
        renamed.join("/"),
        &url[path_end..]
    )
}

/// A line of a `.repo` file: a `[section]`, a `key=value` with the lines that continue
/// its value (indented), or anything else (comments, blanks).
#[derive(Debug)]
enum Item<'t> {
    Header {
        id: &'t str,
        raw: &'t str,
    },
    Key {
        key: String,
        value: String,
        raw: Vec<&'t str>,
    },
    Other(&'t str),
}

fn items(text: &str) -> Vec<Item<'_>> {
    let mut out: Vec<Item> = Vec::new();
    for raw in text.lines() {
        let t = raw.trim();
        let indented = raw.starts_with([' ', '\t']);
        if indented
            && !t.is_empty()
            && !t.starts_with(['#', ';'])
            && let Some(Item::Key {
                value, raw: lines, ..
            }) = out.last_mut()
        {
            value.push(' ');
            value.push_str(t);
            lines.push(raw);
            continue;
        }
        if t.starts_with('[')
            && let Some(id) = t[1..].strip_suffix(']')
        {
            out.push(Item::Header { id: id.trim(), raw });
        } else if !t.starts_with(['#', ';'])
            && let Some((k, v)) = t.split_once('=')
        {
            out.push(Item::Key {
                key: k.trim().to_ascii_lowercase(),
                value: v.trim().to_string(),
                raw: vec![raw],
            });
        } else {
            out.push(Item::Other(raw));
        }
    }
    out
}

/// A list option's items joined by one blank.
fn words(value: &str) -> String {
    list(value).collect::<Vec<_>>().join(" ")
}

/// One section of a `.repo` file as read.
#[derive(Debug, Default)]
struct Section {
    id: String,
    keys: Vec<(String, String)>,
}

impl Section {
    fn words(&self, key: &str) -> Vec<&str> {
        self.keys
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| list(v))
            .collect()
    }

    /// The last value given `key` (dnf reads the last of a key given twice).
    fn last(&self, key: &str) -> Option<&str> {
        self.keys
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
    }

    fn first(&self, key: &str) -> Option<&str> {
        self.keys
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn sections(items: &[Item]) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for i in items {
        match i {
            Item::Header { id, .. } => out.push(Section {
                id: id.to_string(),
                ..Default::default()
            }),
            Item::Key { key, value, .. } => {
                if let Some(s) = out.last_mut() {
                    s.keys.push((key.clone(), value.clone()));
                }
            }
            Item::Other(_) => {}
        }
    }
    out
}

/// A section's URL keys with their URLs as written on the new OS.
type Urls = Vec<(String, Vec<String>)>;

/// What the step needs to bring a `.repo` file over.
pub struct Release<'a> {
    pub old: &'a OsRelease,
    pub new: &'a OsRelease,
    pub vars: &'a Vars,
    /// A variable the new OS defines itself (`/etc/dnf/vars/<name>`).
    pub own_var: &'a dyn Fn(&str) -> Option<String>,
    /// Whether the repository index at this URL exists: `Err` says why not.
    pub index: &'a dyn Fn(&str) -> Result<(), String>,
    /// Whether a `gpgkey=file://` path may be written: `Err` says why not.
    pub key_path: &'a dyn Fn(&str) -> Result<(), String>,
    /// Whether a key file is on the new OS or in the snapshot.
    pub key_there: &'a dyn Fn(&str) -> bool,
}

/// A `.repo` file brought to the new release.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Carried {
    /// The file to write: the sections that are there for the new release (`None` when
    /// none is).
    pub text: Option<String>,
    /// The sections kept.
    pub kept: Vec<String>,
    /// Each section not carried: (its id, why).
    pub refused: Vec<(String, String)>,
    /// The `gpgkey=file://` paths the kept sections name.
    pub keys: Vec<String>,
    /// The sections kept without their repository checked: (its id, why).
    pub unchecked: Vec<(String, String)>,
}

/// Where a section's repository answers: the index under each `baseurl` (`repodata/
/// repomd.xml`, zypper's `content` for yast2 repositories, the folder for `plaindir`),
/// and the `mirrorlist`/`metalink` documents themselves.
fn index_urls(s: &Section, urls: &Urls) -> Vec<String> {
    let kind = s.first("type").unwrap_or("rpm-md").to_ascii_lowercase();
    let index = match kind.as_str() {
        "yast2" | "susetags" => "content",
        "plaindir" => "",
        _ => "repodata/repomd.xml",
    };
    let sub = s
        .first("path")
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty());
    let mut out = Vec::new();
    for (key, list) in urls.iter().filter(|(k, _)| URL_KEYS.contains(&k.as_str())) {
        for u in list {
            if key == "baseurl" {
                let mut base = u.trim_end_matches('/').to_string();
                if let Some(p) = sub {
                    base = format!("{base}/{p}");
                }
                out.push(format!("{base}/{index}"));
            } else {
                out.push(u.clone());
            }
        }
    }
    out
}

/// One section as it will be written.
struct Decision {
    /// Its URL keys and `gpgkey` with their values on the new OS.
    urls: Urls,
    /// The `gpgkey=file://` paths it names.
    keys: Vec<String>,
    /// Why it was written without its repository being checked, when it was.
    unchecked: Option<String>,
}

/// Why a section would turn a check off or outrank the distribution, if it would.
fn weakens_checks(s: &Section) -> Option<String> {
    for key in CHECK_KEYS {
        if let Some(v) = s.last(key)
            && boolean(v) != Some(true)
        {
            return Some(format!(
                "{key}={} would turn a signature or certificate check off",
                v.escape_debug()
            ));
        }
    }
    if let Some(v) = s.last("priority") {
        match v.parse::<i64>() {
            Ok(p) if p >= DEFAULT_PRIORITY => {}
            _ => {
                return Some(format!(
                    "priority={} would outrank the distribution's own repositories (priority {DEFAULT_PRIORITY})",
                    v.escape_debug()
                ));
            }
        }
    }
    None
}

/// Decides one section: its URL keys as written on the new OS and its key files, or why
/// it is not carried. A section switched off (`enabled=0`) is written without being
/// checked: nothing reads it until someone turns it on.
fn decide(s: &Section, r: &Release) -> Result<Decision, String> {
    if let Some(why) = weakens_checks(s) {
        return Err(why);
    }
    let enabled = match s.last("enabled") {
        None => true,
        Some(v) => boolean(v)
            .ok_or_else(|| format!("enabled={} is not a yes/no value", v.escape_debug()))?,
    };
    let value = |name: &str| {
        (r.own_var)(name)
            .filter(|v| plain_value(v))
            .or_else(|| r.vars.get(name).map(str::to_string))
    };
    let mut urls = Vec::new();
    for key in URL_KEYS.iter().chain(&["gpgkey"]) {
        let items = s.words(key);
        if items.is_empty() {
            continue;
        }
        let mut new = Vec::new();
        for u in items {
            let with = match substitute(u, &value) {
                Ok(with) => rename_release(&with, r.old, r.new),
                // off: dnf gives the variable its value if it is ever turned on
                Err(_) if !enabled => rename_release(u, r.old, r.new),
                Err(name) => {
                    return Err(format!(
                        "its {} {} uses ${}, which the new OS does not define",
                        if *key == "gpgkey" { "gpgkey" } else { "URL" },
                        u.escape_debug(),
                        name.escape_debug()
                    ));
                }
            };
            if !with.chars().all(|c| c.is_ascii_graphic()) {
                return Err(format!(
                    "its URL {} is outside the .repo grammar",
                    u.escape_debug()
                ));
            }
            new.push(with);
        }
        urls.push((key.to_string(), new));
    }
    if !urls.iter().any(|(k, _)| k != "gpgkey") {
        return Err("it names no baseurl, mirrorlist or metalink".into());
    }
    let mut keys = Vec::new();
    let written = s.words("gpgkey");
    let gpgkeys = urls.iter().find(|(k, _)| k == "gpgkey").map(|x| &x.1[..]);
    for (was, k) in written.iter().zip(gpgkeys.unwrap_or_default()) {
        if let Some(path) = k.strip_prefix("file://") {
            (r.key_path)(path)?;
            // a key renamed for the new release (RPM-GPG-KEY-EPEL-8 → -9) must be there:
            // the old one would make dnf refuse the new release's packages
            if k != was && !(r.key_there)(path) {
                return Err(format!(
                    "its key for the new release, {}, is neither on the new OS nor in the snapshot",
                    path.escape_debug()
                ));
            }
            keys.push(path.to_string());
        } else if !["http://", "https://", "ftp://"]
            .iter()
            .any(|p| k.starts_with(p))
        {
            return Err(format!(
                "its gpgkey {} is not a file, http(s) or ftp URL",
                k.escape_debug()
            ));
        }
    }
    if !enabled {
        return Ok(Decision {
            urls,
            keys,
            unchecked: None,
        });
    }
    let unchecked = UNCHECKABLE_KEYS
        .iter()
        .find(|&&k| s.last(k).is_some_and(|v| !v.is_empty() && v != "_none_"))
        .map(|k| format!("its repository is reached through {k}=, which the agent's check does not use: written unchecked"));
    if unchecked.is_none() {
        let missing: Vec<String> = index_urls(s, &urls)
            .iter()
            .filter_map(|u| (r.index)(u).err())
            .collect();
        if !missing.is_empty() {
            return Err(missing.join("; "));
        }
    }
    Ok(Decision {
        urls,
        keys,
        unchecked,
    })
}

/// Brings one `.repo` file to the new release: each section's URLs substituted and
/// renamed, then checked; the sections that answer are written (their other lines as
/// they were), the others named.
pub fn carry(text: &str, r: &Release) -> Carried {
    let items = items(text);
    let mut out = Carried::default();
    // per section, in file order: its URLs on the new OS, or `None` (left out)
    let mut decided: Vec<Option<Urls>> = Vec::new();
    for s in sections(&items) {
        match decide(&s, r) {
            Ok(d) => {
                if let Some(why) = d.unchecked {
                    out.unchecked.push((s.id.clone(), why));
                }
                out.kept.push(s.id);
                out.keys.extend(d.keys);
                decided.push(Some(d.urls));
            }
            Err(why) => {
                out.refused.push((s.id, why));
                decided.push(None);
            }
        }
    }
    if out.kept.is_empty() {
        return out;
    }
    let mut text_out = String::new();
    let mut at: Option<usize> = None;
    // the URL keys of this section written already: a key given twice is written once
    let mut done: Vec<&str> = Vec::new();
    for item in &items {
        if let Item::Header { .. } = item {
            at = Some(at.map_or(0, |i| i + 1));
            done.clear();
        }
        let urls = match at {
            Some(i) => match &decided[i] {
                Some(urls) => Some(urls),
                None => continue,
            },
            None => None,
        };
        match item {
            Item::Header { raw, .. } | Item::Other(raw) => {
                text_out.push_str(raw);
                text_out.push('\n');
            }
            Item::Key { key, value, raw } => {
                match urls.and_then(|u| u.iter().find(|(k, _)| k == key)) {
                    Some(_) if done.contains(&key.as_str()) => {}
                    // a changed URL key on one line; everything else as it was written
                    Some((_, list)) if list.join(" ") != words(value) => {
                        text_out.push_str(&format!("{key}={}\n", list.join(" ")));
                        done.push(key);
                    }
                    _ => {
                        for l in raw {
                            text_out.push_str(l);
                            text_out.push('\n');
                        }
                    }
                }
            }
        }
    }
    out.text = Some(text_out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(id: &str, like: &str, version: &str) -> OsRelease {
        OsRelease {
            id: id.into(),
            id_like: like.split_whitespace().map(str::to_string).collect(),
            version_id: Some(version.into()),
            ..Default::default()
        }
    }

    fn rocky(v: &str) -> OsRelease {
        os("rocky", "rhel centos fedora", v)
    }

    #[test]
    fn variables_take_the_new_os_s_values() {
        let v = Vars::new(&rocky("9.4"), "x86_64");
        let get = |n: &str| v.get(n).map(str::to_string);
        assert_eq!(
            substitute("http://r/el/$releasever/$basearch/", &get).unwrap(),
            "http://r/el/9/x86_64/"
        );
        assert_eq!(
            substitute("http://r/${releasever}-${arch}/", &get).unwrap(),
            "http://r/9-x86_64/"
        );
        // ${name:-default} and ${name:+word}, as dnf and zypper read them; no other form
        assert_eq!(
            substitute("${nope:+x}${nope:-${releasever}}${arch:+-$arch}", &get).unwrap(),
            "9-x86_64"
        );
        assert_eq!(
            substitute("${releasever:=x}", &get),
            Err("releasever:=x".into())
        );
        // the longest name: $releasever_major is not $releasever followed by "_major"
        let leap = Vars::new(&os("opensuse-leap", "suse opensuse", "15.6"), "aarch64");
        let get = |n: &str| leap.get(n).map(str::to_string);
        assert_eq!(
            substitute(
                "https://r/openSUSE_Leap_$releasever/$releasever_major.$releasever_minor/",
                &get
            )
            .unwrap(),
            "https://r/openSUSE_Leap_15.6/15.6/"
        );
        assert_eq!(
            Vars::new(&os("fedora", "", "40"), "x86_64").get("releasever"),
            Some("40")
        );
        // a variable nobody defines is named; a lone $ stays
        assert_eq!(
            substitute("http://r/$contentdir/", &get),
            Err("contentdir".into())
        );
        assert_eq!(substitute("http://r/a$/b", &get).unwrap(), "http://r/a$/b");
        assert_eq!(substitute("http://r/${x", &get), Err("x".into()));
        // no VERSION_ID: $releasever unknown
        let none = Vars::new(&OsRelease::default(), "x86_64");
        assert_eq!(none.get("releasever"), None);
    }

    #[test]
    fn the_old_release_in_a_path_is_renamed_conservatively() {
        let (old, new) = (rocky("8.9"), rocky("9.4"));
        let r = |u: &str| rename_release(u, &old, &new);
        for (from, to) in [
            ("http://h/el/8/x86_64/", "http://h/el/9/x86_64/"),
            (
                "https://nginx.org/packages/centos/8/$basearch/",
                "https://nginx.org/packages/centos/9/$basearch/",
            ),
            (
                "https://download.postgresql.org/pub/repos/yum/15/redhat/rhel-8-x86_64",
                "https://download.postgresql.org/pub/repos/yum/15/redhat/rhel-9-x86_64",
            ),
            ("http://h/repo/rhel8/", "http://h/repo/rhel9/"),
            ("http://h/EL8/", "http://h/EL9/"),
            ("http://h/rocky/8.9/extras/", "http://h/rocky/9.4/extras/"),
            // Node's "pub_16.x", the mysql version, puppet8, php/8, a host: untouched
            (
                "https://rpm.nodesource.com/pub_18.x/el/8/x86_64",
                "https://rpm.nodesource.com/pub_18.x/el/9/x86_64",
            ),
            (
                "http://repo.mysql.com/yum/mysql-8.0-community/el/8/",
                "http://repo.mysql.com/yum/mysql-8.0-community/el/9/",
            ),
            (
                "https://yum.puppet.com/puppet8/",
                "https://yum.puppet.com/puppet8/",
            ),
            ("http://h/php/8/", "http://h/php/8/"),
            ("http://mirror8.example/8/", "http://mirror8.example/8/"),
            ("http://h/el8server/", "http://h/el8server/"),
            ("http://h/el/8.1/", "http://h/el/8.1/"),
            // the query is not the path
            (
                "https://h/metalink?repo=el-8&arch=x86_64",
                "https://h/metalink?repo=el-8&arch=x86_64",
            ),
        ] {
            assert_eq!(r(from), to, "{from}");
        }
        // Fedora and openSUSE name their releases their own way; another line, or the
        // same release: nothing is renamed; Alma after Rocky: one line
        let fedora = |v: &str| os("fedora", "", v);
        let leap = |v: &str| os("opensuse-leap", "suse opensuse", v);
        let alma = os("almalinux", "rhel centos fedora", "9.4");
        let obs = "https://download.opensuse.org/repositories/home:/u/openSUSE_Leap_";
        for (from, old, new, to) in [
            (
                "https://copr.example/results/u/p/fedora-38-x86_64/",
                fedora("38"),
                fedora("40"),
                "https://copr.example/results/u/p/fedora-40-x86_64/".to_string(),
            ),
            (
                &format!("{obs}15.5/"),
                leap("15.5"),
                leap("15.6"),
                format!("{obs}15.6/"),
            ),
            (
                "http://h/el/8/",
                rocky("8.9"),
                fedora("40"),
                "http://h/el/8/".into(),
            ),
            (
                "http://h/el/9/",
                rocky("9.3"),
                rocky("9.4"),
                "http://h/el/9/".into(),
            ),
            (
                "http://h/el/8/",
                rocky("8.9"),
                alma,
                "http://h/el/9/".into(),
            ),
        ] {
            assert_eq!(rename_release(from, &old, &new), to, "{from}");
        }
    }

    const FILE: &str = "# the app's repositories\n[app]\nname=App $releasever\nbaseurl = http://h/app/el/$releasever/$basearch/\n        http://mirror/app/el/8/$basearch/\ngpgcheck=1\ngpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-app\n\n[app-source]\nname=App sources\nbaseurl=http://h/app-source/$releasever/\n\n[plain]\nbaseurl=http://h/plain/\n";

    fn carry_with(text: &str, there: &[&str], key_ok: bool) -> Carried {
        carry_with_own(text, there, key_ok, &|_| None)
    }

    /// Rocky 8.9 → 9.4 on x86_64: `there` the index URLs that answer, `key_ok` whether key
    /// paths may be written, `own` the new OS's `/etc/dnf/vars`.
    fn carry_with_own(
        text: &str,
        there: &[&str],
        key_ok: bool,
        own: &dyn Fn(&str) -> Option<String>,
    ) -> Carried {
        let (old, new) = (rocky("8.9"), rocky("9.4"));
        let vars = Vars::new(&new, "x86_64");
        let index = |u: &str| {
            if there.contains(&u) {
                Ok(())
            } else {
                Err(format!("{u} does not exist"))
            }
        };
        let key = |k: &str| {
            if key_ok {
                Ok(())
            } else {
                Err(format!(
                    "its key '{k}' is not a file below /etc/pki/rpm-gpg/"
                ))
            }
        };
        carry(
            text,
            &Release {
                old: &old,
                new: &new,
                vars: &vars,
                own_var: own,
                index: &index,
                key_path: &key,
                key_there: &|k: &str| k.ends_with("-9"),
            },
        )
    }

    #[test]
    fn sections_are_kept_when_their_index_answers() {
        let c = carry_with(
            FILE,
            &[
                "http://h/app/el/9/x86_64/repodata/repomd.xml",
                "http://mirror/app/el/9/x86_64/repodata/repomd.xml",
                "http://h/plain/repodata/repomd.xml",
            ],
            true,
        );
        assert_eq!(c.kept, vec!["app", "plain"]);
        assert_eq!(c.keys, vec!["/etc/pki/rpm-gpg/RPM-GPG-KEY-app"]);
        assert_eq!(
            c.refused,
            vec![(
                "app-source".to_string(),
                "http://h/app-source/9/repodata/repomd.xml does not exist".to_string()
            )]
        );
        // the changed URL key on one line, the section not there left out, the rest as
        // written (the untouched baseurl keeps its blanks)
        assert_eq!(
            c.text.as_deref(),
            Some(
                "# the app's repositories\n[app]\nname=App $releasever\nbaseurl=http://h/app/el/9/x86_64/ http://mirror/app/el/9/x86_64/\ngpgcheck=1\ngpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-app\n\n[plain]\nbaseurl=http://h/plain/\n"
            )
        );
        // one of two mirrors missing: the section is not carried
        let c = carry_with(
            FILE,
            &["http://h/app/el/9/x86_64/repodata/repomd.xml"],
            true,
        );
        assert_eq!(c.kept, Vec::<String>::new());
        assert_eq!(c.text, None);
        assert!(
            c.refused[0]
                .1
                .contains("http://mirror/app/el/9/x86_64/repodata/repomd.xml")
        );
    }

    #[test]
    fn what_cannot_be_checked_or_trusted_is_refused() {
        let all = [
            "http://h/app/el/9/x86_64/repodata/repomd.xml",
            "http://mirror/app/el/9/x86_64/repodata/repomd.xml",
        ];
        // a key file outside the key folders
        let c = carry_with(FILE, &all, false);
        assert!(!c.kept.contains(&"app".to_string()), "{c:?}");
        assert!(c.refused[0].1.contains("RPM-GPG-KEY-app"), "{c:?}");
        let odd = |body: &str| carry_with(&format!("[x]\n{body}\n"), &all, true).refused;
        assert!(
            odd("baseurl=http://h/$contentdir/")[0]
                .1
                .contains("$contentdir")
        );
        assert!(odd("name=no url")[0].1.contains("no baseurl"));
        assert!(odd("baseurl=http://h/é/")[0].1.contains("grammar"));
        assert!(
            odd("baseurl=http://h/x/\ngpgkey=javascript:x")[0]
                .1
                .contains("gpgkey")
        );
        // zypper: a yast2 repository's index is `content`, below `path`
        let c = carry_with(
            "[y]\ntype=yast2\nbaseurl=http://h/dist/\npath=/sub\n",
            &["http://h/dist/sub/content"],
            true,
        );
        assert_eq!(c.kept, vec!["y"]);
        // a key given twice: its URLs written once
        let c = carry_with(
            "[d]\nbaseurl=http://h/d/$releasever/\nbaseurl=http://h/e/\n",
            &[
                "http://h/d/9/repodata/repomd.xml",
                "http://h/e/repodata/repomd.xml",
            ],
            true,
        );
        assert_eq!(
            c.text.as_deref(),
            Some("[d]\nbaseurl=http://h/d/9/ http://h/e/\n")
        );
        // a mirrorlist is fetched itself
        let c = carry_with(
            "[m]\nmirrorlist=http://h/list?release=$releasever\n",
            &["http://h/list?release=9"],
            true,
        );
        assert_eq!(
            c.text.as_deref(),
            Some("[m]\nmirrorlist=http://h/list?release=9\n")
        );
    }

    /// M3: dnf splits list options on commas as well as blanks — each URL is checked and
    /// written, none slips through unchecked inside another's text.
    #[test]
    fn comma_separated_urls_are_each_checked() {
        let text = "[c]\nbaseurl=http://a/$releasever/,http://b/$releasever/\ngpgkey=file:///etc/pki/rpm-gpg/K-a,file:///etc/pki/rpm-gpg/K-b\n";
        let both = [
            "http://a/9/repodata/repomd.xml",
            "http://b/9/repodata/repomd.xml",
        ];
        let c = carry_with(text, &both, true);
        assert_eq!(c.kept, vec!["c"], "{c:?}");
        assert_eq!(
            c.text.as_deref(),
            // the changed list on one line; the unchanged one as it was written
            Some(
                "[c]\nbaseurl=http://a/9/ http://b/9/\ngpgkey=file:///etc/pki/rpm-gpg/K-a,file:///etc/pki/rpm-gpg/K-b\n"
            )
        );
        assert_eq!(c.keys, vec!["/etc/pki/rpm-gpg/K-a", "/etc/pki/rpm-gpg/K-b"]);
        // the second host does not answer: the section is not written
        let c = carry_with(text, &both[..1], true);
        assert_eq!(c.text, None, "{c:?}");
        assert!(
            c.refused[0].1.contains("http://b/9/repodata/repomd.xml"),
            "{c:?}"
        );
        // an unchecked URL hidden after a comma of an unchanged value
        let c = carry_with(
            "[u]\nbaseurl=http://a/9/,http://unchecked/\n",
            &both[..1],
            true,
        );
        assert_eq!(c.text, None, "{c:?}");
    }

    /// M4: what is off, needs credentials or a proxy, or uses `${var:-default}` is not
    /// a reason to end the restore `degraded`.
    #[test]
    fn disabled_proxied_and_defaulted_sections_are_written() {
        // off: written without a check (renamed), even with a variable the new OS lacks
        let c = carry_with(
            "[debuginfo]\nbaseurl=http://h/el/8/debug/$contentdir/\nenabled=0\n",
            &[],
            true,
        );
        assert_eq!(c.kept, vec!["debuginfo"], "{c:?}");
        assert_eq!(
            c.text.as_deref(),
            Some("[debuginfo]\nbaseurl=http://h/el/9/debug/$contentdir/\nenabled=0\n")
        );
        assert!(c.unchecked.is_empty());
        // behind a proxy or a client certificate: written unchecked, said so
        for key in [
            "proxy=http://proxy.example:3128",
            "sslclientcert=/etc/pki/entitlement/1.pem",
        ] {
            let c = carry_with(&format!("[p]\nbaseurl=http://h/p/\n{key}\n"), &[], true);
            assert_eq!(c.kept, vec!["p"], "{c:?}");
            assert!(c.unchecked[0].1.contains("written unchecked"), "{c:?}");
        }
        // proxy=_none_ is no proxy: checked
        let c = carry_with("[p]\nbaseurl=http://h/p/\nproxy=_none_\n", &[], true);
        assert_eq!(c.kept, Vec::<String>::new(), "{c:?}");
        // ${var:-default} and ${var:+word}, as dnf reads them
        let c = carry_with(
            "[d]\nbaseurl=http://h/${contentdir:-pub}/${releasever}${arch:+-$arch}/\n",
            &["http://h/pub/9-x86_64/repodata/repomd.xml"],
            true,
        );
        assert_eq!(c.kept, vec!["d"], "{c:?}");
        assert_eq!(
            c.text.as_deref(),
            Some("[d]\nbaseurl=http://h/pub/9-x86_64/\n")
        );
    }

    /// M5: a section that would switch a signature or certificate check off, or outrank
    /// the distribution, is refused and named.
    #[test]
    fn sections_that_weaken_checks_are_refused() {
        let there = ["http://h/x/repodata/repomd.xml"];
        for (line, named) in [
            ("gpgcheck=0", "gpgcheck=0"),
            ("gpgcheck = no", "gpgcheck=no"),
            ("repo_gpgcheck=False", "repo_gpgcheck=False"),
            ("sslverify=off", "sslverify=off"),
            ("pkg_gpgcheck=0", "pkg_gpgcheck=0"),
            ("gpgcheck=maybe", "gpgcheck=maybe"),
            ("priority=1", "priority=1"),
            ("priority=98", "priority=98"),
            ("priority=high", "priority=high"),
        ] {
            for enabled in ["", "enabled=0\n"] {
                let c = carry_with(
                    &format!("[x]\nbaseurl=http://h/x/\n{enabled}{line}\n"),
                    &there,
                    true,
                );
                assert_eq!(c.text, None, "{line}: {c:?}");
                assert!(c.refused[0].1.contains(named), "{line}: {c:?}");
            }
        }
        // the last of a key given twice is the one dnf reads
        let c = carry_with(
            "[x]\nbaseurl=http://h/x/\ngpgcheck=1\ngpgcheck=0\n",
            &there,
            true,
        );
        assert_eq!(c.text, None, "{c:?}");
        for fine in [
            "gpgcheck=1\nrepo_gpgcheck=1\nsslverify=yes",
            "priority=99",
            "priority=120",
        ] {
            let c = carry_with(&format!("[x]\nbaseurl=http://h/x/\n{fine}\n"), &there, true);
            assert_eq!(c.kept, vec!["x"], "{fine}: {c:?}");
        }
    }

    /// L10: a key named for the old release follows the release like the URLs, and is
    /// there; the new OS's own releasever wins over os-release's.
    #[test]
    fn keys_follow_the_release_and_the_new_os_s_releasever_wins() {
        let there = ["http://h/epel/9/x86_64/repodata/repomd.xml"];
        let text = "[epel]\nbaseurl=http://h/epel/$releasever/$basearch/\ngpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-EPEL-8 https://h/RPM-GPG-KEY-EPEL-8\n";
        let c = carry_with(text, &there, true);
        assert_eq!(c.kept, vec!["epel"], "{c:?}");
        assert_eq!(c.keys, vec!["/etc/pki/rpm-gpg/RPM-GPG-KEY-EPEL-9"]);
        assert_eq!(
            c.text.as_deref(),
            Some(
                "[epel]\nbaseurl=http://h/epel/9/x86_64/\ngpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-EPEL-9 https://h/RPM-GPG-KEY-EPEL-9\n"
            )
        );
        // the renamed key is nowhere: refused rather than written with the old one
        let c = carry_with(
            "[app]\nbaseurl=http://h/epel/9/x86_64/\ngpgkey=file:///etc/pki/rpm-gpg/KEY-el-8-app\n",
            &there,
            true,
        );
        assert!(c.refused[0].1.contains("KEY-el-9-app"), "{c:?}");
        // /etc/dnf/vars/releasever (a minor lock) wins over os-release's major
        let c = carry_with_own(
            "[r]\nbaseurl=http://h/rhel/$releasever/\n",
            &["http://h/rhel/9.2/repodata/repomd.xml"],
            true,
            &|n| (n == "releasever").then(|| "9.2".to_string()),
        );
        assert_eq!(c.kept, vec!["r"], "{c:?}");
    }
}
