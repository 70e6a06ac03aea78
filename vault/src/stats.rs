//! What a vault holds and what it costs: the bytes its snapshots restore to, the distinct
//! chunks they share, and the bytes stored for them, with the ratios dedup and compression
//! give (restic's `stats --mode restore-size` and `raw-data` in one).

use std::collections::HashSet;

use crate::{MasterIndex, Result, Vault, format::Kind, format::names};

/// Sizes and counts of a vault.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Snapshots.
    pub snapshots: usize,
    /// Files across all snapshots (a file in two snapshots counts twice).
    pub files: u64,
    /// Bytes all snapshots restore to: what the vault would hold without dedup.
    pub logical_bytes: u64,
    /// Distinct data chunks.
    pub data_chunks: usize,
    /// Distinct tree chunks (folder listings).
    pub tree_chunks: usize,
    /// Plaintext bytes of the distinct chunks (data and trees).
    pub unique_bytes: u64,
    /// Bytes of the sealed (compressed, encrypted) chunks the index names.
    pub sealed_bytes: u64,
    /// Packs.
    pub packs: usize,
    /// Bytes of the pack objects in the store.
    pub pack_bytes: u64,
    /// Bytes of everything else in the store (index files, snapshots, keys, config, …).
    pub other_bytes: u64,
}

impl Stats {
    /// How many times over dedup stores less: logical bytes per distinct byte.
    pub fn dedup_ratio(&self) -> f64 {
        ratio(self.logical_bytes, self.unique_bytes)
    }

    /// How many times over compression stores less: distinct bytes per sealed byte.
    pub fn compression_ratio(&self) -> f64 {
        ratio(self.unique_bytes, self.sealed_bytes)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Counts what `vault` holds.
///
/// # Errors
/// Storage errors; an index or snapshot that does not open.
pub async fn stats(vault: &Vault) -> Result<Stats> {
    let (index, snapshots) = tokio::join!(MasterIndex::load(vault), vault.snapshots());
    let (index, snapshots) = (index?, snapshots?);
    let mut s = Stats {
        snapshots: snapshots.len(),
        // Summaries are what each device wrote: added without overflowing.
        files: snapshots.iter().fold(0u64, |n, (_, snap)| n.saturating_add(snap.summary.files)),
        logical_bytes: snapshots.iter().fold(0u64, |n, (_, snap)| n.saturating_add(snap.summary.bytes)),
        packs: index.packs.len(),
        ..Stats::default()
    };
    for id in index.ids() {
        let Some(loc) = index.get(id) else { continue };
        if loc.entry.kind == Kind::Tree {
            s.tree_chunks += 1;
        } else {
            s.data_chunks += 1;
        }
        s.unique_bytes += u64::from(loc.entry.raw_len);
    }
    // A bundle's members share one sealed blob: counted once.
    let mut sealed = HashSet::new();
    for (pack, entries) in &index.packs {
        for e in entries {
            if sealed.insert((*pack, e.offset)) {
                s.sealed_bytes += u64::from(e.length);
            }
        }
    }
    for (name, size) in vault.backend().list("").await? {
        let folder = name.split('/').next().unwrap_or_default();
        if folder == names::DATA {
            s.pack_bytes += size;
        } else if folder != names::LOCKS {
            s.other_bytes += size;
        }
    }
    Ok(s)
}
