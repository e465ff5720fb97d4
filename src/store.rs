//! The store that survives a Change OS: snapshots (a manifest written last and atomically,
//! so a snapshot is either complete and listed or absent), their objects, and the restore
//! journal. Objects go through a `Backend`, so a directory on a data disk and S3-compatible
//! object storage look the same to everything above.

pub mod backend;
pub mod cache;
pub mod crypto;
pub mod id;
pub mod key;
pub mod s3;
pub mod seen;

use std::borrow::Cow;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

pub use backend::{Backend, LocalBackend};
pub use crypto::Object;
pub use id::{BlobId, PackId};
pub use key::{Dir, Key};

use crate::config::Config;
use crate::error::Error;

/// The version of the store layout. 2: the marker carries a random store id, and every
/// sealed object of an encrypted store is bound to it, its kind and its snapshot (AEAD
/// associated data). A format-1 store is still read and written as format 1 (its sealed
/// objects without associated data, bound only through the manifest's MAC).
pub const STORE_FORMAT: u32 = 2;
/// The version of the snapshot manifest.
pub const MANIFEST_FORMAT: u32 = 1;

use key::MARKER;

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
    /// The snapshot of the same instance that was the newest when this one was taken
    /// (under the MAC with the id, which carries the time). Left out when there is none,
    /// so manifests written before the field keep their MAC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
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
            parent: None,
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
    /// The store's id from its marker (`None` for a format-1 store, which has none).
    id: Option<std::sync::Arc<str>>,
    /// Where a remote store's pack indexes are kept locally.
    cache: Option<cache::Cache>,
}

/// Where a store is, parsed from its URL: `file:///dir` or a plain path (a directory),
/// or `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Local(std::path::PathBuf),
    S3 { bucket: String, prefix: String },
}

impl StoreUrl {
    /// Parses a store URL; another scheme than `file://` and `s3://` is a usage error.
    pub fn parse(url: &str) -> Result<StoreUrl, Error> {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Error::Usage(format!("{url}: no bucket")));
            }
            return Ok(StoreUrl::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        match url.strip_prefix("file://") {
            Some(p) => Ok(StoreUrl::Local(p.into())),
            None if url.contains("://") => {
                Err(Error::Usage(format!("unsupported store URL '{url}'")))
            }
            None => Ok(StoreUrl::Local(url.into())),
        }
    }

    /// The directory of a local store; `None` for S3.
    pub fn local_dir(&self) -> Option<&std::path::Path> {
        match self {
            StoreUrl::Local(p) => Some(p),
            StoreUrl::S3 { .. } => None,
        }
    }
}

/// Where the store is: `file:///dir`, a plain path, or `s3://bucket/prefix`.
pub fn resolve_url(cli: Option<&str>, config: &Config) -> Result<String, Error> {
    cli.map(str::to_string)
        .or_else(|| config.store.url.clone())
        .ok_or_else(|| {
            Error::Usage("no store: give --store URL or set [store] url in the config".into())
        })
}

/// Opens the store named on the command line (`cli`) or in the config, with the store
/// key when one is configured (its file is read under the root). Returns its URL too.
pub fn open_configured(
    root: &crate::sys::Root,
    config: &Config,
    cli: Option<&str>,
    create: bool,
) -> Result<(String, Store)> {
    let url = resolve_url(cli, config)?;
    let key = match &config.store.encryption_key_file {
        Some(p) => Some(crypto::Crypto::from_key_file(&root.follow(p))?),
        None => None,
    };
    let store =
        Store::open(&url, config, create, key)?.with_cache(&root.path("/var/lib/carryover/cache"));
    Ok((url, store))
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
        let backend: std::sync::Arc<dyn Backend> = match StoreUrl::parse(url)? {
            StoreUrl::S3 { bucket, prefix } => {
                std::sync::Arc::new(s3::S3Backend::open(url, &bucket, &prefix, _config)?)
            }
            StoreUrl::Local(path) => std::sync::Arc::new(LocalBackend::open(&path, create)?),
        };
        let mut store = Store {
            backend,
            crypto: key.map(std::sync::Arc::new),
            id: None,
            cache: None,
        };
        store.id = store.check_marker(create)?.map(Into::into);
        Ok(store)
    }

    /// Checks (or writes) the store's marker; returns the store's id (`None`: format 1).
    fn check_marker(&self, create: bool) -> Result<Option<String>> {
        let id = match self.backend.get(MARKER)? {
            Some(bytes) => {
                let v: serde_json::Value = serde_json::from_slice(&bytes)
                    .with_context(|| format!("{} is damaged", MARKER))?;
                let format = v["format"].as_u64().unwrap_or(0);
                if format > STORE_FORMAT as u64 {
                    bail!(
                        "the store has format {format}, newer than this carryover understands ({STORE_FORMAT})"
                    );
                }
                // from format 2 on the marker names the store; the id goes into every
                // sealed object's associated data, so it must be one of ours
                let id = match v["id"].as_str() {
                    _ if format < 2 => None,
                    Some(id) if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) => {
                        Some(id.to_string())
                    }
                    _ => bail!(
                        "{MARKER} of {} is damaged: a format-{format} store has a 32-digit hex id",
                        self.describe()
                    ),
                };
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
                id
            }
            None if create => {
                let id = hex::encode(rand::random::<[u8; 16]>());
                let mut marker = serde_json::json!({"format": STORE_FORMAT, "id": id, "created_by": "carryover"});
                if let Some(k) = &self.crypto {
                    marker["encryption"] = serde_json::json!({
                        "cipher": "xchacha20poly1305",
                        "key_check": k.key_check(),
                    });
                }
                self.backend.put(MARKER, marker.to_string().as_bytes())?;
                Some(id)
            }
            None => bail!(
                "{} is not a carryover store (no {MARKER})",
                self.backend.describe()
            ),
        };
        Ok(id)
    }

    /// Keeps a remote store's pack indexes under `base` (`<root>/var/lib/carryover/cache`),
    /// by store id; a local store and a format-1 store (no id) are not cached.
    pub fn with_cache(mut self, base: &std::path::Path) -> Store {
        if let Some(id) = &self.id
            && self.backend.connections() > 1
        {
            self.cache = Some(cache::Cache::new(base, id));
        }
        self
    }

    /// Pack indexes (objects that never change once written), through the cache when
    /// there is one, fetched concurrently.
    pub fn get_indexes(&self, keys: &[String]) -> Vec<Result<Option<Vec<u8>>>> {
        match &self.cache {
            Some(c) => c.get_many(self.backend(), keys),
            None => self.backend.get_many(keys),
        }
    }

    /// The store's id (`None` for a format-1 store).
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The id of a blob with this content (keyed when the store is encrypted).
    pub fn blob_id(&self, raw: &[u8]) -> BlobId {
        BlobId::from_array(match &self.crypto {
            Some(c) => c.blob_id(raw),
            None => *blake3::hash(raw).as_bytes(),
        })
    }

    /// Encrypts what goes into the store, bound to what it is (a no-op for a plain store).
    pub fn seal(&self, what: Object<'_>, data: Vec<u8>) -> Vec<u8> {
        match &self.crypto {
            Some(c) => c.seal(&data, &what.associated_data(self.id())),
            None => data,
        }
    }

    /// Decrypts and authenticates what comes out of the store as `what`: an object sealed
    /// as anything else (another snapshot's, another kind, another store's) is refused, and
    /// the error says what it is when it is one of this store's.
    pub fn unseal(&self, what: Object<'_>, data: Vec<u8>) -> Result<Vec<u8>> {
        self.unseal_as(&[what], data)
    }

    /// `unseal` for an object that may be any of `kinds` (a blob checked by `verify`).
    pub fn unseal_as(&self, kinds: &[Object<'_>], data: Vec<u8>) -> Result<Vec<u8>> {
        if self.crypto.is_none() {
            return Ok(data);
        }
        self.unseal_ref(kinds, &data).map(Cow::into_owned)
    }

    /// `unseal_as` of borrowed bytes: in a store that is not encrypted, the same bytes.
    pub fn unseal_ref<'a>(&self, kinds: &[Object<'_>], data: &'a [u8]) -> Result<Cow<'a, [u8]>> {
        let Some(c) = &self.crypto else {
            return Ok(Cow::Borrowed(data));
        };
        if let Some(plain) = kinds
            .iter()
            .find_map(|k| c.open(data, &k.associated_data(self.id())))
        {
            return Ok(Cow::Owned(plain));
        }
        let wanted = kinds.first().map(Object::describe).unwrap_or_default();
        match self.identify(c, data, kinds) {
            Some(other) => bail!(
                "{wanted}: authentication failed: it is {other}, moved or copied to this name; refused"
            ),
            None => bail!(
                "{wanted}: authentication failed: the object is damaged, was sealed for another place or store, or the key is not this store's"
            ),
        }
    }

    /// What a sealed object that failed to open as `kinds` is, when it is one of this
    /// store's objects of another kind or snapshot (only tried after a failure).
    fn identify(&self, c: &crypto::Crypto, data: &[u8], kinds: &[Object<'_>]) -> Option<String> {
        let opens = |o: &Object<'_>| c.open(data, &o.associated_data(self.id())).is_some();
        let blobs = [Object::DataBlob, Object::TreeBlob];
        if let Some(b) = blobs.iter().find(|b| !kinds.contains(b) && opens(b)) {
            return Some(b.describe());
        }
        // a snapshot's object: which snapshot's (a handful of manifests, listed once)
        if !kinds.iter().any(|k| matches!(k, Object::Snapshot { .. })) {
            return None;
        }
        let ids = self.ids().ok()?;
        ids.iter().find_map(|s| {
            ["state.json", "secrets.json"].iter().find_map(|name| {
                let o = Object::Snapshot { snapshot: s, name };
                opens(&o).then(|| o.describe())
            })
        })
    }

    /// The bytes a manifest's MAC covers: its canonical JSON, bound to the store.
    fn mac_input(&self, m: &Manifest) -> Result<Vec<u8>> {
        let mut out = match self.id() {
            Some(id) => format!("carryover manifest v2\0{id}\0").into_bytes(),
            None => Vec::new(),
        };
        out.extend(serde_json::to_vec(m)?);
        Ok(out)
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
        let key = Key::object(snapshot, name).path();
        let data = &self.seal(Object::Snapshot { snapshot, name }, data.to_vec());
        self.backend.put(&key, data)?;
        Ok(ObjectRef {
            key,
            size: data.len() as u64,
            blake3: blake3::hash(data).to_hex().to_string(),
        })
    }

    /// What the object `r` of snapshot `snapshot` is: its key must be the snapshot's own.
    fn object_of<'a>(snapshot: &'a str, r: &'a ObjectRef) -> Result<Object<'a>> {
        let name = match Key::parse(Dir::Objects, &r.key) {
            Some(Key::Object { snapshot: s, .. }) if s == snapshot => {
                r.key.rsplit('/').next().filter(|n| !n.is_empty())
            }
            _ => None,
        };
        let name = name.with_context(|| {
                format!(
                    "the manifest of snapshot {snapshot} names the object {}, not one of its own; refused",
                    r.key
                )
            })?;
        Ok(Object::Snapshot { snapshot, name })
    }

    /// Reads an object of snapshot `snapshot` and checks its size and checksum.
    pub fn get_object(&self, snapshot: &str, r: &ObjectRef) -> Result<Vec<u8>> {
        self.read_object(snapshot, r, true)
    }

    /// An object's content without the checksum check (to save what can be saved of a
    /// damaged one). In an encrypted store it must still open as this snapshot's object:
    /// another snapshot's copied over it does not.
    pub fn get_object_unchecked(&self, snapshot: &str, r: &ObjectRef) -> Result<Vec<u8>> {
        self.read_object(snapshot, r, false)
    }

    fn read_object(&self, snapshot: &str, r: &ObjectRef, checked: bool) -> Result<Vec<u8>> {
        let what = Self::object_of(snapshot, r)?;
        let data = self
            .backend
            .get(&r.key)?
            .with_context(|| format!("object {} is missing from the store", r.key))?;
        let hash = blake3::hash(&data).to_hex().to_string();
        if checked && (data.len() as u64 != r.size || hash != r.blake3) {
            bail!(
                "object {} is damaged: checksum {} does not match the manifest's {}",
                r.key,
                hash,
                r.blake3
            );
        }
        self.unseal(what, data)
            .with_context(|| format!("object {}", r.key))
    }

    /// Commits a snapshot: the manifest is written last, atomically.
    pub fn commit(&self, manifest: &Manifest) -> Result<()> {
        let mut manifest = manifest.clone();
        manifest.mac = None;
        if let Some(c) = &self.crypto {
            // every field authenticated: the data roots, the objects' checksums, the
            // origin, the time — the manifest stays readable for `snapshots list`
            manifest.mac = Some(c.mac(&self.mac_input(&manifest)?));
        }
        let json = serde_json::to_vec_pretty(&manifest)?;
        self.backend
            .put(&Key::snapshot(&manifest.id).path(), &json)
            .context("committing the snapshot manifest")
    }

    /// The ids of all committed snapshots (whether or not their manifests can be read),
    /// oldest first.
    pub fn ids(&self) -> Result<Vec<String>> {
        let mut ids: Vec<String> = self
            .list_keys(Dir::Snapshots)?
            .into_iter()
            .filter_map(|key| match key {
                Key::Snapshot(id) => Some(id),
                _ => None,
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
            .get(&Key::snapshot(id).path())?
            .with_context(|| format!("no snapshot '{id}' in {}", self.describe()))?;
        let mut m: Manifest = serde_json::from_slice(&bytes)
            .with_context(|| format!("the manifest of snapshot {id} is damaged"))?;
        if let Some(c) = &self.crypto {
            let given = m.mac.take();
            let expected = c.mac(&self.mac_input(&m)?);
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

    /// What a capture killed mid-way left, and what forgotten snapshots left: removed, so
    /// it cannot pile up. Objects and journals of snapshots that were never committed (a
    /// snapshot whose manifest cannot be read is still committed: its objects stay), and
    /// packs without an index (a capture killed before it wrote the index). The five
    /// folders are listed at once (one round trip on S3). Only called under the store lock.
    pub fn remove_leftovers(&self) -> Result<Vec<String>> {
        let dirs = [
            Dir::Snapshots,
            Dir::Objects,
            Dir::Journal,
            Dir::Index,
            Dir::Packs,
        ];
        let prefixes: Vec<&str> = dirs.iter().map(|d| d.prefix()).collect();
        let mut listed = Vec::new();
        for (dir, names) in dirs.into_iter().zip(self.backend.list_many(&prefixes)) {
            listed.push(key::parse_listing(dir, names?));
        }
        let [snapshots, objects, journal, index, packs] = <[Vec<Key>; 5]>::try_from(listed)
            .map_err(|_| anyhow::anyhow!("listing the store gave too few folders"))?;
        let committed: std::collections::HashSet<&str> = snapshots
            .iter()
            .filter_map(|key| match key {
                Key::Snapshot(id) => Some(id.as_str()),
                _ => None,
            })
            .collect();
        let indexed: std::collections::HashSet<PackId> =
            index.iter().filter_map(Key::pack_id).collect();
        let orphans = objects
            .iter()
            .chain(&journal)
            .filter(|key| key.snapshot_id().is_some_and(|id| !committed.contains(id)));
        let unindexed = packs
            .iter()
            .filter(|key| key.pack_id().is_some_and(|id| !indexed.contains(&id)));
        let mut removed = Vec::new();
        for key in orphans.chain(unindexed) {
            let key = key.path();
            self.backend.delete(&key)?;
            removed.push(key);
        }
        Ok(removed)
    }

    /// The keys under `dir` that have its grammar (others are named in a warning).
    pub fn list_keys(&self, dir: Dir) -> Result<Vec<Key>> {
        Ok(key::parse_listing(dir, self.backend.list(dir.prefix())?))
    }

    /// Reads a small named document (journal, status) — `None` when absent.
    pub fn get_doc(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self.backend.get(key)? {
            Some(b) => Ok(Some(
                self.unseal(Object::Doc(key), b)
                    .with_context(|| key.to_string())?,
            )),
            None => Ok(None),
        }
    }

    /// Writes a small named document atomically.
    pub fn put_doc(&self, key: &str, data: &[u8]) -> Result<()> {
        self.backend
            .put(key, &self.seal(Object::Doc(key), data.to_vec()))
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

/// The directory of a local store URL (`file:///dir` or a plain path); `None` for S3 (and
/// for a URL no store opens).
pub fn local_dir(url: &str) -> Option<std::path::PathBuf> {
    StoreUrl::parse(url)
        .ok()?
        .local_dir()
        .map(std::path::Path::to_path_buf)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &std::path::Path, create: bool) -> Store {
        let key = crypto::Crypto::from_key([1u8; 32]);
        Store::open(dir.to_str().unwrap(), &Config::default(), create, Some(key)).unwrap()
    }

    #[test]
    fn store_urls_are_a_directory_or_a_bucket_and_nothing_else() {
        let local = |p: &str| StoreUrl::Local(p.into());
        assert_eq!(
            StoreUrl::parse("/mnt/data/c").unwrap(),
            local("/mnt/data/c")
        );
        assert_eq!(
            StoreUrl::parse("file:///mnt/data/c").unwrap(),
            local("/mnt/data/c")
        );
        assert_eq!(
            StoreUrl::parse("s3://bucket/a/b/").unwrap(),
            StoreUrl::S3 {
                bucket: "bucket".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(StoreUrl::parse("s3://bucket").unwrap().local_dir(), None);
        for bad in ["s3://", "s3:///p", "ftp://host/dir"] {
            assert!(StoreUrl::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(local_dir("s3://b/p"), None);
        assert_eq!(local_dir("file:///srv/s"), Some("/srv/s".into()));
    }

    /// Listing parses names by the key grammar: a file under `packs/` or `index/` that
    /// is not one of carryover's is passed over, never removed as an unindexed pack, and a
    /// name under `snapshots/` without `.json` is no snapshot.
    #[test]
    fn foreign_names_in_the_store_are_passed_over_not_taken_or_removed() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("s");
        let store = Store::open(dir.to_str().unwrap(), &Config::default(), true, None).unwrap();
        let unindexed = Key::Pack(PackId::random()).path();
        for key in [
            unindexed.as_str(),
            "packs/zz/notes.txt",
            "packs/README",
            "index/README",
            "snapshots/README",
        ] {
            store.backend().put(key, b"x").unwrap();
        }
        assert_eq!(store.remove_leftovers().unwrap(), vec![unindexed]);
        assert!(dir.join("packs/zz/notes.txt").exists());
        assert!(dir.join("packs/README").exists());
        assert!(store.ids().unwrap().is_empty());
    }

    /// A store made before format 2 (no id in its marker) is read and written as it was:
    /// its objects sealed with empty associated data. Turning a format-2 store's marker
    /// into a format-1 one does not open its bound objects without their binding.
    #[test]
    fn a_format_1_store_keeps_its_format_and_a_downgrade_opens_nothing() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("s");
        let new = open(&dir, true);
        assert!(new.id().is_some());
        let bound = new.put_object("s2", "state.json", b"bound").unwrap();
        let marker = serde_json::json!({"format": 1, "encryption": {
            "cipher": "xchacha20poly1305",
            "key_check": crypto::Crypto::from_key([1u8; 32]).key_check(),
        }});
        std::fs::write(dir.join(MARKER), marker.to_string()).unwrap();
        let old = open(&dir, false);
        assert_eq!(old.id(), None);
        assert!(
            old.get_object("s2", &bound).is_err(),
            "the downgrade opens nothing"
        );
        let r = old.put_object("s1", "state.json", b"plain old").unwrap();
        assert_eq!(old.get_object("s1", &r).unwrap(), b"plain old");
        let sealed = std::fs::read(dir.join(&r.key)).unwrap();
        let c = crypto::Crypto::from_key([1u8; 32]);
        assert_eq!(c.open(&sealed, b"").unwrap(), b"plain old");
        // an object of another snapshot's name is not this snapshot's
        assert!(old.get_object("s3", &r).is_err());
    }
}
