//! Resolves system paths under a root directory the way a chroot would, so that a
//! captured or restored system can be a directory tree and absolute symlinks inside it
//! (`/etc/resolv.conf -> /run/systemd/resolve/stub-resolv.conf`) never escape it.

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

/// How many symlinks one resolution may follow before it is called a loop (as Linux).
const MAX_LINKS: usize = 40;

/// A root directory that every system path is resolved under.
#[derive(Debug, Clone)]
pub struct Root {
    dir: PathBuf,
}

impl Root {
    /// A root at `dir`; it must exist and be a directory.
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Root> {
        let dir = dir.into();
        let meta = std::fs::metadata(&dir)
            .map_err(|e| io::Error::new(e.kind(), format!("root {}: {e}", dir.display())))?;
        if !meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("root {} is not a directory", dir.display()),
            ));
        }
        let dir = super::plain_path(std::fs::canonicalize(&dir)?);
        Ok(Root { dir })
    }

    /// The root directory itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// True when the root is the running system's `/` (on Windows a drive's root, `C:\`):
    /// only then may carryover touch live state (the kernel hostname, systemctl).
    pub fn is_live(&self) -> bool {
        self.dir.parent().is_none()
    }

    /// The host path of `abs` with every directory component resolved inside the root
    /// and the last component left as it is (not followed): the place to write to, or
    /// to `lstat`.
    pub fn path(&self, abs: impl AsRef<Path>) -> PathBuf {
        if let Some(drive) = self.other_drive(abs.as_ref()) {
            return drive.path(abs);
        }
        let mut parts = normal_parts(abs.as_ref());
        let last = parts.pop();
        let mut dir = self
            .resolve(parts, 0, false)
            .unwrap_or_else(|_| self.dir.clone());
        if let Some(last) = last {
            dir.push(last);
        }
        dir
    }

    /// `abs` resolved as `follow` (every symlink followed inside the root, the last one
    /// too), but a symlink that a user planted, or that sits in a folder a user can write,
    /// is not followed: an error (`sys::may_follow`). For the folders a restore writes
    /// below as root (data paths, homes), opened from there one folder at a time without
    /// following anything (`open_dir_strict`).
    pub fn path_strict(&self, abs: impl AsRef<Path>) -> io::Result<PathBuf> {
        if let Some(drive) = self.other_drive(abs.as_ref()) {
            return drive.path_strict(abs);
        }
        self.resolve(normal_parts(abs.as_ref()), 0, true)
    }

    /// The folder `abs`, resolved as `path_strict` and then opened from the root one folder
    /// at a time without following a link (`sys::Dir`); missing folders are made with
    /// `make`'s mode, or are an error without it.
    pub fn open_dir_strict(
        &self,
        abs: impl AsRef<Path>,
        make: Option<u32>,
    ) -> io::Result<super::Dir> {
        let host = self.path_strict(abs)?;
        let rel = host
            .strip_prefix(&self.dir)
            .map_err(|_| io::Error::other("not below the root; refused"))?;
        let rel: Vec<Vec<u8>> = rel
            .components()
            .map(|c| super::os_bytes(c.as_os_str()))
            .collect();
        let top = super::Dir::open(&self.dir)?;
        match make {
            Some(mode) => top.open_or_make(&rel.join(&b'/'), mode),
            None => top.open_beneath(&rel.join(&b'/')),
        }
    }

    /// The host path of `abs` with every component resolved, symlinks followed inside the
    /// root: the place to read from.
    pub fn follow(&self, abs: impl AsRef<Path>) -> PathBuf {
        if let Some(drive) = self.other_drive(abs.as_ref()) {
            return drive.follow(abs);
        }
        let parts = normal_parts(abs.as_ref());
        match self.resolve(parts, 0, false) {
            Ok(p) => p,
            Err(_) => self.path(abs),
        }
    }

    /// On a live Windows root, a path that names its drive (`D:\data`) is resolved on
    /// that drive, not below the root's (a directory-tree root drops the drive: the
    /// tree stands for the whole system). Never on Unix, whose paths have no prefix.
    fn other_drive(&self, abs: &Path) -> Option<Root> {
        match abs.components().next() {
            Some(Component::Prefix(p)) if self.is_live() => {
                let mut dir = PathBuf::from(p.as_os_str());
                dir.push(std::path::MAIN_SEPARATOR_STR);
                (dir != self.dir).then_some(Root { dir })
            }
            _ => None,
        }
    }

    /// The absolute in-root name of a host path below the root (the inverse of `path`).
    pub fn inner(&self, host: &Path) -> PathBuf {
        match host.strip_prefix(&self.dir) {
            Ok(rel) => Path::new("/").join(rel),
            Err(_) => host.to_path_buf(),
        }
    }

    /// The host path of the in-root components `parts`, symlinks followed inside the root;
    /// `strict`: a symlink `may_follow` refuses is an error.
    fn resolve(&self, parts: Vec<OsString>, mut hops: usize, strict: bool) -> io::Result<PathBuf> {
        // `stack` holds the in-root components resolved so far.
        let mut stack: Vec<OsString> = Vec::new();
        let mut todo: Vec<OsString> = parts.into_iter().rev().collect();
        while let Some(part) = todo.pop() {
            if part == ".." {
                stack.pop();
                continue;
            }
            if part == "." {
                continue;
            }
            let mut candidate = self.dir.clone();
            candidate.extend(stack.iter());
            candidate.push(&part);
            match std::fs::symlink_metadata(&candidate) {
                Ok(m) if m.file_type().is_symlink() => {
                    if strict && !super::may_follow(&candidate) {
                        return Err(io::Error::other(format!(
                            "{} is a symlink that a user owns or that is in a folder others can \
                             write; not followed",
                            self.inner(&candidate).display()
                        )));
                    }
                    hops += 1;
                    if hops > MAX_LINKS {
                        return Err(io::Error::other("too many levels of symbolic links"));
                    }
                    let target = std::fs::read_link(&candidate)?;
                    if target.is_absolute() {
                        stack.clear();
                    }
                    for c in normal_parts_keep_dots(&target).into_iter().rev() {
                        todo.push(c);
                    }
                }
                _ => stack.push(part),
            }
        }
        let mut out = self.dir.clone();
        out.extend(stack.iter());
        Ok(out)
    }
}

/// The components of a path that name something: root and prefix dropped, `.` and `..`
/// resolved lexically without ever rising above the root.
fn normal_parts(p: &Path) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s.to_os_string()),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Like `normal_parts` but keeps `..` so that a relative symlink target climbs from the
/// link's own directory during resolution.
fn normal_parts_keep_dots(p: &Path) -> Vec<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// The strict resolution follows a link root made in a folder only root (or a sticky
    /// folder's owner) can change, and refuses one a user owns or one in a folder others
    /// can write.
    #[test]
    fn a_strict_path_follows_only_links_nobody_else_controls() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path()).unwrap();
        let dir = |p: &str, mode: u32| {
            std::fs::create_dir_all(t.path().join(p)).unwrap();
            std::fs::set_permissions(t.path().join(p), std::fs::Permissions::from_mode(mode))
                .unwrap();
        };
        dir("data/real", 0o755);
        dir("mine", 0o755);
        dir("open", 0o777);
        dir("sticky", 0o1777);
        for d in ["mine", "open", "sticky"] {
            symlink("/data/real", t.path().join(d).join("l")).unwrap();
        }
        let link = t.path().join("mine/users");
        symlink("/data/real", &link).unwrap();
        std::os::unix::fs::lchown(&link, Some(4242), Some(4242)).unwrap();
        let real = t.path().join("data/real/x");
        assert_eq!(root.path_strict("/mine/l/x").unwrap(), real);
        assert_eq!(root.path_strict("/sticky/l/x").unwrap(), real);
        for refused in ["/open/l/x", "/mine/users/x"] {
            let e = root.path_strict(refused).unwrap_err().to_string();
            assert!(e.contains("not followed"), "{refused}: {e}");
            assert_eq!(root.path(refused), real, "{refused}");
        }
        // the last component too: root's link is followed, one in an open folder is not
        assert_eq!(
            root.path_strict("/mine/l").unwrap(),
            t.path().join("data/real")
        );
        assert!(root.path_strict("/open/l").is_err());
    }

    #[test]
    fn absolute_symlinks_stay_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path()).unwrap();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        std::fs::create_dir_all(t.path().join("run/systemd/resolve")).unwrap();
        symlink(
            "/run/systemd/resolve/stub-resolv.conf",
            t.path().join("etc/resolv.conf"),
        )
        .unwrap();
        assert_eq!(
            root.follow("/etc/resolv.conf"),
            root.dir().join("run/systemd/resolve/stub-resolv.conf")
        );
        assert_eq!(
            root.path("/etc/resolv.conf"),
            root.dir().join("etc/resolv.conf")
        );
    }

    #[test]
    fn dotdot_never_climbs_above_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path()).unwrap();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        symlink("../../../../etc/passwd", t.path().join("etc/evil")).unwrap();
        assert_eq!(root.follow("/etc/evil"), root.dir().join("etc/passwd"));
        assert_eq!(root.path("/../../x"), root.dir().join("x"));
    }

    #[test]
    fn directory_symlinks_are_followed_relative() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path()).unwrap();
        std::fs::create_dir_all(t.path().join("usr/lib")).unwrap();
        symlink("usr/lib", t.path().join("lib")).unwrap();
        assert_eq!(root.path("/lib/x"), root.dir().join("usr/lib/x"));
    }

    #[test]
    fn link_loops_do_not_hang() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path()).unwrap();
        symlink("/b", t.path().join("a")).unwrap();
        symlink("/a", t.path().join("b")).unwrap();
        let _ = root.follow("/a");
    }

    #[test]
    fn a_missing_root_is_an_error() {
        assert!(Root::new("/nonexistent/carryover-root").is_err());
    }
}
