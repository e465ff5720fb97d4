//! Folders opened once and worked in by descriptor: what a restore makes, renames, links
//! or removes inside a data path is named relative to a folder it opened without following
//! a symlink, so a folder swapped for a link meanwhile (by a user who owns the folder
//! above it) never sends a file, a link or a removal outside the tree.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, openat};
use nix::sys::stat::Mode;

use super::{Entry, proc_fd};

/// A folder opened `O_PATH|O_DIRECTORY`, never through a symlink at its last step; `path`
/// is what it was opened as, for messages only (nothing is reached through it again).
pub struct Dir {
    fd: File,
    path: PathBuf,
}

/// How every step of a walk opens: the entry itself, never a link's target.
fn step() -> OFlag {
    OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// The error of a step that met a symlink or a file where a folder belongs.
fn not_a_folder(e: nix::errno::Errno) -> io::Error {
    match e {
        nix::errno::Errno::ENOTDIR | nix::errno::Errno::ELOOP => {
            io::Error::other("a folder on its way is a symlink or not a folder; refused")
        }
        e => io::Error::from(e),
    }
}

/// The components of a plain relative path (`a/b/c`); `""`, `.` and `..` are refused.
fn components(rel: &[u8]) -> io::Result<Vec<&OsStr>> {
    let parts: Vec<&[u8]> = rel.split(|c| *c == b'/').collect();
    if parts.iter().any(|c| matches!(*c, b"" | b"." | b"..")) {
        return Err(io::Error::other(
            "not a plain path below the folder; refused",
        ));
    }
    Ok(parts.into_iter().map(OsStr::from_bytes).collect())
}

/// The error of a name that is not a plain file.
fn not_plain(name: &OsStr) -> io::Error {
    io::Error::other(format!(
        "{} is a link or not a plain file; refused",
        name.to_string_lossy()
    ))
}

/// A name inside one folder: one plain component.
fn plain(name: &OsStr) -> io::Result<&OsStr> {
    match name.as_bytes() {
        b"" | b"." | b".." => Err(io::Error::other("not a plain name; refused")),
        b if b.contains(&b'/') => Err(io::Error::other("not a plain name; refused")),
        _ => Ok(name),
    }
}

impl Dir {
    /// Opens the folder at `path` (its last component not followed; the folders above it
    /// are the system's own: a data path's parents, made by root).
    pub fn open(path: &Path) -> io::Result<Dir> {
        let fd = openat(AT_FDCWD, path, step() | OFlag::O_DIRECTORY, Mode::empty())
            .map_err(not_a_folder)?;
        Ok(Dir {
            fd: File::from(fd),
            path: path.to_path_buf(),
        })
    }

    /// What the folder was opened as.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The folder at `rel` (`a/b`; `""`: this one again) below this one, opened one
    /// component at a time from this descriptor, never following a link.
    pub fn open_beneath(&self, rel: &[u8]) -> io::Result<Dir> {
        let mut path = self.path.clone();
        if rel.is_empty() {
            return Ok(Dir {
                fd: self.fd.try_clone()?,
                path,
            });
        }
        let mut cur: Option<File> = None;
        for c in components(rel)? {
            let from = cur.as_ref().unwrap_or(&self.fd);
            let fd = openat(from, c, step() | OFlag::O_DIRECTORY, Mode::empty())
                .map_err(not_a_folder)?;
            cur = Some(File::from(fd));
            path.push(c);
        }
        Ok(Dir {
            fd: cur.expect("at least one component"),
            path,
        })
    }

    /// The folder at `rel` below this one (as `open_beneath`), each missing folder on the
    /// way made with `mode` (`mkdir`).
    pub fn open_or_make(&self, rel: &[u8], mode: u32) -> io::Result<Dir> {
        if rel.is_empty() {
            return self.open_beneath(b"");
        }
        let mut cur: Option<Dir> = None;
        for c in components(rel)? {
            let from = cur.as_ref().unwrap_or(self);
            let next = match from.open_beneath(c.as_bytes()) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => match from.mkdir(c, mode) {
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        from.open_beneath(c.as_bytes())
                    }
                    r => r,
                },
                r => r,
            }?;
            cur = Some(next);
        }
        Ok(cur.expect("at least one component"))
    }

    /// What identifies the folder opened (device, inode, owner): a folder found again by
    /// name is the same one only when this matches (the owner too: an inode number freed
    /// and given to a folder someone else made is not taken for the old one).
    pub fn id(&self) -> Option<(u64, u64, u32)> {
        use std::os::unix::fs::MetadataExt;
        self.fd.metadata().ok().map(|m| (m.dev(), m.ino(), m.uid()))
    }

    /// The folder itself as an entry, to set its metadata on what was opened.
    pub fn entry_self(&self) -> io::Result<Entry> {
        Entry::of_path_fd(self.fd.try_clone()?, self.path.clone(), None)
    }

    /// The regular file at `rel` below this folder, opened `O_PATH` one component at a
    /// time without following a link.
    fn open_file_beneath(&self, rel: &[u8]) -> io::Result<File> {
        let parts = components(rel)?;
        let (name, folders) = parts.split_last().expect("at least one component");
        let dir = match folders.is_empty() {
            true => None,
            false => Some(self.open_beneath(&rel[..rel.len() - name.len() - 1])?),
        };
        let from = dir.as_ref().map_or(&self.fd, |d| &d.fd);
        let f = File::from(openat(from, *name, step(), Mode::empty()).map_err(not_a_folder)?);
        if !f.metadata()?.is_file() {
            return Err(io::Error::other("not a regular file; refused"));
        }
        Ok(f)
    }

    /// The entry `name` of this folder, opened without following a link (as
    /// `Entry::open`).
    pub fn entry(&self, name: &OsStr) -> io::Result<Entry> {
        let fd = openat(&self.fd, plain(name)?, step(), Mode::empty())?;
        Entry::of_path_fd(File::from(fd), self.path.join(name), Some(self))
    }

    /// True when `name` in this folder is a directory (a link to one is not).
    pub fn is_dir(&self, name: &OsStr) -> bool {
        plain(name)
            .ok()
            .and_then(|n| nix::sys::stat::fstatat(&self.fd, n, AtFlags::AT_SYMLINK_NOFOLLOW).ok())
            .is_some_and(|s| s.st_mode & nix::libc::S_IFMT == nix::libc::S_IFDIR)
    }

    /// The content of the plain file `name` (`None`: there is none): a symlink, anything
    /// but a regular file, or a file with other names (a hard link to `/etc/shadow`) is
    /// refused, never read through.
    pub fn read_plain(
        &self,
        name: &OsStr,
        limit: u64,
    ) -> io::Result<Option<(Vec<u8>, std::fs::Metadata)>> {
        use std::io::Read;
        use std::os::unix::fs::MetadataExt;
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let f = match openat(&self.fd, plain(name)?, flags, Mode::empty()) {
            Err(nix::errno::Errno::ENOENT) => return Ok(None),
            Err(nix::errno::Errno::ELOOP) => return Err(not_plain(name)),
            r => File::from(r?),
        };
        let m = f.metadata()?;
        if !m.is_file() || m.nlink() > 1 {
            return Err(not_plain(name));
        }
        if m.len() > limit {
            return Err(io::Error::other(format!(
                "{} is larger than {limit} bytes; refused",
                name.to_string_lossy()
            )));
        }
        let mut out = Vec::new();
        (&f).take(limit).read_to_end(&mut out)?;
        Ok(Some((out, m)))
    }

    /// Replaces `name` with `content` (mode and owner set on the new file's descriptor
    /// before it takes the name; flushed, then renamed in this folder).
    pub fn write_atomic(
        &self,
        name: &OsStr,
        content: &[u8],
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> io::Result<()> {
        use std::io::Write;
        let tmp = super::super::temp_name(plain(name)?);
        let r = (|| {
            let mut f = self.create_replacing(&tmp, 0o600)?;
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
            }
            f.set_permissions(
                <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(mode),
            )?;
            f.write_all(content)?;
            f.sync_all()?;
            self.rename(&tmp, name)?;
            File::open(proc_fd(&self.fd))?.sync_all()
        })();
        if r.is_err() {
            let _ = self.remove_file(&tmp);
        }
        r
    }

    /// Where the symlink `name` points.
    pub fn read_link(&self, name: &OsStr) -> io::Result<std::ffi::OsString> {
        Ok(nix::fcntl::readlinkat(&self.fd, plain(name)?)?)
    }

    /// Makes the folder `name` with `mode` (set on the new folder opened without following
    /// a link, never left to the umask) and opens it.
    pub fn mkdir(&self, name: &OsStr, mode: u32) -> io::Result<Dir> {
        let name = plain(name)?;
        nix::sys::stat::mkdirat(&self.fd, name, Mode::from_bits_truncate(0o700))?;
        let fd = openat(&self.fd, name, step() | OFlag::O_DIRECTORY, Mode::empty())
            .map_err(not_a_folder)?;
        let fd = File::from(fd);
        // the folder made, not one a user put at its name between the two calls
        if std::os::unix::fs::MetadataExt::uid(&fd.metadata()?) != nix::unistd::geteuid().as_raw() {
            return Err(io::Error::other(
                "the new folder was replaced by someone else's; refused",
            ));
        }
        std::fs::set_permissions(
            proc_fd(&fd),
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(mode),
        )?;
        Ok(Dir {
            fd,
            path: self.path.join(name),
        })
    }

    /// Creates the file `name` exclusively (`O_EXCL|O_NOFOLLOW`), with the permission
    /// bits of `mode` less the umask's (the caller sets the mode it needs when it differs).
    pub fn create_new(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(
            &self.fd,
            plain(name)?,
            flags,
            Mode::from_bits_truncate(mode & 0o777),
        )?;
        Ok(File::from(fd))
    }

    /// Removes the entry `name` of this folder (not a folder).
    pub fn remove_file(&self, name: &OsStr) -> io::Result<()> {
        nix::unistd::unlinkat(
            &self.fd,
            plain(name)?,
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        )?;
        Ok(())
    }

    /// Renames `from` to `to`, both in this folder (`to` replaced if there).
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        nix::fcntl::renameat(&self.fd, plain(from)?, &self.fd, plain(to)?)?;
        Ok(())
    }

    /// Makes the symlink `name` pointing to `target`.
    pub fn symlink(&self, target: &OsStr, name: &OsStr) -> io::Result<()> {
        nix::unistd::symlinkat(target, &self.fd, plain(name)?)?;
        Ok(())
    }

    /// Makes a FIFO or a device node (`kind` as `make_special`) called `name`.
    pub fn make_special(&self, name: &OsStr, kind: &str, mode: u32, rdev: u64) -> io::Result<()> {
        use nix::sys::stat::SFlag;
        let kind = match kind {
            "fifo" => SFlag::S_IFIFO,
            "char" => SFlag::S_IFCHR,
            "block" => SFlag::S_IFBLK,
            other => return Err(io::Error::other(format!("cannot create a {other}"))),
        };
        let perm = Mode::from_bits_truncate(mode & 0o7777);
        nix::sys::stat::mknodat(&self.fd, plain(name)?, kind, perm, rdev as nix::libc::dev_t)?;
        Ok(())
    }

    /// Makes `name` in `into` a second name of the regular file at `rel` below this
    /// folder: the file is reached one component at a time (`open_file_beneath`) and
    /// linked through its descriptor (`/proc/self/fd`), so a folder on the way swapped for
    /// a link makes it fail — it never links a file from elsewhere.
    /// `expect` must accept the file's metadata (the one the restore wrote, not another a
    /// user swapped in on the way).
    pub fn link_beneath(
        &self,
        rel: &[u8],
        into: &Dir,
        name: &OsStr,
        expect: &dyn Fn(&std::fs::Metadata) -> bool,
    ) -> io::Result<()> {
        let f = self.open_file_beneath(rel)?;
        if !expect(&f.metadata()?) {
            return Err(super::super::not_the_file_restored());
        }
        into.link_opened(&f, name)
    }

    /// Gives the file opened as `f` the name `name` in this folder.
    fn link_opened(&self, f: &File, name: &OsStr) -> io::Result<()> {
        nix::unistd::linkat(
            AT_FDCWD,
            proc_fd(f).as_path(),
            &self.fd,
            plain(name)?,
            AtFlags::AT_SYMLINK_FOLLOW,
        )?;
        Ok(())
    }

    /// A duplicate of the folder's descriptor, for an entry that acts on a name in it.
    pub(super) fn dup(&self) -> io::Result<File> {
        self.fd.try_clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// A tree with a folder `a/b` holding `f`, and next to it a folder `outside` with a
    /// secret; `a/swapped` is a symlink to `outside`, `a/link` one to its file.
    fn tree() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let (tree, outside) = (t.path().join("tree"), t.path().join("outside"));
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(tree.join("a/b/f"), "mine").unwrap();
        std::fs::write(outside.join("f"), "secret").unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("a/swapped")).unwrap();
        std::os::unix::fs::symlink(outside.join("f"), tree.join("a/link")).unwrap();
        (t, tree, outside)
    }

    /// A hard link is made only to a regular file reached through real folders: a folder
    /// on the way that is a symlink, or a symlink at the file's name, is refused.
    #[test]
    fn a_hard_link_never_reaches_through_a_symlink() {
        let (_t, tree, outside) = tree();
        let top = Dir::open(&tree).unwrap();
        top.link_beneath(b"a/b/f", &top, OsStr::new("second"), &|_| true)
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(tree.join("second")).unwrap(),
            "mine"
        );
        // the folder swapped for a link between the walk and the link: what was opened
        let opened = top.open_file_beneath(b"a/b/f").unwrap();
        std::fs::rename(tree.join("a/b"), tree.join("a/b-moved")).unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("a/b")).unwrap();
        top.link_opened(&opened, OsStr::new("third")).unwrap();
        assert_eq!(std::fs::read_to_string(tree.join("third")).unwrap(), "mine");
        for rel in [
            &b"a/swapped/f"[..],
            b"a/link",
            b"a/b/f",
            b"a/b-moved",
            b"a/missing",
            b"a/../a/b-moved/f",
            b"a//b-moved/f",
            b"",
        ] {
            let r = top.link_beneath(rel, &top, OsStr::new("bad"), &|_| true);
            assert!(r.is_err(), "{rel:?}");
            assert!(
                std::fs::symlink_metadata(tree.join("bad")).is_err(),
                "{rel:?}"
            );
        }
        assert_eq!(std::fs::metadata(outside.join("f")).unwrap().nlink(), 1);
        // a file that is not the one expected (here: none is) is not linked
        let r = top.link_beneath(b"a/b-moved/f", &top, OsStr::new("bad"), &|_| false);
        assert!(r.unwrap_err().to_string().contains("not the one restored"));
    }

    /// Everything made in an opened folder stays in it: the folder swapped for a symlink
    /// to another one right after it was opened (the worst moment) gets nothing — the
    /// file, the folder, the link, the node, the rename and the removal all happen in
    /// the folder that was opened, wherever it now is.
    #[test]
    fn what_is_made_in_an_opened_folder_never_lands_elsewhere() {
        let (_t, tree, outside) = tree();
        let top = Dir::open(&tree).unwrap();
        let b = top.open_beneath(b"a/b").unwrap();
        std::fs::rename(tree.join("a/b"), tree.join("a/b-moved")).unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("a/b")).unwrap();
        let name = |n: &str| OsStr::new(n).to_os_string();
        use std::io::Write;
        b.create_new(&name("new"), 0o600)
            .unwrap()
            .write_all(b"x")
            .unwrap();
        b.mkdir(&name("sub"), 0o750).unwrap();
        b.symlink(OsStr::new("/etc/passwd"), &name("l")).unwrap();
        b.make_special(&name("p"), "fifo", 0o600, 0).unwrap();
        b.rename(&name("new"), &name("renamed")).unwrap();
        b.remove_file(&name("f")).unwrap();
        let moved = tree.join("a/b-moved");
        assert_eq!(std::fs::read(moved.join("renamed")).unwrap(), b"x");
        let sub = std::fs::symlink_metadata(moved.join("sub")).unwrap();
        assert!(sub.is_dir());
        assert_eq!(sub.mode() & 0o7777, 0o750);
        assert!(
            std::fs::symlink_metadata(moved.join("l"))
                .unwrap()
                .is_symlink()
        );
        assert!(std::fs::symlink_metadata(moved.join("p")).is_ok());
        assert!(std::fs::symlink_metadata(moved.join("f")).is_err());
        let mut left: Vec<_> = std::fs::read_dir(&outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        left.sort();
        assert_eq!(left, ["f"]);
        assert_eq!(
            std::fs::read_to_string(outside.join("f")).unwrap(),
            "secret"
        );
        // opened again now, the way is refused at the link
        let e = top.open_beneath(b"a/b").err().unwrap();
        assert!(e.to_string().contains("symlink"), "{e}");
        assert!(top.open_beneath(b"a/swapped").is_err());
        for bad in [&b"a/../a"[..], b"/a", b"a/", b"."] {
            assert!(top.open_beneath(bad).is_err(), "{bad:?}");
        }
        for bad in ["..", ".", "", "x/y"] {
            assert!(b.create_new(OsStr::new(bad), 0o600).is_err(), "{bad:?}");
            assert!(b.entry(OsStr::new(bad)).is_err(), "{bad:?}");
        }
    }

    /// A symlink's entry opened in a folder sets its times on the link in that folder
    /// (through the folder's descriptor), not on a link of that name elsewhere.
    #[test]
    fn a_link_entry_sets_its_times_in_the_folder_it_was_opened_in() {
        let (_t, tree, outside) = tree();
        let b = Dir::open(&tree).unwrap().open_beneath(b"a").unwrap();
        let e = b.entry(OsStr::new("link")).unwrap();
        std::fs::rename(tree.join("a"), tree.join("a-moved")).unwrap();
        std::fs::create_dir(tree.join("a")).unwrap();
        std::os::unix::fs::symlink(outside.join("f"), tree.join("a/link")).unwrap();
        e.set_times(1_000_000, 0).unwrap();
        let mtime = |p: &Path| std::fs::symlink_metadata(p).unwrap().mtime();
        assert_eq!(mtime(&tree.join("a-moved/link")), 1_000_000);
        assert_ne!(mtime(&tree.join("a/link")), 1_000_000);
        assert!(!b.is_dir(OsStr::new("link")) && !b.is_dir(OsStr::new("..")));
    }
}
