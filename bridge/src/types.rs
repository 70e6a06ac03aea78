//! The plain data the bridge's methods take and give: ids as hex strings, bytes as bytes,
//! counts as integers — what every binding can turn into its own types without knowing
//! zerok's. With the `serde` feature they serialize with camelCase keys (the Tauri plugin's
//! JSON).

use std::path::PathBuf;

use zerok_client::sync::Received;

/// An invite to pass to the device that joins (URL for a QR code, or the short code);
/// its `Debug` shows neither.
#[derive(Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(rename_all = "camelCase"))]
pub struct InviteInfo {
    /// `zerok://…` (holds the group secret: show it only to the user who pairs).
    pub url: String,
    /// The short code, looked up at the primary relay.
    pub code: String,
    /// Seconds it stays valid.
    pub expires_in_secs: u64,
}

impl std::fmt::Debug for InviteInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InviteInfo").field("expires_in_secs", &self.expires_in_secs).finish_non_exhaustive()
    }
}

/// A push the first relay acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(rename_all = "camelCase"))]
pub struct Pushed {
    /// Its id (hex).
    pub blob_id: String,
    /// Its cursor at that relay.
    pub cursor: u64,
}

/// A message received, decrypted and sender-checked.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(rename_all = "camelCase"))]
pub struct Message {
    /// Cursor at the relay it came from.
    pub cursor: u64,
    /// Its id (hex).
    pub blob_id: String,
    /// The device that pushed it (hex).
    pub sender: String,
    /// The app's bytes.
    pub data: Vec<u8>,
}

impl From<&Received> for Message {
    fn from(m: &Received) -> Self {
        Self { cursor: m.cursor, blob_id: m.blob_id.to_string(), sender: hex::encode(m.sender.0), data: m.data.clone() }
    }
}

/// What a pull brought.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(rename_all = "camelCase"))]
pub struct Pulled {
    /// The messages, in order.
    pub messages: Vec<Message>,
    /// More wait for the next pull (after a key rotation the old group is read to its end
    /// first, the current one next time).
    pub has_more: bool,
    /// The primary relay's cursor the pull reached.
    pub last_cursor: u64,
}

/// Where sync stands.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(rename_all = "camelCase"))]
pub struct SyncStatus {
    /// This device belongs to a sync group.
    pub in_group: bool,
    /// `connected`, `reconnecting` or `disconnected`.
    pub status: String,
    /// While reconnecting, the attempt under way.
    pub attempt: Option<u32>,
    /// The primary relay's last pulled cursor.
    pub last_cursor: u64,
    /// This device's id (hex), once it has one.
    pub device_id: Option<String>,
}

/// How cloud backup runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupSettings {
    /// Vault URL (a folder path, `file://…`, `s3://bucket/prefix`).
    pub vault: String,
    /// The app's state folders.
    pub paths: Vec<PathBuf>,
    /// Snapshot this often, seconds (`None`: the library's default, hourly).
    pub interval_secs: Option<u64>,
    /// Snapshot after this many messages pushed or pulled since the last one (`None`: the
    /// library's default, 100).
    pub after_messages: Option<u64>,
}

/// A snapshot saved.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(rename_all = "camelCase"))]
pub struct BackupReport {
    /// Its id (hex).
    pub snapshot_id: String,
    /// Files in it.
    pub files: u64,
    /// New bytes stored.
    pub bytes_added: u64,
}

/// Where cloud backup stands.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(rename_all = "camelCase"))]
pub struct BackupStatus {
    /// The schedule runs.
    pub enabled: bool,
    /// A snapshot is being taken now.
    pub running: bool,
    /// The last snapshot saved (hex id).
    pub last_snapshot: Option<String>,
    /// The last failure, cleared by the next success.
    pub last_error: Option<String>,
    /// Snapshots saved since enabled.
    pub snapshots: u64,
}

/// What restoring a new device brought.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(rename_all = "camelCase"))]
pub struct Restored {
    /// The snapshot restored (hex id), if the vault had one.
    pub snapshot_id: Option<String>,
    /// Files restored.
    pub files: u64,
    /// Bytes restored.
    pub bytes: u64,
    /// Paths that could not be restored (their data is lost or damaged).
    pub lost: Vec<String>,
    /// The messages after the snapshot's cursor, in order: the app applies them.
    pub messages: Vec<Message>,
    /// Messages after the snapshot the relay no longer held.
    pub messages_missing: u64,
}
