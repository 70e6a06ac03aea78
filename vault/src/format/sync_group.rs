//! `sync/<sync-group-id>`: the credentials of a sync group this vault's devices belong to,
//! so a recovery key restores a device's place in its group as well as its files. Sealed
//! MessagePack map (kind `SyncGroup`, id = the object's id), fields as in [`SyncGroup`].
//!
//! The id is BLAKE3 keyed with the chunk-id key over `"zerok-sync-group-v1" ‖ secret ‖
//! relays` (‖ device key ‖ roster log, when present): the same credentials always land in
//! the same object, and the name reveals nothing about them.

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;
use zerok_core::{SyncGroupId, keys::VaultKeys};

/// Domain of the id hash.
const ID_DOMAIN: &[u8] = b"zerok-sync-group-v1";

/// A sync group's secret and where its relays are.
#[derive(Clone, Serialize, Deserialize)]
pub struct SyncGroup {
    /// Format version (1).
    pub version: u32,
    /// The group secret (spec §4), from which every group key derives.
    #[serde(with = "serde_bytes")]
    pub secret: Vec<u8>,
    /// Relay addresses (`ENDPOINT_ID@IP:PORT`), primary first.
    pub relays: Vec<String>,
    /// When a device first stored these credentials, Unix nanoseconds.
    pub time_ns: i64,
    /// The backing-up device's identity key: a restore takes that device's place in the
    /// roster (and so can open the rotations made since). Absent in older vaults.
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Option::is_none")]
    pub device_key: Option<Vec<u8>>,
    /// The group's roster log as the device had it (MessagePack list of entries), the
    /// anchor a restored device checks the relay's log against.
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Option::is_none")]
    pub roster: Option<Vec<u8>>,
}

impl std::fmt::Debug for SyncGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SyncGroup({} relays, [REDACTED])", self.relays.len())
    }
}

impl Drop for SyncGroup {
    fn drop(&mut self) {
        self.secret.zeroize();
        if let Some(k) = &mut self.device_key {
            k.zeroize();
        }
    }
}

impl SyncGroup {
    /// The object id these credentials are stored under.
    pub fn id(&self, keys: &VaultKeys) -> SyncGroupId {
        let extra = [self.device_key.as_deref().unwrap_or_default(), self.roster.as_deref().unwrap_or_default()];
        let mut material = [ID_DOMAIN, &self.secret, self.relays.join("\n").as_bytes(), &extra.concat()].concat();
        let id = SyncGroupId(keys.chunk_id(&material).0);
        material.zeroize();
        id
    }
}
