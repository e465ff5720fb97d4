//! The store that survives a Change OS: snapshots (a manifest written last and atomically,
//! so a snapshot is either complete and listed or absent), their objects, and the restore
//! journal. Objects go through a `Backend`, so a directory on a data disk and S3-compatible
//! object storage look the same to everything above.

pub mod backend;
pub mod crypto;
pub mod s3;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

pub use backend::{Backend, LocalBackend};

use crate::config::Config;
use crate::error::Error;

/// The version of the store layout.
pub const STORE_FORMAT: u32 = 1;
/// The version of the snapshot manifest.
pub const MANIFEST_FORMAT: u32 = 1;

const MARKER: &str = "carryover-store.json";

/// A reference to one object of a snapshot, with its checksum.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjectRef {
    pub key: String,
    pub size: u64,
    pub blake3: String,
}

/// The manifest of a snapshot: the last thing written; its presence commits the snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Manifest {
    pub format: u32,
    pub id: String,
    pub instance_id: Option<String>,
    pub hostname: String,
    pub created_at: String,
    pub agent_version: String,
    /// The state object and, when there is one, the root-only secrets object.
    pub state: Option<ObjectRef>,
    pub secrets: Option<ObjectRef>,
    /// Data-path statistics (the data engine fills these in).
    pub files: u64,
    pub bytes: u64,
    pub stored_bytes: u64,
    /// Things that could not be captured, by path.
    pub skipped: Vec<crate::state::Problem>,
    /// The data paths, when any were captured.
    pub data: Option<crate::data::DataManifest>,
    /// The system that took the snapshot (the old-system marker): restore refuses to run
    /// on it unless the snapshot is named.
    pub origin: Option<crate::origin::Origin>,
    /// In an encrypted store: the MAC of every other field (see `Store::commit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            format: MANIFEST_FORMAT,
            id: String::new(),
            instance_id: None,
            hostname: String::new(),
            created_at: String::new(),
            agent_version: env!("CARGO_PKG_VERSION").into(),
            state: None,
            secrets: None,
            files: 0,
            bytes: 0,
            stored_bytes: 0,
            skipped: Vec::new(),
            data: None,
            origin: None,
            mac: None,
        }
    }
}

/// An opened store (cheap to clone: the backend is shared).
#[derive(Clone)]
pub struct Store {
    backend: std::sync::Arc<dyn Backend>,
    crypto: Option<std::sync::Arc<crypto::Crypto>>,
}

/// Where the store is: `file:///dir`, a plain path, or `s3://bucket/prefix`.
pub fn resolve_url(cli: Option<&str>, config: &Config) -> Result<String, Error> {
    cli.map(str::to_string)
        .or_else(|| config.store.url.clone())
        .ok_or_else(|| {
            Error::Usage("no store: give --store URL or set [store] url in the config".into())
        })
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.backend.describe())
    }
}

impl Store {
    /// Opens the store at `url`; `create` makes a local one that does not exist yet.
    /// With a key, the store must be (or becomes) an encrypted one; without, a plain one.
    pub fn open(
        url: &str,
        _config: &Config,
        create: bool,
        key: Option<crypto::Crypto>,
    ) -> Result<Store> {
        if url.starts_with("s3://") {
            let store = Store {
                backend: std::sync::Arc::new(s3::S3Backend::open(url, _config)?),
                crypto: key.map(std::sync::Arc::new),
            };
            store.check_marker(create)?;
            return Ok(store);
        }
        let path = match url.strip_prefix("file://") {
            Some(p) => p,
            None if url.contains("://") => {
                return Err(Error::Usage(format!("unsupported store URL '{url}'")).into());
            }
            None => url,
        };
        let backend = LocalBackend::open(std::path::Path::new(path), create)?;
        let store = Store {
            backend: std::sync::Arc::new(backend),
            crypto: key.map(std::sync::Arc::new),
        };
        store.check_marker(create)?;
        Ok(store)
    }

    fn check_marker(&self, create: bool) -> Result<()> {
        match self.backend.get(MARKER)? {
            Some(bytes) => {
                let v: serde_json::Value = serde_json::from_slice(&bytes)
                    .with_context(|| format!("{} is damaged", MARKER))?;
                let format = v["format"].as_u64().unwrap_or(0);
                if format > STORE_FORMAT as u64 {
                    bail!(
                        "the store has format {format}, newer than this carryover understands ({STORE_FORMAT})"
                    );
                }
                let check = v["encryption"]["key_check"].as_str();
                match (check, &self.crypto) {
                    (None, None) => {}
                    (Some(_), None) => bail!(
                        "{} is encrypted: set [store] encryption_key_file to its key",
                        self.describe()
                    ),
                    (None, Some(_)) => bail!(
                        "{} is not encrypted, but [store] encryption_key_file is set: use another store for encrypted snapshots",
                        self.describe()
                    ),
                    (Some(c), Some(k)) if c != k.key_check() => bail!(
                        "the key in [store] encryption_key_file is not the key of {}",
                        self.describe()
                    ),
                    (Some(_), Some(_)) => {}
                }
            }
            None if create => {
                let mut marker =
                    serde_json::json!({"format": STORE_FORMAT, "created_by": "carryover"});
                if let Some(k) = &self.crypto {
                    marker["encryption"] = serde_json::json!({
                        "cipher": "xchacha20poly1305",
                        "key_check": k.key_check(),
                    });
                }
                self.backend.put(MARKER, marker.to_string().as_bytes())?;
            }
            None => bail!(
                "{} is not a carryover store (no {MARKER})",
                self.backend.describe()
            ),
        }
        Ok(())
    }

    /// The id of a blob with this content (keyed when the store is encrypted).
    pub fn blob_id(&self, raw: &[u8]) -> [u8; 32] {
        match &self.crypto {
            Some(c) => c.blob_id(raw),
            None => *blake3::hash(raw).as_bytes(),
        }
    }

    /// Encrypts what goes into the store (a no-op for a plain store).
    pub fn seal(&self, data: Vec<u8>) -> Vec<u8> {
        match &self.crypto {
            Some(c) => c.seal(&data),
            None => data,
        }
    }

    /// Decrypts and authenticates what comes out of the store.
    pub fn unseal(&self, data: Vec<u8>) -> Result<Vec<u8>> {
        match &self.crypto {
            Some(c) => c.open(&data),
            None => Ok(data),
        }
    }

    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    /// The backend, for the snapshot engine's packs and indexes.
    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    /// Writes an object of a snapshot that is being built; returns its checksummed reference.
    pub fn put_object(&self, snapshot: &str, name: &str, data: &[u8]) -> Result<ObjectRef> {
        let key = format!("objects/{snapshot}/{name}");
        let data = &self.seal(data.to_vec());
        self.backend.put(&key, data)?;
        Ok(ObjectRef {
            key,
            size: data.len() as u64,
            blake3: blake3::hash(data).to_hex().to_string(),
        })
    }

    /// Reads an object and checks its size and checksum.
    pub fn get_object(&self, r: &ObjectRef) -> Result<Vec<u8>> {
        let data = self
            .backend
            .get(&r.key)?
            .with_context(|| format!("object {} is missing from the store", r.key))?;
        let hash = blake3::hash(&data).to_hex().to_string();
        if data.len() as u64 != r.size || hash != r.blake3 {
            bail!(
                "object {} is damaged: checksum {} does not match the manifest's {}",
                r.key,
                hash,
                r.blake3
            );
        }
        self.unseal(data)
            .with_context(|| format!("object {}", r.key))
    }

    /// An object's content without the checksum check (to save what can be saved of a
    /// damaged one).
    pub fn get_object_unchecked(&self, r: &ObjectRef) -> Option<Vec<u8>> {
        let data = self.backend.get(&r.key).ok().flatten()?;
        self.unseal(data).ok()
    }

    /// Commits a snapshot: the manifest is written last, atomically.
    pub fn commit(&self, manifest: &Manifest) -> Result<()> {
        let mut manifest = manifest.clone();
        manifest.mac = None;
        if let Some(c) = &self.crypto {
            // every field authenticated: the data roots, the objects' checksums, the
            // origin, the time — the manifest stays readable for `snapshots list`
            manifest.mac = Some(c.mac(&serde_json::to_vec(&manifest)?));
        }
        let json = serde_json::to_vec_pretty(&manifest)?;
        self.backend
            .put(&format!("snapshots/{}.json", manifest.id), &json)
            .context("committing the snapshot manifest")
    }

    /// The ids of all committed snapshots (whether or not their manifests can be read),
    /// oldest first.
    pub fn ids(&self) -> Result<Vec<String>> {
        let mut ids: Vec<String> = self
            .backend
            .list("snapshots/")?
            .into_iter()
            .filter_map(|key| {
                key.strip_prefix("snapshots/")
                    .and_then(|k| k.strip_suffix(".json"))
                    .map(str::to_string)
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// All committed snapshots, oldest first.
    pub fn list(&self) -> Result<Vec<Manifest>> {
        let mut out = Vec::new();
        for id in self.ids()? {
            match self.manifest(&id) {
                Ok(m) => out.push(m),
                Err(e) => tracing::warn!("snapshot {id}: {e:#}"),
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// The snapshot a user means: `latest` (the newest snapshot of `instance`, this
    /// machine's, asked for only then), a full id, or a unique prefix of one. An
    /// ambiguous prefix, or `latest` without a snapshot of the instance, is a usage error
    /// that lists the candidates.
    pub fn resolve(
        &self,
        spec: &str,
        instance: impl FnOnce() -> Option<String>,
    ) -> Result<Manifest> {
        if spec == LATEST {
            return self.latest(instance().as_deref());
        }
        backend::check_name(spec)
            .map_err(|_| Error::Usage(format!("'{spec}' is not a snapshot id")))?;
        let ids = self.ids()?;
        if ids.iter().any(|i| i == spec) {
            return self.manifest(spec);
        }
        let found: Vec<&String> = ids.iter().filter(|i| i.starts_with(spec)).collect();
        match found[..] {
            [] => bail!("no snapshot '{spec}' in {}", self.describe()),
            [one] => self.manifest(one),
            _ => Err(Error::Usage(format!(
                "'{spec}' is the start of {} snapshot ids: {}; give more of the id",
                found.len(),
                shortlist(found.iter().map(|s| s.as_str()))
            ))
            .into()),
        }
    }

    /// The newest snapshot of an instance.
    fn latest(&self, instance: Option<&str>) -> Result<Manifest> {
        let Some(instance) = instance else {
            return Err(Error::Usage(
                "this machine's instance id is unknown: name the snapshot by its id".into(),
            )
            .into());
        };
        let all = self.list()?;
        if let Some(m) = all
            .iter()
            .rev()
            .find(|m| m.instance_id.as_deref() == Some(instance))
        {
            return Ok(m.clone());
        }
        let others = all
            .iter()
            .map(|m| format!("{} ({})", m.id, m.instance_id.as_deref().unwrap_or("?")));
        let unreadable = self.ids()?.len().saturating_sub(all.len());
        Err(Error::Usage(format!(
            "no snapshot of instance {instance} in {}; snapshots there: {}{}. Name one by its id to use it here",
            self.describe(),
            if all.is_empty() {
                "none".into()
            } else {
                shortlist(others)
            },
            if unreadable > 0 {
                format!("; {unreadable} snapshot manifests cannot be read (damaged? `carryover snapshots verify` names them)")
            } else {
                String::new()
            }
        ))
        .into())
    }

    /// One snapshot's manifest.
    pub fn manifest(&self, id: &str) -> Result<Manifest> {
        backend::check_name(id)?;
        let bytes = self
            .backend
            .get(&format!("snapshots/{id}.json"))?
            .with_context(|| format!("no snapshot '{id}' in {}", self.describe()))?;
        let mut m: Manifest = serde_json::from_slice(&bytes)
            .with_context(|| format!("the manifest of snapshot {id} is damaged"))?;
        if let Some(c) = &self.crypto {
            let given = m.mac.take();
            let expected = c.mac(&serde_json::to_vec(&m)?);
            if given.as_deref() != Some(expected.as_str()) {
                bail!(
                    "the manifest of snapshot {id} is not authenticated by this store's key: it was edited or forged (or written without the key); refused"
                );
            }
        }
        if m.format > MANIFEST_FORMAT {
            bail!(
                "snapshot {id} has manifest format {}, newer than this carryover",
                m.format
            );
        }
        if m.id != id {
            bail!(
                "the manifest of snapshot {id} names another snapshot ({})",
                m.id
            );
        }
        Ok(m)
    }

    /// Packs without an index (a capture killed before it wrote the index): removed.
    /// Only called under the store lock.
    pub fn remove_unindexed_packs(&self) -> Result<Vec<String>> {
        let indexed: std::collections::HashSet<String> = self
            .backend
            .list("index/")?
            .into_iter()
            .filter_map(|k| k.strip_prefix("index/").map(str::to_string))
            .collect();
        let mut removed = Vec::new();
        for key in self.backend.list("packs/")? {
            let id = key.rsplit('/').next().unwrap_or("");
            if !indexed.contains(id) {
                self.backend.delete(&key)?;
                removed.push(key);
            }
        }
        Ok(removed)
    }

    /// Objects of snapshots that were never committed (a capture killed mid-way), and
    /// the objects and journals of forgotten snapshots: removed, so they cannot pile up.
    /// A snapshot whose manifest cannot be read is still committed: its objects stay.
    /// Only called under the store lock.
    pub fn remove_orphans(&self) -> Result<Vec<String>> {
        let committed: std::collections::HashSet<String> = self.ids()?.into_iter().collect();
        let mut removed = Vec::new();
        for key in self.backend.list("objects/")? {
            let id = key.split('/').nth(1).unwrap_or("");
            if !id.is_empty() && !committed.contains(id) {
                self.backend.delete(&key)?;
                removed.push(key);
            }
        }
        for key in self.backend.list("journal/")? {
            let id = key
                .strip_prefix("journal/")
                .and_then(|k| k.strip_suffix(".json"))
                .unwrap_or("");
            if !id.is_empty() && !committed.contains(id) {
                self.backend.delete(&key)?;
                removed.push(key);
            }
        }
        Ok(removed)
    }

    /// Reads a small named document (journal, status) — `None` when absent.
    pub fn get_doc(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self.backend.get(key)? {
            Some(b) => Ok(Some(self.unseal(b).with_context(|| key.to_string())?)),
            None => Ok(None),
        }
    }

    /// Writes a small named document atomically.
    pub fn put_doc(&self, key: &str, data: &[u8]) -> Result<()> {
        self.backend.put(key, &self.seal(data.to_vec()))
    }
}

/// What names the newest snapshot of this machine's instance wherever an id is taken.
pub const LATEST: &str = "latest";

/// Up to ten names, then how many more.
fn shortlist<'a>(names: impl Iterator<Item = impl Into<String> + 'a>) -> String {
    let all: Vec<String> = names.map(Into::into).collect();
    let mut out = all.iter().take(10).cloned().collect::<Vec<_>>().join(", ");
    if all.len() > 10 {
        out.push_str(&format!(" and {} more", all.len() - 10));
    }
    out
}

/// The directory of a local store URL (`file:///dir` or a plain path); `None` for S3.
pub fn local_dir(url: &str) -> Option<&std::path::Path> {
    if url.starts_with("s3://") {
        return None;
    }
    Some(std::path::Path::new(
        url.strip_prefix("file://").unwrap_or(url),
    ))
}

/// A new snapshot id: sortable by time, unique by a random suffix.
pub fn new_snapshot_id() -> String {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!(
        "[year][month][day]T[hour][minute][second][subsecond digits:3]Z"
    );
    let suffix: u32 = rand::random();
    format!("{}-{suffix:08x}", now.format(&fmt).unwrap_or_default())
}

/// The current time as RFC 3339.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A Unix time as RFC 3339.
pub fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}
