//! `copy`: snapshots from one vault into another, which has keys of its own. Every chunk
//! is read and opened with the source's keys, named again with the destination's chunk-id
//! key, and sealed and uploaded only when the destination lacks it; trees are rewritten
//! with the new names. The destination's snapshot records the one it copies (`original`),
//! so a snapshot already copied is skipped. Runs under a shared lock on the destination and
//! commits as a backup does: every pack the new snapshot uses is verified present first.
//! The sync-group record a snapshot names (the group secret and the device's identity key,
//! which a restore needs to rejoin) is copied too, unless the caller says not to: whoever
//! holds the destination's keys can then act as that device in the group.

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use zerok_core::{ChunkId, IndexId, PackId, SnapshotId};

use crate::{
    Error, MasterIndex, Progress, Result, Vault,
    backup::{Uses, flush_index, put_pack, verify},
    format::{
        Kind, envelope,
        index::IndexPack,
        names,
        pack::PackWriter,
        snapshot::Snapshot,
        tree::{NodeKind, Tree},
    },
    lock::{Lock, REFRESH_SECS},
};

/// Chunks read from the source at once.
const READS_AT_ONCE: usize = 8;

/// What a copy did.
#[derive(Clone, Debug, Default)]
pub struct CopyReport {
    /// Source snapshot → the destination's new snapshot.
    pub copied: Vec<(SnapshotId, SnapshotId)>,
    /// Source snapshots the destination already held a copy of.
    pub skipped: Vec<SnapshotId>,
    /// Chunks (data and trees) sealed and sent.
    pub chunks_sent: u64,
    /// Chunks the destination already held.
    pub chunks_present: u64,
    /// Bytes uploaded (packs, index files, snapshots).
    pub bytes_sent: u64,
}

/// Copies `snapshots` (oldest first as given) from `src` into `dst`; with `sync_groups`,
/// the sync-group records they name too (else the copies name none).
///
/// # Errors
/// Storage errors; a source chunk that does not open ([`Error::Corrupt`], naming it);
/// [`Error::Revoked`] when a prune of the destination collected what the copy uses while
/// it ran (run it again).
pub async fn copy(
    src: &Vault,
    dst: &Vault,
    snapshots: &[(SnapshotId, Snapshot)],
    sync_groups: bool,
    progress: &Progress,
) -> Result<CopyReport> {
    if src.config().vault_id == dst.config().vault_id {
        return Err(Error::Invalid("source and destination are the same vault".into()));
    }
    let lock = Lock::acquire(dst, false).await?;
    let result = run(src, dst, snapshots, sync_groups, progress, &lock).await;
    lock.release(dst).await;
    result
}

async fn run(
    src: &Vault,
    dst: &Vault,
    snapshots: &[(SnapshotId, Snapshot)],
    sync_groups: bool,
    progress: &Progress,
    lock: &Lock,
) -> Result<CopyReport> {
    let (src_index, dst_index, dst_snapshots) =
        tokio::join!(MasterIndex::load(src), MasterIndex::load(dst), dst.snapshots());
    let (src_index, dst_index) = (src_index?, dst_index?);
    // The destination's snapshots by the id of the one each copies, and its own by their
    // own id (a copy of one of them, copied back, is skipped too).
    let mut copies: HashMap<SnapshotId, SnapshotId> = HashMap::new();
    for (id, s) in dst_snapshots? {
        copies.insert(s.original.unwrap_or(id), id);
        copies.insert(id, id);
    }
    let mut copier = Copier::new(src, &src_index, dst, &dst_index, lock);
    let mut report = CopyReport::default();
    for (id, snapshot) in snapshots {
        let original = snapshot.original.unwrap_or(*id);
        if copies.contains_key(&original) {
            report.skipped.push(*id);
            continue;
        }
        let tree = copier.tree(snapshot.tree, 0).await?;
        copier.finish_packs(progress).await?;
        let missing = verify(dst, copier.uses(), progress).await?;
        if !missing.is_empty() {
            return Err(Error::Revoked(format!(
                "a prune of the destination removed {} pack(s) this copy uses while it ran; run it again",
                missing.len()
            )));
        }
        let sync_group = match snapshot.sync_group.filter(|_| sync_groups) {
            Some(group) => Some(copy_sync_group(src, dst, &group).await?),
            None => None,
        };
        let sync_cursors = if sync_group.is_some() { snapshot.sync_cursors.clone() } else { Default::default() };
        let copied = Snapshot {
            tree,
            parent: snapshot.parent.and_then(|p| copies.get(&p).copied()),
            sync_group,
            sync_cursors,
            original: Some(original),
            ..snapshot.clone()
        };
        let (new_id, _, size, _) = crate::lock::commit(dst, lock, &copied).await?;
        copier.bytes += size;
        copies.insert(original, new_id);
        copies.insert(*id, new_id);
        report.copied.push((*id, new_id));
    }
    report.chunks_sent = copier.sent;
    report.chunks_present = copier.present;
    report.bytes_sent = copier.bytes;
    Ok(report)
}

/// The group credentials a snapshot names, stored in `dst` (sealed with its key).
async fn copy_sync_group(src: &Vault, dst: &Vault, id: &zerok_core::SyncGroupId) -> Result<zerok_core::SyncGroupId> {
    let g = src.load_sync_group(id).await?;
    let secret: [u8; 32] =
        g.secret.as_slice().try_into().map_err(|_| Error::corrupt(names::sync_group(id), "secret"))?;
    let device: Option<[u8; 32]> = g.device_key.as_deref().and_then(|k| k.try_into().ok());
    dst.save_sync_group(&secret, &g.relays, device.as_ref(), g.roster.as_deref()).await
}

/// Names chunks again for the destination and packs what it lacks.
struct Copier<'a> {
    src: &'a Vault,
    src_index: &'a MasterIndex,
    dst: &'a Vault,
    dst_index: &'a MasterIndex,
    lock: &'a Lock,
    /// Source chunk id → destination chunk id, for every chunk met.
    names: HashMap<ChunkId, ChunkId>,
    /// Destination chunks sealed by this copy.
    sealed: HashSet<ChunkId>,
    /// Packs of the destination's chunks the copy reuses.
    reused: HashSet<PackId>,
    data: PackWriter,
    trees: PackWriter,
    uploaded: Vec<IndexPack>,
    /// The uploaded packs an index file names.
    indexed: HashSet<PackId>,
    indexes: Vec<IndexId>,
    sent: u64,
    present: u64,
    bytes: u64,
    refreshed: std::time::Instant,
}

impl<'a> Copier<'a> {
    fn new(
        src: &'a Vault,
        src_index: &'a MasterIndex,
        dst: &'a Vault,
        dst_index: &'a MasterIndex,
        lock: &'a Lock,
    ) -> Self {
        Copier {
            src,
            src_index,
            dst,
            dst_index,
            lock,
            names: HashMap::new(),
            sealed: HashSet::new(),
            reused: HashSet::new(),
            data: PackWriter::default(),
            trees: PackWriter::default(),
            uploaded: Vec::new(),
            indexed: HashSet::new(),
            indexes: Vec::new(),
            sent: 0,
            present: 0,
            bytes: 0,
            refreshed: std::time::Instant::now(),
        }
    }

    /// The destination's id of source tree `id`, rewritten and stored as needed.
    async fn tree(&mut self, id: ChunkId, depth: usize) -> Result<ChunkId> {
        if depth > crate::format::tree::MAX_DEPTH {
            return Err(Error::corrupt(format!("tree {id}"), "nested too deep"));
        }
        if let Some(done) = self.names.get(&id) {
            return Ok(*done);
        }
        let tree = self.src.load_tree(self.src_index, &id).await?;
        let mut nodes = Vec::with_capacity(tree.nodes.len());
        for mut node in tree.nodes {
            match (node.kind, node.subtree) {
                (NodeKind::Dir, Some(sub)) => node.subtree = Some(Box::pin(self.tree(sub, depth + 1)).await?),
                (NodeKind::File, _) => node.content = self.chunks(&node.content).await?,
                // Only files have content; anything else's would name the source's chunks.
                _ => node.content.clear(),
            }
            nodes.push(node);
        }
        let body = Tree::new(nodes).encode();
        let new = self.dst.keys().chunk_id(&body);
        self.store(Kind::Tree, new, &body).await?;
        self.names.insert(id, new);
        Ok(new)
    }

    /// The destination's ids of a file's chunks, each stored as needed; chunks not met
    /// before are read from the source a few at once.
    async fn chunks(&mut self, content: &[ChunkId]) -> Result<Vec<ChunkId>> {
        let mut unseen: Vec<ChunkId> = content.iter().filter(|c| !self.names.contains_key(c)).copied().collect();
        // A file of zeros names one chunk many times: it is read once.
        let mut met = HashSet::new();
        unseen.retain(|c| met.insert(*c));
        let (src, index) = (self.src, self.src_index);
        let mut reads = futures::stream::iter(unseen)
            .map(|c| async move { (c, src.read_chunk(index, &c).await) })
            .buffered(READS_AT_ONCE);
        while let Some((c, plain)) = reads.next().await {
            if self.names.contains_key(&c) {
                continue;
            }
            let plain = plain?;
            let new = self.dst.keys().chunk_id(&plain);
            self.store(Kind::Data, new, &plain).await?;
            self.names.insert(c, new);
            // Reading what the destination holds already uploads nothing for a long time.
            self.keep_lock().await?;
        }
        Ok(content.iter().map(|c| self.names[c]).collect())
    }

    /// Seals and packs a chunk the destination lacks; uploads the pack when full.
    async fn store(&mut self, kind: Kind, id: ChunkId, body: &[u8]) -> Result<()> {
        if let Some(place) = self.dst_index.get(&id) {
            self.reused.insert(place.pack);
            self.present += 1;
            return Ok(());
        }
        if !self.sealed.insert(id) {
            return Ok(());
        }
        let key = if kind == Kind::Tree { self.dst.keys().metadata() } else { self.dst.keys().data() };
        let sealed = envelope::seal(key, kind, &id.0, body, self.dst.config().compression_level);
        let pack_bytes = self.dst.config().pack_bytes as usize;
        let writer = if kind == Kind::Tree { &mut self.trees } else { &mut self.data };
        writer.add(kind, id, &sealed, body.len() as u32);
        self.sent += 1;
        if writer.is_full(pack_bytes) {
            let full = std::mem::take(writer);
            self.upload(full).await?;
        }
        Ok(())
    }

    async fn upload(&mut self, writer: PackWriter) -> Result<()> {
        let (pack, n) = put_pack(self.dst, writer).await?;
        self.bytes += n;
        self.uploaded.push(pack);
        self.keep_lock().await
    }

    /// Rewrites the lock when it is due, as a backup does.
    async fn keep_lock(&mut self) -> Result<()> {
        if self.refreshed.elapsed().as_secs() >= REFRESH_SECS {
            self.lock.refresh(self.dst).await?;
            self.refreshed = std::time::Instant::now();
        }
        Ok(())
    }

    /// Uploads the packs being filled and indexes every pack not yet indexed.
    async fn finish_packs(&mut self, progress: &Progress) -> Result<()> {
        for writer in [std::mem::take(&mut self.data), std::mem::take(&mut self.trees)] {
            if !writer.is_empty() {
                self.upload(writer).await?;
            }
        }
        let fresh: Vec<IndexPack> = self.uploaded.iter().filter(|p| !self.indexed.contains(&p.id)).cloned().collect();
        for batch in fresh.chunks(crate::backup::PACKS_PER_INDEX) {
            let (id, n) = flush_index(self.dst, batch.to_vec(), progress).await?;
            self.indexes.extend(id);
            self.bytes += n;
            self.indexed.extend(batch.iter().map(|p| p.id));
        }
        Ok(())
    }

    fn uses(&self) -> Uses<'_> {
        Uses { start: self.dst_index, reused: &self.reused, uploaded: &self.uploaded, written: &self.indexes }
    }
}
