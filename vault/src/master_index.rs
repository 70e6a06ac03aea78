//! The in-memory index: every chunk the vault holds and where, merged from all index
//! files.

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use zerok_core::{ChunkId, IndexId, PackId};

use crate::{
    Result, Vault,
    format::{
        Kind,
        index::{INDEX_VERSION, IndexFile},
        names, open_msgpack,
        pack::BlobEntry,
    },
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
    /// The index file that named each pack (the last one read, when several do).
    pub named_by: HashMap<PackId, IndexId>,
    /// Further places of chunks stored more than once (two devices uploaded one at once, or
    /// an index file a prune deleted is back and names a pack that is gone).
    others: HashMap<ChunkId, Vec<BlobLocation>>,
}

/// Index files fetched at once while loading.
const LOAD_CONCURRENCY: usize = 8;

/// A pack and its blobs, as an index file lists them.
type PackBlobs = (PackId, Vec<BlobEntry>);

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
        vault.cache_retain(names::INDEX, listed.iter().map(|(name, _)| name.as_str()));
        let loaded = Self::load_files(vault, listed).await;
        vault.cache_tree_packs(&loaded.0).await;
        Ok(loaded)
    }

    /// Loads the index files named in `listed` (as [`crate::Backend::list`] gives them),
    /// returning the errors of those that do not open.
    pub async fn load_files(vault: &Vault, listed: Vec<(String, u64)>) -> (Self, Vec<crate::Error>) {
        let results: Vec<Result<(IndexId, Vec<PackBlobs>)>> = futures::stream::iter(listed)
            .map(|(name, _)| async move {
                let id =
                    IndexId::from_hex(names::id_part(&name)).map_err(|_| crate::Error::corrupt(&name, "bad name"))?;
                let packs = vault
                    .get_verified(&name, |bytes| {
                        let file: IndexFile = open_msgpack(vault.keys().metadata(), Kind::Index, &id.0, &name, bytes)?;
                        if file.version > INDEX_VERSION {
                            return Err(crate::Error::Unsupported { version: file.version, supported: INDEX_VERSION });
                        }
                        file.packs
                            .iter()
                            .map(|p| p.entries().map(|e| (p.id, e)))
                            .collect::<Option<Vec<_>>>()
                            .ok_or_else(|| crate::Error::corrupt(&name, "unknown blob kind or malformed bundle"))
                    })
                    .await?;
                Ok((id, packs))
            })
            .buffer_unordered(LOAD_CONCURRENCY)
            .collect()
            .await;
        let mut index = MasterIndex::default();
        let mut bad = Vec::new();
        for result in results {
            match result {
                Ok((id, packs)) => {
                    index.files.push(id);
                    for (pack, entries) in packs {
                        index.named_by.insert(pack, id);
                        index.add_pack(pack, entries);
                    }
                }
                Err(e) => bad.push(e),
            }
        }
        (index, bad)
    }

    /// Adds the headers of every stored pack that no loaded index file names (the fallback
    /// when an index file is unreadable or gone: every pack carries its own header).
    /// Returns the packs whose header could not be read, and why.
    ///
    /// # Errors
    /// Only when the data folder cannot be listed.
    pub async fn add_unindexed(&mut self, vault: &Vault) -> Result<Vec<(PackId, crate::Error)>> {
        let stored = vault.stored_packs().await?;
        let todo = stored.into_iter().filter(|(id, _)| !self.packs.contains_key(id)).collect();
        Ok(self.add_headers(vault, todo).await)
    }

    /// Reads the headers of `packs` (id and size) and adds them; returns the packs whose
    /// header could not be read, or that were found damaged (a bundle that does not open,
    /// whose members are left out), and why.
    pub async fn add_headers(&mut self, vault: &Vault, packs: Vec<(PackId, u64)>) -> Vec<(PackId, crate::Error)> {
        type Read = Result<(Vec<BlobEntry>, Vec<crate::Error>)>;
        let read: Vec<(PackId, Read)> = futures::stream::iter(packs)
            .map(|(id, size)| async move { (id, vault.read_pack_header(&id, size).await) })
            .buffer_unordered(LOAD_CONCURRENCY)
            .collect()
            .await;
        let mut bad = Vec::new();
        for (id, read) in read {
            match read {
                Ok((entries, damaged)) => {
                    self.add_pack(id, entries);
                    bad.extend(damaged.into_iter().map(|e| (id, e)));
                }
                Err(e) => bad.push((id, e)),
            }
        }
        bad
    }

    /// Adds the packs of `other` (a second load of the index) this one lacks.
    pub fn absorb(&mut self, other: MasterIndex) {
        for (pack, entries) in other.packs {
            if !self.packs.contains_key(&pack) {
                if let Some(file) = other.named_by.get(&pack) {
                    self.named_by.insert(pack, *file);
                }
                self.add_pack(pack, entries);
            }
        }
        for file in other.files {
            if !self.files.contains(&file) {
                self.files.push(file);
            }
        }
    }

    /// Records the blobs of one pack.
    pub fn add_pack(&mut self, pack: PackId, entries: Vec<BlobEntry>) {
        for e in &entries {
            let here = BlobLocation { pack, entry: *e };
            match self.blobs.get(&e.id) {
                Some(first) if first.pack != pack => self.others.entry(e.id).or_default().push(here),
                _ => drop(self.blobs.insert(e.id, here)),
            }
        }
        self.packs.insert(pack, entries);
    }

    /// Forgets packs known to be gone: their chunks move to another place that holds them,
    /// or are stored again.
    pub fn remove_packs(&mut self, gone: &HashSet<PackId>) {
        self.packs.retain(|id, _| !gone.contains(id));
        self.named_by.retain(|id, _| !gone.contains(id));
        for places in self.others.values_mut() {
            places.retain(|l| !gone.contains(&l.pack));
        }
        let others = &mut self.others;
        self.blobs.retain(|id, loc| {
            if !gone.contains(&loc.pack) {
                return true;
            }
            match others.get_mut(id).and_then(Vec::pop) {
                Some(next) => {
                    *loc = next;
                    true
                }
                None => false,
            }
        });
        self.others.retain(|_, places| !places.is_empty());
    }

    /// The packs this index names that the store does not hold: not in `stored` (a
    /// listing of `data/`) and absent to a HEAD.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn gone_packs(&self, vault: &Vault, stored: &HashMap<PackId, u64>) -> Result<HashSet<PackId>> {
        vault.absent_packs(self.packs.keys().filter(|p| !stored.contains_key(p)).copied().collect()).await
    }

    /// Every place a chunk is stored, the first one [`MasterIndex::get`] gives first.
    pub fn places(&self, id: &ChunkId) -> impl Iterator<Item = &BlobLocation> {
        self.blobs.get(id).into_iter().chain(self.others.get(id).into_iter().flatten())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Kind;

    fn entry(id: u8) -> BlobEntry {
        BlobEntry { kind: Kind::Data, id: ChunkId([id; 32]), offset: 0, length: 10, raw_len: 5, within: None }
    }

    #[test]
    fn a_chunk_stored_twice_moves_to_its_other_pack_when_one_is_gone() {
        let (a, b) = (PackId([1; 32]), PackId([2; 32]));
        let mut index = MasterIndex::default();
        index.add_pack(a, vec![entry(7), entry(8)]);
        index.add_pack(b, vec![entry(7)]);
        assert_eq!(index.places(&ChunkId([7; 32])).map(|l| l.pack).collect::<Vec<_>>(), [a, b]);
        index.remove_packs(&HashSet::from([a]));
        assert_eq!(index.get(&ChunkId([7; 32])).map(|l| l.pack), Some(b), "the copy remains");
        assert!(!index.contains(&ChunkId([8; 32])), "the only copy is gone");
        assert_eq!(index.places(&ChunkId([7; 32])).count(), 1);
    }
}
