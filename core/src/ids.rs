//! 32-byte identifiers. Each kind of object has its own newtype so a pack id can never be
//! passed where a chunk id is expected. All display as 64 lowercase hex digits.

use serde::{Deserialize, Serialize};

use crate::{Error, Result, secret::random_bytes};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(#[serde(with = "serde_bytes32")] pub [u8; 32]);

        impl $name {
            /// A fresh random id.
            pub fn random() -> Self {
                Self(random_bytes())
            }

            /// The first 8 hex digits, for humans.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }

            /// Parses 64 hex digits.
            ///
            /// # Errors
            /// [`Error::Id`] when the text is not exactly 32 bytes of hex.
            pub fn from_hex(text: &str) -> Result<Self> {
                let mut out = [0u8; 32];
                hex::decode_to_slice(text, &mut out).map_err(|_| Error::Id(text.to_string()))?;
                Ok(Self(out))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.short())
            }
        }
    };
}

id_type!(
    /// Keyed BLAKE3 of a chunk's plaintext (data or tree).
    ChunkId
);
id_type!(
    /// Unkeyed BLAKE3 of a whole pack file, as stored.
    PackId
);
id_type!(
    /// Random name of an index file.
    IndexId
);
id_type!(
    /// Random name of a snapshot manifest.
    SnapshotId
);
id_type!(
    /// Random name of a key slot.
    SlotId
);
id_type!(
    /// Random id of a vault, fixed at `init`.
    VaultId
);
id_type!(
    /// Keyed BLAKE3 name of sync-group credentials kept in a vault.
    SyncGroupId
);

/// Serde for `[u8; 32]` as a MessagePack `bin` (not an array of integers).
mod serde_bytes32 {
    use serde::{Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = [u8; 32];
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("32 bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<[u8; 32], E> {
                v.try_into().map_err(|_| E::invalid_length(v.len(), &self))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; 32], A::Error> {
                let mut out = [0u8; 32];
                for (i, b) in out.iter_mut().enumerate() {
                    *b = seq.next_element()?.ok_or_else(|| A::Error::invalid_length(i, &self))?;
                }
                if seq.next_element::<u8>()?.is_some() {
                    return Err(A::Error::invalid_length(33, &self));
                }
                Ok(out)
            }
        }
        d.deserialize_bytes(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects_bad_length() {
        let id = ChunkId([7; 32]);
        assert_eq!(ChunkId::from_hex(&id.to_string()).unwrap(), id);
        assert!(ChunkId::from_hex("abcd").is_err());
        assert_eq!(id.short(), "07070707");
    }
}
