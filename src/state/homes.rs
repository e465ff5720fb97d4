//! Homes on the system disk: a captured user's home there is deleted by the Change OS
//! unless it is carried. Each is measured (caches such as `~/.cache` left out, as capture
//! leaves them out) so `check` can name it with its size, and `[capture] homes` decides
//! whether capture takes them as data paths — by default when they total at most
//! `LIMIT`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Gather;
use super::accounts::User;

/// The default: homes are captured while together they hold at most this much.
pub const LIMIT: u64 = 1 << 30;

/// What in a home is left out: caches its programs fill again.
const CACHES: &[&str] = &[".cache"];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Home {
    pub user: String,
    pub path: String,
    /// The regular files' bytes and count, caches left out.
    pub bytes: u64,
    pub files: u64,
    /// Capture takes it as a data path.
    pub captured: bool,
    /// It lies in a configured data path: captured with it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub in_data_paths: bool,
}

/// The exclude patterns of a home's caches (in-root paths).
pub fn exclude_patterns(home: &str) -> Vec<String> {
    CACHES
        .iter()
        .map(|c| format!("{}/{c}", home.trim_end_matches('/')))
        .collect()
}

/// The bytes and files below `dir`, caches at its top left out, links not followed.
fn measure(dir: &Path) -> (u64, u64) {
    let (mut bytes, mut files) = (0, 0);
    let walk = walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| {
            e.depth() != 1
                || !CACHES
                    .iter()
                    .any(|c| e.file_name() == std::ffi::OsStr::new(c))
        });
    for e in walk.flatten() {
        if let Ok(m) = e.metadata()
            && m.is_file()
        {
            bytes += m.len();
            files += 1;
        }
    }
    (bytes, files)
}

/// The captured users' homes that `on_system_disk` puts on the system disk. `capture` is
/// `[capture] homes`; unset, they are captured when they total at most `LIMIT` (those in
/// `data_paths` aside: they are captured anyway).
pub fn gather(
    g: &Gather,
    users: &[User],
    on_system_disk: &dyn Fn(&Path) -> bool,
    capture: Option<bool>,
    data_paths: &[PathBuf],
) -> Vec<Home> {
    let mut homes: Vec<Home> = Vec::new();
    for u in users {
        let home = u.home.trim_end_matches('/');
        if !home.starts_with('/') || home.is_empty() || home.starts_with("/nonexistent") {
            continue;
        }
        // where the home really is (a link to a data disk is not on the system disk)
        let host = g.root.follow(home);
        if !host.is_dir() || homes.iter().any(|h| h.path == home) {
            continue;
        }
        if !on_system_disk(&g.inner(&host)) {
            continue;
        }
        let (bytes, files) = measure(&host);
        homes.push(Home {
            user: u.name.clone(),
            path: home.to_string(),
            bytes,
            files,
            captured: false,
            in_data_paths: data_paths.iter().any(|p| Path::new(home).starts_with(p)),
        });
    }
    let total: u64 = homes
        .iter()
        .filter(|h| !h.in_data_paths)
        .map(|h| h.bytes)
        .sum();
    let take = capture.unwrap_or(total <= LIMIT);
    for h in homes.iter_mut() {
        h.captured = h.in_data_paths || take;
    }
    homes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_are_left_out_of_the_size() {
        let t = tempfile::tempdir().unwrap();
        let home = t.path().join("alice");
        std::fs::create_dir_all(home.join(".cache/pip")).unwrap();
        std::fs::create_dir_all(home.join("src/.cache")).unwrap();
        std::fs::write(home.join(".cache/pip/wheel"), vec![0; 5000]).unwrap();
        std::fs::write(home.join("notes.txt"), "hello").unwrap();
        std::fs::write(home.join("src/.cache/kept"), "12").unwrap();
        assert_eq!(measure(&home), (7, 2));
        assert_eq!(exclude_patterns("/home/alice/"), vec!["/home/alice/.cache"]);
    }
}
