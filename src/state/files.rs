//! Copies of whole system files (configuration, repository keys) kept inside the state:
//! content, mode and owner by name, read once with a size cap so a big or odd file never
//! bloats the snapshot's state.

use std::path::Path;

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::Gather;

/// The largest file kept whole; a bigger one is named in the state's problems.
pub const MAX_FILE: u64 = 256 << 10;

/// One file as it was on the old OS.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct FileCopy {
    pub path: String,
    pub mode: u32,
    pub owner: String,
    pub group: String,
    /// The content, base64 (binary keyrings and text alike).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub content: String,
    /// A symlink's target instead of content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

impl FileCopy {
    /// The content's bytes (empty when the base64 is not valid: the state was edited).
    pub fn bytes(&self) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.content)
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.content.len() / 4 * 3
    }

    pub fn is_empty(&self) -> bool {
        self.content.is_empty() && self.link.is_none()
    }
}

/// Reads the in-root file `abs` (a symlink is kept as a link); `None` when absent, a
/// problem when it is too big, not a regular file or unreadable.
pub fn copy(g: &Gather, abs: &str, names: &crate::state::accounts::IdNames) -> Option<FileCopy> {
    let host = g.root.path(abs);
    let meta = std::fs::symlink_metadata(&host).ok()?;
    let (uid, gid) = crate::sys::owner_of(&meta);
    let mut out = FileCopy {
        path: abs.to_string(),
        mode: crate::sys::mode_of(&meta) & 0o7777,
        owner: names.user(uid).unwrap_or("root").to_string(),
        group: names.group(gid).unwrap_or("root").to_string(),
        ..Default::default()
    };
    if meta.file_type().is_symlink() {
        out.link = std::fs::read_link(&host)
            .ok()
            .map(|t| t.display().to_string());
        return out.link.is_some().then_some(out);
    }
    if !meta.is_file() {
        return None;
    }
    if meta.len() > MAX_FILE {
        g.problem(
            abs,
            format!(
                "{} bytes: larger than the {} KiB a configuration file is kept up to; add its folder to [capture] paths",
                meta.len(),
                MAX_FILE >> 10
            ),
        );
        return None;
    }
    match crate::sys::read_opt(&host) {
        Ok(Some(b)) => {
            out.content = base64::engine::general_purpose::STANDARD.encode(b);
            Some(out)
        }
        Ok(None) => None,
        Err(e) => {
            g.problem(abs, e);
            None
        }
    }
}

/// True when a file holds private material: not readable by others, or a private key.
pub fn is_private(f: &FileCopy) -> bool {
    if f.link.is_some() {
        return false;
    }
    let name = Path::new(&f.path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    f.mode & 0o004 == 0
        || name.ends_with(".key")
        || String::from_utf8_lossy(&f.bytes()).contains("PRIVATE KEY-----")
}
