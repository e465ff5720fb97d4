//! Object backends of the store: named blobs put atomically, read, listed and deleted.
//! The local one keeps them as root-only files in a directory on a data disk.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use std::sync::mpsc::{Receiver, Sender};

/// The most a whole-object read takes (`get`): more than any object the store writes
/// (packs of at most 16 MiB, documents, state and agent objects), so an object past it was
/// planted or damaged — refused before it fills the memory.
pub const MAX_GET: u64 = 1 << 30;

/// Refuses an object longer than `MAX_GET`.
pub fn too_large(key: &str, len: u64) -> Result<()> {
    if len > MAX_GET {
        bail!(
            "{key} is {len} bytes or more: larger than any object the store writes ({MAX_GET}); refused (planted or damaged)"
        );
    }
    Ok(())
}

/// Where the store keeps its objects. `put` must be atomic: a reader sees the whole
/// object or none of it.
pub trait Backend: Send + Sync {
    fn put(&self, key: &str, data: &[u8]) -> Result<()>;
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// `len` bytes of an object from `offset`.
    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let all = self
            .get(key)?
            .with_context(|| format!("{key} is missing from the store"))?;
        let end = offset.checked_add(len).filter(|e| *e <= all.len() as u64);
        match end {
            Some(end) => Ok(all[offset as usize..end as usize].to_vec()),
            None => bail!("{key} is shorter than the index says"),
        }
    }
    /// As `get_range`, into a buffer where the bytes may start further in (`RangeRead`).
    fn read_range(&self, key: &str, offset: u64, len: u64) -> Result<RangeRead> {
        self.get_range(key, offset, len).map(RangeRead::whole)
    }
    /// Put-if-absent: false when the key exists already (the store's lock).
    fn create_new(&self, key: &str, data: &[u8]) -> Result<bool>;
    /// Writes a large object piece by piece; it appears only at `commit`.
    fn put_stream(&self, key: &str) -> Result<Box<dyn ObjectWriter>>;
    /// Every key that starts with `prefix`, in name order.
    fn list(&self, prefix: &str) -> Result<Vec<String>>;
    fn delete(&self, key: &str) -> Result<()>;
    fn describe(&self) -> String;
    /// A URL that lets anyone GET `key` for `valid` (object storage only).
    fn presigned_get(&self, _key: &str, _valid: std::time::Duration) -> Option<String> {
        None
    }
    /// How many transfers the backend runs at once (1: each happens in the caller).
    fn connections(&self) -> usize {
        1
    }
    /// Puts `objects` one after the other, each only after the one before is
    /// acknowledged (a pack, then its index). A concurrent backend does it in the
    /// background and blocks here while its limit of such chains is in flight; this one
    /// puts them now.
    fn put_in_order(&self, objects: Vec<(String, Vec<u8>)>) -> Result<Box<dyn Transfer>> {
        for (key, data) in objects {
            self.put(&key, &data)?;
        }
        Ok(Box::new(Done))
    }
    /// How many ranges `get_ranges` reads at once.
    fn reads_at_once(&self) -> usize {
        self.connections()
    }
    /// Reads every range that comes from `requests` and hands it to `deliver`, at most
    /// `connections` at once, in any order; returns when `requests` is closed and every
    /// read is delivered.
    fn get_ranges(&self, requests: Receiver<Range>, deliver: &Sender<Fetched>) {
        for r in requests {
            let got = self.read_range(&r.key, r.offset, r.len);
            if deliver.send((r, got)).is_err() {
                return;
            }
        }
    }
    /// Takes back a buffer a read returned, for a later read to fill (a restore reads
    /// gigabytes in ranges of megabytes: fresh memory for each is cleared by the kernel
    /// and faulted in page by page).
    fn recycle(&self, _buf: Vec<u8>) {}
    /// Lets go of the buffers `recycle` kept (a restore is done).
    fn drop_spare(&self) {}
    /// Several listings (as `list`), concurrently where the backend can.
    fn list_many(&self, prefixes: &[&str]) -> Vec<Result<Vec<String>>> {
        prefixes.iter().map(|p| self.list(p)).collect()
    }
    /// Several whole objects (`None`: absent), concurrently where the backend can.
    fn get_many(&self, keys: &[String]) -> Vec<Result<Option<Vec<u8>>>> {
        keys.iter().map(|k| self.get(k)).collect()
    }
}

/// One ranged read of `get_ranges`; `tag` is the caller's.
#[derive(Debug, Clone)]
pub struct Range {
    pub key: String,
    pub offset: u64,
    pub len: u64,
    pub tag: u64,
}

/// A range and what reading it gave.
pub type Fetched = (Range, Result<RangeRead>);

/// The bytes of a range that was read: `data[start..]` (a read around the page cache
/// fills an aligned place of its buffer from the block where the range begins).
pub struct RangeRead {
    pub data: Vec<u8>,
    pub start: usize,
}

impl RangeRead {
    pub fn whole(data: Vec<u8>) -> RangeRead {
        RangeRead { data, start: 0 }
    }

    /// The range's bytes (an error when fewer were read: never trusted to be there).
    pub fn bytes(&self, len: u64) -> Result<&[u8]> {
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| self.start.checked_add(l))
            .filter(|e| *e <= self.data.len());
        match end {
            Some(end) => Ok(&self.data[self.start..end]),
            None => bail!("the read range is shorter than asked for"),
        }
    }
}

/// A transfer started by `put_in_order`.
pub trait Transfer: Send {
    /// True once `wait` would not block.
    fn done(&self) -> bool;
    fn wait(self: Box<Self>) -> Result<()>;
}

/// A transfer that finished before it was returned.
pub struct Done;

impl Transfer for Done {
    fn done(&self) -> bool {
        true
    }
    fn wait(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

/// An object being written; dropped without `commit`, it never appears.
pub trait ObjectWriter: Send {
    fn write(&mut self, data: &[u8]) -> Result<()>;
    fn commit(self: Box<Self>) -> Result<()>;
}

/// Checks one component of a key: letters, digits, `.`, `_`, `-`; never `.`/`..`.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        bail!("{} is not a valid store name", crate::units::quoted(name));
    }
    Ok(())
}

fn check_key(key: &str) -> Result<()> {
    for part in key.split('/') {
        check_name(part)?;
    }
    Ok(())
}

/// A store in a local directory (a data disk). Files 0600, directories 0700.
pub struct LocalBackend {
    dir: PathBuf,
    /// Recently read objects kept open: restore reads many small blobs from one pack.
    open: std::sync::Mutex<Vec<(String, std::sync::Arc<std::fs::File>)>>,
    /// The same, opened to read around the page cache (large reads, `read_range`).
    direct: std::sync::Mutex<Vec<(String, std::sync::Arc<std::fs::File>)>>,
    /// False once the store's filesystem refused such a read: all go through the cache.
    direct_ok: std::sync::atomic::AtomicBool,
    /// Buffers of ranges already written out, for the next ranges (`recycle`).
    spare: std::sync::Mutex<Vec<Vec<u8>>>,
}

const OPEN_FILES: usize = 8;
/// Ranges read at once (`get_ranges`).
const READERS: usize = 2;
/// Spare buffers kept: as many as ranges are read ahead (`recycle`).
const SPARE: usize = 16;
/// Reads of at least this take a spare buffer, and buffers of at least this are kept (a
/// small read, a tree blob, gets a buffer of its size: it may be kept as the blob itself).
const SPARE_FROM: usize = 1 << 20;

impl LocalBackend {
    pub fn open(dir: &Path, create: bool) -> Result<LocalBackend> {
        // the operator's path may go through a link (e.g. /mnt/store → /data/store): it is
        // resolved once here; below it, nothing is followed
        let dir = &std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        if !dir.is_dir() {
            if !create {
                bail!("store {} does not exist", dir.display());
            }
            crate::sys::create_dirs(dir, 0o700)
                .with_context(|| format!("creating the store {}", dir.display()))?;
        }
        Ok(LocalBackend {
            dir: dir.to_path_buf(),
            open: std::sync::Mutex::new(Vec::new()),
            direct: std::sync::Mutex::new(Vec::new()),
            direct_ok: true.into(),
            spare: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The file of `key`. Every folder on the way must be a real folder of the store: a
    /// symlink planted there (`journal/` → `/etc`) is refused, never followed.
    fn path(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        let mut p = self.dir.clone();
        let parts: Vec<&str> = key.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            p.push(part);
            if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
                bail!(
                    "{} in the store is a symbolic link: refused (someone with access to the store's disk planted it?)",
                    p.display()
                );
            }
        }
        Ok(self.dir.join(key))
    }
}

impl LocalBackend {
    /// The open file of `key` from `cache` (the last `OPEN_FILES` kept), else `open`'s.
    fn opened(
        cache: &std::sync::Mutex<Vec<(String, std::sync::Arc<std::fs::File>)>>,
        key: &str,
        open: impl FnOnce() -> std::io::Result<std::fs::File>,
    ) -> std::io::Result<std::sync::Arc<std::fs::File>> {
        if let Some((_, f)) = cache
            .lock()
            .expect("open files")
            .iter()
            .find(|(k, _)| k == key)
        {
            return Ok(f.clone());
        }
        let f = std::sync::Arc::new(open()?);
        let mut cache = cache.lock().expect("open files");
        if cache.len() >= OPEN_FILES {
            cache.remove(0);
        }
        cache.push((key.to_string(), f.clone()));
        Ok(f)
    }

    /// A buffer for a read of `len` bytes: a spare one for a large read.
    fn spare_for(&self, len: u64) -> Vec<u8> {
        if len as usize >= SPARE_FROM {
            self.spare.lock().expect("spare").pop().unwrap_or_default()
        } else {
            Vec::new()
        }
    }
}

impl Backend for LocalBackend {
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        let path = self.path(key)?;
        let mut missing = Vec::new();
        let mut d = path.parent();
        while let Some(dir) = d {
            if dir.exists() {
                break;
            }
            missing.push(dir.to_path_buf());
            d = dir.parent();
        }
        // 0700, set on each new folder through its descriptor (never by its name)
        for dir in missing.iter().rev() {
            crate::sys::create_dir_durable(dir)
                .with_context(|| format!("creating {}", dir.display()))?;
        }
        crate::sys::write_atomic(&path, data, 0o600)
            .with_context(|| format!("writing {key} to the store"))
    }

    /// Never through a link, never a FIFO or a device (a FIFO planted at the store's
    /// marker would hang every restore before it could report), never more than
    /// `MAX_GET` bytes.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        use std::io::Read;
        let path = self.path(key)?;
        let f = match crate::sys::open_store_file(&path, false) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(20) => return Ok(None), // ENOTDIR
            Err(e) => {
                return Err(e).with_context(|| format!("reading {}", path.display()));
            }
        };
        let len = f
            .metadata()
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        too_large(key, len)?;
        let mut data = Vec::with_capacity(len as usize);
        f.take(MAX_GET + 1)
            .read_to_end(&mut data)
            .with_context(|| format!("reading {}", path.display()))?;
        too_large(key, data.len() as u64)?;
        Ok(Some(data))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let base = self.dir.join(prefix.trim_end_matches('/'));
        let start = if prefix.ends_with('/') || base.is_dir() {
            base
        } else {
            base.parent().map(Path::to_path_buf).unwrap_or_default()
        };
        if !start.is_dir() {
            return Ok(out);
        }
        for entry in walkdir::WalkDir::new(&start).sort_by_file_name() {
            let entry = entry.with_context(|| format!("listing {}", start.display()))?;
            if !entry.file_type().is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy();
            if crate::sys::is_temp_name(&name) {
                continue;
            }
            let rel = entry.path().strip_prefix(&self.dir).unwrap_or(entry.path());
            let key = rel.to_string_lossy().replace('\\', "/");
            if key.starts_with(prefix) {
                out.push(key);
            }
        }
        Ok(out)
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let path = self.path(key)?;
        let f = Self::opened(&self.open, key, || {
            crate::sys::open_store_file(&path, false)
        })
        .with_context(|| format!("opening {}", path.display()))?;
        let mut buf = self.spare_for(len);
        match crate::sys::read_at_into(&f, &mut buf, len as usize, offset) {
            Ok(()) => Ok(buf),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                bail!("{key} is shorter than the index says")
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// A large range is read around the page cache where the filesystem can (a restore
    /// reads each byte of the store once: through the cache it costs a copy and memory);
    /// a small one, or where it cannot, through the cache (`get_range`).
    fn read_range(&self, key: &str, offset: u64, len: u64) -> Result<RangeRead> {
        use std::sync::atomic::Ordering::Relaxed;
        if (len as usize) < SPARE_FROM || !self.direct_ok.load(Relaxed) {
            return self.get_range(key, offset, len).map(RangeRead::whole);
        }
        let path = self.path(key)?;
        let f = match Self::opened(&self.direct, key, || {
            crate::sys::open_store_file(&path, true)
        }) {
            Ok(f) => f,
            // the filesystem cannot: every read through the cache from now on
            Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
                self.direct_ok.store(false, Relaxed);
                return self.get_range(key, offset, len).map(RangeRead::whole);
            }
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        };
        let mut buf = self.spare_for(len);
        match crate::sys::read_direct_into(&f, &mut buf, len as usize, offset) {
            Ok(start) => Ok(RangeRead { data: buf, start }),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                bail!("{key} is shorter than the index says")
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                self.direct_ok.store(false, Relaxed);
                self.recycle(buf);
                self.get_range(key, offset, len).map(RangeRead::whole)
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    fn reads_at_once(&self) -> usize {
        READERS
    }

    /// Several readers at once: a read around the page cache has no read-ahead of the
    /// kernel's, so the disk gets more than one request at a time this way.
    fn get_ranges(&self, requests: Receiver<Range>, deliver: &Sender<Fetched>) {
        let requests = std::sync::Mutex::new(requests);
        std::thread::scope(|s| {
            for _ in 0..READERS {
                s.spawn(|| {
                    loop {
                        let next = requests.lock().expect("requests").recv();
                        let Ok(r) = next else { return };
                        let got = self.read_range(&r.key, r.offset, r.len);
                        if deliver.send((r, got)).is_err() {
                            return;
                        }
                    }
                });
            }
        });
    }

    fn recycle(&self, buf: Vec<u8>) {
        let mut spare = self.spare.lock().expect("spare");
        if spare.len() < SPARE && buf.capacity() >= SPARE_FROM {
            spare.push(buf);
        }
    }

    fn drop_spare(&self) {
        self.spare.lock().expect("spare").clear();
    }

    fn create_new(&self, key: &str, data: &[u8]) -> Result<bool> {
        use std::io::Write;
        let path = self.path(key)?;
        if let Some(dir) = path.parent() {
            crate::sys::create_dirs(dir, 0o700)?;
        }
        let mut f = match crate::sys::create_exclusive(&path, 0o600) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        };
        f.write_all(data)?;
        f.sync_all()?;
        Ok(true)
    }

    fn put_stream(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        let path = self.path(key)?;
        let dir = path.parent().context("a key has a folder")?.to_path_buf();
        crate::sys::create_dirs(&dir, 0o700)
            .with_context(|| format!("creating {}", dir.display()))?;
        let tmp = dir.join(crate::sys::temp_name(path.file_name().unwrap_or_default()));
        let file = crate::sys::create_exclusive(&tmp, 0o600)
            .with_context(|| format!("creating {}", tmp.display()))?;
        Ok(Box::new(LocalWriter {
            file: Some(std::io::BufWriter::with_capacity(1 << 20, file)),
            tmp,
            path,
            dir,
        }))
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
        }
        let dir = path.parent().context("a key has a folder")?;
        // A snapshot's folder of objects (objects/<id>/) goes with its last object.
        if key.split('/').count() > 2 && std::fs::remove_dir(dir).is_ok() {
            return dir
                .parent()
                .map_or(Ok(()), crate::sys::sync_dir)
                .with_context(|| format!("removing {}", dir.display()));
        }
        // Durable before the next step: prune removes a pack only after its index is gone.
        crate::sys::sync_dir(dir).with_context(|| format!("removing {}", path.display()))
    }

    fn describe(&self) -> String {
        self.dir.display().to_string()
    }
}

struct LocalWriter {
    file: Option<std::io::BufWriter<std::fs::File>>,
    tmp: PathBuf,
    path: PathBuf,
    dir: PathBuf,
}

impl ObjectWriter for LocalWriter {
    fn write(&mut self, data: &[u8]) -> Result<()> {
        use std::io::Write;
        let f = self.file.as_mut().context("already committed")?;
        f.write_all(data)
            .with_context(|| format!("writing {}", self.tmp.display()))
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        let f = self.file.take().context("already committed")?;
        let f = f
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {}", self.tmp.display()))?;
        f.sync_all()
            .with_context(|| format!("writing {}", self.tmp.display()))?;
        drop(f);
        std::fs::rename(&self.tmp, &self.path)
            .with_context(|| format!("renaming {}", self.tmp.display()))?;
        crate::sys::sync_dir(&self.dir)?;
        Ok(())
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Large ranges are read around the page cache where the filesystem can: into an
    /// aligned place of the buffer, from the block where the range begins. Whatever the
    /// offset and length (unaligned, up to the end of the object, into a recycled buffer
    /// holding other bytes), the bytes are exactly the object's; past its end, an error.
    #[test]
    fn large_ranges_are_exactly_the_bytes_asked_for() {
        let t = tempfile::tempdir().unwrap();
        let b = LocalBackend::open(&t.path().join("s"), true).unwrap();
        // no two blocks alike and a period prime to every alignment: a range read from
        // the wrong place cannot match
        let data: Vec<u8> = (0..(3usize << 20) + 12345)
            .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
            .collect();
        b.put("packs/p", &data).unwrap();
        let direct = crate::sys::open_store_file(&t.path().join("s/packs/p"), true).is_ok();
        let n = data.len() as u64;
        let m = SPARE_FROM as u64;
        for (off, len) in [
            (0, m),
            (1, m),
            (4095, m + 1),
            (4096, 2 * m),
            (n - m, m),
            (n - m - 7, m + 7),
            (12345, n - 12345),
            (0, n),
            (5, 100),
        ] {
            let r = b.read_range("packs/p", off, len).unwrap();
            let got = r.bytes(len).unwrap();
            assert_eq!(
                got,
                &data[off as usize..(off + len) as usize],
                "{off} {len}"
            );
            if direct && len >= m {
                // read around the cache: the range sits where it does on disk, in an
                // aligned buffer
                let at = r.data.as_ptr() as usize + r.start;
                assert_eq!(at % 4096, off as usize % 4096, "{off} {len}");
            }
            b.recycle(r.data);
        }
        assert!(b.direct_ok.load(std::sync::atomic::Ordering::Relaxed) == direct);
        for (off, len) in [(n - m + 1, m), (n, m), (4096 * 1000, m)] {
            let e = b.read_range("packs/p", off, len).err().unwrap();
            assert!(format!("{e:#}").contains("shorter"), "{off} {len}: {e:#}");
        }
        // a range that came back shorter than asked for is never taken
        assert!(RangeRead::whole(vec![1, 2, 3]).bytes(4).is_err());
        let r = RangeRead {
            data: vec![0, 1, 2, 3],
            start: 1,
        };
        assert_eq!(r.bytes(3).unwrap(), &[1, 2, 3]);
        assert!(r.bytes(4).is_err());
        assert!(r.bytes(u64::MAX).is_err());
    }

    /// Review s9: the bytes of the buffer before the range (up to the aligned place) are
    /// cleared, never another range's (or uninitialised); an absurd length is an error,
    /// never a wrapped size.
    #[cfg(unix)]
    #[test]
    fn a_direct_read_holds_only_what_it_read() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        std::fs::write(&p, vec![7u8; 3 << 20]).unwrap();
        let Ok(f) = crate::sys::open_store_file(&p, true) else {
            return;
        };
        // really around the cache (O_DIRECT is 0o40000 in the flags the kernel shows)
        use std::os::fd::AsRawFd;
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", f.as_raw_fd()));
        if let Some(flags) = info.ok().and_then(|i| {
            let l = i.lines().find(|l| l.starts_with("flags:"))?.to_string();
            u32::from_str_radix(l.trim_start_matches("flags:").trim(), 8).ok()
        }) {
            assert_ne!(flags & 0o40000, 0, "flags {flags:o}");
            assert_eq!(flags & 0o4000, 0, "still non-blocking: {flags:o}");
        }
        let mut old = vec![0xEEu8; (2 << 20) + 8192];
        old.clear();
        let start = crate::sys::read_direct_into(&f, &mut old, 1 << 20, 4096 + 5).unwrap();
        assert!(!old.contains(&0xEE), "bytes no read wrote (start {start})");
        assert_eq!(&old[start..start + (1 << 20)], &vec![7u8; 1 << 20][..]);
        for len in [usize::MAX - 4095, usize::MAX, usize::MAX - 100, 2 << 30] {
            let mut buf = Vec::with_capacity(1 << 20);
            assert!(
                crate::sys::read_direct_into(&f, &mut buf, len, 5).is_err(),
                "{len}"
            );
        }
    }

    /// Review s9: a FIFO or a symlink planted in the store as a pack is refused at once,
    /// through the cache and around it (an open of a FIFO waited for a writer forever; a
    /// link was followed), and one pack that cannot be opened does not turn the reads
    /// around the cache off for the rest.
    #[cfg(unix)]
    #[test]
    fn a_planted_pack_is_refused_not_waited_for() {
        let t = tempfile::tempdir().unwrap();
        let b = std::sync::Arc::new(LocalBackend::open(&t.path().join("s"), true).unwrap());
        b.put("packs/q", &vec![3u8; 2 << 20]).unwrap();
        let direct = crate::sys::open_store_file(&t.path().join("s/packs/q"), true).is_ok();
        let fifo = t.path().join("s/packs/fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        std::fs::write(t.path().join("secret"), vec![9u8; 2 << 20]).unwrap();
        std::os::unix::fs::symlink(t.path().join("secret"), t.path().join("s/packs/link")).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let b2 = b.clone();
        std::thread::spawn(move || {
            let r: Vec<bool> = ["packs/fifo", "packs/link", "packs/missing"]
                .iter()
                .flat_map(|k| {
                    [
                        b2.read_range(k, 0, 1 << 20).is_err(),
                        b2.get_range(k, 0, 10).is_err(),
                    ]
                })
                .collect();
            let _ = tx.send(r);
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(10));
        if got.is_err() {
            // let the stuck reader go before failing
            let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
        }
        assert_eq!(got.ok(), Some(vec![true; 6]), "a read hung or succeeded");
        assert_eq!(
            b.direct_ok.load(std::sync::atomic::Ordering::Relaxed),
            direct
        );
        assert_eq!(
            b.read_range("packs/q", 1, 1 << 20)
                .unwrap()
                .bytes(1 << 20)
                .unwrap()[0],
            3
        );
    }

    #[test]
    fn keys_cannot_escape() {
        let t = tempfile::tempdir().unwrap();
        let b = LocalBackend::open(t.path(), false).unwrap();
        assert!(b.put("../x", b"1").is_err());
        assert!(b.put("a//b", b"1").is_err());
        assert!(b.put("/abs", b"1").is_err());
        assert!(b.get("a/../../etc/passwd").is_err());
    }

    #[test]
    fn put_get_list_delete() {
        let t = tempfile::tempdir().unwrap();
        let b = LocalBackend::open(&t.path().join("s"), true).unwrap();
        b.put("snapshots/a.json", b"1").unwrap();
        b.put("objects/a/state.json", b"2").unwrap();
        std::fs::write(t.path().join("s/snapshots/.b.json.carryover-tmp-1"), b"x").unwrap();
        assert_eq!(b.list("snapshots/").unwrap(), vec!["snapshots/a.json"]);
        assert_eq!(b.get("objects/a/state.json").unwrap().unwrap(), b"2");
        b.delete("snapshots/a.json").unwrap();
        assert!(b.get("snapshots/a.json").unwrap().is_none());
        let m = std::fs::metadata(t.path().join("s/objects/a/state.json")).unwrap();
        #[cfg(unix)]
        assert_eq!(crate::sys::mode_of(&m), 0o600);
        #[cfg(windows)]
        assert!(m.is_file());
    }
}
