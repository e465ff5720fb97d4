//! The `.repo` half of the repositories step: a yum/dnf or zypper repository file brought
//! to the new release — its `$releasever`, `$basearch`, `$arch` given the new OS's values,
//! an old release number in a URL's path renamed (`/el/8/` → `/el/9/`) — and each of its
//! sections kept only when the repository answers for the new release. The parts here are
//! pure: the step gives them the two releases and a way to ask whether an index exists.

use crate::state::identity::OsRelease;

/// The keys of a section that name where its repository is.
const URL_KEYS: &[&str] = &["baseurl", "mirrorlist", "metalink"];

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

/// Replaces `$name` and `${name}` by their values (`name` as long as it has letters,
/// digits and `_`, as dnf and zypper read it); the name of the first variable `value`
/// does not know is the error. A `$` not followed by a name stays.
pub fn substitute(text: &str, value: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, used) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => return Err(inner.to_string()),
            }
        } else {
            let end = after.find(|c: char| !word(c)).unwrap_or(after.len());
            (&after[..end], end)
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
            continue;
        }
        if !name.chars().all(word) {
            return Err(name.to_string());
        }
        out.push_str(&value(name).ok_or_else(|| name.to_string())?);
        rest = &after[used..];
    }
    out.push_str(rest);
    Ok(out)
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

/// A value's words joined by one blank.
fn words(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
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
            .flat_map(|(_, v)| v.split_whitespace())
            .collect()
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
    for (key, list) in urls {
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

/// Decides one section: its URL keys as written on the new OS and its key files, or why
/// it is not carried.
fn decide(s: &Section, r: &Release) -> Result<(Urls, Vec<String>), String> {
    let value = |name: &str| {
        r.vars
            .get(name)
            .map(str::to_string)
            .or_else(|| (r.own_var)(name).filter(|v| plain_value(v)))
    };
    let mut urls = Vec::new();
    for key in URL_KEYS {
        let list = s.words(key);
        if list.is_empty() {
            continue;
        }
        let mut new = Vec::new();
        for u in list {
            let with = substitute(u, &value).map_err(|name| {
                format!(
                    "its URL {} uses ${}, which the new OS does not define",
                    u.escape_debug(),
                    name.escape_debug()
                )
            })?;
            let with = rename_release(&with, r.old, r.new);
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
    if urls.is_empty() {
        return Err("it names no baseurl, mirrorlist or metalink".into());
    }
    let mut keys = Vec::new();
    for k in s.words("gpgkey") {
        if let Some(path) = k.strip_prefix("file://") {
            (r.key_path)(path)?;
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
    let missing: Vec<String> = index_urls(s, &urls)
        .iter()
        .filter_map(|u| (r.index)(u).err())
        .collect();
    if !missing.is_empty() {
        return Err(missing.join("; "));
    }
    Ok((urls, keys))
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
            Ok((urls, keys)) => {
                out.kept.push(s.id);
                out.keys.extend(keys);
                decided.push(Some(urls));
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
        let (old, new) = (rocky("8.9"), rocky("9.4"));
        let vars = Vars::new(&new, "x86_64");
        let own = |_: &str| None;
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
                own_var: &own,
                index: &index,
                key_path: &key,
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
}
