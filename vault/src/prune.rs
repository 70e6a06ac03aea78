//! `forget` removes snapshots by policy; `prune` deletes what no snapshot needs.
//!
//! Prune holds the exclusive lock, so no backup is adding references meanwhile. Order of
//! writes (each step leaves a consistent vault if interrupted): 1. repack still-needed
//! chunks out of mostly-unneeded packs into new packs; 2. write new index files naming
//! everything kept; 3. delete the old index files; 4. delete the packs no longer indexed.
//! Prune refuses to delete anything when a snapshot or tree cannot be read.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use zerok_core::{ChunkId, PackId, SnapshotId};

use crate::{
    MasterIndex, Progress, Result, Vault,
    backup::flush_index,
    format::{index::IndexPack, names, pack::PackWriter, tree::NodeKind},
    lock::Lock,
    retention::Retention,
};

/// A pack is rewritten when more than this share of its bytes is unneeded.
pub const REPACK_UNUSED_FRACTION: f64 = 0.10;
/// Packs per index file written by prune.
const PACKS_PER_INDEX: usize = 1024;

/// What `forget` removed.
#[derive(Debug, Default)]
pub struct ForgetReport {
    /// Snapshots deleted.
    pub removed: Vec<SnapshotId>,
    /// Snapshots kept.
    pub kept: Vec<SnapshotId>,
}

/// Applies `policy` to each (host, paths) group of snapshots and deletes what it does not
/// keep.
///
/// # Errors
/// [`crate::Error::Invalid`] for a policy that keeps nothing; storage errors.
pub async fn forget(vault: &Vault, policy: &Retention) -> Result<ForgetReport> {
    if policy.is_empty() {
        return Err(crate::Error::Invalid("a retention policy must keep at least one snapshot".into()));
    }
    type HostPaths = (String, Vec<String>);
    let mut groups: BTreeMap<HostPaths, Vec<(SnapshotId, i64)>> = BTreeMap::new();
    for (id, snap) in vault.snapshots().await? {
        groups.entry((snap.hostname, snap.paths)).or_default().push((id, snap.time_ns));
    }
    let mut report = ForgetReport::default();
    for snaps in groups.into_values() {
        let keep = policy.keep(&snaps);
        for (id, _) in snaps {
            if keep.contains(&id) { report.kept.push(id) } else { report.removed.push(id) }
        }
    }
    for id in &report.removed {
        vault.backend().delete(&names::snapshot(id)).await?;
    }
    Ok(report)
}

/// What `prune` did.
#[derive(Debug, Default)]
pub struct PruneReport {
    /// Packs deleted (unneeded, repacked, or left by interrupted backups).
    pub packs_deleted: usize,
    /// Packs whose needed chunks were copied into new packs.
    pub packs_repacked: usize,
    /// Bytes of packs deleted.
    pub bytes_freed: u64,
    /// Bytes of new packs written by repacking.
    pub bytes_written: u64,
}

/// Deletes chunks no snapshot needs.
///
/// # Errors
/// [`crate::Error::Locked`] while a backup runs; any error reading snapshots or trees
/// (nothing is deleted then); storage errors.
pub async fn prune(vault: &Vault, progress: &Progress) -> Result<PruneReport> {
    let lock = Lock::acquire(vault, true).await?;
    let result = run(vault, progress).await;
    lock.release(vault).await;
    result
}

async fn used_chunks(vault: &Vault, index: &MasterIndex) -> Result<HashSet<ChunkId>> {
    let mut used = HashSet::new();
    for (_, snap) in vault.snapshots().await? {
        let mut stack = vec![snap.tree];
        while let Some(tree_id) = stack.pop() {
            if !used.insert(tree_id) {
                continue;
            }
            for node in vault.load_tree(index, &tree_id).await?.nodes {
                if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
                    stack.push(sub);
                }
                used.extend(node.content);
            }
        }
    }
    Ok(used)
}

async fn run(vault: &Vault, progress: &Progress) -> Result<PruneReport> {
    let index = MasterIndex::load(vault).await?;
    let used = used_chunks(vault, &index).await?;
    let stored = vault.stored_packs().await?;

    let mut report = PruneReport::default();
    let mut keep: Vec<IndexPack> = Vec::new();
    let mut delete: Vec<PackId> = stored.keys().filter(|id| !index.packs.contains_key(id)).copied().collect();
    let mut repack: Vec<PackId> = Vec::new();
    // A chunk stored twice (two devices uploaded it at once) is kept once.
    let mut placed: HashSet<ChunkId> = HashSet::new();
    for (id, entries) in &index.packs {
        let total: u64 = entries.iter().map(|e| e.length as u64).sum();
        let unused: u64 = entries.iter().filter(|e| !used.contains(&e.id)).map(|e| e.length as u64).sum();
        if unused == total {
            delete.push(*id);
        } else if unused as f64 > total as f64 * REPACK_UNUSED_FRACTION {
            repack.push(*id);
        } else {
            placed.extend(entries.iter().map(|e| e.id));
            keep.push(IndexPack::new(*id, entries));
        }
    }

    let mut writer = PackWriter::default();
    let pack_bytes = vault.config().pack_bytes as usize;
    for id in &repack {
        let name = names::pack(id);
        let bytes = vault.backend().get(&name).await?;
        for e in &index.packs[id] {
            if !used.contains(&e.id) || !placed.insert(e.id) {
                continue;
            }
            let sealed = bytes
                .get(e.offset as usize..(e.offset + e.length) as usize)
                .ok_or_else(|| crate::Error::corrupt(&name, "blob lies outside the pack"))?;
            vault.open_chunk(&name, e.kind, &e.id, sealed, e.raw_len)?;
            writer.add(e.kind, e.id, sealed, e.raw_len);
            if writer.len() >= pack_bytes {
                let full = std::mem::take(&mut writer);
                keep.push(put_pack(vault, full, &mut report).await?);
            }
        }
        delete.push(*id);
        report.packs_repacked += 1;
    }
    if !writer.is_empty() {
        keep.push(put_pack(vault, writer, &mut report).await?);
    }

    if !delete.is_empty() || !repack.is_empty() {
        for batch in keep.chunks(PACKS_PER_INDEX) {
            flush_index(vault, batch.to_vec(), progress).await?;
        }
        for old in &index.files {
            vault.backend().delete(&names::index(old)).await?;
        }
        for id in &delete {
            vault.backend().delete(&names::pack(id)).await?;
            report.bytes_freed += stored.get(id).copied().unwrap_or(0);
            report.packs_deleted += 1;
        }
    }
    Ok(report)
}

async fn put_pack(vault: &Vault, writer: PackWriter, report: &mut PruneReport) -> Result<IndexPack> {
    let (id, bytes, entries) = writer.finish(vault.keys().metadata());
    report.bytes_written += bytes.len() as u64;
    vault.backend().put(&names::pack(&id), Bytes::from(bytes)).await?;
    Ok(IndexPack::new(id, &entries))
}
