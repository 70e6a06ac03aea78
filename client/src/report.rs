//! JSON reports shared by `zerok` and `zerok-restore` (their keys are a contract).

use std::path::Path;

use serde_json::{Value, json};
use zerok_core::SnapshotId;
use zerok_vault::RestoreSummary;

/// The `--json` object of a restore.
pub fn restore_json(id: &SnapshotId, target: &Path, s: &RestoreSummary) -> Value {
    json!({
        "snapshot_id": id.to_string(),
        "target": target.display().to_string(),
        "files_restored": s.files,
        "dirs_restored": s.dirs,
        "symlinks_restored": s.symlinks,
        "bytes_restored": s.bytes,
    })
}
