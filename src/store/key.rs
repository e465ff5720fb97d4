//! Every key of the store in one place (as rustic's `FileType`): which directory holds
//! what, how a key is written, and the grammar a listed name must have to be taken for
//! one — a name that does not match is passed over and named, never guessed at.
//!
//! ```text
//! carryover-store.json            the marker: format, store id, key check
//! snapshots/<snapshot>.json       a manifest (its presence commits the snapshot)
//! objects/<snapshot>/<name>       a snapshot's objects (state.json, secrets.json)
//! journal/<snapshot>.json         the restore journal of a snapshot
//! seen/<instance>.json            the newest snapshot of an instance seen (rollback floor)
//! packs/<pp>/<pack>               a pack of blobs (<pp>: its id's first two digits)
//! index/<pack>                    the index of a pack, written after it
//! locks/writer.json               the writer's lock
//! damaged.json                    the blobs found damaged
//! agent/…                         agent binaries (`agent::Platform::key`)
//! ```

use std::fmt;

use super::backend::check_name;
use super::id::PackId;

/// The store's marker.
pub const MARKER: &str = "carryover-store.json";
/// The writer's lock.
pub const LOCK: &str = "locks/writer.json";
/// The list of damaged blobs.
pub const DAMAGED: &str = "damaged.json";

/// A directory of the store: what a listing walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Snapshots,
    Objects,
    Journal,
    Seen,
    Packs,
    Index,
}

impl Dir {
    /// The directory's prefix in keys (`snapshots/`).
    pub fn prefix(self) -> &'static str {
        match self {
            Dir::Snapshots => "snapshots/",
            Dir::Objects => "objects/",
            Dir::Journal => "journal/",
            Dir::Seen => "seen/",
            Dir::Packs => "packs/",
            Dir::Index => "index/",
        }
    }
}

/// One key of the store. Names inside keys (snapshot ids, object names, instances) are
/// store names (`backend::check_name`): the backend refuses anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Marker,
    Lock,
    Damaged,
    Snapshot(String),
    Object { snapshot: String, name: String },
    Journal(String),
    Seen(String),
    Pack(PackId),
    Index(PackId),
}

impl Key {
    pub fn snapshot(id: &str) -> Key {
        Key::Snapshot(id.into())
    }

    pub fn object(snapshot: &str, name: &str) -> Key {
        Key::Object {
            snapshot: snapshot.into(),
            name: name.into(),
        }
    }

    pub fn journal(snapshot: &str) -> Key {
        Key::Journal(snapshot.into())
    }

    pub fn seen(instance: &str) -> Key {
        Key::Seen(instance.into())
    }

    /// The key as the backend takes it.
    pub fn path(&self) -> String {
        self.to_string()
    }

    /// Parses a key listed under `dir` by its grammar; `None` for anything carryover does
    /// not write there.
    pub fn parse(dir: Dir, key: &str) -> Option<Key> {
        let rest = key.strip_prefix(dir.prefix())?;
        let name = |n: &str| check_name(n).is_ok().then(|| n.to_string());
        let json = |n: &str| n.strip_suffix(".json").and_then(name);
        Some(match dir {
            Dir::Snapshots => Key::Snapshot(json(rest)?),
            Dir::Journal => Key::Journal(json(rest)?),
            Dir::Seen => Key::Seen(json(rest)?),
            Dir::Objects => {
                let (snapshot, n) = rest.split_once('/')?;
                Key::Object {
                    snapshot: name(snapshot)?,
                    name: name(n)?,
                }
            }
            Dir::Index => Key::Index(rest.parse().ok()?),
            Dir::Packs => {
                let (fan, id) = rest.split_once('/')?;
                let id: PackId = id.parse().ok()?;
                (fan.len() == 2 && id.to_string().starts_with(fan)).then_some(Key::Pack(id))?
            }
        })
    }

    /// The snapshot a key belongs to (a manifest, an object, a journal).
    pub fn snapshot_id(&self) -> Option<&str> {
        match self {
            Key::Snapshot(s) | Key::Journal(s) | Key::Object { snapshot: s, .. } => Some(s),
            _ => None,
        }
    }

    /// The pack a key names (a pack or its index).
    pub fn pack_id(&self) -> Option<PackId> {
        match self {
            Key::Pack(p) | Key::Index(p) => Some(*p),
            _ => None,
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Marker => f.write_str(MARKER),
            Key::Lock => f.write_str(LOCK),
            Key::Damaged => f.write_str(DAMAGED),
            Key::Snapshot(id) => write!(f, "{}{id}.json", Dir::Snapshots.prefix()),
            Key::Object { snapshot, name } => {
                write!(f, "{}{snapshot}/{name}", Dir::Objects.prefix())
            }
            Key::Journal(id) => write!(f, "{}{id}.json", Dir::Journal.prefix()),
            Key::Seen(instance) => write!(f, "{}{instance}.json", Dir::Seen.prefix()),
            Key::Index(id) => write!(f, "{}{id}", Dir::Index.prefix()),
            Key::Pack(id) => {
                let hex = id.to_string();
                write!(f, "{}{}/{hex}", Dir::Packs.prefix(), &hex[..2])
            }
        }
    }
}

/// The keys listed under `dir` that have its grammar; what does not is passed over with
/// a warning that names it.
pub fn parse_listing(dir: Dir, listed: Vec<String>) -> Vec<Key> {
    listed
        .into_iter()
        .filter_map(|k| {
            let parsed = Key::parse(dir, &k);
            if parsed.is_none() {
                tracing::warn!(
                    "{k}: not a name carryover writes under {}; passed over",
                    dir.prefix()
                );
            }
            parsed
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_parses_back_from_its_directory_and_foreign_names_do_not() {
        let pack: PackId = "0a".repeat(32).parse().unwrap();
        let keys = [
            (
                Dir::Snapshots,
                Key::snapshot("20260101T000000000Z-0000abcd"),
            ),
            (Dir::Objects, Key::object("s1", "state.json")),
            (Dir::Journal, Key::journal("s1")),
            (Dir::Seen, Key::seen("i-0abc")),
            (Dir::Packs, Key::Pack(pack)),
            (Dir::Index, Key::Index(pack)),
        ];
        for (dir, key) in keys {
            let text = key.path();
            assert!(text.starts_with(dir.prefix()), "{text}");
            assert_eq!(Key::parse(dir, &text), Some(key), "{text}");
        }
        assert_eq!(
            Key::Pack(pack).path(),
            format!("packs/0a/{}", "0a".repeat(32))
        );
        assert_eq!(Key::snapshot("s1").path(), "snapshots/s1.json");
        for (dir, foreign) in [
            (Dir::Snapshots, "snapshots/s1.json.tmp1".to_string()),
            (Dir::Snapshots, "snapshots/.json".into()),
            (Dir::Snapshots, "snapshots/notes.txt".into()),
            (Dir::Journal, "snapshots/s1.json".into()),
            (Dir::Objects, "objects/s1".into()),
            (Dir::Objects, "objects/s1/a/b".into()),
            (Dir::Index, "index/ab".into()),
            (Dir::Index, format!("index/{}", "AB".repeat(32))),
            (Dir::Packs, format!("packs/0b/{}", "0a".repeat(32))),
            (Dir::Packs, format!("packs/{}", "0a".repeat(32))),
        ] {
            assert_eq!(Key::parse(dir, &foreign), None, "{foreign}");
        }
        let listed = vec!["index/junk".to_string(), Key::Index(pack).path()];
        assert_eq!(parse_listing(Dir::Index, listed), vec![Key::Index(pack)]);
    }
}
