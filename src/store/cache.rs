//! A local copy of a remote store's pack indexes (`<root>/var/lib/carryover/cache/<store
//! id>/`), so a second command does not fetch them again. Pack indexes never change once
//! written; each copy carries the BLAKE3 hash of its content and is checked on every read
//! (the cache is untrusted too): a copy that does not match, or is not a plain file, is
//! fetched again.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::Backend;

/// The cache of one store.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// The cache of the store `id` under `base` (made when first written).
    pub fn new(base: &Path, id: &str) -> Cache {
        Cache { dir: base.join(id) }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key.replace('/', "_"))
    }

    /// The cached content of `key`, when a copy is there and intact.
    fn read(&self, key: &str) -> Option<Vec<u8>> {
        let path = self.path(key);
        if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_file()) {
            return None;
        }
        let mut bytes = crate::sys::read_opt(&path).ok()??;
        if bytes.len() < 32 || blake3::hash(&bytes[32..]).as_bytes() != &bytes[..32] {
            tracing::warn!("{}: a damaged cache entry, fetched again", path.display());
            return None;
        }
        Some(bytes.split_off(32))
    }

    fn write(&self, key: &str, data: &[u8]) -> std::io::Result<()> {
        crate::sys::create_dirs(&self.dir, 0o700)?;
        let mut out = blake3::hash(data).as_bytes().to_vec();
        out.extend_from_slice(data);
        crate::sys::write_atomic(&self.path(key), &out, 0o600)
    }

    /// Reads `keys` from the cache, the rest from the backend (concurrently), and keeps
    /// what was fetched; copies of keys no longer listed are removed.
    pub fn get_many(&self, backend: &dyn Backend, keys: &[String]) -> Vec<Result<Option<Vec<u8>>>> {
        let mut out: Vec<Option<Result<Option<Vec<u8>>>>> = keys
            .iter()
            .map(|k| self.read(k).map(|d| Ok(Some(d))))
            .collect();
        let missing: Vec<String> = keys
            .iter()
            .zip(&out)
            .filter(|(_, o)| o.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        let mut fetched = backend.get_many(&missing).into_iter();
        for (slot, key) in out.iter_mut().zip(keys) {
            if slot.is_none() {
                let got = fetched.next().unwrap_or_else(|| Ok(None));
                if let Ok(Some(d)) = &got
                    && let Err(e) = self.write(key, d)
                {
                    tracing::warn!("caching {key}: {e}");
                }
                *slot = Some(got);
            }
        }
        self.forget_others(keys);
        out.into_iter().map(|o| o.unwrap_or(Ok(None))).collect()
    }

    fn forget_others(&self, keys: &[String]) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let keep: std::collections::HashSet<PathBuf> = keys.iter().map(|k| self.path(k)).collect();
        for e in entries.flatten() {
            if !keep.contains(&e.path()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LocalBackend;

    #[test]
    fn a_cached_copy_is_used_and_a_damaged_one_fetched_again() {
        let t = tempfile::tempdir().unwrap();
        let b = LocalBackend::open(&t.path().join("s"), true).unwrap();
        b.put("index/aa", b"first").unwrap();
        let cache = Cache::new(&t.path().join("cache"), "0123");
        let keys = vec!["index/aa".to_string()];
        assert_eq!(
            cache.get_many(&b, &keys)[0].as_ref().unwrap().as_deref(),
            Some(&b"first"[..])
        );
        // served from the cache: the store's copy is not read again
        b.put("index/aa", b"changed").unwrap();
        assert_eq!(
            cache.get_many(&b, &keys)[0].as_ref().unwrap().as_deref(),
            Some(&b"first"[..])
        );
        // a flipped byte in the cache: the store is asked again
        let p = t.path().join("cache/0123/index_aa");
        let mut bytes = std::fs::read(&p).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&p, bytes).unwrap();
        assert_eq!(
            cache.get_many(&b, &keys)[0].as_ref().unwrap().as_deref(),
            Some(&b"changed"[..])
        );
        // a key no longer listed leaves the cache
        cache.get_many(&b, &[]);
        assert!(!p.exists());
    }
}
