//! `data/<xx>/<pack-id>`: many sealed blobs followed by their sealed header. A blob is one
//! chunk, or a *bundle*: several small data chunks compressed and sealed together, each
//! keeping its chunk id (FORMAT.md §4.3).
//!
//! ```text
//! pack   = blob_0 ‖ … ‖ blob_{m-1} ‖ header_sealed ‖ header_len (u32 LE)
//! blob   = envelope::seal(data or metadata key, aad(kind, chunk_id), chunk plaintext)
//!        | envelope::seal(data key, aad(Bundle, 32 zero bytes), plaintext_0 ‖ plaintext_1 ‖ …)
//! header = version (u8: 1, or 2 with bundles) ‖ count (u32 LE) ‖ count × entry
//! entry  = kind (u8) ‖ chunk_id (32) ‖ offset (u32 LE) ‖ length (u32 LE) ‖ raw_len (u32 LE)
//!          [‖ within (u32 LE; 0xFFFFFFFF: a blob of its own) in version 2]
//! header_sealed = aead::seal(metadata key, aad(PackHeader, 32 zero bytes), header)
//! pack id = BLAKE3(pack bytes)   (unkeyed: anyone can verify a pack's integrity)
//! ```

use zerok_core::{ChunkId, Key32, PackId, aead};

use super::{Kind, aad};

/// Bytes of one version-1 header entry.
pub const ENTRY_BYTES: usize = 1 + 32 + 4 + 4 + 4;
/// Bytes of one version-2 header entry (`within` added).
pub const ENTRY_V2_BYTES: usize = ENTRY_BYTES + 4;
/// `within` of a version-2 entry whose chunk is a blob of its own.
const ALONE: u32 = u32::MAX;
/// Largest bundle body accepted (a chunk's `within + raw_len`), in bytes.
pub const MAX_BUNDLE_BYTES: u32 = 4 << 20;
/// Most entries a header may declare (bounds allocation when decoding).
pub const MAX_ENTRIES: usize = 1 << 20;
/// Largest blob (sealed chunk) accepted, in bytes.
pub const MAX_BLOB_BYTES: u32 = 64 << 20;

/// Where one blob sits in its pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobEntry {
    /// Data or tree.
    pub kind: Kind,
    /// Keyed hash of the plaintext.
    pub id: ChunkId,
    /// Byte offset of the sealed blob in the pack.
    pub offset: u32,
    /// Length of the sealed blob.
    pub length: u32,
    /// Length of the chunk plaintext.
    pub raw_len: u32,
    /// For a chunk inside a bundle, where its plaintext starts in the bundle's body.
    pub within: Option<u32>,
}

/// The entries of `entries` (in pack order) grouped by the blob they lie in: one entry for a
/// blob of its own, every member of a bundle.
pub fn blobs(entries: &[BlobEntry]) -> impl Iterator<Item = &[BlobEntry]> {
    entries.chunk_by(|a, b| a.within.is_some() && b.within.is_some() && a.offset == b.offset)
}

/// Builds a pack in memory.
#[derive(Default)]
pub struct PackWriter {
    bytes: Vec<u8>,
    entries: Vec<BlobEntry>,
}

impl PackWriter {
    /// An empty pack with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { bytes: Vec::with_capacity(capacity), entries: Vec::new() }
    }

    /// Appends a sealed blob holding one chunk.
    pub fn add(&mut self, kind: Kind, id: ChunkId, sealed: &[u8], raw_len: u32) {
        let (offset, length) = (self.bytes.len() as u32, sealed.len() as u32);
        self.entries.push(BlobEntry { kind, id, offset, length, raw_len, within: None });
        self.bytes.extend_from_slice(sealed);
    }

    /// Appends a sealed bundle holding the data chunks `members`: `(chunk id, raw_len,
    /// within)`, `within` increasing. A bundle of one is listed as a bundle all the same.
    pub fn add_bundle(&mut self, sealed: &[u8], members: impl IntoIterator<Item = (ChunkId, u32, u32)>) {
        let (offset, length) = (self.bytes.len() as u32, sealed.len() as u32);
        for (id, raw_len, within) in members {
            self.entries.push(BlobEntry { kind: Kind::Data, id, offset, length, raw_len, within: Some(within) });
        }
        self.bytes.extend_from_slice(sealed);
    }

    /// Bytes of blobs so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends the sealed header and names the pack.
    pub fn finish(mut self, metadata_key: &Key32) -> (PackId, Vec<u8>, Vec<BlobEntry>) {
        let header = encode_header(&self.entries);
        let sealed = aead::seal(metadata_key, &aad(Kind::PackHeader, &[0; 32]), &header);
        self.bytes.extend_from_slice(&sealed);
        self.bytes.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        let id = PackId(*blake3::hash(&self.bytes).as_bytes());
        (id, self.bytes, self.entries)
    }
}

/// Version 1 without bundles (as every pack written before them), version 2 with.
fn encode_header(entries: &[BlobEntry]) -> Vec<u8> {
    let v2 = entries.iter().any(|e| e.within.is_some());
    let mut out = Vec::with_capacity(5 + entries.len() * ENTRY_V2_BYTES);
    out.push(if v2 { 2 } else { 1 });
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        out.push(e.kind as u8);
        out.extend_from_slice(&e.id.0);
        out.extend_from_slice(&e.offset.to_le_bytes());
        out.extend_from_slice(&e.length.to_le_bytes());
        out.extend_from_slice(&e.raw_len.to_le_bytes());
        if v2 {
            out.extend_from_slice(&e.within.unwrap_or(ALONE).to_le_bytes());
        }
    }
    out
}

/// Length of the sealed header, from a pack's last 4 bytes; checked against the pack size.
///
/// # Errors
/// A reason when the trailer is missing or declares more than the pack holds.
pub fn header_len(pack_size: u64, trailer: &[u8]) -> Result<u32, String> {
    let len = u32::from_le_bytes(trailer.try_into().map_err(|_| "pack shorter than 4 bytes")?);
    let max = (MAX_ENTRIES * ENTRY_V2_BYTES + 5 + aead::OVERHEAD) as u64;
    if len as u64 > max || len as u64 + 4 > pack_size || (len as usize) < aead::OVERHEAD + 5 {
        return Err(format!("header length {len} impossible for a pack of {pack_size} bytes"));
    }
    Ok(len)
}

/// Whether a pack with these blobs is a tree pack (trees only, §4.3), which a metadata
/// cache keeps whole.
pub fn is_tree_pack(entries: &[BlobEntry]) -> bool {
    !entries.is_empty() && entries.iter().all(|e| e.kind == Kind::Tree)
}

/// Opens and parses a sealed header; checks every entry lies before the header and every
/// bundle is well formed (§4.3).
///
/// # Errors
/// A reason when authentication fails or the header is malformed.
pub fn decode_header(metadata_key: &Key32, sealed: &[u8], blobs_end: u64) -> Result<Vec<BlobEntry>, String> {
    let plain = aead::open(metadata_key, &aad(Kind::PackHeader, &[0; 32]), sealed)
        .map_err(|_| "pack header fails authentication".to_string())?;
    let entry_bytes = match plain.first() {
        Some(1) => ENTRY_BYTES,
        Some(2) => ENTRY_V2_BYTES,
        _ => return Err("unknown pack header version".into()),
    };
    let count = plain.get(1..5).map_or(0, |b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize);
    if plain.len() < 5 || count > MAX_ENTRIES || plain.len() != 5 + count * entry_bytes {
        return Err(format!("pack header declares {count} entries in {} bytes", plain.len()));
    }
    let entries = plain[5..]
        .chunks_exact(entry_bytes)
        .map(|e| {
            let kind = Kind::from_byte(e[0]).filter(|k| matches!(k, Kind::Data | Kind::Tree)).ok_or("bad blob kind")?;
            let u = |at: usize| u32::from_le_bytes(e[at..at + 4].try_into().expect("4 bytes"));
            let within = if entry_bytes == ENTRY_V2_BYTES { Some(u(45)).filter(|&w| w != ALONE) } else { None };
            let entry = BlobEntry {
                kind,
                id: ChunkId(e[1..33].try_into().expect("32 bytes")),
                offset: u(33),
                length: u(37),
                raw_len: u(41),
                within,
            };
            if entry.offset as u64 + entry.length as u64 > blobs_end || entry.length > MAX_BLOB_BYTES {
                return Err("blob lies outside the pack".to_string());
            }
            Ok(entry)
        })
        .collect::<Result<Vec<_>, String>>()?;
    check_bundles(&entries)?;
    Ok(entries)
}

/// Every bundle member is a data chunk within the bundle bound, and the members of one
/// bundle are consecutive, share its place and follow each other without overlap.
///
/// # Errors
/// A reason naming what is wrong.
pub fn check_bundles(entries: &[BlobEntry]) -> Result<(), String> {
    for group in blobs(entries) {
        let mut end = 0u64;
        for e in group {
            let Some(within) = e.within else { continue };
            let stop = within as u64 + e.raw_len as u64;
            if e.kind != Kind::Data || e.length != group[0].length || (within as u64) < end {
                return Err("malformed bundle entries".into());
            }
            if stop > MAX_BUNDLE_BYTES as u64 {
                return Err(format!("bundle body over {MAX_BUNDLE_BYTES} bytes"));
            }
            end = stop;
        }
    }
    let mut seen = std::collections::HashSet::new();
    for group in blobs(entries).filter(|g| g[0].within.is_some()) {
        if !seen.insert(group[0].offset) {
            return Err("a bundle's entries are not consecutive".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_bounds() {
        let key = Key32::from_bytes([9; 32]);
        let mut w = PackWriter::with_capacity(100);
        w.add(Kind::Data, ChunkId([1; 32]), b"aaaa", 10);
        w.add(Kind::Tree, ChunkId([2; 32]), b"bbbbbb", 20);
        let (id, bytes, entries) = w.finish(&key);
        assert_eq!(id, PackId(*blake3::hash(&bytes).as_bytes()));
        let n = bytes.len() as u64;
        let hl = header_len(n, &bytes[bytes.len() - 4..]).unwrap() as usize;
        let start = bytes.len() - 4 - hl;
        let parsed = decode_header(&key, &bytes[start..bytes.len() - 4], start as u64).unwrap();
        assert_eq!(parsed, entries);
        assert_eq!(parsed[1].offset, 4);
        assert!(decode_header(&key, &bytes[start..bytes.len() - 4], 5).is_err(), "blob past end refused");
        assert!(header_len(10, &u32::MAX.to_le_bytes()).is_err());
    }

    #[test]
    fn bundles_make_a_version_2_header_and_group_as_one_blob() {
        let key = Key32::from_bytes([9; 32]);
        let mut w = PackWriter::default();
        w.add(Kind::Data, ChunkId([1; 32]), b"aaaa", 10);
        w.add_bundle(b"bundle", [(ChunkId([2; 32]), 3, 0), (ChunkId([3; 32]), 4, 3)]);
        w.add(Kind::Tree, ChunkId([4; 32]), b"cc", 20);
        let (_, bytes, entries) = w.finish(&key);
        let hl = header_len(bytes.len() as u64, &bytes[bytes.len() - 4..]).unwrap() as usize;
        let start = bytes.len() - 4 - hl;
        assert_eq!(hl, aead::OVERHEAD + 5 + 4 * ENTRY_V2_BYTES);
        assert_eq!(decode_header(&key, &bytes[start..bytes.len() - 4], start as u64).unwrap(), entries);
        let groups: Vec<usize> = blobs(&entries).map(<[BlobEntry]>::len).collect();
        assert_eq!(groups, [1, 2, 1]);

        // A tree inside a bundle, or two members overlapping, is refused.
        let mut bad = entries.clone();
        bad[2].kind = Kind::Tree;
        assert!(check_bundles(&bad).is_err());
        let mut bad = entries.clone();
        bad[2].within = Some(2);
        assert!(check_bundles(&bad).is_err());
        // So is a bundle whose members are not listed together.
        let mut bad = entries;
        bad.swap(2, 3);
        assert!(check_bundles(&bad).is_err());
    }
}
