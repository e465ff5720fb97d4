//! Restore step for sudo rights: the captured `/etc/sudoers.d` files and the old
//! `/etc/sudoers` lines for captured accounts, each line checked by its grammar (only
//! captured users and groups, never the new image's same-name account of another uid),
//! each file checked with `visudo -cf` before it is put in place (0440, root's) — a broken
//! sudoers file would break sudo for everyone.

use anyhow::Result;

use crate::error::Problem;
use crate::restore::Loaded;
use crate::restore::apply::{Apply, Outcome, Status};
use crate::restore::merge;
use crate::state::sudoers::{self, DIR, MAIN};

use super::logins::shown;
use super::validate::{self, Checked};

/// Where the old /etc/sudoers lines go: first in name order, as they came before the
/// drop-ins on the old OS.
const MAIN_LINES: &str = "00-carryover";

pub fn sudoers(a: &Apply, l: &Loaded) -> Result<Outcome> {
    let s = &l.state.sudoers;
    if s.files.is_empty() && s.lines.is_empty() {
        return Ok(Outcome::skipped(
            "no sudo rules of captured accounts were captured",
        ));
    }
    let conflicts = super::accounts::conflicts(a, &l.state.users);
    let users: Vec<_> = l
        .state
        .users
        .iter()
        .filter(|u| !conflicts.contains(&u.name) && super::accounts::valid_name(&u.name))
        .cloned()
        .collect();
    let group_conflicts = super::accounts::group_conflicts(a, &l.state.users, &l.state.groups);
    let groups: Vec<_> = l
        .state
        .groups
        .iter()
        .filter(|g| super::accounts::valid_name(&g.name) && !group_conflicts.contains(&g.name))
        .cloned()
        .collect();
    let allowed = sudoers::allowed_for(&users, &groups);
    let mut warnings = Vec::new();
    let mut attention = Vec::new();
    let mut failed = Vec::new();
    match a.read(MAIN) {
        None => warnings.push(format!(
            "sudo is not installed on the new OS ({MAIN} is missing): the rules are in place for when it is"
        )),
        Some(t) if !t.lines().any(|l| {
            matches!(sudoers::classify(l), sudoers::Line::Include { dir: true, path } if path == DIR)
        }) =>
        {
            warnings.push(format!("{MAIN} of the new OS does not read {DIR}: the rules there have no effect"));
        }
        Some(_) => {}
    }
    let mut files: Vec<(&str, String)> = s
        .files
        .iter()
        .map(|f| (f.name.as_str(), f.content.clone()))
        .collect();
    if !s.lines.is_empty() {
        files.insert(0, (MAIN_LINES, s.lines.join("\n")));
    }
    let mut written = Vec::new();
    let mut not_run = None;
    for (i, (name, content)) in files.iter().enumerate() {
        let own = i == 0 && !s.lines.is_empty();
        if !sudoers::plain_name(name) || (!own && *name == MAIN_LINES) {
            attention.push(format!(
                "refusing the sudoers file name '{}' from the snapshot",
                shown(name)
            ));
            continue;
        }
        let path = format!("{DIR}/{name}");
        let mut allowed = allowed.clone();
        let mut keep: Vec<String> = Vec::new();
        for line in sudoers::logical_lines(content) {
            match sudoers::check_line(&line, &mut allowed) {
                Ok(true) => keep.push(line.trim().to_string()),
                Ok(false) => {}
                Err(why) => {
                    let mut text = shown(line.trim());
                    text.truncate(120);
                    let names_conflict = matches!(sudoers::classify(&line),
                        sudoers::Line::Spec { users, .. } if users.iter().any(|u| conflicts.iter().any(|c| c == u)));
                    if names_conflict {
                        warnings.push(format!(
                            "{path}: {} not carried: the new OS's account of that name is another one",
                            crate::units::quoted(&text)
                        ));
                    } else {
                        attention.push(format!(
                            "{path}: {} refused: {why}",
                            crate::units::quoted(&text)
                        ));
                    }
                }
            }
        }
        if keep.is_empty() {
            continue;
        }
        let current = a.read(&path);
        let rules: Vec<&str> = keep.iter().map(String::as_str).collect();
        let text = match &current {
            Some(c) => merge::sudoers(Some(c), &rules),
            None => format!(
                "# Written by carryover: the old OS's sudo rules for its captured accounts.\n{}",
                merge::sudoers(None, &rules)
            ),
        };
        match validate::check(
            a,
            "visudo",
            true,
            |_| vec![("sudoers", text.clone())],
            &[&path],
            |p| {
                vec![
                    "-c".into(),
                    "-q".into(),
                    "-f".into(),
                    p[0].display().to_string(),
                ]
            },
        ) {
            Checked::Failed(why) => {
                failed.push(Problem::new(path.as_str(), format!("{why}; not written")));
                continue;
            }
            Checked::NotRun(why) => not_run = Some(why),
            Checked::Passed(_) => {}
        }
        a.mkdir(DIR, 0o755, Some((0, 0)))?;
        a.install(&path, text.as_bytes(), 0o440, Some((0, 0)))?;
        written.push(format!("{name} ({} rules)", keep.len()));
    }
    if let Some(why) = not_run {
        warnings.push(format!("{DIR}: {why}"));
    }
    let detail = if written.is_empty() {
        "no rule carried".to_string()
    } else {
        format!("{DIR}: {}", written.join(", "))
    };
    let mut out = a.finish(detail, warnings);
    out.attention = attention;
    if !failed.is_empty() {
        out.status = Status::Failed;
        out.failed_files = failed;
    }
    Ok(out)
}
