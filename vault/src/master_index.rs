//! The in-memory index: every chunk the vault holds and where, merged from all index
//! files.

use std::collections::HashMap;

use futures::StreamExt;
use zerok_core::{ChunkId, IndexId, PackId};

use crate::{
    Result, Vault,
    format::{Kind, index::IndexFile, names, open_msgpack, pack::BlobEntry},
};

/// Where a chunk is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobLocation {
    /// The pack.
    pub pack: PackId,
    /// Kind, offset and lengths within it.
    pub entry: BlobEntry,
}

/// Chunk id → location, for the whole vault.
#[derive(Default, Debug)]
pub struct MasterIndex {
    blobs: HashMap<ChunkId, BlobLocation>,
    /// Index files this was loaded from.
    pub files: Vec<IndexId>,
    /// Every pack named by some index file, with its blobs.
    pub packs: HashMap<PackId, Vec<BlobEntry>>,
}

/// Index files fetched at once while loading.
const LOAD_CONCURRENCY: usize = 8;

impl MasterIndex {
    /// Loads and merges every index file.
    ///
    /// # Errors
    /// [`crate::Error::Corrupt`] naming the first index file that does not open.
    pub async fn load(vault: &Vault) -> Result<Self> {
        let (index, mut bad) = Self::load_reporting(vault).await?;
        match bad.pop() {
            Some(err) => Err(err),
            None => Ok(index),
        }
    }

    /// Loads every index file that opens, and returns the errors of those that do not
    /// (for `check`, which reports them all).
    ///
    /// # Errors
    /// Only when the index folder cannot be listed.
    pub async fn load_reporting(vault: &Vault) -> Result<(Self, Vec<crate::Error>)> {
        let listed = vault.backend().list(names::INDEX).await?;
        let results: Vec<Result<(IndexId, IndexFile)>> = futures::stream::iter(listed)
            .map(|(name, _)| async move {
                let id =
                    IndexId::from_hex(names::id_part(&name)).map_err(|_| crate::Error::corrupt(&name, "bad name"))?;
                let bytes = vault.backend().get(&name).await?;
                let file: IndexFile = open_msgpack(vault.keys().metadata(), Kind::Index, &id.0, &name, &bytes)?;
                let packs = file.packs.iter().map(|p| p.entries().map(|e| (p.id, e)));
                packs.collect::<Option<Vec<_>>>().ok_or_else(|| crate::Error::corrupt(&name, "unknown blob kind"))?;
                Ok((id, file))
            })
            .buffer_unordered(LOAD_CONCURRENCY)
            .collect()
            .await;
        let mut index = MasterIndex::default();
        let mut bad = Vec::new();
        for result in results {
            match result {
                Ok((id, file)) => {
                    index.files.push(id);
                    for pack in file.packs {
                        let entries = pack.entries().expect("kinds checked above");
                        index.add_pack(pack.id, entries);
                    }
                }
                Err(e) => bad.push(e),
            }
        }
        Ok((index, bad))
    }

    /// Adds the headers of every stored pack that no loaded index file names (the fallback
    /// when an index file is unreadable or gone: every pack carries its own header).
    /// Returns the packs whose header does not open.
    ///
    /// # Errors
    /// Only when the data folder cannot be listed.
    pub async fn add_unindexed(&mut self, vault: &Vault) -> Result<Vec<crate::Error>> {
        let stored = vault.stored_packs().await?;
        let todo: Vec<(PackId, u64)> = stored.into_iter().filter(|(id, _)| !self.packs.contains_key(id)).collect();
        let read: Vec<(PackId, Result<Vec<BlobEntry>>)> = futures::stream::iter(todo)
            .map(|(id, size)| async move { (id, vault.read_pack_header(&id, size).await) })
            .buffer_unordered(LOAD_CONCURRENCY)
            .collect()
            .await;
        let mut bad = Vec::new();
        for (id, entries) in read {
            match entries {
                Ok(entries) => self.add_pack(id, entries),
                Err(e) => bad.push(e),
            }
        }
        Ok(bad)
    }

    /// Records the blobs of one pack.
    pub fn add_pack(&mut self, pack: PackId, entries: Vec<BlobEntry>) {
        for e in &entries {
            self.blobs.insert(e.id, BlobLocation { pack, entry: *e });
        }
        self.packs.insert(pack, entries);
    }

    /// Forgets packs known to be gone, so their chunks are stored again.
    pub fn remove_packs(&mut self, gone: &std::collections::HashSet<PackId>) {
        self.packs.retain(|id, _| !gone.contains(id));
        self.blobs.retain(|_, loc| !gone.contains(&loc.pack));
    }

    /// Where a chunk is, if the vault has it.
    pub fn get(&self, id: &ChunkId) -> Option<&BlobLocation> {
        self.blobs.get(id)
    }

    /// Whether the vault has a chunk.
    pub fn contains(&self, id: &ChunkId) -> bool {
        self.blobs.contains_key(id)
    }

    /// Number of distinct chunks.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// True when the vault has no chunk.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// All chunk ids.
    pub fn ids(&self) -> impl Iterator<Item = &ChunkId> {
        self.blobs.keys()
    }
}
