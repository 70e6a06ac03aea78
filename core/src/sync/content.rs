//! Large content (protocol document §9): attachments encrypted on the sending device, sent
//! device to device (or through a vault relay) over iroh-blobs, with only a reference in a
//! sealed message.
//!
//! ```text
//! key      = HKDF-SHA256(salt = "zerok-content-v1", IKM = group secret S, info = content id (16))
//! segments = plaintext cut in SEGMENT_BYTES pieces (one empty piece for empty content)
//! nonce_i  = nonce (24 random bytes) with its last 8 bytes XOR big-endian i
//! ct_i     = XChaCha20-Poly1305(key, nonce_i, aad = "zerok-content-v1" ‖ last (1 byte: 1 on
//!            the final segment, else 0), segment i)
//! ciphertext = ct_0 ‖ ct_1 ‖ …            hash = BLAKE3(ciphertext), the iroh-blobs hash
//! ```
//! Encrypt-then-hash: a provider (device or relay) holds and serves only ciphertext, and a
//! fetcher verifies every 16 KiB chunk group against `hash` while it streams (BLAKE3
//! verified streaming, as iroh-blobs does), before anything is decrypted. The reference
//! ([`ContentRef`]) travels inside a sealed, signed message, so a relay that forwards it
//! learns neither hash nor size; it carries the key, so the content opens after the group
//! rotated. Segment nonces and the final-segment flag stop segments being reordered,
//! dropped or cut short even if the hash were not checked.

use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroize;

use super::GroupSecret;
use crate::{Error, Key32, Result, aead, secret::random_bytes};

const LABEL: &[u8] = b"zerok-content-v1";
/// Plaintext bytes per sealed segment.
pub const SEGMENT_BYTES: u64 = 1 << 20;
/// What sealing adds to each segment.
pub const SEGMENT_OVERHEAD: u64 = aead::TAG_BYTES as u64;
/// Bytes of a sealed segment (all but the last are this long).
pub const SEALED_SEGMENT_BYTES: u64 = SEGMENT_BYTES + SEGMENT_OVERHEAD;

/// An attachment's id: 16 random bytes chosen by its sender.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ContentId(#[serde(with = "serde_bytes")] pub [u8; 16]);

/// BLAKE3 of an attachment's ciphertext: its name in iroh-blobs stores, and its reference
/// in the command line (64 hex digits).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ContentHash(#[serde(with = "serde_bytes")] pub [u8; 32]);

super::group::hex_debug!(ContentId, ContentHash);

impl ContentId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(random_bytes())
    }
}

/// The key of one attachment.
#[derive(Clone, PartialEq, Eq)]
pub struct ContentKey(Key32);

impl std::fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContentKey([REDACTED])")
    }
}

impl ContentKey {
    /// The key of attachment `id` in the group of `secret`.
    pub fn derive(secret: &GroupSecret, id: &ContentId) -> Self {
        let mut okm = [0u8; 32];
        Hkdf::<Sha256>::new(Some(LABEL), secret.expose()).expand(&id.0, &mut okm).expect("valid length");
        let key = Self(Key32::from_bytes(okm));
        okm.zeroize();
        key
    }
}

impl Serialize for ContentKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        serde_bytes::Bytes::new(self.0.expose()).serialize(s)
    }
}

impl<'de> Deserialize<'de> for ContentKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let mut raw = serde_bytes::ByteBuf::deserialize(d)?;
        let key = <[u8; 32]>::try_from(raw.as_slice()).map_err(|_| serde::de::Error::invalid_length(raw.len(), &"32"));
        raw.zeroize();
        let mut key = key?;
        let out = Self(Key32::from_bytes(key));
        key.zeroize();
        Ok(out)
    }
}

/// Everything a member needs to fetch and open an attachment. Sent only inside a sealed
/// message; never printed (its `Debug` hides the key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentRef {
    /// Sender-chosen id (the key is derived from it).
    pub id: ContentId,
    /// BLAKE3 of the ciphertext.
    pub hash: ContentHash,
    /// Its key.
    pub key: ContentKey,
    /// Base nonce of its segments.
    #[serde(with = "serde_bytes")]
    pub nonce: [u8; 24],
    /// Plaintext bytes.
    pub size: u64,
    /// Media type, as the app gave it (`application/octet-stream` when it gave none).
    pub mime: String,
    /// File name, when it came from a file (no folders).
    pub name: Option<String>,
    /// Where the sender served it from when it sent the reference (`IP:PORT`s of its
    /// endpoint); a fetcher also asks the group's vault relays.
    pub addrs: Vec<String>,
}

/// Longest [`ContentRef::mime`] and [`ContentRef::name`] kept.
pub const MAX_LABEL_CHARS: usize = 255;
/// Most [`ContentRef::addrs`] kept.
pub const MAX_ADDRS: usize = 16;
/// Longest of [`ContentRef::addrs`], bytes.
pub const MAX_ADDR_BYTES: usize = 64;

impl ContentRef {
    /// Bytes of its ciphertext.
    pub fn encrypted_size(&self) -> u64 {
        encrypted_len(self.size)
    }

    /// Whether a reference read from a message is well formed: labels and addresses within
    /// bounds (a member's junk cannot make a device hold more).
    pub fn is_sane(&self) -> bool {
        self.mime.chars().count() <= MAX_LABEL_CHARS
            && self.name.as_ref().is_none_or(|n| n.chars().count() <= MAX_LABEL_CHARS && !n.contains(['/', '\\']))
            && self.addrs.len() <= MAX_ADDRS
            && self.addrs.iter().all(|a| a.len() <= MAX_ADDR_BYTES)
    }
}

/// A message with an attachment: the plaintext after its kind byte (1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attached {
    /// The attachment.
    pub content: ContentRef,
    /// The app's message that goes with it (may be empty).
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// A member fetched and opened an attachment: the plaintext after its kind byte (2). Its
/// sender releases its copy once every member acknowledged it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Which.
    pub hash: ContentHash,
}

/// Segments of a plaintext of `size` bytes (at least one).
pub fn segments(size: u64) -> u64 {
    size.div_ceil(SEGMENT_BYTES).max(1)
}

/// Ciphertext bytes of a plaintext of `size` bytes.
pub fn encrypted_len(size: u64) -> u64 {
    size + segments(size) * SEGMENT_OVERHEAD
}

fn segment_nonce(base: &[u8; 24], index: u64) -> [u8; 24] {
    let mut nonce = *base;
    for (n, i) in nonce[16..].iter_mut().zip(index.to_be_bytes()) {
        *n ^= i;
    }
    nonce
}

fn segment_aad(last: bool) -> Vec<u8> {
    [LABEL, &[u8::from(last)]].concat()
}

/// Seals an attachment segment by segment.
pub struct Sealer {
    key: ContentKey,
    nonce: [u8; 24],
    size: u64,
    next: u64,
}

impl Sealer {
    /// Starts sealing a plaintext of `size` bytes as attachment `id` of the group of `secret`.
    pub fn new(secret: &GroupSecret, id: &ContentId, size: u64) -> Self {
        Self { key: ContentKey::derive(secret, id), nonce: random_bytes(), size, next: 0 }
    }

    /// [`Sealer::new`] with a chosen nonce, for golden vectors only.
    pub fn with_nonce(secret: &GroupSecret, id: &ContentId, size: u64, nonce: [u8; 24]) -> Self {
        Self { key: ContentKey::derive(secret, id), nonce, size, next: 0 }
    }

    /// Plaintext bytes the next segment must hold.
    pub fn next_len(&self) -> usize {
        let start = self.next * SEGMENT_BYTES;
        self.size.saturating_sub(start).min(SEGMENT_BYTES) as usize
    }

    /// Whether every segment was sealed.
    pub fn is_done(&self) -> bool {
        self.next == segments(self.size)
    }

    /// Seals the next segment, which must be [`Sealer::next_len`] bytes.
    ///
    /// # Panics
    /// On a segment of another length, or past the last one: a caller bug.
    pub fn seal(&mut self, segment: &[u8]) -> Vec<u8> {
        assert!(!self.is_done() && segment.len() == self.next_len(), "content segments out of step");
        let last = self.next + 1 == segments(self.size);
        let nonce = segment_nonce(&self.nonce, self.next);
        self.next += 1;
        let mut sealed = aead::seal_with_nonce(&self.key.0, nonce, &segment_aad(last), segment);
        sealed.drain(..aead::NONCE_BYTES);
        sealed
    }

    /// The reference, once every segment was sealed and hashed.
    pub fn finish(self, id: ContentId, hash: ContentHash, mime: String, name: Option<String>) -> ContentRef {
        ContentRef { id, hash, key: self.key, nonce: self.nonce, size: self.size, mime, name, addrs: Vec::new() }
    }
}

/// Opens an attachment's ciphertext segment by segment (after its hash was verified).
pub struct Opener<'a> {
    content: &'a ContentRef,
}

impl<'a> Opener<'a> {
    /// Opens `content`.
    pub fn new(content: &'a ContentRef) -> Self {
        Self { content }
    }

    /// Where segment `index` lies in the ciphertext: offset and length.
    pub fn sealed_range(&self, index: u64) -> (u64, u64) {
        let start = index * SEALED_SEGMENT_BYTES;
        (start, (self.content.encrypted_size() - start).min(SEALED_SEGMENT_BYTES))
    }

    /// Segments in all.
    pub fn segments(&self) -> u64 {
        segments(self.content.size)
    }

    /// Opens segment `index`.
    ///
    /// # Errors
    /// [`Error::Decrypt`] when it was altered, moved, or sealed under another key.
    pub fn open(&self, index: u64, sealed: &[u8]) -> Result<Vec<u8>> {
        if index >= self.segments() {
            return Err(Error::Decrypt);
        }
        let last = index + 1 == self.segments();
        let nonce = segment_nonce(&self.content.nonce, index);
        aead::open(&self.content.key.0, &segment_aad(last), &[&nonce[..], sealed].concat())
    }
}

/// Seals a whole plaintext held in memory (small attachments, tests): the reference and
/// the ciphertext.
pub fn seal_bytes(secret: &GroupSecret, data: &[u8], mime: &str, name: Option<String>) -> (ContentRef, Vec<u8>) {
    let id = ContentId::random();
    let mut sealer = Sealer::new(secret, &id, data.len() as u64);
    let mut out = Vec::with_capacity(encrypted_len(data.len() as u64) as usize);
    let mut rest = data;
    while !sealer.is_done() {
        let (segment, tail) = rest.split_at(sealer.next_len());
        out.extend_from_slice(&sealer.seal(segment));
        rest = tail;
    }
    let hash = ContentHash(*blake3::hash(&out).as_bytes());
    (sealer.finish(id, hash, mime.to_string(), name), out)
}

/// Opens a whole ciphertext held in memory, checking its hash first.
///
/// # Errors
/// [`Error::Decrypt`] when the hash, length or any segment does not match.
pub fn open_bytes(content: &ContentRef, ciphertext: &[u8]) -> Result<Vec<u8>> {
    if ciphertext.len() as u64 != content.encrypted_size() || blake3::hash(ciphertext).as_bytes() != &content.hash.0 {
        return Err(Error::Decrypt);
    }
    let opener = Opener::new(content);
    let mut out = Vec::with_capacity(content.size as usize);
    for i in 0..opener.segments() {
        let (start, len) = opener.sealed_range(i);
        out.extend_from_slice(&opener.open(i, &ciphertext[start as usize..(start + len) as usize])?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> GroupSecret {
        GroupSecret::from_bytes(std::array::from_fn(|i| i as u8))
    }

    #[test]
    fn golden_vector() {
        // Cross-checked with Python: HKDF-SHA256 (hmac), XChaCha20-Poly1305 (PyNaCl), BLAKE3.
        let id = ContentId([0x22; 16]);
        assert_eq!(hex::encode(ContentKey::derive(&secret(), &id).0.expose()), GOLDEN_KEY);
        let nonce: [u8; 24] = std::array::from_fn(|i| i as u8);
        let mut sealer = Sealer::with_nonce(&secret(), &id, 5, nonce);
        let sealed = sealer.seal(b"hello");
        assert_eq!(hex::encode(&sealed), GOLDEN_HELLO);
        assert_eq!(blake3::hash(&sealed).to_hex().as_str(), GOLDEN_HELLO_HASH);
        // Two segments: the second's nonce ends in 01, and only it is flagged last.
        let data: Vec<u8> = (0..SEGMENT_BYTES + 5).map(|i| (i % 251) as u8).collect();
        let mut sealer = Sealer::with_nonce(&secret(), &id, data.len() as u64, nonce);
        let mut ct = sealer.seal(&data[..SEGMENT_BYTES as usize]);
        ct.extend(sealer.seal(&data[SEGMENT_BYTES as usize..]));
        assert!(sealer.is_done());
        assert_eq!(ct.len(), 1_048_613);
        assert_eq!(blake3::hash(&ct).to_hex().as_str(), GOLDEN_TWO_SEGMENTS_HASH);
    }

    const GOLDEN_KEY: &str = "e3a238722a410ad1549fa0ada2cf3d3a2f1bdb493ade66e493eb52ff53f91514";
    const GOLDEN_HELLO: &str = "eb0bb92421e771278c1d1db399910a4ed1e3f08750";
    const GOLDEN_HELLO_HASH: &str = "6c1b1451521ffff7f3c58fefd7d1c649b601998c2dfc141af263422699342f29";
    const GOLDEN_TWO_SEGMENTS_HASH: &str = "d3f9dc6dc23e20406d9ad4dc295069ae1b9f7520f9bbb3ce03b36cc0c180301c";

    #[test]
    fn round_trip_across_segment_boundaries() {
        for size in [0, 1, SEGMENT_BYTES - 1, SEGMENT_BYTES, SEGMENT_BYTES + 1, 3 * SEGMENT_BYTES] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let (content, ct) = seal_bytes(&secret(), &data, "application/octet-stream", None);
            assert_eq!(ct.len() as u64, encrypted_len(size), "size {size}");
            assert_eq!(open_bytes(&content, &ct).unwrap(), data, "size {size}");
        }
    }

    #[test]
    fn altered_reordered_or_cut_ciphertext_is_refused() {
        let data = vec![7u8; (2 * SEGMENT_BYTES + 10) as usize];
        let (content, ct) = seal_bytes(&secret(), &data, "image/jpeg", Some("a.jpg".into()));
        let mut flipped = ct.clone();
        flipped[SEGMENT_BYTES as usize + 3] ^= 1;
        assert!(open_bytes(&content, &flipped).is_err());
        let opener = Opener::new(&content);
        let (s0, l0) = opener.sealed_range(0);
        let (s1, l1) = opener.sealed_range(1);
        let first = &ct[s0 as usize..(s0 + l0) as usize];
        let second = &ct[s1 as usize..(s1 + l1) as usize];
        assert!(opener.open(0, first).is_ok());
        assert!(opener.open(1, first).is_err(), "a segment moved to another place");
        assert!(opener.open(2, second).is_err(), "a middle segment passed off as the last");
        // A reference whose size was cut to end after the first segment: that segment was
        // not sealed as the last.
        let mut cut = content.clone();
        cut.size = SEGMENT_BYTES;
        assert!(Opener::new(&cut).open(0, first).is_err());
        let other = seal_bytes(&secret(), &data, "image/jpeg", None).0;
        assert!(Opener::new(&other).open(0, first).is_err(), "another attachment's key");
    }

    #[test]
    fn the_key_never_prints() {
        let (content, _) = seal_bytes(&secret(), b"x", "text/plain", None);
        let shown = format!("{content:?}");
        assert!(shown.contains("REDACTED"));
        assert!(!shown.contains(&hex::encode(content.key.0.expose())));
        let round: ContentRef = rmp_serde::from_slice(&rmp_serde::to_vec_named(&content).unwrap()).unwrap();
        assert_eq!(round, content);
    }
}
