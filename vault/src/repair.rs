//! `repair`: rebuilds what damage broke, from what every pack carries itself. Both
//! commands hold the exclusive lock (no prune runs meanwhile), refresh it as they go, and
//! change nothing when the store fails them: only what fails authentication, or is gone to
//! a HEAD, counts as damaged.
//!
//! - [`repair_index`] writes index files anew from the index files that open and the
//!   headers of the packs none of them names (every pack, with `read_all_packs`; an index
//!   file's entries stay for a pack whose header does not open), drops entries of packs
//!   that are gone, then deletes the index files it listed first. A backup running
//!   meanwhile keeps the index files it writes.
//! - [`repair_snapshots`] rewrites each snapshot some of whose data is lost: a file whose
//!   chunks are nowhere is left out, a folder whose tree is lost is kept empty, and the new
//!   snapshot is tagged `repaired`; with `forget`, the old one is deleted (as restic's
//!   `repair snapshots --forget`). Snapshots are listed before the index is read, and the
//!   index is read again before anything is written: a chunk found meanwhile (a backup
//!   committed) stops the repair.

use std::collections::{HashMap, HashSet};

use zerok_core::{ChunkId, SnapshotId};

use crate::{
    Error, MasterIndex, Progress, Result, Vault,
    backup::{PACKS_PER_INDEX, flush_index, put_pack},
    format::{
        Kind, envelope,
        index::IndexPack,
        names,
        pack::PackWriter,
        tree::{NodeKind, Tree},
    },
    lock::Lock,
};

/// The tag a repaired snapshot gets.
pub const REPAIRED_TAG: &str = "repaired";
/// Reads of a tree before it counts as lost (a lagging replica may not have it yet).
const TREE_ATTEMPTS: usize = 3;

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
    /// Index files (replaced) and pack headers that did not open, each naming the object.
    pub damaged: Vec<String>,
    /// Packs whose header did not open and that no index file names: their chunks are
    /// unreachable.
    pub packs_unreadable: usize,
}

/// Damage (authentication failed, or gone) is reported; any other error stops the repair.
fn damage_only(errors: Vec<Error>) -> Result<Vec<Error>> {
    errors
        .into_iter()
        .map(|e| if matches!(e, Error::Corrupt { .. } | Error::NotFound { .. }) { Ok(e) } else { Err(e) })
        .collect()
}

/// Rebuilds the index (see the module docs).
///
/// # Errors
/// [`Error::Locked`] while a prune runs; storage errors (nothing is changed then).
pub async fn repair_index(vault: &Vault, read_all_packs: bool, progress: &Progress) -> Result<RepairIndexReport> {
    let lock = Lock::acquire(vault, true).await?;
    let result = rebuild_index(vault, read_all_packs, progress, &lock).await;
    lock.release(vault).await;
    result
}

/// The body of [`repair_index`], under its lock.
async fn rebuild_index(
    vault: &Vault,
    read_all_packs: bool,
    progress: &Progress,
    lock: &Lock,
) -> Result<RepairIndexReport> {
    let mut report = RepairIndexReport::default();
    // Only the index files listed here are read, and replaced: one a backup writes later
    // stays.
    let old = vault.backend().list(names::INDEX).await?;
    let (listed, bad) = MasterIndex::load_files(vault, old.clone()).await;
    report.damaged.extend(damage_only(bad)?.iter().map(ToString::to_string));
    let (mut index, listed) = match read_all_packs {
        true => (MasterIndex::default(), Some(listed)),
        false => (listed, None),
    };
    let before = index.packs.len();
    let bad_headers = index.add_unindexed(vault).await?;
    let unopened: std::collections::HashSet<_> =
        bad_headers.iter().map(|(p, _)| *p).filter(|p| !index.packs.contains_key(p)).collect();
    report.packs_read = index.packs.len() - before + unopened.len();
    let mut unreadable = Vec::new();
    for (pack, e) in bad_headers {
        report.damaged.push(damage_only(vec![e])?.remove(0).to_string());
        unreadable.push(pack);
    }
    // A pack whose header does not open keeps what an index file said of it.
    for (id, entries) in listed.iter().flat_map(|l| &l.packs) {
        if !index.packs.contains_key(id) {
            index.add_pack(*id, entries.clone());
        }
    }
    report.packs_unreadable = unreadable.iter().filter(|p| !index.packs.contains_key(p)).count();
    let gone = index.gone_packs(vault, &vault.stored_packs().await?).await?;
    report.packs_missing = gone.len();
    index.remove_packs(&gone);
    let mut packs: Vec<IndexPack> = index.packs.iter().map(|(id, entries)| IndexPack::new(*id, entries)).collect();
    packs.sort_by_key(|p| p.id);
    report.packs_indexed = packs.len();
    lock.refresh(vault).await?;
    for batch in packs.chunks(PACKS_PER_INDEX) {
        flush_index(vault, batch.to_vec(), progress).await?;
        report.index_written += 1;
    }
    lock.refresh(vault).await?;
    for (name, _) in old {
        vault.backend().delete(&name).await?;
        report.index_removed += 1;
    }
    Ok(report)
}

/// What `repair snapshots` did.
#[derive(Debug, Default)]
pub struct RepairSnapshotsReport {
    /// Snapshots read.
    pub snapshots: usize,
    /// Snapshots repaired: (old id, new id; the same with `dry_run`).
    pub repaired: Vec<(SnapshotId, SnapshotId)>,
    /// Whether the old snapshots were deleted.
    pub forgot: bool,
    /// What the repaired snapshots no longer hold, each "snapshot: path: why".
    pub lost: Vec<String>,
    /// Snapshots that could not be repaired (their root is lost), each naming it.
    pub unrepairable: Vec<String>,
}

/// The index as a repair trusts it: the index files and the headers of the packs none
/// names, without the packs that are gone. Errors other than damage stop the repair.
async fn trusted_index(vault: &Vault) -> Result<MasterIndex> {
    let (mut index, bad) = MasterIndex::load_reporting(vault).await?;
    damage_only(bad)?;
    damage_only(index.add_unindexed(vault).await?.into_iter().map(|(_, e)| e).collect())?;
    let gone = index.gone_packs(vault, &vault.stored_packs().await?).await?;
    index.remove_packs(&gone);
    Ok(index)
}

/// Rewrites snapshots whose data is partly lost (see the module docs). With `dry_run`, only
/// reports what it would change; with `forget`, deletes the snapshots it replaced.
///
/// # Errors
/// [`Error::Locked`] while a prune runs; [`Error::Invalid`] when a chunk reported lost
/// appears while the repair runs; storage errors (nothing is changed then).
pub async fn repair_snapshots(
    vault: &Vault,
    dry_run: bool,
    forget: bool,
    progress: &Progress,
) -> Result<RepairSnapshotsReport> {
    let lock = Lock::acquire(vault, true).await?;
    let result = rewrite_snapshots(vault, dry_run, forget, progress, &lock).await;
    lock.release(vault).await;
    result
}

/// The body of [`repair_snapshots`], under its lock.
async fn rewrite_snapshots(
    vault: &Vault,
    dry_run: bool,
    forget: bool,
    progress: &Progress,
    lock: &Lock,
) -> Result<RepairSnapshotsReport> {
    let mut report = RepairSnapshotsReport { forgot: forget && !dry_run, ..Default::default() };
    // Listed before the index is read: every chunk a listed snapshot uses is indexed by then.
    let snapshots = vault.snapshots().await?;
    let index = trusted_index(vault).await?;
    let mut fixer = Fixer {
        vault,
        index: &index,
        done: HashMap::new(),
        sealed: HashSet::new(),
        writer: PackWriter::default(),
        full: Vec::new(),
        missing: HashSet::new(),
    };
    let mut replaced = Vec::new();
    for (n, (id, mut snap)) in snapshots.into_iter().enumerate() {
        if n % 64 == 63 {
            lock.refresh(vault).await?;
        }
        report.snapshots += 1;
        let fixed = fixer.tree(snap.tree, 0).await?;
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
    // Nothing found lost may have appeared meanwhile.
    let now = trusted_index(vault).await?;
    if let Some(back) = fixer.missing.iter().find(|c| now.contains(c)) {
        return Err(Error::Invalid(format!(
            "repair stopped: chunk {} it found lost is in the vault now (a backup ran meanwhile?); nothing was \
             changed, run it again",
            back.short()
        )));
    }
    lock.refresh(vault).await?;
    fixer.finish(progress).await?;
    for (old, snap) in replaced {
        let (new, _, _) = vault.save_snapshot(&snap).await?;
        if forget {
            vault.backend().delete(&names::snapshot(&old)).await?;
        }
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
    /// Chunks (of files, and trees) found lost.
    missing: HashSet<ChunkId>,
}

impl Fixer<'_> {
    /// Reads a tree, trying again before calling it lost (`Err` holds why).
    async fn load(&self, id: &ChunkId) -> Result<std::result::Result<Tree, Error>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.vault.load_tree(self.index, id).await {
                Ok(tree) => return Ok(Ok(tree)),
                Err(e @ (Error::NotFound { .. } | Error::Corrupt { .. })) if attempt >= TREE_ATTEMPTS => {
                    return Ok(Err(e));
                }
                Err(Error::NotFound { .. } | Error::Corrupt { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Tree `id`, `depth` folders down, repaired (itself when nothing under it is lost).
    async fn tree(&mut self, id: ChunkId, depth: usize) -> Result<Fixed> {
        if let Some(done) = self.done.get(&id) {
            return Ok(done.clone());
        }
        if depth > crate::format::tree::MAX_DEPTH {
            return Err(Error::Invalid(format!(
                "tree {} lies more than {} folders deep",
                id.short(),
                crate::format::tree::MAX_DEPTH
            )));
        }
        let tree = match self.load(&id).await? {
            Ok(tree) => tree,
            Err(e) => {
                self.missing.insert(id);
                let lost = Fixed { id: None, lost: vec![format!("(its contents): {e}")], ..Fixed::default() };
                self.done.insert(id, lost.clone());
                return Ok(lost);
            }
        };
        let mut out = Fixed::default();
        let mut nodes = Vec::with_capacity(tree.nodes.len());
        for mut node in tree.nodes {
            let name = String::from_utf8_lossy(&node.name).into_owned();
            match (node.kind, node.subtree) {
                (NodeKind::Dir, Some(sub)) => {
                    let fixed = Box::pin(self.tree(sub, depth + 1)).await?;
                    out.lost.extend(fixed.lost.iter().map(|l| format!("{name}/{l}")));
                    (out.files, out.bytes) = (out.files + fixed.files, out.bytes + fixed.bytes);
                    node.subtree = Some(match fixed.id {
                        Some(fixed) => fixed,
                        None => self.store(Tree::new(Vec::new())),
                    });
                }
                (NodeKind::File, _) => {
                    if let Some(c) = node.content.iter().find(|c| !self.index.contains(c)) {
                        self.missing.insert(*c);
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
            false => self.store(Tree::new(nodes)),
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
            if self.writer.is_full(self.vault.config().pack_bytes as usize) {
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
            packs.push(put_pack(self.vault, writer).await?.0);
        }
        flush_index(self.vault, packs, progress).await.map(drop)
    }
}
