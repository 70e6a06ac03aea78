//! `index/<index-id>`: which pack holds each chunk. Sealed MessagePack (kind `Index`, id =
//! the index id): `{version: 1 | 2, packs: [{id: bin32, blobs: [[kind, chunk_id, offset,
//! length, raw_len], …], bundled: [[kind, chunk_id, offset, length, raw_len, within], …]},
//! …]}`, `bundled` (chunks inside bundles) omitted when empty and version 2 exactly when
//! some pack has it. Several index files together form the vault's index; a chunk listed
//! twice is fine (either copy may be read).

use serde::{Deserialize, Serialize};
use zerok_core::{ChunkId, PackId};

use super::{
    Kind,
    pack::{self, BlobEntry},
};

/// The newest index file version this build reads.
pub const INDEX_VERSION: u32 = 2;

/// One index file.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct IndexFile {
    /// Format version: 1, or 2 when some pack has bundled chunks.
    pub version: u32,
    /// Packs and their blobs.
    pub packs: Vec<IndexPack>,
}

impl IndexFile {
    /// An index file naming `packs`, at the lowest version that can say it.
    pub fn new(packs: Vec<IndexPack>) -> Self {
        let version = if packs.iter().any(|p| !p.bundled.is_empty()) { 2 } else { 1 };
        Self { version, packs }
    }
}

/// One pack's entry in an index file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IndexPack {
    /// The pack.
    pub id: PackId,
    /// `(kind, chunk id, offset, length, raw length)` of each chunk stored alone.
    pub blobs: Vec<(u8, ChunkId, u32, u32, u32)>,
    /// `(kind, chunk id, offset, length, raw length, within)` of each chunk inside a bundle.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bundled: Vec<(u8, ChunkId, u32, u32, u32, u32)>,
}

impl IndexPack {
    /// From a pack's header entries.
    pub fn new(id: PackId, entries: &[BlobEntry]) -> Self {
        let (mut blobs, mut bundled) = (Vec::new(), Vec::new());
        for e in entries {
            match e.within {
                None => blobs.push((e.kind as u8, e.id, e.offset, e.length, e.raw_len)),
                Some(w) => bundled.push((e.kind as u8, e.id, e.offset, e.length, e.raw_len, w)),
            }
        }
        Self { id, blobs, bundled }
    }

    /// The blobs as header entries, in pack order; `None` when a kind byte is not a data or
    /// tree chunk's or the bundles are malformed.
    pub fn entries(&self) -> Option<Vec<BlobEntry>> {
        let alone = self.blobs.iter().map(|&(k, id, offset, length, raw_len)| (k, id, offset, length, raw_len, None));
        let inside =
            self.bundled.iter().map(|&(k, id, offset, length, raw_len, w)| (k, id, offset, length, raw_len, Some(w)));
        let mut entries = alone
            .chain(inside)
            .map(|(k, id, offset, length, raw_len, within)| {
                let kind = Kind::from_byte(k).filter(|k| matches!(k, Kind::Data | Kind::Tree))?;
                Some(BlobEntry { kind, id, offset, length, raw_len, within })
            })
            .collect::<Option<Vec<_>>>()?;
        entries.sort_by_key(|e| (e.offset, e.within));
        pack::check_bundles(&entries).ok()?;
        Some(entries)
    }
}
