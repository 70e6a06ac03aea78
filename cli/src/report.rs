//! JSON reports shared by `zerok` and `zerok-restore` (their keys are a contract), and what
//! a restore could not bring back.

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
        "hardlinks_restored": s.hardlinks,
        "fifos_restored": s.fifos,
        "bytes_restored": s.bytes,
        "lost": s.lost,
        "index_damage": s.index_damage,
    })
}

/// Lost paths a restore shown on stderr at most.
const LOST_SHOWN: usize = 20;

/// Tells on stderr what a restore could not bring back (and which index files it read
/// around); returns whether anything was lost, for exit status 3.
pub fn restore_damage(tool: &str, s: &RestoreSummary) -> bool {
    for why in s.index_damage.iter().take(LOST_SHOWN) {
        eprintln!("{tool}: warning: {why}; read the pack headers instead");
    }
    if s.index_damage.len() > LOST_SHOWN {
        eprintln!(
            "{tool}: warning: … and {} more damaged index files or pack headers",
            s.index_damage.len() - LOST_SHOWN
        );
    }
    if s.lost.is_empty() {
        return false;
    }
    eprintln!("{tool}: {} item(s) not restored, their data is lost or damaged (run `zerok check`):", s.lost.len());
    for why in s.lost.iter().take(LOST_SHOWN) {
        eprintln!("  {why}");
    }
    if s.lost.len() > LOST_SHOWN {
        eprintln!("  … and {} more (see --json)", s.lost.len() - LOST_SHOWN);
    }
    true
}
