//! Folders worked in by name on Windows, with the Unix side's calls (`Dir`): Windows has
//! no `openat`, so each call goes by path, and a folder on the way is checked not to be a
//! link (a reparse point) when it is opened — the check the Unix side gets from the
//! kernel at every call.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use super::Entry;

/// A folder of a data path, by its path.
pub struct Dir {
    path: PathBuf,
}

/// A name inside one folder: one plain component.
fn plain(name: &OsStr) -> io::Result<&OsStr> {
    let s = name.to_string_lossy();
    if matches!(&*s, "" | "." | "..") || s.contains(['/', '\\']) {
        return Err(io::Error::other("not a plain name; refused"));
    }
    Ok(name)
}

impl Dir {
    /// The folder at `path`, which must be a real folder (not a link).
    pub fn open(path: &Path) -> io::Result<Dir> {
        let m = std::fs::symlink_metadata(path)?;
        if m.file_type().is_symlink() || !m.is_dir() {
            return Err(io::Error::other(
                "a folder on its way is a symlink or not a folder; refused",
            ));
        }
        Ok(Dir {
            path: path.to_path_buf(),
        })
    }

    /// What the folder is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The folder at `rel` (`a/b`; `""`: this one) below this one, every folder on the
    /// way checked to be a real one.
    pub fn open_beneath(&self, rel: &[u8]) -> io::Result<Dir> {
        let mut p = self.path.clone();
        if rel.is_empty() {
            return Ok(Dir { path: p });
        }
        for c in rel.split(|c| *c == b'/') {
            if matches!(c, b"" | b"." | b"..") {
                return Err(io::Error::other(
                    "not a plain path below the folder; refused",
                ));
            }
            p.push(super::os_from_bytes(c));
            Dir::open(&p)?;
        }
        Ok(Dir { path: p })
    }

    /// The folder at `rel` below this one, each missing folder on the way made.
    pub fn open_or_make(&self, rel: &[u8], mode: u32) -> io::Result<Dir> {
        let mut cur = Dir {
            path: self.path.clone(),
        };
        for c in rel.split(|c| *c == b'/').filter(|c| !c.is_empty()) {
            let name = super::os_from_bytes(c);
            cur = match cur.open_beneath(c) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => cur.mkdir(&name, mode)?,
                r => r?,
            };
        }
        Ok(cur)
    }

    /// Windows file ids are not read here: a folder found again by name is not compared.
    pub fn id(&self) -> Option<(u64, u64, u32)> {
        None
    }

    /// The folder itself as an entry.
    pub fn entry_self(&self) -> io::Result<Entry> {
        Entry::open(&self.path)
    }

    /// The entry `name` of this folder (as `Entry::open`).
    pub fn entry(&self, name: &OsStr) -> io::Result<Entry> {
        Entry::open(&self.path.join(plain(name)?))
    }

    /// True when `name` is a directory (a link to one is not).
    pub fn is_dir(&self, name: &OsStr) -> bool {
        plain(name).is_ok_and(|n| {
            std::fs::symlink_metadata(self.path.join(n))
                .is_ok_and(|m| m.is_dir() && !m.file_type().is_symlink())
        })
    }

    /// The content of the plain file `name` (`None`: there is none); a link is refused.
    pub fn read_plain(
        &self,
        name: &OsStr,
        limit: u64,
    ) -> io::Result<Option<(Vec<u8>, std::fs::Metadata)>> {
        let p = self.path.join(plain(name)?);
        match std::fs::symlink_metadata(&p) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
            Ok(m) if !m.is_file() || m.file_type().is_symlink() => Err(io::Error::other(format!(
                "{} is a link or not a plain file; refused",
                name.to_string_lossy()
            ))),
            Ok(m) if m.len() > limit => Err(io::Error::other(format!(
                "{} is larger than {limit} bytes; refused",
                name.to_string_lossy()
            ))),
            Ok(m) => Ok(Some((std::fs::read(p)?, m))),
        }
    }

    /// Replaces `name` with `content` (no POSIX owner on Windows).
    pub fn write_atomic(
        &self,
        name: &OsStr,
        content: &[u8],
        mode: u32,
        _owner: Option<(u32, u32)>,
    ) -> io::Result<()> {
        super::super::write_atomic(&self.path.join(plain(name)?), content, mode)
    }

    /// Where the symlink `name` points.
    pub fn read_link(&self, name: &OsStr) -> io::Result<std::ffi::OsString> {
        Ok(std::fs::read_link(self.path.join(plain(name)?))?.into_os_string())
    }

    /// Makes the folder `name` and opens it.
    pub fn mkdir(&self, name: &OsStr, mode: u32) -> io::Result<Dir> {
        let p = self.path.join(plain(name)?);
        super::mkdir_mode(&p, mode)?;
        Ok(Dir { path: p })
    }

    /// Creates the file `name` exclusively (never through a link).
    pub fn create_new(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        super::create_new_nofollow(&self.path.join(plain(name)?), mode)
    }

    /// Removes the file `name`.
    pub fn remove_file(&self, name: &OsStr) -> io::Result<()> {
        std::fs::remove_file(self.path.join(plain(name)?))
    }

    /// Renames `from` to `to`, both in this folder (`to` replaced if there).
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        std::fs::rename(self.path.join(plain(from)?), self.path.join(plain(to)?))
    }

    /// Makes the symlink `name` pointing to `target`.
    pub fn symlink(&self, target: &OsStr, name: &OsStr) -> io::Result<()> {
        super::symlink(Path::new(target), &self.path.join(plain(name)?))
    }

    /// FIFOs and device nodes do not exist on Windows (as `make_special`).
    pub fn make_special(&self, name: &OsStr, kind: &str, mode: u32, rdev: u64) -> io::Result<()> {
        super::make_special(&self.path.join(plain(name)?), kind, mode, rdev)
    }

    /// Makes `name` in `into` a second name of the regular file at `rel` below this folder
    /// (every folder on the way a real one, the file a regular file).
    pub fn link_beneath(
        &self,
        rel: &[u8],
        into: &Dir,
        name: &OsStr,
        expect: &dyn Fn(&std::fs::Metadata) -> bool,
    ) -> io::Result<()> {
        let (folders, file) = match rel.iter().rposition(|c| *c == b'/') {
            Some(i) => (&rel[..i], &rel[i + 1..]),
            None => (&b""[..], rel),
        };
        if matches!(file, b"" | b"." | b"..") {
            return Err(io::Error::other(
                "not a plain path below the folder; refused",
            ));
        }
        let p = self
            .open_beneath(folders)?
            .path
            .join(super::os_from_bytes(file));
        let m = std::fs::symlink_metadata(&p)?;
        if !m.is_file() {
            return Err(io::Error::other("not a regular file; refused"));
        }
        if !expect(&m) {
            return Err(super::super::not_the_file_restored());
        }
        std::fs::hard_link(&p, into.path.join(plain(name)?))
    }
}
