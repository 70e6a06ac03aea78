//! `check`: verifies the vault's structure — every index file, snapshot and tree opens,
//! every pack the index names exists and is large enough, every chunk a file needs is
//! indexed — and with `read_data`, downloads every pack and verifies its hash, header and
//! every chunk (authentication, decompression, keyed id). It warns about snapshots dated
//! more than a minute after the store wrote them (FORMAT.md §1).

use std::collections::HashSet;

use futures::StreamExt;
use zerok_core::{ChunkId, PackId};

use crate::{
    MasterIndex, Progress, Result, Vault,
    format::{names, pack, tree::NodeKind},
};

/// How far a snapshot's own time may lie ahead of the store's write time unreported.
const AHEAD_TOLERANCE_NS: i64 = 60_000_000_000;
/// Packs downloaded at once by `--read-data`.
const READ_CONCURRENCY: usize = 4;
/// Snapshots read at once.
const SNAPSHOTS_AT_ONCE: usize = 8;

/// What `check` found. The vault is sound when `errors` is empty.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Snapshots read.
    pub snapshots: usize,
    /// Trees read.
    pub trees: usize,
    /// Packs listed in the store.
    pub packs: usize,
    /// Chunks verified by reading their data.
    pub chunks_read: usize,
    /// Problems, each naming the object.
    pub errors: Vec<String>,
    /// Harmless findings (e.g. packs left by an interrupted backup).
    pub warnings: Vec<String>,
}

/// Checks the vault.
///
/// # Errors
/// Only when the store cannot be listed; damage is reported in [`CheckReport::errors`].
pub async fn check(vault: &Vault, read_data: bool, progress: &Progress) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let (loaded, stored) = tokio::join!(MasterIndex::load_reporting(vault), vault.stored_packs());
    let (index, bad) = loaded?;
    report.errors.extend(bad.into_iter().map(|e| e.to_string()));
    let stored = stored?;
    report.packs = stored.len();
    for (id, entries) in &index.packs {
        let need = entries.iter().map(|e| e.offset as u64 + e.length as u64).max().unwrap_or(0);
        match stored.get(id) {
            None => report.errors.push(format!(
                "missing pack {} (named by {}: the store lost it, or an index file a prune deleted is back)",
                names::pack(id),
                index.named_by.get(id).map_or_else(|| "the index".into(), names::index)
            )),
            Some(&size) if size < need + 4 => report
                .errors
                .push(format!("truncated pack {}: {size} bytes, index needs more than {need}", names::pack(id))),
            Some(_) => {}
        }
    }
    for id in stored.keys().filter(|id| !index.packs.contains_key(id)) {
        report.warnings.push(format!(
            "pack {} is in no index (left by an interrupted backup, or a fossil prune has yet to delete)",
            names::pack(id)
        ));
    }

    check_snapshots(vault, &index, &mut report).await?;

    if read_data {
        let packs: Vec<_> = index.packs.keys().filter(|id| stored.contains_key(id)).copied().collect();
        let results: Vec<(usize, Vec<String>)> = futures::stream::iter(packs)
            .map(|id| read_pack(vault, &index, id, progress))
            .buffer_unordered(READ_CONCURRENCY)
            .collect()
            .await;
        for (n, errors) in results {
            report.chunks_read += n;
            report.errors.extend(errors);
        }
    }
    Ok(report)
}

async fn check_snapshots(vault: &Vault, index: &MasterIndex, report: &mut CheckReport) -> Result<()> {
    let mut seen: HashSet<ChunkId> = HashSet::new();
    let listed = vault.backend().list_listed(names::SNAPSHOTS).await?;
    let loaded: Vec<_> = futures::stream::iter(listed)
        .map(|listed| async move {
            let snap = match zerok_core::SnapshotId::from_hex(names::id_part(&listed.name)) {
                Ok(id) => vault.load_snapshot(&id).await,
                Err(_) => Err(crate::Error::corrupt(&listed.name, "bad name")),
            };
            (listed, snap)
        })
        .buffered(SNAPSHOTS_AT_ONCE)
        .collect()
        .await;
    let roots = loaded.iter().filter_map(|(_, snap)| Some(snap.as_ref().ok()?.tree)).collect();
    let trees = vault.load_trees(index, roots).await;
    for (listed, snap) in loaded {
        let name = listed.name;
        let snap = match snap {
            Ok(s) => s,
            Err(e) => {
                report.errors.push(e.to_string());
                continue;
            }
        };
        report.snapshots += 1;
        let ahead = snap.time_ns.saturating_sub(crate::vault::stored_ns(listed.modified));
        if ahead > AHEAD_TOLERANCE_NS {
            report.warnings.push(format!(
                "{name} is dated {} min after the store wrote it (a clock ahead, or a planted snapshot); it counts as \
                 taken when stored",
                ahead / 60_000_000_000
            ));
        }
        let mut stack = vec![snap.tree];
        while let Some(tree_id) = stack.pop() {
            if !seen.insert(tree_id) {
                continue;
            }
            let tree = match trees.get(&tree_id) {
                Some(Ok(t)) => t,
                Some(Err(e)) => {
                    report.errors.push(format!("tree {} of {name}: {e}", tree_id.short()));
                    continue;
                }
                None => {
                    report.errors.push(format!("tree {} of {name}: not read", tree_id.short()));
                    continue;
                }
            };
            report.trees += 1;
            for node in &tree.nodes {
                let shown = String::from_utf8_lossy(&node.name);
                if !node.has_safe_name() {
                    report.errors.push(format!("tree {}: unsafe name {shown:?}", tree_id.short()));
                }
                match (node.kind, node.subtree) {
                    (NodeKind::Dir, Some(sub)) => stack.push(sub),
                    (NodeKind::Dir, None) => {
                        report.errors.push(format!("tree {}: folder {shown:?} has no subtree", tree_id.short()))
                    }
                    _ => {}
                }
                for chunk in node.content.iter().filter(|c| !index.contains(c)) {
                    report.errors.push(format!(
                        "chunk {} of file {shown:?} (tree {}) is in no index",
                        chunk.short(),
                        tree_id.short()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Downloads one pack and verifies everything in it.
async fn read_pack(vault: &Vault, index: &MasterIndex, id: PackId, progress: &Progress) -> (usize, Vec<String>) {
    let name = names::pack(&id);
    let bytes = match vault.backend().get(&name).await {
        Ok(b) => b,
        Err(e) => return (0, vec![e.to_string()]),
    };
    Progress::add(&progress.bytes, bytes.len() as u64);
    if PackId(*blake3::hash(&bytes).as_bytes()) != id {
        return (0, vec![format!("corrupted object {name}: content does not match its name (hash)")]);
    }
    let n = bytes.len();
    let header = pack::header_len(n as u64, &bytes[n.saturating_sub(4)..]).and_then(|hl| {
        let start = n - 4 - hl as usize;
        pack::decode_header(vault.keys().metadata(), &bytes[start..n - 4], start as u64)
    });
    let (entries, bad) = match header {
        Ok(header) => vault.name_bundles(&name, header, &bytes),
        Err(why) => return (0, vec![format!("corrupted object {name}: {why}")]),
    };
    let mut errors: Vec<String> = bad.iter().map(ToString::to_string).collect();
    if index.packs.get(&id).is_some_and(|listed| listed != &entries) {
        errors.push(format!("{name}: header disagrees with the index"));
    }
    let mut opener = crate::Opener::default();
    for e in &entries {
        let sealed = &bytes[e.offset as usize..e.offset as usize + e.length as usize];
        if let Err(err) = vault.open_with(&mut opener, &name, e, sealed) {
            errors.push(err.to_string());
        }
    }
    (entries.len(), errors)
}
