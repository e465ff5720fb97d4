//! Restoring data paths: the tree streamed in order, directories made as they come, file
//! contents written by worker threads under temporary names and renamed, hard links and
//! directory metadata last. A hostile tree (`..`, absolute names, paths through a symlink,
//! absurd sizes, entries out of order) is refused entry by entry; nothing is written
//! outside the target; a damaged chunk fails only its file, which is named.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;

use anyhow::{Result, anyhow, bail};
use crossbeam_channel::bounded;

use super::node::{Kind, Node, check_path, path_cmp};
use super::repo::{self, Index};
use super::tree::TreeReader;
use super::{DataManifest, Progress};
use crate::store::Store;
use crate::sys::{self, Root};

/// Nothing real is larger (ext4's limit is 16 TiB): a bigger size is a hostile tree.
const MAX_FILE_SIZE: u64 = 1 << 50;
const WORKERS: usize = 4;

/// What a data restore did.
#[derive(Debug, Default)]
pub struct DataRestore {
    pub files: u64,
    pub bytes: u64,
    /// `path: reason` for everything that could not be restored.
    pub failed: Vec<String>,
}

/// User and group names of the target root (not the host's): a fresh OS gives system
/// accounts other ids, so owners are restored by name first.
pub struct Owners {
    users: HashMap<String, u32>,
    groups: HashMap<String, u32>,
}

impl Owners {
    pub fn of(root: &Root) -> Owners {
        let (users, groups) = crate::state::accounts::load(root);
        Owners {
            users: users.into_iter().map(|u| (u.name, u.uid)).collect(),
            groups: groups.into_iter().map(|g| (g.name, g.gid)).collect(),
        }
    }

    fn ids(&self, n: &Node) -> (u32, u32) {
        let uid = n
            .user
            .as_ref()
            .and_then(|u| self.users.get(u))
            .copied()
            .unwrap_or(n.uid);
        let gid = n
            .group
            .as_ref()
            .and_then(|g| self.groups.get(g))
            .copied()
            .unwrap_or(n.gid);
        (uid, gid)
    }
}

/// Restores every data path of a snapshot under `root`.
pub fn restore(
    store: &Store,
    index: Index,
    root: &Root,
    data: &DataManifest,
    progress: &Progress,
) -> Result<DataRestore> {
    let index = Arc::new(Mutex::new(index));
    let owners = Arc::new(Owners::of(root));
    let mut out = DataRestore::default();
    for r in &data.roots {
        if !r.path.starts_with('/') || !check_path(r.path.trim_start_matches('/').as_bytes()) {
            out.failed
                .push(format!("{}: not a valid data path; refused", r.path));
            continue;
        }
        let dest = root.path(&r.path);
        if let Err(e) = std::fs::create_dir_all(&dest) {
            out.failed.push(format!("{}: {e}", r.path));
            continue;
        }
        let ids = r.tree_ids()?;
        let reader = TreeReader::new(store.clone(), index.clone(), ids);
        restore_root(
            store, &index, &owners, &r.path, &dest, reader, progress, &mut out,
        )?;
    }
    sys::sync_all_filesystems();
    Ok(out)
}

struct Job {
    host: PathBuf,
    shown: String,
    node: Node,
    /// Its directory was made by this restore: nothing can be in the way.
    fresh: bool,
}

#[allow(clippy::too_many_arguments)]
fn restore_root(
    store: &Store,
    index: &Arc<Mutex<Index>>,
    owners: &Arc<Owners>,
    shown_root: &str,
    dest: &Path,
    mut reader: TreeReader,
    progress: &Progress,
    out: &mut DataRestore,
) -> Result<()> {
    let (tx, rx) = bounded::<Job>(1024);
    let results = Arc::new(Mutex::new(DataRestore::default()));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let rx = rx.clone();
            let store = store.clone();
            let index = index.clone();
            let owners = owners.clone();
            let results = results.clone();
            thread::spawn(move || {
                for job in rx {
                    let r = write_file(&store, &index, &owners, &job);
                    let mut res = results.lock().expect("results");
                    match r {
                        Ok(n) => {
                            res.files += 1;
                            res.bytes += n;
                        }
                        Err(e) => res.failed.push(format!("{}: {e:#}", job.shown)),
                    }
                }
            })
        })
        .collect();
    drop(rx);

    let mut dirs: HashSet<Vec<u8>> = HashSet::new();
    let mut fresh_dirs: HashSet<Vec<u8>> = HashSet::new();
    let mut deferred_dirs: Vec<(PathBuf, String, Node)> = Vec::new();
    let mut links: Vec<(PathBuf, String, Node)> = Vec::new();
    let mut prev: Option<Vec<u8>> = None;
    let shown = |p: &[u8]| {
        if p.is_empty() {
            shown_root.to_string()
        } else {
            format!(
                "{}/{}",
                shown_root.trim_end_matches('/'),
                String::from_utf8_lossy(p)
            )
        }
    };
    let mut tree_error = None;
    loop {
        let node = match reader.next_node() {
            Ok(Some(n)) => n,
            Ok(None) => break,
            Err(e) => {
                tree_error = Some(e);
                break;
            }
        };
        let name = shown(&node.path);
        let in_order = prev
            .as_ref()
            .is_none_or(|p| path_cmp(p, &node.path).is_lt());
        if !check_path(&node.path) || !in_order {
            out.failed.push(format!(
                "{name}: invalid or out-of-order entry in the snapshot; refused"
            ));
            continue;
        }
        prev = Some(node.path.clone());
        let parent = match node.path.iter().rposition(|c| *c == b'/') {
            Some(i) => node.path[..i].to_vec(),
            None => Vec::new(),
        };
        if !node.path.is_empty() && !dirs.contains(&parent) {
            out.failed.push(format!(
                "{name}: its parent is not a directory of the snapshot; refused"
            ));
            continue;
        }
        let host = if node.path.is_empty() {
            dest.to_path_buf()
        } else {
            dest.join(sys::os_from_bytes(&node.path))
        };
        match node.kind {
            Kind::Dir => match ensure_dir(&host) {
                Ok(created) => {
                    if created {
                        fresh_dirs.insert(node.path.clone());
                    }
                    dirs.insert(node.path.clone());
                    deferred_dirs.push((host, name, node));
                }
                Err(e) => out.failed.push(format!("{name}: {e}")),
            },
            Kind::File => {
                if node.path.is_empty() {
                    out.failed
                        .push(format!("{name}: a data path must be a directory"));
                    continue;
                }
                progress.file();
                let fresh = fresh_dirs.contains(&parent);
                if tx
                    .send(Job {
                        host,
                        shown: name,
                        node,
                        fresh,
                    })
                    .is_err()
                {
                    bail!("the restore workers stopped");
                }
            }
            Kind::Hardlink => links.push((host, name, node)),
            Kind::Symlink | Kind::Fifo | Kind::Char | Kind::Block => {
                if let Err(e) = make_other(&host, &node, owners) {
                    out.failed.push(format!("{name}: {e:#}"));
                }
            }
        }
    }
    drop(tx);
    for w in workers {
        w.join().map_err(|_| anyhow!("a restore worker panicked"))?;
    }
    {
        let mut r = results.lock().expect("results");
        out.files += r.files;
        out.bytes += r.bytes;
        progress.bytes(r.bytes);
        out.failed.append(&mut r.failed);
    }
    for (host, name, node) in links {
        match make_hardlink(dest, &host, &node) {
            Ok(()) => out.files += 1,
            Err(e) => out.failed.push(format!("{name}: {e:#}")),
        }
    }
    for (host, name, node) in deferred_dirs.iter().rev() {
        if let Err(e) = apply_meta(host, node, owners, false) {
            out.failed.push(format!("{name}: {e:#}"));
        }
    }
    if let Some(e) = tree_error {
        out.failed.push(format!(
            "{shown_root}: the rest of the tree cannot be read: {e:#}"
        ));
    }
    Ok(())
}

/// Makes `host` a real directory (a file or symlink in the way is removed, never
/// followed); true when it made a new, empty one.
fn ensure_dir(host: &Path) -> std::io::Result<bool> {
    match std::fs::create_dir(host) {
        Ok(()) => return Ok(true),
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
        Err(_) => {}
    }
    if std::fs::symlink_metadata(host)?.is_dir() {
        return Ok(false);
    }
    std::fs::remove_file(host)?;
    std::fs::create_dir(host)?;
    Ok(true)
}

fn temp_of(host: &Path) -> PathBuf {
    static PID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let pid = PID.get_or_init(|| format!(".carryover-tmp-{}", std::process::id()));
    let name = host.file_name().unwrap_or_default();
    let mut t = std::ffi::OsString::from(sys::TEMP_LEAD);
    t.push(name);
    t.push(pid);
    host.with_file_name(t)
}

/// Creates a new file exclusively, never through a symlink; a stale temporary file of
/// an interrupted run is removed first.
fn create_temp(tmp: &Path) -> std::io::Result<File> {
    let open = || sys::create_new_nofollow(tmp);
    match open() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(tmp)?;
            open()
        }
        r => r,
    }
}

/// Puts the temporary file in place; a directory in the way is not removed.
fn put_in_place(tmp: &Path, host: &Path) -> Result<()> {
    if std::fs::symlink_metadata(host).is_ok_and(|m| m.is_dir()) {
        let _ = std::fs::remove_file(tmp);
        bail!("a directory is in the way");
    }
    std::fs::rename(tmp, host).map_err(|e| {
        let _ = std::fs::remove_file(tmp);
        anyhow!("renaming into place: {e}")
    })
}

/// Writes one regular file; returns the bytes written.
fn write_file(store: &Store, index: &Mutex<Index>, owners: &Owners, job: &Job) -> Result<u64> {
    let n = &job.node;
    if n.size > MAX_FILE_SIZE {
        bail!("size {} is not plausible; refused", n.size);
    }
    let extents_ok = match &n.extents {
        None => true,
        Some(ex) => {
            let mut end = 0u64;
            ex.iter().all(|(o, l)| {
                let ok = *o >= end && o.checked_add(*l).is_some_and(|e| e <= n.size);
                end = o + l;
                ok
            })
        }
    };
    if !extents_ok {
        bail!("its data regions do not fit its size; refused");
    }
    // Already there from an earlier, interrupted run or on a surviving data disk.
    if job.fresh {
    } else if let Ok(m) = std::fs::symlink_metadata(&job.host) {
        let fm = sys::file_meta(&m);
        if m.is_file()
            && fm.size == n.size
            && fm.mtime == n.mtime
            && fm.mtime_ns == n.mtime_ns
            && fm.nlink == 1
        {
            apply_meta(&job.host, n, owners, false)?;
            return Ok(0);
        }
    }
    let tmp = temp_of(&job.host);
    let result = (|| -> Result<u64> {
        let f = create_temp(&tmp)?;
        let written = write_content(store, index, &f, n)?;
        if n.extents.is_some() || written != n.size {
            f.set_len(n.size)?;
        }
        drop(f);
        apply_meta(&tmp, n, owners, false)?;
        Ok(written)
    })();
    match result {
        Ok(w) => {
            if job.fresh {
                std::fs::rename(&tmp, &job.host).map_err(|e| {
                    let _ = std::fs::remove_file(&tmp);
                    anyhow!("renaming into place: {e}")
                })?;
            } else {
                put_in_place(&tmp, &job.host)?;
            }
            Ok(w)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Writes the chunks into the file, at the data regions of a sparse file.
fn write_content(store: &Store, index: &Mutex<Index>, f: &File, n: &Node) -> Result<u64> {
    let expected = n.data_len();
    let regions = n.extents.clone().unwrap_or_else(|| vec![(0, n.size)]);
    let mut region = 0usize;
    let mut in_region = 0u64;
    let mut written = 0u64;
    for id in n.chunk_ids() {
        let data = repo::read_blob(store, index, &id)?;
        let mut rest = &data[..];
        while !rest.is_empty() {
            let Some(&(off, len)) = regions.get(region) else {
                bail!("the content is longer than its size; refused");
            };
            if in_region == len {
                region += 1;
                in_region = 0;
                continue;
            }
            let take = ((len - in_region) as usize).min(rest.len());
            sys::write_at(f, &rest[..take], off + in_region)?;
            in_region += take as u64;
            rest = &rest[take..];
        }
        written += data.len() as u64;
    }
    if written != expected {
        bail!("the content ({written} bytes) does not match its size ({expected}); refused");
    }
    Ok(written)
}

/// Symlinks, FIFOs and device nodes.
fn make_other(host: &Path, n: &Node, owners: &Owners) -> Result<()> {
    let tmp = temp_of(host);
    let _ = std::fs::remove_file(&tmp);
    match n.kind {
        Kind::Symlink => sys::symlink(Path::new(&sys::os_from_bytes(&n.target)), &tmp)?,
        Kind::Fifo => sys::make_special(&tmp, "fifo", n.mode, 0)?,
        Kind::Char => sys::make_special(&tmp, "char", n.mode, n.rdev)?,
        Kind::Block => sys::make_special(&tmp, "block", n.mode, n.rdev)?,
        _ => bail!("not a special file"),
    }
    if let Err(e) = apply_meta(&tmp, n, owners, n.kind == Kind::Symlink) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    put_in_place(&tmp, host)
}

/// A second name of a file restored before; only ever to a regular file of this tree.
fn make_hardlink(dest: &Path, host: &Path, n: &Node) -> Result<()> {
    if n.target.is_empty() || !check_path(&n.target) {
        bail!("hard link to an invalid path; refused");
    }
    let first = dest.join(sys::os_from_bytes(&n.target));
    // Every directory on the way must be real: no path through a symlink.
    let mut p = dest.to_path_buf();
    for c in n.target.split(|c| *c == b'/') {
        p.push(sys::os_from_bytes(c));
        let m = std::fs::symlink_metadata(&p)?;
        if m.file_type().is_symlink() {
            bail!("hard link through a symlink; refused");
        }
    }
    if !std::fs::symlink_metadata(&first)?.is_file() {
        bail!("hard link to something that is not a file; refused");
    }
    if std::fs::symlink_metadata(host)
        .is_ok_and(|m| std::fs::symlink_metadata(&first).is_ok_and(|f| sys::same_file(&f, &m)))
    {
        return Ok(());
    }
    let tmp = temp_of(host);
    let _ = std::fs::remove_file(&tmp);
    std::fs::hard_link(&first, &tmp)?;
    put_in_place(&tmp, host)
}

/// Owner (by name), mode, extended attributes, then times — in that order, since chown
/// clears setuid bits and every change moves ctime.
fn apply_meta(path: &Path, n: &Node, owners: &Owners, symlink: bool) -> Result<()> {
    let (uid, gid) = owners.ids(n);
    sys::lchown(path, uid, gid).map_err(|e| anyhow!("setting the owner: {e}"))?;
    if !symlink {
        sys::set_mode(path, n.mode & 0o7777).map_err(|e| anyhow!("setting the mode: {e}"))?;
    }
    for x in &n.xattrs {
        if let Err(e) = sys::set_xattr(path, &x.name, &x.value) {
            bail!(
                "setting the extended attribute {}: {e}",
                String::from_utf8_lossy(&x.name)
            );
        }
    }
    sys::set_times_nofollow(path, n.mtime, n.mtime_ns)
        .map_err(|e| anyhow!("setting the times: {e}"))?;
    Ok(())
}
