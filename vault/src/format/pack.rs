//! `data/<xx>/<pack-id>`: many sealed chunks followed by their sealed header.
//!
//! ```text
//! pack   = blob_0 ‖ … ‖ blob_{n-1} ‖ header_sealed ‖ header_len (u32 LE)
//! blob_i = envelope::seal(data or metadata key, aad(kind_i, chunk_id_i), chunk plaintext)
//! header = version (u8 = 1) ‖ count (u32 LE) ‖ count × entry
//! entry  = kind (u8) ‖ chunk_id (32) ‖ offset (u32 LE) ‖ length (u32 LE) ‖ raw_len (u32 LE)
//! header_sealed = aead::seal(metadata key, aad(PackHeader, 32 zero bytes), header)
//! pack id = BLAKE3(pack bytes)   (unkeyed: anyone can verify a pack's integrity)
//! ```

use zerok_core::{ChunkId, Key32, PackId, aead};

use super::{Kind, aad};

/// Bytes of one header entry.
pub const ENTRY_BYTES: usize = 1 + 32 + 4 + 4 + 4;
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

    /// Appends a sealed blob.
    pub fn add(&mut self, kind: Kind, id: ChunkId, sealed: &[u8], raw_len: u32) {
        self.entries.push(BlobEntry {
            kind,
            id,
            offset: self.bytes.len() as u32,
            length: sealed.len() as u32,
            raw_len,
        });
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

fn encode_header(entries: &[BlobEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + entries.len() * ENTRY_BYTES);
    out.push(1);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        out.push(e.kind as u8);
        out.extend_from_slice(&e.id.0);
        out.extend_from_slice(&e.offset.to_le_bytes());
        out.extend_from_slice(&e.length.to_le_bytes());
        out.extend_from_slice(&e.raw_len.to_le_bytes());
    }
    out
}

/// Length of the sealed header, from a pack's last 4 bytes; checked against the pack size.
///
/// # Errors
/// A reason when the trailer is missing or declares more than the pack holds.
pub fn header_len(pack_size: u64, trailer: &[u8]) -> Result<u32, String> {
    let len = u32::from_le_bytes(trailer.try_into().map_err(|_| "pack shorter than 4 bytes")?);
    let max = (MAX_ENTRIES * ENTRY_BYTES + 5 + aead::OVERHEAD) as u64;
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

/// Opens and parses a sealed header; checks every entry lies before the header.
///
/// # Errors
/// A reason when authentication fails or the header is malformed.
pub fn decode_header(metadata_key: &Key32, sealed: &[u8], blobs_end: u64) -> Result<Vec<BlobEntry>, String> {
    let plain = aead::open(metadata_key, &aad(Kind::PackHeader, &[0; 32]), sealed)
        .map_err(|_| "pack header fails authentication".to_string())?;
    if plain.len() < 5 || plain[0] != 1 {
        return Err("unknown pack header version".into());
    }
    let count = u32::from_le_bytes(plain[1..5].try_into().expect("4 bytes")) as usize;
    if count > MAX_ENTRIES || plain.len() != 5 + count * ENTRY_BYTES {
        return Err(format!("pack header declares {count} entries in {} bytes", plain.len()));
    }
    plain[5..]
        .chunks_exact(ENTRY_BYTES)
        .map(|e| {
            let kind = Kind::from_byte(e[0]).filter(|k| matches!(k, Kind::Data | Kind::Tree)).ok_or("bad blob kind")?;
            let u = |at: usize| u32::from_le_bytes(e[at..at + 4].try_into().expect("4 bytes"));
            let entry = BlobEntry {
                kind,
                id: ChunkId(e[1..33].try_into().expect("32 bytes")),
                offset: u(33),
                length: u(37),
                raw_len: u(41),
            };
            if entry.offset as u64 + entry.length as u64 > blobs_end || entry.length > MAX_BLOB_BYTES {
                return Err("blob lies outside the pack".to_string());
            }
            Ok(entry)
        })
        .collect()
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
}
