//! The ids of the content-addressed part of the store, as types: a blob's (BLAKE3 of its
//! plaintext, keyed in an encrypted store) and a pack's (random). Both are 32 bytes,
//! written as 64 lowercase hex digits wherever they are text (manifests, keys, lists), and
//! parsed by exactly that grammar when read back, since the store is untrusted.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a text is not an id: it is not 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an id (64 lowercase hex digits)")]
pub struct BadId(pub String);

/// The length of an id in bytes.
pub const ID_LEN: usize = 32;

/// Parses 64 lowercase hex digits (the only form carryover writes).
fn parse_hex(s: &str) -> Result<[u8; ID_LEN], BadId> {
    let bad = || BadId(s.chars().take(80).collect());
    if s.len() != 2 * ID_LEN || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(bad());
    }
    let mut out = [0u8; ID_LEN];
    hex::decode_to_slice(s, &mut out).map_err(|_| bad())?;
    Ok(out)
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; ID_LEN]);

        impl $name {
            pub const fn from_array(b: [u8; ID_LEN]) -> $name {
                $name(b)
            }

            /// The id in `b`, when it has the length of one.
            pub fn from_slice(b: &[u8]) -> Option<$name> {
                <[u8; ID_LEN]>::try_from(b).ok().map($name)
            }

            pub fn as_bytes(&self) -> &[u8; ID_LEN] {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = BadId;
            fn from_str(s: &str) -> Result<$name, BadId> {
                parse_hex(s).map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut buf = [0u8; 2 * ID_LEN];
                hex::encode_to_slice(self.0, &mut buf).map_err(|_| fmt::Error)?;
                f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A blob's id: BLAKE3 of its plaintext (keyed by the store's key when encrypted).
    BlobId
);

id_type!(
    /// A pack's id: random, chosen when the pack is opened; it names the pack and its index.
    PackId
);

impl PackId {
    pub fn random() -> PackId {
        PackId(rand::random())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_lowercase_hex_digits_in_json_and_nothing_else_parses() {
        let id = BlobId::from_array([0xab; 32]);
        let json = serde_json::to_string(&vec![id]).unwrap();
        assert_eq!(json, format!("[\"{}\"]", "ab".repeat(32)));
        assert_eq!(
            serde_json::from_str::<Vec<BlobId>>(&json).unwrap(),
            vec![id]
        );
        assert_eq!(format!("{id:?}"), format!("BlobId({})", "ab".repeat(32)));
        for bad in [
            "ab".repeat(31),
            "ab".repeat(33),
            "AB".repeat(32),
            format!("{}zz", "ab".repeat(31)),
            format!("{}/.", "ab".repeat(31)),
            String::new(),
        ] {
            assert!(bad.parse::<PackId>().is_err(), "{bad}");
            assert!(
                serde_json::from_value::<BlobId>(serde_json::json!(bad)).is_err(),
                "{bad}"
            );
        }
        assert!(serde_json::from_value::<BlobId>(serde_json::json!(7)).is_err());
        assert_eq!(BlobId::from_slice(&[1; 31]), None);
    }
}
