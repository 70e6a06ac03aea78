//! `data/<xx>/<pack-id>`: many sealed blobs followed by their sealed header. A blob is one
//! chunk, or a *bundle*: several small data chunks compressed and sealed together, each
//! keeping its chunk id (FORMAT.md §4.3).
//!
//! ```text
//! pack   = blob_0 ‖ … ‖ blob_{m-1} ‖ header_sealed ‖ header_len (u32 LE)
//! blob   = envelope::seal(data or metadata key, aad(kind, chunk_id), chunk plaintext)
//!        | envelope::seal(data key, aad(Bundle, 32 zero bytes), plaintext_0 ‖ plaintext_1 ‖ …)
//! header = version (u8: 1 without bundles, 3 with; 2 read only) ‖ count (u32 LE) ‖ count × entry
//! entry  = kind (u8) ‖ chunk_id (32) ‖ offset (u32 LE) ‖ length (u32 LE) ‖ raw_len (u32 LE)
//!          [‖ within (u32 LE; 0xFFFFFFFF: a blob of its own) in version 2]
//!        | 10 (u8) ‖ offset ‖ length ‖ k (u32 LE) ‖ k × raw_len (u32 LE)   (version 3: a bundle)
//! header_sealed = aead::seal(metadata key, aad(PackHeader, 32 zero bytes), header)
//! pack id = BLAKE3(pack bytes)   (unkeyed: anyone can verify a pack's integrity)
//! ```
//!
//! A version-3 header lays a bundle out by its members' lengths only: their ids are the keyed
//! hashes of the pieces of its body, named by opening it ([`Layout::name`]).

use zerok_core::{ChunkId, Key32, PackId, aead};

use super::{Kind, aad};

/// Bytes of one version-1 header entry (and of a lone chunk's in version 3).
pub const ENTRY_BYTES: usize = 1 + 32 + 4 + 4 + 4;
/// Bytes of one version-2 header entry (`within` added).
pub const ENTRY_V2_BYTES: usize = ENTRY_BYTES + 4;
/// Bytes of a version-3 bundle entry before its members' lengths.
const BUNDLE_ENTRY_BYTES: usize = 1 + 4 + 4 + 4;
/// `within` of a version-2 entry whose chunk is a blob of its own.
const ALONE: u32 = u32::MAX;
/// Largest bundle body accepted (a chunk's `within + raw_len`), in bytes.
pub const MAX_BUNDLE_BYTES: u32 = 4 << 20;
/// Most chunks a header may declare (bounds allocation when decoding).
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

/// A bundle as a version-3 header lays it out: its place and its members' lengths, end to
/// end from the start of its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Byte offset of the sealed bundle in the pack.
    pub offset: u32,
    /// Length of the sealed bundle.
    pub length: u32,
    /// Plaintext length of each member, in body order.
    pub lens: Vec<u32>,
}

impl Layout {
    /// Names the members from the opened `body`, whose length must be the members' total.
    ///
    /// # Errors
    /// A reason when the body is not as long as the layout says.
    pub fn name(&self, body: &[u8], chunk_id: impl Fn(&[u8]) -> ChunkId) -> Result<Vec<BlobEntry>, String> {
        let total: u64 = self.lens.iter().map(|&l| l as u64).sum();
        if body.len() as u64 != total {
            return Err(format!("bundle body is {} bytes, its layout says {total}", body.len()));
        }
        let mut within = 0u32;
        Ok(self
            .lens
            .iter()
            .map(|&raw_len| {
                let at = within;
                within += raw_len;
                let id = chunk_id(&body[at as usize..within as usize]);
                BlobEntry { kind: Kind::Data, id, offset: self.offset, length: self.length, raw_len, within: Some(at) }
            })
            .collect())
    }
}

/// A pack's header as decoded: the chunks it names (each lone chunk, and every member of a
/// version-2 bundle) and the bundles it lays out by length only (version 3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Named chunks, in pack order.
    pub entries: Vec<BlobEntry>,
    /// Bundles whose members are named by opening them.
    pub bundles: Vec<Layout>,
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

    /// Appends a sealed bundle whose body is the data chunks `members` (`(chunk id,
    /// raw_len)`) end to end, nothing before, between or after them. A bundle of one is
    /// listed as a bundle all the same.
    pub fn add_bundle(&mut self, sealed: &[u8], members: impl IntoIterator<Item = (ChunkId, u32)>) {
        let (offset, length) = (self.bytes.len() as u32, sealed.len() as u32);
        let mut within = 0u32;
        for (id, raw_len) in members {
            self.entries.push(BlobEntry { kind: Kind::Data, id, offset, length, raw_len, within: Some(within) });
            within += raw_len;
        }
        self.bytes.extend_from_slice(sealed);
    }

    /// Bytes of blobs so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the pack should be closed: `pack_bytes` of blobs, or so many chunks that one
    /// more bundle (at most 2^18 + 1 members: closed at 256 KiB of body) could carry its
    /// header past the [`MAX_ENTRIES`] readers accept.
    pub fn is_full(&self, pack_bytes: usize) -> bool {
        self.bytes.len() >= pack_bytes || self.entries.len() >= MAX_ENTRIES / 2
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

/// Version 1 without bundles (as every pack written before them), version 3 with: a bundle
/// listed once, by its members' lengths.
fn encode_header(entries: &[BlobEntry]) -> Vec<u8> {
    let bundles = entries.iter().any(|e| e.within.is_some());
    let mut out = Vec::with_capacity(5 + entries.len() * ENTRY_BYTES);
    out.push(if bundles { 3 } else { 1 });
    out.extend_from_slice(&(blobs(entries).count() as u32).to_le_bytes());
    for blob in blobs(entries) {
        let e = &blob[0];
        if e.within.is_some() {
            out.push(Kind::Bundle as u8);
            out.extend_from_slice(&e.offset.to_le_bytes());
            out.extend_from_slice(&e.length.to_le_bytes());
            out.extend_from_slice(&(blob.len() as u32).to_le_bytes());
            for m in blob {
                out.extend_from_slice(&m.raw_len.to_le_bytes());
            }
        } else {
            out.push(e.kind as u8);
            out.extend_from_slice(&e.id.0);
            out.extend_from_slice(&e.offset.to_le_bytes());
            out.extend_from_slice(&e.length.to_le_bytes());
            out.extend_from_slice(&e.raw_len.to_le_bytes());
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

/// Opens and parses a sealed header; checks every blob lies before the header and every
/// bundle is well formed (§4.3).
///
/// # Errors
/// A reason when authentication fails or the header is malformed.
pub fn decode_header(metadata_key: &Key32, sealed: &[u8], blobs_end: u64) -> Result<Header, String> {
    let plain = aead::open(metadata_key, &aad(Kind::PackHeader, &[0; 32]), sealed)
        .map_err(|_| "pack header fails authentication".to_string())?;
    let version = plain.first().copied();
    let count = plain.get(1..5).map_or(0, |b| le32(b) as usize);
    let fixed = match version {
        Some(1) => Some(ENTRY_BYTES),
        Some(2) => Some(ENTRY_V2_BYTES),
        Some(3) => None,
        _ => return Err("unknown pack header version".into()),
    };
    let declared = || format!("pack header declares {count} entries in {} bytes", plain.len());
    if plain.len() < 5 || count > MAX_ENTRIES || fixed.is_some_and(|n| plain.len() != 5 + count * n) {
        return Err(declared());
    }
    let mut reader = Entries { rest: &plain[5..], blobs_end, chunks: 0 };
    let mut header = Header::default();
    for _ in 0..count {
        match fixed {
            Some(n) => header.entries.push(reader.chunk(n == ENTRY_V2_BYTES)?),
            None if reader.rest.first() == Some(&(Kind::Bundle as u8)) => header.bundles.push(reader.bundle()?),
            None => header.entries.push(reader.chunk(false)?),
        }
    }
    if !reader.rest.is_empty() {
        return Err(declared());
    }
    check_bundles(&header.entries)?;
    let mut places: Vec<u32> = header.bundles.iter().map(|b| b.offset).collect();
    places.sort_unstable();
    if places.windows(2).any(|w| w[0] == w[1]) {
        return Err("two bundles at one place".into());
    }
    Ok(header)
}

/// The little-endian u32 that `b` starts with (callers hold at least 4 bytes).
fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("4 bytes"))
}

/// Reads a header's entries one by one, bounding what they declare.
struct Entries<'a> {
    rest: &'a [u8],
    blobs_end: u64,
    /// Chunks declared so far (bounded by [`MAX_ENTRIES`]).
    chunks: usize,
}

impl Entries<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.rest.len() < n {
            return Err("pack header ends inside an entry".into());
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    fn place(&self, offset: u32, length: u32) -> Result<(), String> {
        if offset as u64 + length as u64 > self.blobs_end || length > MAX_BLOB_BYTES {
            return Err("blob lies outside the pack".to_string());
        }
        Ok(())
    }

    /// A chunk entry (version 1 or 3; with `within` in version 2).
    fn chunk(&mut self, v2: bool) -> Result<BlobEntry, String> {
        let e = self.take(if v2 { ENTRY_V2_BYTES } else { ENTRY_BYTES })?;
        let kind = Kind::from_byte(e[0]).filter(|k| matches!(k, Kind::Data | Kind::Tree)).ok_or("bad blob kind")?;
        let u = |at: usize| le32(&e[at..]);
        let within = if v2 { Some(u(45)).filter(|&w| w != ALONE) } else { None };
        let entry = BlobEntry {
            kind,
            id: ChunkId(e[1..33].try_into().expect("32 bytes")),
            offset: u(33),
            length: u(37),
            raw_len: u(41),
            within,
        };
        self.place(entry.offset, entry.length)?;
        if self.chunks >= MAX_ENTRIES {
            return Err(format!("pack header declares over {MAX_ENTRIES} chunks"));
        }
        self.chunks += 1;
        Ok(entry)
    }

    /// A version-3 bundle entry.
    fn bundle(&mut self) -> Result<Layout, String> {
        let e = self.take(BUNDLE_ENTRY_BYTES)?;
        let u = |at: usize| le32(&e[at..]);
        let (offset, length, k) = (u(1), u(5), u(9) as usize);
        self.place(offset, length)?;
        if k == 0 || self.chunks + k > MAX_ENTRIES {
            return Err(format!("bundle declares {k} members"));
        }
        let lens: Vec<u32> = self.take(k * 4)?.chunks_exact(4).map(le32).collect();
        if lens.contains(&0) {
            return Err("empty bundle member".into());
        }
        if lens.iter().map(|&l| l as u64).sum::<u64>() > MAX_BUNDLE_BYTES as u64 {
            return Err(format!("bundle body over {MAX_BUNDLE_BYTES} bytes"));
        }
        self.chunks += k;
        Ok(Layout { offset, length, lens })
    }
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

    fn header_of(key: &Key32, bytes: &[u8]) -> (Result<Header, String>, Vec<u8>) {
        let hl = header_len(bytes.len() as u64, &bytes[bytes.len() - 4..]).unwrap() as usize;
        let start = bytes.len() - 4 - hl;
        let sealed = &bytes[start..bytes.len() - 4];
        let plain = aead::open(key, &aad(Kind::PackHeader, &[0; 32]), sealed).unwrap();
        (decode_header(key, sealed, start as u64), plain)
    }

    #[test]
    fn header_round_trip_and_bounds() {
        let key = Key32::from_bytes([9; 32]);
        let mut w = PackWriter::with_capacity(100);
        w.add(Kind::Data, ChunkId([1; 32]), b"aaaa", 10);
        w.add(Kind::Tree, ChunkId([2; 32]), b"bbbbbb", 20);
        let (id, bytes, entries) = w.finish(&key);
        assert_eq!(id, PackId(*blake3::hash(&bytes).as_bytes()));
        let (parsed, plain) = header_of(&key, &bytes);
        let parsed = parsed.unwrap();
        assert_eq!((parsed.entries.clone(), parsed.bundles.len()), (entries, 0));
        assert_eq!((plain[0], plain.len()), (1, 5 + 2 * ENTRY_BYTES), "no bundles: version 1, as before bundles");
        assert_eq!(parsed.entries[1].offset, 4);
        let start = bytes.len() - 4 - header_len(bytes.len() as u64, &bytes[bytes.len() - 4..]).unwrap() as usize;
        assert!(decode_header(&key, &bytes[start..bytes.len() - 4], 5).is_err(), "blob past end refused");
        assert!(header_len(10, &u32::MAX.to_le_bytes()).is_err());
    }

    #[test]
    fn a_bundle_is_listed_once_by_its_members_lengths() {
        let key = Key32::from_bytes([9; 32]);
        let mut w = PackWriter::default();
        w.add(Kind::Data, ChunkId([1; 32]), b"aaaa", 10);
        w.add_bundle(b"bundle", [(ChunkId([2; 32]), 3), (ChunkId([3; 32]), 4)]);
        w.add(Kind::Tree, ChunkId([4; 32]), b"cc", 20);
        let (_, bytes, entries) = w.finish(&key);
        assert_eq!(entries[2].within, Some(3), "members laid end to end");
        let groups: Vec<usize> = blobs(&entries).map(<[BlobEntry]>::len).collect();
        assert_eq!(groups, [1, 2, 1]);
        let (parsed, plain) = header_of(&key, &bytes);
        assert_eq!((plain[0], plain.len()), (3, 5 + 2 * ENTRY_BYTES + BUNDLE_ENTRY_BYTES + 2 * 4));
        let parsed = parsed.unwrap();
        assert_eq!(parsed.entries, [entries[0], entries[3]]);
        assert_eq!(parsed.bundles, [Layout { offset: 4, length: 6, lens: vec![3, 4] }]);

        // Naming the members from the body gives back the writer's entries (ids as hashed).
        let named = parsed.bundles[0].name(b"abcdefg", |b| ChunkId([b.len() as u8 - 1; 32])).unwrap();
        assert_eq!(named, entries[1..3]);
        assert!(parsed.bundles[0].name(b"abcdef", |_| ChunkId([0; 32])).is_err(), "a body shorter than its layout");
    }

    #[test]
    fn a_pack_of_many_tiny_chunks_is_closed_before_its_header_would_be_refused() {
        let mut w = PackWriter::default();
        let members = |n: u32| (0..n).map(|i| (ChunkId([(i % 251) as u8; 32]), 1));
        w.add_bundle(b"bundle", members((MAX_ENTRIES / 2) as u32 - 1));
        assert!(!w.is_full(8 << 20));
        w.add_bundle(b"bundle", members(1));
        assert!(w.is_full(8 << 20), "closed at 2^19 chunks, so one more bundle of 2^18 + 1 stays under 2^20");
    }

    #[test]
    fn malformed_version_3_bundles_are_refused() {
        let key = Key32::from_bytes([9; 32]);
        let seal = |plain: &[u8]| aead::seal(&key, &aad(Kind::PackHeader, &[0; 32]), plain);
        let bundle = |offset: u32, lens: &[u32]| {
            let mut e = vec![Kind::Bundle as u8];
            for n in [offset, 10, lens.len() as u32].into_iter().chain(lens.iter().copied()) {
                e.extend_from_slice(&n.to_le_bytes());
            }
            e
        };
        let header = |entries: &[Vec<u8>]| {
            let mut h = vec![3u8];
            h.extend_from_slice(&(entries.len() as u32).to_le_bytes());
            entries.iter().for_each(|e| h.extend_from_slice(e));
            h
        };
        assert!(decode_header(&key, &seal(&header(&[bundle(0, &[3, 4])])), 100).is_ok());
        for (what, bad) in [
            ("no members", header(&[bundle(0, &[])])),
            ("an empty member", header(&[bundle(0, &[3, 0])])),
            ("a body over 4 MiB", header(&[bundle(0, &[4 << 20, 1])])),
            ("two bundles at one place", header(&[bundle(0, &[3]), bundle(0, &[4])])),
            ("past the blobs", header(&[bundle(95, &[3])])),
            ("members past the header's end", header(&[bundle(0, &[3, 4])])[..21].to_vec()),
            (
                "more members than allowed",
                header(&[bundle(0, &[1; 3])])
                    .into_iter()
                    .take(14)
                    .chain((MAX_ENTRIES as u32 + 1).to_le_bytes())
                    .chain([1, 0, 0, 0])
                    .collect(),
            ),
            ("bytes after the last entry", [header(&[bundle(0, &[3])]), vec![0]].concat()),
            ("over 2^20 chunks in all", {
                let mut h = header(&[bundle(0, &vec![1; MAX_ENTRIES])]);
                h[1..5].copy_from_slice(&2u32.to_le_bytes());
                h.push(Kind::Data as u8);
                h.extend_from_slice(&[7; 32]);
                h.extend_from_slice(&[0; 12]);
                h
            }),
        ] {
            assert!(decode_header(&key, &seal(&bad), 100).is_err(), "{what} accepted");
        }
    }
}
