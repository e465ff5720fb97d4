//! Encryption at rest (`[store] encryption_key_file`): every blob, state, secrets and
//! journal object sealed with XChaCha20-Poly1305 (a random 192-bit nonce each), bound by
//! its associated data to the store, its kind and its snapshot (an object copied to
//! another name fails to open), and blob ids keyed so that they reveal nothing about the
//! content. A wrong key, a damaged or a moved object fails authentication and says so.

use std::path::Path;

use anyhow::{Context, Result};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const NONCE: usize = 24;
const TAG: usize = 16;

pub struct Crypto {
    cipher: XChaCha20Poly1305,
    id_key: [u8; 32],
    mac_key: [u8; 32],
    check: String,
}

impl std::fmt::Debug for Crypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Crypto(…)")
    }
}

impl Crypto {
    /// Reads a key file: 32 raw bytes, or 64 hex digits (white space around is ignored).
    pub fn from_key_file(path: &Path) -> Result<Crypto> {
        let raw = std::fs::read(path)
            .with_context(|| format!("reading the store key {}", path.display()))?;
        let key = parse_key(&raw).with_context(|| {
            format!(
                "{}: a store key is 32 bytes, or 64 hex digits (e.g. `openssl rand -hex 32`)",
                path.display()
            )
        })?;
        Ok(Crypto::from_key(key))
    }

    pub fn from_key(key: [u8; 32]) -> Crypto {
        let cipher = XChaCha20Poly1305::new_from_slice(&key).expect("32-byte key");
        Crypto {
            cipher,
            id_key: blake3::derive_key("carryover 2026-11 blob ids", &key),
            mac_key: blake3::derive_key("carryover 2026-12 manifest mac", &key),
            check: hex::encode(blake3::derive_key("carryover 2026-11 key check", &key)),
        }
    }

    /// A value stored with the store that tells the right key from a wrong one without
    /// revealing it.
    pub fn key_check(&self) -> &str {
        &self.check
    }

    /// The id of a blob: BLAKE3 keyed with a key derived from the store key.
    pub fn blob_id(&self, raw: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(&self.id_key, raw).as_bytes()
    }

    /// The MAC of a manifest's canonical bytes (keyed BLAKE3 under a key derived from the
    /// store key): an edited, forged or swapped manifest of an encrypted store is refused.
    pub fn mac(&self, bytes: &[u8]) -> String {
        blake3::keyed_hash(&self.mac_key, bytes)
            .to_hex()
            .to_string()
    }

    /// Seals `plain`, bound to `aad` (see `Object::associated_data`).
    pub fn seal(&self, plain: &[u8], aad: &[u8]) -> Vec<u8> {
        let nonce_bytes: [u8; NONCE] = rand::random();
        let nonce = XNonce::from(nonce_bytes);
        let ct = self
            .cipher
            .encrypt(&nonce, Payload { msg: plain, aad })
            .expect("encryption of an in-memory buffer does not fail");
        let mut out = Vec::with_capacity(NONCE + ct.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ct);
        out
    }

    /// Opens an object sealed with the same associated data; `None` when it does not
    /// authenticate (damaged, sealed as another object, or under another key).
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE + TAG {
            return None;
        }
        let mut n = [0u8; NONCE];
        n.copy_from_slice(&sealed[..NONCE]);
        let nonce = XNonce::from(n);
        self.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: &sealed[NONCE..],
                    aad,
                },
            )
            .ok()
    }
}

/// What a sealed object is, for its associated data: an object opened as anything else
/// (another snapshot's, another kind, another name, another store's) fails authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object<'a> {
    /// An object of one snapshot (`objects/<snapshot>/<name>`: its state, its secrets).
    Snapshot { snapshot: &'a str, name: &'a str },
    /// A chunk of a file: shared by every snapshot (deduplicated), so bound to its kind only.
    DataBlob,
    /// A blob of a tree (a directory listing): likewise.
    TreeBlob,
    /// A named document (`journal/<snapshot>.json`, the damaged-blob list): bound to its key.
    Doc(&'a str),
}

impl Object<'_> {
    /// The associated data under which this object is sealed in the store `store_id`.
    /// A store of format 1 (made before objects were bound) has none: `store_id` is `None`
    /// and objects are sealed with empty associated data, as they were then.
    pub fn associated_data(&self, store_id: Option<&str>) -> Vec<u8> {
        let Some(store) = store_id else {
            return Vec::new();
        };
        // fields joined by NUL: none of them can hold one (store ids are hex, snapshot ids
        // and keys pass `backend::check_name`)
        let fields: [&str; 3] = match self {
            Object::Snapshot { snapshot, name } => ["object", snapshot, name],
            Object::DataBlob => ["data blob", "", ""],
            Object::TreeBlob => ["tree blob", "", ""],
            Object::Doc(key) => ["document", key, ""],
        };
        let mut out = format!("carryover object v2\0{store}").into_bytes();
        for f in fields {
            out.push(0);
            out.extend_from_slice(f.as_bytes());
        }
        out
    }

    /// How the object is named in an error.
    pub fn describe(&self) -> String {
        match self {
            Object::Snapshot { snapshot, name } => format!("{name} of snapshot {snapshot}"),
            Object::DataBlob => "a data blob".into(),
            Object::TreeBlob => "a tree blob".into(),
            Object::Doc(key) => (*key).to_string(),
        }
    }
}

fn parse_key(raw: &[u8]) -> Option<[u8; 32]> {
    if raw.len() == 32 {
        return raw.try_into().ok();
    }
    let text = std::str::from_utf8(raw).ok()?.trim();
    let bytes = hex::decode(text).ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_tamper() {
        let c = Crypto::from_key([7u8; 32]);
        let s = c.seal(b"secret state", b"ad");
        assert!(!s.windows(6).any(|w| w == b"secret"));
        assert_eq!(c.open(&s, b"ad").unwrap(), b"secret state");
        let mut bad = s.clone();
        bad[30] ^= 1;
        assert!(c.open(&bad, b"ad").is_none());
        assert!(c.open(&s, b"other ad").is_none());
        let other = Crypto::from_key([8u8; 32]);
        assert!(other.open(&s, b"ad").is_none());
        assert_ne!(c.key_check(), other.key_check());
        assert_ne!(c.blob_id(b"x"), *blake3::hash(b"x").as_bytes());
    }

    #[test]
    fn every_object_has_its_own_associated_data() {
        let objects = [
            Object::Snapshot {
                snapshot: "a",
                name: "state.json",
            },
            Object::Snapshot {
                snapshot: "b",
                name: "state.json",
            },
            Object::Snapshot {
                snapshot: "a",
                name: "secrets.json",
            },
            Object::DataBlob,
            Object::TreeBlob,
            Object::Doc("journal/a.json"),
        ];
        let ads: std::collections::HashSet<Vec<u8>> = objects
            .iter()
            .map(|o| o.associated_data(Some("s1")))
            .collect();
        assert_eq!(ads.len(), objects.len());
        assert_ne!(
            Object::DataBlob.associated_data(Some("s1")),
            Object::DataBlob.associated_data(Some("s2"))
        );
        assert!(Object::DataBlob.associated_data(None).is_empty());
    }

    #[test]
    fn key_formats() {
        assert!(parse_key(&[1u8; 32]).is_some());
        assert!(parse_key(format!("{}\n", "ab".repeat(32)).as_bytes()).is_some());
        assert!(parse_key(b"short").is_none());
    }
}
