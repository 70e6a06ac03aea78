//! `index/<index-id>`: which pack holds each chunk. Sealed MessagePack (kind `Index`, id =
//! the index id): `{version: 1, packs: [{id: bin32, blobs: [[kind, chunk_id, offset,
//! length, raw_len], …]}, …]}`. Several index files together form the vault's index; a
//! chunk listed twice is fine (either copy may be read).

use serde::{Deserialize, Serialize};
use zerok_core::{ChunkId, PackId};

use super::{Kind, pack::BlobEntry};

/// One index file.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct IndexFile {
    /// Format version (1).
    pub version: u32,
    /// Packs and their blobs.
    pub packs: Vec<IndexPack>,
}

/// One pack's entry in an index file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IndexPack {
    /// The pack.
    pub id: PackId,
    /// `(kind, chunk id, offset, length, raw length)` of each blob.
    pub blobs: Vec<(u8, ChunkId, u32, u32, u32)>,
}

impl IndexPack {
    /// From a pack's header entries.
    pub fn new(id: PackId, entries: &[BlobEntry]) -> Self {
        Self { id, blobs: entries.iter().map(|e| (e.kind as u8, e.id, e.offset, e.length, e.raw_len)).collect() }
    }

    /// The blobs as header entries; `None` when a kind byte is not a data or tree chunk's.
    pub fn entries(&self) -> Option<Vec<BlobEntry>> {
        self.blobs
            .iter()
            .map(|&(k, id, offset, length, raw_len)| {
                let kind = Kind::from_byte(k).filter(|k| matches!(k, Kind::Data | Kind::Tree))?;
                Some(BlobEntry { kind, id, offset, length, raw_len })
            })
            .collect()
    }
}
