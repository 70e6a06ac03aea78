//! `forget` removes snapshots by policy; `prune` deletes what no snapshot needs, in two
//! steps that trust no clock but the store's and no lock's freshness (FORMAT.md §5.1):
//!
//! 1. *Deletion.* The fossils of an earlier collection are deleted once every lock its
//!    record names has ended (stale by the store's clock, or dead: those are revoked first),
//!    except fossils an index names again or that hold a chunk a snapshot uses and no index
//!    names (those are indexed again: kept).
//! 2. *Collection.* Still-needed chunks of mostly-unneeded packs are copied into new packs,
//!    new index files name everything kept, the index files read are deleted, and a fossil
//!    record names the packs left unneeded with the locks held at that moment. When none of
//!    those locks is live, step 1 runs on the new record at once, on a fresh listing.
//!
//! Each write leaves a sound vault if interrupted. Prune collects nothing when a snapshot or
//! tree cannot be read, a chunk a snapshot uses is in no index file it read, or a pack
//! holding such a chunk is missing: each is what a LIST that missed objects looks like.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use zerok_core::{ChunkId, IndexId, PackId, SnapshotId};

use crate::{
    Error, MasterIndex, Progress, Result, Vault,
    backup::{PACKS_PER_INDEX, flush_index},
    format::{
        Kind,
        fossils::FossilRecord,
        index::IndexPack,
        names, open_msgpack,
        pack::{self, BlobEntry, PackWriter},
        seal_msgpack,
        tree::NodeKind,
    },
    lock::{self, Lock},
    retention::Retention,
};

/// A pack is rewritten when more than this share of its bytes is unneeded.
pub const REPACK_UNUSED_FRACTION: f64 = 0.10;
/// Revocation markers are kept this long (store clock) after their lock is gone.
const REVOCATION_KEEP_SECS: i64 = 30 * 24 * 3600;

/// What `forget` removed.
#[derive(Debug, Default)]
pub struct ForgetReport {
    /// Snapshots deleted.
    pub removed: Vec<SnapshotId>,
    /// Snapshots kept.
    pub kept: Vec<SnapshotId>,
}

/// Applies `policy` to each group of snapshots ([`Retention::group_by`]: host and paths
/// unless told) and deletes what it does not keep. The newest snapshot of each host and
/// paths is always kept: that is how devices notice a store that rolled back.
///
/// # Errors
/// [`crate::Error::Invalid`] for a policy that keeps nothing; storage errors.
pub async fn forget(vault: &Vault, policy: &Retention) -> Result<ForgetReport> {
    let report = forget_plan(vault, policy).await?;
    for id in &report.removed {
        vault.backend().delete(&names::snapshot(id)).await?;
    }
    Ok(report)
}

/// What [`forget`] would delete and keep, deleting nothing.
///
/// # Errors
/// As [`forget`].
pub async fn forget_plan(vault: &Vault, policy: &Retention) -> Result<ForgetReport> {
    if policy.is_empty() {
        return Err(crate::Error::Invalid("a retention policy must keep at least one snapshot".into()));
    }
    type Group = (String, Vec<String>, Vec<String>);
    let mut groups: BTreeMap<Group, Vec<crate::Dated>> = BTreeMap::new();
    // Dated no later than stored: a snapshot dated in the future is not kept forever.
    let dated = vault.snapshots_dated().await?;
    // The newest of each host and paths always stays, whatever the grouping and rules:
    // devices tell a store that rolled back by it (client `seen`, FORMAT.md §1).
    let mut newest: BTreeMap<(&str, &[String]), SnapshotId> = BTreeMap::new();
    for d in &dated {
        newest.insert((d.snapshot.hostname.as_str(), d.snapshot.paths.as_slice()), d.id);
    }
    let newest: std::collections::HashSet<SnapshotId> = newest.into_values().collect();
    for d in dated.iter().cloned() {
        groups.entry(policy.group_by.key(&d.snapshot)).or_default().push(d);
    }
    let mut report = ForgetReport::default();
    for snaps in groups.into_values() {
        let times: Vec<_> = snaps.iter().map(|d| (d.id, d.time_ns, d.snapshot.tags.as_slice())).collect();
        let keep = policy.keep(&times);
        for d in &snaps {
            if keep.contains(&d.id) || newest.contains(&d.id) {
                report.kept.push(d.id)
            } else {
                report.removed.push(d.id)
            }
        }
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
    /// Fossils left for a later prune: backups that were running may still use them.
    pub packs_pending: usize,
    /// Bytes of those fossils.
    pub bytes_pending: u64,
    /// Fossils kept because a snapshot written since their collection uses them.
    pub packs_kept: usize,
    /// Locks of stalled or dead backups that were revoked.
    pub locks_revoked: usize,
    /// Live backups (host and pid) the pending fossils wait for.
    pub waiting_for: Vec<String>,
}

/// Deletes chunks no snapshot needs (see the module docs for the two steps).
///
/// # Errors
/// [`Error::Locked`] while another prune runs; any error reading snapshots or trees, or a
/// needed chunk or pack that cannot be found (nothing is collected then); storage errors.
pub async fn prune(vault: &Vault, progress: &Progress) -> Result<PruneReport> {
    let lock = Lock::acquire(vault, true).await?;
    let result = run(vault, progress, &lock).await;
    lock.release(vault).await;
    result
}

/// What the vault holds and its snapshots use, as listed at one moment.
struct View {
    index: MasterIndex,
    stored: HashMap<PackId, u64>,
    /// Every chunk (content and tree) some snapshot uses.
    used: HashSet<ChunkId>,
    /// Snapshots whose trees are in `used`.
    walked: HashSet<SnapshotId>,
    /// Headers of fossils read so far (a snapshot an earlier listing missed may have its
    /// trees only there).
    fossils: MasterIndex,
}

impl View {
    /// Lists snapshots, then loads the index (so the index files of every listed snapshot
    /// are seen), then the packs, and walks the trees of snapshots not walked before. A tree
    /// no index names is looked for in the headers of `fossils`.
    async fn load(vault: &Vault, before: Option<View>, fossils: &[PackId]) -> Result<View> {
        let listed = vault.backend().list_twice(names::SNAPSHOTS).await?;
        let ids = listed
            .iter()
            .map(|l| SnapshotId::from_hex(names::id_part(&l.name)).map_err(|_| Error::corrupt(&l.name, "bad name")))
            .collect::<Result<Vec<_>>>()?;
        let mut index = MasterIndex::load(vault).await?;
        let stored = vault.stored_packs().await?;
        // An index file naming packs that are gone (one a prune deleted, put back by the
        // store) must not make chunks look stored there.
        index.remove_packs(&index.gone_packs(vault, &stored).await?);
        let (mut used, mut walked, mut fossil_index) =
            before.map(|v| (v.used, v.walked, v.fossils)).unwrap_or_default();
        let fresh: Vec<SnapshotId> = ids.into_iter().filter(|id| !walked.contains(id)).collect();
        let roots: Vec<ChunkId> = futures::stream::iter(fresh.clone())
            .map(|id| async move { vault.load_snapshot(&id).await.map(|s| s.tree) })
            .buffer_unordered(8)
            .try_collect()
            .await?;
        let mut stack = roots;
        while let Some(tree_id) = stack.pop() {
            if !used.insert(tree_id) {
                continue;
            }
            let source = match index.contains(&tree_id) {
                true => &index,
                false => {
                    read_headers(vault, &mut fossil_index, fossils, &stored).await?;
                    &fossil_index
                }
            };
            for node in vault.load_tree(source, &tree_id).await?.nodes {
                if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
                    stack.push(sub);
                }
                used.extend(node.content);
            }
        }
        walked.extend(fresh);
        Ok(View { index, stored, used, walked, fossils: fossil_index })
    }

    /// Used chunks that no index file names.
    fn unindexed(&self) -> HashSet<ChunkId> {
        self.used.iter().filter(|c| !self.index.contains(c)).copied().collect()
    }

    /// Refuses when the listings disagree in a way a missed object explains: a used chunk
    /// in no index file, or in a pack the store does not hold.
    async fn check_whole(&self, vault: &Vault) -> Result<()> {
        if let Some(chunk) = self.unindexed().into_iter().next() {
            return Err(Error::Invalid(format!(
                "prune refused: a snapshot uses chunk {} that no index file read names (a listing may have missed \
                 one; run `zerok check`)",
                chunk.short()
            )));
        }
        let needed: HashSet<PackId> = self.used.iter().filter_map(|c| self.index.get(c)).map(|l| l.pack).collect();
        let Some(pack) = needed.iter().find(|p| !self.stored.contains_key(p)) else {
            return Ok(());
        };
        let name = names::pack(pack);
        let why = match vault.backend().exists(&name).await? {
            true => "the listing of data/ missed it",
            false => "it is missing (run `zerok check`)",
        };
        Err(Error::Invalid(format!("prune refused: pack {name} holds chunks snapshots use, and {why}")))
    }
}

/// Adds to `into` the headers of the `packs` the store holds that it lacks. A header that
/// does not open is left out (its chunks count as nowhere).
async fn read_headers(
    vault: &Vault,
    into: &mut MasterIndex,
    packs: &[PackId],
    stored: &HashMap<PackId, u64>,
) -> Result<()> {
    let todo = packs
        .iter()
        .filter_map(|p| stored.get(p).map(|&size| (*p, size)))
        .filter(|(p, _)| !into.packs.contains_key(p))
        .collect();
    for (_, e) in into.add_headers(vault, todo).await {
        match e {
            Error::Corrupt { .. } => tracing::warn!(error = %e, "pack damaged; what does not open counts as nowhere"),
            e => return Err(e),
        }
    }
    Ok(())
}

/// A fossil record as stored.
struct Record {
    id: IndexId,
    body: FossilRecord,
}

async fn records(vault: &Vault) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    for (name, _) in vault.backend().list(names::FOSSILS).await? {
        let id = IndexId::from_hex(names::id_part(&name)).map_err(|_| Error::corrupt(&name, "bad name"))?;
        let bytes = vault.backend().get(&name).await?;
        let body: FossilRecord = open_msgpack(vault.keys().metadata(), Kind::Fossils, &id.0, &name, &bytes)?;
        if body.version != 1 {
            return Err(Error::Unsupported { version: body.version, supported: 1 });
        }
        out.push(Record { id, body });
    }
    Ok(out)
}

/// Splits records into those whose locks have all ended (revoking the ended ones they name)
/// and those still waiting for a live lock, whose holders are noted in the report.
async fn split(
    vault: &Vault,
    lock: &Lock,
    records: Vec<Record>,
    report: &mut PruneReport,
) -> Result<(Vec<Record>, Vec<Record>)> {
    let others: HashMap<IndexId, lock::Held> = lock.others(vault).await?.into_iter().map(|h| (h.id, h)).collect();
    let (mut ready, mut waiting) = (Vec::new(), Vec::new());
    let mut revoked = HashSet::new();
    for record in records {
        let named: Vec<&lock::Held> = record.body.locks.iter().filter_map(|id| others.get(id)).collect();
        let live: Vec<&lock::Held> = named.iter().copied().filter(|h| !h.ended).collect();
        if !live.is_empty() {
            for held in live {
                if !report.waiting_for.contains(&held.holder) {
                    report.waiting_for.push(held.holder.clone());
                }
            }
            waiting.push(record);
            continue;
        }
        for held in named {
            if revoked.insert(held.id) {
                lock::revoke(vault, &held.id).await?;
                report.locks_revoked += 1;
            }
        }
        ready.push(record);
    }
    Ok((ready, waiting))
}

/// Of `candidates`, indexes again those holding a used chunk no index names; returns the
/// others and whether an index file was written. Refuses when a used chunk is in none.
async fn revive(
    vault: &Vault,
    view: &mut View,
    candidates: Vec<PackId>,
    progress: &Progress,
    report: &mut PruneReport,
) -> Result<(Vec<PackId>, bool)> {
    let mut missing = view.unindexed();
    if !missing.is_empty() {
        read_headers(vault, &mut view.fossils, &candidates, &view.stored).await?;
    }
    let (mut rest, mut revived) = (Vec::new(), Vec::new());
    for pack in candidates {
        match view.fossils.packs.get(&pack) {
            Some(entries) if entries.iter().any(|e| missing.contains(&e.id)) => {
                for e in entries {
                    missing.remove(&e.id);
                }
                revived.push(IndexPack::new(pack, entries));
                report.packs_kept += 1;
            }
            _ => rest.push(pack),
        }
    }
    if let Some(chunk) = missing.into_iter().next() {
        return Err(Error::Invalid(format!(
            "prune refused: a snapshot uses chunk {} that neither an index file nor a fossil holds (run `zerok check`)",
            chunk.short()
        )));
    }
    let wrote = !revived.is_empty();
    if wrote {
        flush_index(vault, revived, progress).await?;
    }
    Ok((rest, wrote))
}

/// Deletes the fossils of ready records, keeping those the view's index names and indexing
/// again those that hold a used chunk no index names; then deletes the records. Returns
/// whether it wrote an index file (the view's index is then out of date).
async fn settle(
    vault: &Vault,
    lock: &Lock,
    view: &mut View,
    ready: &[Record],
    progress: &Progress,
    report: &mut PruneReport,
) -> Result<bool> {
    let candidates: Vec<PackId> = ready
        .iter()
        .flat_map(|r| &r.body.packs)
        .filter(|p| !view.index.packs.contains_key(p) && view.stored.contains_key(p))
        .copied()
        .collect();
    report.packs_kept += ready.iter().flat_map(|r| &r.body.packs).filter(|p| view.index.packs.contains_key(p)).count();
    let (mut doomed, wrote) = revive(vault, view, candidates, progress, report).await?;
    doomed.sort();
    doomed.dedup();
    for (n, pack) in doomed.into_iter().enumerate() {
        if n % 256 == 0 {
            lock.refresh(vault).await?;
        }
        vault.backend().delete(&names::pack(&pack)).await?;
        report.bytes_freed += view.stored.remove(&pack).unwrap_or(0);
        report.packs_deleted += 1;
    }
    for record in ready {
        vault.backend().delete(&names::fossils(&record.id)).await?;
    }
    Ok(wrote)
}

async fn run(vault: &Vault, progress: &Progress, lock: &Lock) -> Result<PruneReport> {
    let mut report = PruneReport::default();
    let (ready, waiting) = split(vault, lock, records(vault).await?, &mut report).await?;
    // Listed only now, after the locks: a backup whose lock is gone has written its snapshot.
    let ready_packs: Vec<PackId> = ready.iter().flat_map(|r| r.body.packs.iter().copied()).collect();
    let mut view = View::load(vault, None, &ready_packs).await?;
    if !ready.is_empty() && settle(vault, lock, &mut view, &ready, progress, &mut report).await? {
        view = View::load(vault, Some(view), &[]).await?;
    }
    if !view.unindexed().is_empty() {
        // A used chunk no index names: a prune stopped between deleting index files and
        // writing its record, or a listing missed an index file. Its pack, if the store
        // holds it, is indexed again (the next step refuses if it holds none).
        let orphans = view.stored.keys().filter(|p| !view.index.packs.contains_key(p)).copied().collect();
        if revive(vault, &mut view, orphans, progress, &mut report).await?.1 {
            view = View::load(vault, Some(view), &[]).await?;
        }
    }
    let pending: HashSet<PackId> = waiting.iter().flat_map(|r| r.body.packs.iter().copied()).collect();
    if let Some(record) = collect(vault, &view, &pending, lock, progress, &mut report).await? {
        let (ready, still) = split(vault, lock, vec![record], &mut report).await?;
        if !ready.is_empty() {
            let mut fresh = View::load(vault, Some(view), &ready[0].body.packs).await?;
            settle(vault, lock, &mut fresh, &ready, progress, &mut report).await?;
            view = fresh;
        }
        pending_into(&mut report, &view, waiting.iter().chain(&still));
    } else {
        pending_into(&mut report, &view, waiting.iter());
    }
    let now = lock.store_now(vault).await?;
    lock::sweep_revocations(vault, now, REVOCATION_KEEP_SECS).await?;
    Ok(report)
}

fn pending_into<'r>(report: &mut PruneReport, view: &View, waiting: impl Iterator<Item = &'r Record>) {
    let packs: HashSet<&PackId> = waiting.flat_map(|r| &r.body.packs).filter(|p| view.stored.contains_key(p)).collect();
    report.packs_pending = packs.len();
    report.bytes_pending = packs.iter().filter_map(|p| view.stored.get(p)).sum();
}

/// Collection (step 2). Returns the record written, if anything was collected.
async fn collect(
    vault: &Vault,
    view: &View,
    pending: &HashSet<PackId>,
    lock: &Lock,
    progress: &Progress,
    report: &mut PruneReport,
) -> Result<Option<Record>> {
    view.check_whole(vault).await?;
    let index = &view.index;
    let mut keep: Vec<IndexPack> = Vec::new();
    let mut fossils: Vec<PackId> =
        view.stored.keys().filter(|id| !index.packs.contains_key(id) && !pending.contains(id)).copied().collect();
    let mut repack: Vec<PackId> = Vec::new();
    // A chunk stored twice (two devices uploaded it at once) is kept once.
    let mut placed: HashSet<ChunkId> = HashSet::new();
    for (id, entries) in &index.packs {
        // By blob: a bundle is unused only when none of its chunks is used (it is copied whole).
        let (mut total, mut unused) = (0u64, 0u64);
        for blob in pack::blobs(entries) {
            total += blob[0].length as u64;
            if blob.iter().all(|e| !view.used.contains(&e.id)) {
                unused += blob[0].length as u64;
            }
        }
        if unused == total {
            fossils.push(*id);
        } else if unused as f64 > total as f64 * REPACK_UNUSED_FRACTION {
            repack.push(*id);
        } else {
            placed.extend(entries.iter().map(|e| e.id));
            keep.push(IndexPack::new(*id, entries));
        }
    }
    if fossils.is_empty() && repack.is_empty() {
        return Ok(None);
    }

    let mut writer = PackWriter::default();
    let pack_bytes = vault.config().pack_bytes as usize;
    for id in &repack {
        // A long prune shows it is alive (and learns if it was revoked) between packs.
        lock.refresh(vault).await?;
        let name = names::pack(id);
        let bytes = vault.backend().get(&name).await?;
        let mut opener = crate::Opener::default();
        for blob in pack::blobs(&index.packs[id]) {
            let wanted: Vec<&BlobEntry> =
                blob.iter().filter(|e| view.used.contains(&e.id) && placed.insert(e.id)).collect();
            let Some(first) = wanted.first() else { continue };
            let sealed = bytes
                .get(first.offset as usize..first.offset as usize + first.length as usize)
                .ok_or_else(|| Error::corrupt(&name, "blob lies outside the pack"))?;
            for e in &wanted {
                vault.open_with(&mut opener, &name, e, sealed)?;
            }
            match first.within {
                None => writer.add(first.kind, first.id, sealed, first.raw_len),
                // Copied whole: every piece of its body is listed again (FORMAT.md §4.3).
                Some(_) => {
                    let members = vault.bundle_members(&mut opener, &name, blob, sealed)?;
                    placed.extend(members.iter().map(|m| m.0));
                    writer.add_bundle(sealed, members);
                }
            }
            if writer.is_full(pack_bytes) {
                let full = std::mem::take(&mut writer);
                keep.push(put_pack(vault, full, report).await?);
            }
        }
        fossils.push(*id);
        report.packs_repacked += 1;
    }
    if !writer.is_empty() {
        keep.push(put_pack(vault, writer, report).await?);
    }
    lock.refresh(vault).await?;
    for batch in keep.chunks(PACKS_PER_INDEX) {
        flush_index(vault, batch.to_vec(), progress).await?;
    }
    for old in &index.files {
        vault.backend().delete(&names::index(old)).await?;
    }
    // Listed after the old index files are gone: a backup whose lock is not listed here
    // began after that, and cannot use a fossil.
    let locks = lock.others(vault).await?.into_iter().map(|h| h.id).collect();
    fossils.sort();
    fossils.dedup();
    let body = FossilRecord { version: 1, packs: fossils, locks };
    let id = IndexId::random();
    let sealed = seal_msgpack(vault.keys().metadata(), Kind::Fossils, &id.0, &body);
    vault.backend().put_new(&names::fossils(&id), Bytes::from(sealed)).await?;
    Ok(Some(Record { id, body }))
}

async fn put_pack(vault: &Vault, writer: PackWriter, report: &mut PruneReport) -> Result<IndexPack> {
    let (pack, n) = crate::backup::put_pack(vault, writer).await?;
    report.bytes_written += n;
    Ok(pack)
}
