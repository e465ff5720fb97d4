//! Kernel parameters: the /etc/sysctl.d drop-ins and /etc/sysctl.conf settings an operator
//! tuned, carried to the new OS as drop-ins.

use serde::{Deserialize, Serialize};

use super::Gather;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysctlFile {
    pub path: String,
    pub content: String,
    /// Owned by a package of the old OS: comes back with the package, not restored.
    #[serde(default)]
    pub vendor: bool,
}

/// The setting lines of a sysctl file (comments and blanks dropped).
pub fn active_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .map(str::to_string)
        .collect()
}

/// Where the settings of the old /etc/sysctl.conf go on the new OS.
pub const SYSCTL_CONF_DROPIN: &str = "/etc/sysctl.d/90-carryover-sysctl.conf";

pub fn gather(g: &Gather) -> Vec<SysctlFile> {
    let vendor = super::packages::dpkg_owned(g, &["/etc/sysctl.d/"]);
    let mut out = Vec::new();
    for f in g.list("/etc/sysctl.d") {
        let is_file = std::fs::symlink_metadata(&f).is_ok_and(|m| m.is_file());
        if !is_file || f.extension().is_none_or(|e| e != "conf") {
            continue;
        }
        let inner = g.inner(&f).display().to_string();
        if let Some(content) = g.read(&inner) {
            out.push(SysctlFile {
                vendor: vendor.contains(&inner),
                path: inner,
                content,
            });
        }
    }
    if let Some(t) = g.read("/etc/sysctl.conf") {
        let lines = active_lines(&t);
        if !lines.is_empty() {
            out.push(SysctlFile {
                path: "/etc/sysctl.conf".into(),
                content: format!(
                    "# from /etc/sysctl.conf of the old OS\n{}\n",
                    lines.join("\n")
                ),
                vendor: false,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_lines_skip_comments() {
        assert_eq!(
            active_lines("# kernel\nvm.swappiness = 10\n\n; x\nnet.core.somaxconn=1024\n"),
            vec!["vm.swappiness = 10", "net.core.somaxconn=1024"]
        );
    }
}
