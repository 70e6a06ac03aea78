//! `fossils/<record-id>`: what one prune collected and which locks were held then. Sealed
//! MessagePack (kind `Fossils`, id = the record id): `{version: 1, packs: [bin32 …],
//! locks: [bin32 …]}` (FORMAT.md §4.9).

use serde::{Deserialize, Serialize};
use zerok_core::{IndexId, PackId};

/// One collection's fossils.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FossilRecord {
    /// Format version (1).
    pub version: u32,
    /// Packs no snapshot needed when the record was written.
    pub packs: Vec<PackId>,
    /// Locks (other than the collecting prune's) that existed once the index was rewritten.
    pub locks: Vec<IndexId>,
}
