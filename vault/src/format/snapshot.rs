//! `snapshots/<snapshot-id>`: one backup. Sealed MessagePack map (kind `Snapshot`, id = the
//! snapshot id), fields as in [`Snapshot`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zerok_core::{ChunkId, SnapshotId, SyncGroupId};

/// A snapshot manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Format version (1).
    pub version: u32,
    /// When the backup started, Unix nanoseconds.
    pub time_ns: i64,
    /// Host (device) name.
    pub hostname: String,
    /// User tags.
    pub tags: Vec<String>,
    /// Absolute source paths, as given.
    pub paths: Vec<String>,
    /// Root tree: one node per source path, named by its base name.
    pub tree: ChunkId,
    /// The snapshot used to skip unchanged files.
    pub parent: Option<SnapshotId>,
    /// Per relay address, the last sync cursor included in this backup.
    #[serde(default)]
    pub sync_cursors: BTreeMap<String, u64>,
    /// The sync group (`sync/<id>`) the device belonged to at backup time.
    #[serde(default)]
    pub sync_group: Option<SyncGroupId>,
    /// Totals.
    pub summary: SnapshotSummary,
    /// Program that wrote it.
    pub program: String,
    /// For a snapshot `zerok copy` wrote: the id of the snapshot it copies, in the vault it
    /// was first taken in (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<SnapshotId>,
}

/// Totals recorded with a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    /// Regular files.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Bytes of file content.
    pub bytes: u64,
}
