//! `repair`: rebuilds what damage broke, from what every pack carries itself.
//!
//! - [`repair_index`] writes index files anew from the index files that open and the
//!   headers of the packs none of them names (every pack, with `read_all_packs`), drops
//!   entries of packs that are gone, then deletes the index files it read. Like prune, it
//!   holds the exclusive lock; a backup running meanwhile keeps its own index files.
//! - [`repair_snapshots`] rewrites each snapshot some of whose data is lost: a file whose
//!   chunks are nowhere is left out, a folder whose tree is lost is kept empty, and the new
//!   snapshot (tagged `repaired`) replaces the old one. The lost paths are reported.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use zerok_core::{ChunkId, PackId, SnapshotId};

use crate::{
    Error, MasterIndex, Progress, Result, Vault,
    backup::flush_index,
    format::{
        Kind, envelope,
        index::IndexPack,
        names,
        pack::PackWriter,
        tree::{NodeKind, Tree},
    },
    lock::Lock,
};

/// Packs per index file written by repair.
const PACKS_PER_INDEX: usize = 1024;
/// The tag a repaired snapshot gets.
pub const REPAIRED_TAG: &str = "repaired";

/// What `repair index` did.
#[derive(Debug, Default)]
pub struct RepairIndexReport {
    /// Pack headers read.
    pub packs_read: usize,
    /// Packs the new index files name.
    pub packs_indexed: usize,
    /// Index files written.
    pub index_written: usize,
    /// Index files deleted (replaced).
    pub index_removed: usize,
    /// Index entries dropped because their pack is gone.
    pub packs_missing: usize,
    /// Index files (replaced) and pack headers (their chunks unreachable) that did not
    /// open, each naming the object.
    pub damaged: Vec<String>,
    /// Packs whose header did not open.
    pub packs_unreadable: usize,
}

/// Rebuilds the index (see the module docs).
///
/// # Errors
/// [`Error::Locked`] while a prune runs; storage errors.
pub async fn repair_index(vault: &Vault, read_all_packs: bool, progress: &Progress) -> Result<RepairIndexReport> {
    let lock = Lock::acquire(vault, true).await?;
    let result = rebuild_index(vault, read_all_packs, progress).await;
    lock.release(vault).await;
    result
}

async fn rebuild_index(vault: &Vault, read_all_packs: bool, progress: &Progress) -> Result<RepairIndexReport> {
    let mut report = RepairIndexReport::default();
    // Only index files listed before reading are replaced: one a backup writes later stays.
    let old = vault.backend().list(names::INDEX).await?;
    let (mut index, bad) = match read_all_packs {
        true => (MasterIndex::default(), Vec::new()),
        false => MasterIndex::load_reporting(vault).await?,
    };
    report.damaged.extend(bad.iter().map(ToString::to_string));
    let before = index.packs.len();
    let bad_headers = index.add_unindexed(vault).await?;
    report.packs_read = index.packs.len() - before + bad_headers.len();
    report.packs_unreadable = bad_headers.len();
    report.damaged.extend(bad_headers.iter().map(ToString::to_string));
    let gone = gone_packs(vault, &index).await?;
    report.packs_missing = gone.len();
    index.remove_packs(&gone);
    let mut packs: Vec<IndexPack> = index.packs.iter().map(|(id, entries)| IndexPack::new(*id, entries)).collect();
    packs.sort_by_key(|p| p.id);
    report.packs_indexed = packs.len();
    for batch in packs.chunks(PACKS_PER_INDEX) {
        flush_index(vault, batch.to_vec(), progress).await?;
        report.index_written += 1;
    }
    for (name, _) in old {
        vault.backend().delete(&name).await?;
        report.index_removed += 1;
    }
    Ok(report)
}

/// Packs the index names that the store does not hold: missing from its listing and to a
/// HEAD (a listing alone may miss one).
async fn gone_packs(vault: &Vault, index: &MasterIndex) -> Result<HashSet<PackId>> {
    let stored = vault.stored_packs().await?;
    let mut gone = HashSet::new();
    for pack in index.packs.keys().filter(|p| !stored.contains_key(p)) {
        if !vault.backend().exists(&names::pack(pack)).await? {
            gone.insert(*pack);
        }
    }
    Ok(gone)
}

/// What `repair snapshots` did.
#[derive(Debug, Default)]
pub struct RepairSnapshotsReport {
    /// Snapshots read.
    pub snapshots: usize,
    /// Snapshots replaced: (old id, new id; the same with `dry_run`).
    pub repaired: Vec<(SnapshotId, SnapshotId)>,
    /// What the repaired snapshots no longer hold, each "snapshot: path: why".
    pub lost: Vec<String>,
    /// Snapshots that could not be repaired (their root is lost), each naming it.
    pub unrepairable: Vec<String>,
}

/// Rewrites snapshots whose data is partly lost (see the module docs). With `dry_run`, only
/// reports what it would change.
///
/// # Errors
/// [`Error::Locked`] while a prune runs; storage errors.
pub async fn repair_snapshots(vault: &Vault, dry_run: bool, progress: &Progress) -> Result<RepairSnapshotsReport> {
    let lock = Lock::acquire(vault, true).await?;
    let result = rewrite_snapshots(vault, dry_run, progress, &lock).await;
    lock.release(vault).await;
    result
}

async fn rewrite_snapshots(
    vault: &Vault,
    dry_run: bool,
    progress: &Progress,
    lock: &Lock,
) -> Result<RepairSnapshotsReport> {
    let mut report = RepairSnapshotsReport::default();
    let (mut index, _) = MasterIndex::load_reporting(vault).await?;
    index.add_unindexed(vault).await?;
    index.remove_packs(&gone_packs(vault, &index).await?);
    let mut fixer = Fixer {
        vault,
        index: &index,
        done: HashMap::new(),
        sealed: HashSet::new(),
        writer: PackWriter::default(),
        full: Vec::new(),
    };
    let mut replaced = Vec::new();
    for (id, mut snap) in vault.snapshots().await? {
        report.snapshots += 1;
        let fixed = fixer.tree(snap.tree).await?;
        let Some(root) = fixed.id else {
            report.unrepairable.push(format!("snapshot {}: its root tree is lost", id.short()));
            continue;
        };
        if fixed.lost.is_empty() {
            continue;
        }
        report.lost.extend(fixed.lost.iter().map(|l| format!("{}: {l}", id.short())));
        snap.tree = root;
        snap.summary.files = snap.summary.files.saturating_sub(fixed.files);
        snap.summary.bytes = snap.summary.bytes.saturating_sub(fixed.bytes);
        if !snap.tags.iter().any(|t| t == REPAIRED_TAG) {
            snap.tags.push(REPAIRED_TAG.into());
        }
        replaced.push((id, snap));
    }
    if dry_run || replaced.is_empty() {
        report.repaired = replaced.iter().map(|(id, _)| (*id, *id)).collect();
        return Ok(report);
    }
    lock.refresh(vault).await?;
    fixer.finish(progress).await?;
    for (old, snap) in replaced {
        let (new, _, _) = vault.save_snapshot(&snap).await?;
        vault.backend().delete(&names::snapshot(&old)).await?;
        report.repaired.push((old, new));
    }
    Ok(report)
}

/// A tree as repaired: its new id (`None`: the tree itself is lost) and what under it was
/// lost ("path: why", relative to the tree), with the files and bytes that makes.
#[derive(Clone, Default)]
struct Fixed {
    id: Option<ChunkId>,
    lost: Vec<String>,
    files: u64,
    bytes: u64,
}

/// Rewrites trees bottom-up, each once, sealing changed ones into packs.
struct Fixer<'v> {
    vault: &'v Vault,
    index: &'v MasterIndex,
    done: HashMap<ChunkId, Fixed>,
    /// Trees sealed by this repair.
    sealed: HashSet<ChunkId>,
    writer: PackWriter,
    /// Packs filled, to upload.
    full: Vec<PackWriter>,
}

impl Fixer<'_> {
    /// Tree `id` repaired (itself when nothing under it is lost).
    async fn tree(&mut self, id: ChunkId) -> Result<Fixed> {
        if let Some(done) = self.done.get(&id) {
            return Ok(done.clone());
        }
        let tree = match self.vault.load_tree(self.index, &id).await {
            Ok(tree) => tree,
            Err(e @ (Error::NotFound { .. } | Error::Corrupt { .. })) => {
                let lost = Fixed { id: None, lost: vec![format!("(its contents): {e}")], ..Fixed::default() };
                self.done.insert(id, lost.clone());
                return Ok(lost);
            }
            Err(e) => return Err(e),
        };
        let mut out = Fixed::default();
        let mut nodes = Vec::with_capacity(tree.nodes.len());
        for mut node in tree.nodes {
            let name = String::from_utf8_lossy(&node.name).into_owned();
            match (node.kind, node.subtree) {
                (NodeKind::Dir, Some(sub)) => {
                    let fixed = Box::pin(self.tree(sub)).await?;
                    out.lost.extend(fixed.lost.iter().map(|l| format!("{name}/{l}")));
                    (out.files, out.bytes) = (out.files + fixed.files, out.bytes + fixed.bytes);
                    node.subtree = Some(match fixed.id {
                        Some(fixed) => fixed,
                        None => self.store(Tree { version: 1, nodes: Vec::new() }),
                    });
                }
                (NodeKind::File, _) => {
                    if let Some(c) = node.content.iter().find(|c| !self.index.contains(c)) {
                        out.lost.push(format!("{name}: chunk {} is in no index or pack", c.short()));
                        (out.files, out.bytes) = (out.files + 1, out.bytes + node.size);
                        continue;
                    }
                }
                _ => {}
            }
            nodes.push(node);
        }
        out.id = Some(match out.lost.is_empty() {
            true => id,
            false => self.store(Tree { version: 1, nodes }),
        });
        self.done.insert(id, out.clone());
        Ok(out)
    }

    /// Seals a tree into the pack being written, unless the vault has it.
    fn store(&mut self, tree: Tree) -> ChunkId {
        let data = tree.encode();
        let id = self.vault.keys().chunk_id(&data);
        if !self.index.contains(&id) && self.sealed.insert(id) {
            let level = self.vault.config().compression_level;
            let sealed = envelope::seal(self.vault.keys().metadata(), Kind::Tree, &id.0, &data, level);
            self.writer.add(Kind::Tree, id, &sealed, data.len() as u32);
            if self.writer.len() >= self.vault.config().pack_bytes as usize {
                self.full.push(std::mem::take(&mut self.writer));
            }
        }
        id
    }

    /// Uploads the packs of sealed trees and indexes them.
    async fn finish(mut self, progress: &Progress) -> Result<()> {
        self.full.push(self.writer);
        let mut packs = Vec::new();
        for writer in self.full.into_iter().filter(|w| !w.is_empty()) {
            let (pack, bytes, entries) = writer.finish(self.vault.keys().metadata());
            self.vault.backend().put(&names::pack(&pack), Bytes::from(bytes)).await?;
            packs.push(IndexPack::new(pack, &entries));
        }
        flush_index(self.vault, packs, progress).await.map(drop)
    }
}
