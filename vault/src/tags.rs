//! A snapshot's tags changed: snapshots are immutable objects, so the snapshot is written
//! anew (the same tree, time, paths and all, other tags) and the old one deleted, under an
//! exclusive lock (as restic's `tag`). The new one is written first: an interruption leaves
//! both, never neither.

use zerok_core::SnapshotId;

use crate::{Result, Vault, format::names, lock::Lock};

/// How tags change.
#[derive(Clone, Debug, Default)]
pub struct TagChange {
    /// Tags the snapshot ends with instead of its own (before `add` and `remove`).
    pub set: Option<Vec<String>>,
    /// Tags added (once each).
    pub add: Vec<String>,
    /// Tags removed.
    pub remove: Vec<String>,
}

impl TagChange {
    /// The tags `tags` become.
    pub fn apply(&self, tags: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in self.set.as_deref().unwrap_or(tags).iter().chain(&self.add) {
            if !out.contains(t) && !self.remove.contains(t) {
                out.push(t.clone());
            }
        }
        out
    }
}

/// Applies `change` to the snapshots `ids`; returns (old id, new id) of each that changed.
///
/// # Errors
/// [`crate::Error::Locked`] while another operation holds the vault; [`crate::Error::Snapshot`]
/// for an id the vault does not list; storage errors (what was done until then stays done).
pub async fn retag(vault: &Vault, ids: &[SnapshotId], change: &TagChange) -> Result<Vec<(SnapshotId, SnapshotId)>> {
    let lock = Lock::acquire(vault, true).await?;
    let result = retag_locked(vault, ids, change).await;
    lock.release(vault).await;
    result
}

async fn retag_locked(vault: &Vault, ids: &[SnapshotId], change: &TagChange) -> Result<Vec<(SnapshotId, SnapshotId)>> {
    let all = vault.snapshots().await?;
    let mut done = Vec::new();
    for id in ids {
        let (_, snap) = all
            .iter()
            .find(|(s, _)| s == id)
            .ok_or_else(|| crate::Error::Snapshot(id.to_string(), "no such snapshot"))?;
        let tags = change.apply(&snap.tags);
        if tags == snap.tags {
            continue;
        }
        let renamed = crate::format::snapshot::Snapshot { tags, ..snap.clone() };
        let (new, _, _) = vault.save_snapshot(&renamed).await?;
        vault.backend().delete(&names::snapshot(id)).await?;
        done.push((*id, new));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::TagChange;

    #[test]
    fn tags_are_set_added_and_removed_once_each() {
        let tags = vec!["a".to_string(), "b".into()];
        let add = TagChange { add: vec!["c".into(), "a".into()], remove: vec!["b".into()], set: None };
        assert_eq!(add.apply(&tags), ["a", "c"]);
        let set = TagChange { set: Some(vec!["x".into()]), add: vec!["y".into()], remove: vec![] };
        assert_eq!(set.apply(&tags), ["x", "y"]);
    }
}
