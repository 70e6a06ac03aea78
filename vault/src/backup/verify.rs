//! The check before a snapshot is committed (FORMAT.md §5.1): every pack the snapshot uses
//! exists, and is named by an index file that still exists. Packs whose index files a prune
//! deleted while the backup ran are named again in a new index file; missing packs are
//! reported so the backup can start over without them.

use std::collections::{HashMap, HashSet};

use zerok_core::{IndexId, PackId};

use super::packer::{PACKS_PER_INDEX, Packed, flush};
use crate::{
    MasterIndex, Progress, Result, Vault,
    format::{index::IndexPack, names, pack::BlobEntry},
};

/// Up to this many packs are checked by HEAD; more by one listing of `data/` first.
const HEAD_AT_MOST: usize = 64;

/// What a snapshot about to be committed uses.
pub(crate) struct Uses<'a> {
    /// The index loaded when the backup began.
    pub start: &'a MasterIndex,
    /// Packs of the chunks it reuses from that index.
    pub reused: &'a HashSet<PackId>,
    /// Packs it uploaded.
    pub uploaded: &'a [IndexPack],
    /// Index files it wrote.
    pub written: &'a [IndexId],
}

/// Returns the packs the snapshot uses that the store no longer holds (none: the snapshot
/// may be committed, every pack it uses being indexed).
///
/// # Errors
/// Storage errors.
pub(crate) async fn verify(vault: &Vault, uses: Uses<'_>, progress: &Progress) -> Result<Vec<PackId>> {
    let mut needed: HashMap<PackId, Vec<BlobEntry>> = HashMap::new();
    for pack in uses.reused {
        if let Some(entries) = uses.start.packs.get(pack) {
            needed.insert(*pack, entries.clone());
        }
    }
    for pack in uses.uploaded {
        needed.insert(pack.id, pack.entries().expect("written by this backup"));
    }
    // One round trip for both questions.
    let (missing, present) =
        tokio::join!(missing_packs(vault, needed.keys().copied().collect()), vault.backend().names_in(names::INDEX));
    let missing = missing?;
    if !missing.is_empty() {
        return Ok(missing);
    }
    let present = present?;
    if uses.start.files.iter().chain(uses.written).all(|f| present.contains(&f.to_string())) {
        return Ok(Vec::new());
    }
    // A prune rewrote the index meanwhile: name again what it no longer names.
    let now = MasterIndex::load(vault).await?;
    let again: Vec<IndexPack> =
        needed.iter().filter(|(p, _)| !now.packs.contains_key(p)).map(|(p, e)| IndexPack::new(*p, e)).collect();
    if !again.is_empty() {
        tracing::info!(packs = again.len(), "a prune ran during the backup; indexing its packs again");
    }
    for batch in again.chunks(PACKS_PER_INDEX) {
        flush(vault, batch.to_vec(), progress).await?;
    }
    Ok(Vec::new())
}

/// After a run found packs gone: its index files may name them (one written while the run
/// was paused lands after prune deleted its packs), so they are replaced by one naming only
/// the run's packs that remain.
///
/// # Errors
/// Storage errors.
pub(super) async fn unindex(vault: &Vault, packed: &Packed, missing: &[PackId], progress: &Progress) -> Result<()> {
    let kept: Vec<IndexPack> = packed.packs.iter().filter(|p| !missing.contains(&p.id)).cloned().collect();
    for batch in kept.chunks(PACKS_PER_INDEX) {
        flush(vault, batch.to_vec(), progress).await?;
    }
    // A device of an append-only vault may not delete them: they stay, naming packs that
    // are gone, until an admin's `repair index` (readers use the packs the store holds).
    for name in packed.indexes.iter().map(names::index).filter(|n| vault.backend().may_delete(n)) {
        vault.backend().delete(&name).await?;
    }
    Ok(())
}

/// The packs of `packs` the store does not hold: by HEAD for a few, else by one listing and
/// a HEAD for each pack it lacks (a listing may miss objects; a HEAD does not).
async fn missing_packs(vault: &Vault, packs: Vec<PackId>) -> Result<Vec<PackId>> {
    let unlisted = if packs.len() <= HEAD_AT_MOST {
        packs
    } else {
        let stored = vault.stored_packs().await?;
        packs.into_iter().filter(|p| !stored.contains_key(p)).collect()
    };
    Ok(vault.absent_packs(unlisted).await?.into_iter().collect())
}
