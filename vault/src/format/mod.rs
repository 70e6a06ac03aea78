//! The vault's on-storage format, object by object. `vault/FORMAT.md` is the prose
//! specification; these modules are its only encoders and decoders, and every decoder
//! bounds the sizes it accepts before allocating.

pub mod config;
pub mod envelope;
pub mod fossils;
pub mod index;
pub mod keyslot;
pub mod pack;
pub mod snapshot;
pub mod sync_group;
pub mod tree;

/// The vault format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// Largest metadata object (index file, snapshot, key slot, tree) accepted, in bytes, both
/// sealed and after decompression.
pub const MAX_METADATA_BYTES: usize = 256 << 20;

/// What a sealed payload is; part of its associated data, so one kind cannot be passed
/// off as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u8)]
pub enum Kind {
    /// File content chunk (data key).
    Data = 1,
    /// Tree chunk (metadata key).
    Tree = 2,
    /// Pack header (metadata key).
    PackHeader = 3,
    /// Index file (metadata key).
    Index = 4,
    /// Snapshot manifest (metadata key).
    Snapshot = 5,
    /// Master key sealed in a key slot (slot KEK).
    KeySlot = 6,
    /// Lock object (metadata key).
    Lock = 7,
    /// Sync-group credentials (metadata key).
    SyncGroup = 8,
    /// Prune's fossil record (metadata key).
    Fossils = 9,
    /// Several small data chunks sealed as one blob (data key; the AAD id is 32 zero bytes).
    Bundle = 10,
}

impl Kind {
    /// Parses the kind byte stored in pack headers.
    pub fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Kind::Data,
            2 => Kind::Tree,
            3 => Kind::PackHeader,
            4 => Kind::Index,
            5 => Kind::Snapshot,
            6 => Kind::KeySlot,
            7 => Kind::Lock,
            8 => Kind::SyncGroup,
            9 => Kind::Fossils,
            10 => Kind::Bundle,
            _ => return None,
        })
    }
}

/// Associated data of every sealed payload: `"zerok1" ‖ kind (1 byte) ‖ id (32 bytes)`.
pub fn aad(kind: Kind, id: &[u8; 32]) -> [u8; 39] {
    let mut out = [0u8; 39];
    out[..6].copy_from_slice(b"zerok1");
    out[6] = kind as u8;
    out[7..].copy_from_slice(id);
    out
}

/// Object names relative to the vault prefix.
pub mod names {
    use zerok_core::{IndexId, PackId, SlotId, SnapshotId, SyncGroupId};

    /// The plaintext config object.
    pub const CONFIG: &str = "config";
    /// Folder of key slots.
    pub const KEYS: &str = "keys";
    /// Folder of packs.
    pub const DATA: &str = "data";
    /// Folder of index files.
    pub const INDEX: &str = "index";
    /// Folder of snapshots.
    pub const SNAPSHOTS: &str = "snapshots";
    /// Folder of locks.
    pub const LOCKS: &str = "locks";
    /// Folder of sync-group credentials.
    pub const SYNC: &str = "sync";
    /// Folder of lock revocation markers.
    pub const REVOKED: &str = "revoked";
    /// Folder of prune's fossil records.
    pub const FOSSILS: &str = "fossils";

    /// `data/<first two hex digits>/<pack id>`.
    pub fn pack(id: &PackId) -> String {
        let hex = id.to_string();
        format!("{DATA}/{}/{hex}", &hex[..2])
    }
    /// `index/<id>`.
    pub fn index(id: &IndexId) -> String {
        format!("{INDEX}/{id}")
    }
    /// `snapshots/<id>`.
    pub fn snapshot(id: &SnapshotId) -> String {
        format!("{SNAPSHOTS}/{id}")
    }
    /// `sync/<id>`.
    pub fn sync_group(id: &SyncGroupId) -> String {
        format!("{SYNC}/{id}")
    }
    /// `fossils/<id>`.
    pub fn fossils(id: &IndexId) -> String {
        format!("{FOSSILS}/{id}")
    }
    /// `keys/<id>`.
    pub fn key(id: &SlotId) -> String {
        format!("{KEYS}/{id}")
    }
    /// The last path component: the hex id of a listed object.
    pub fn id_part(name: &str) -> &str {
        name.rsplit('/').next().unwrap_or(name)
    }
}

/// Seals a MessagePack-map encoding of `value` under the metadata key (zstd level 3).
pub fn seal_msgpack<T: serde::Serialize>(key: &zerok_core::Key32, kind: Kind, id: &[u8; 32], value: &T) -> Vec<u8> {
    let body = rmp_serde::to_vec_named(value).expect("metadata encodes");
    envelope::seal(key, kind, id, &body, 3)
}

/// Opens a sealed MessagePack object; `name` is used in errors.
///
/// # Errors
/// [`crate::Error::Corrupt`] naming the object when it is too large, fails authentication or
/// does not parse.
pub fn open_msgpack<T: serde::de::DeserializeOwned>(
    key: &zerok_core::Key32,
    kind: Kind,
    id: &[u8; 32],
    name: &str,
    sealed: &[u8],
) -> crate::Result<T> {
    if sealed.len() > MAX_METADATA_BYTES {
        return Err(crate::Error::corrupt(name, "larger than any valid object"));
    }
    let body = envelope::open(key, kind, id, sealed, MAX_METADATA_BYTES)
        .map_err(|e| crate::Error::corrupt(name, e.to_string()))?;
    rmp_serde::from_slice(&body).map_err(|e| crate::Error::corrupt(name, format!("does not parse: {e}")))
}
