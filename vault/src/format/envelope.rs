//! The sealed envelope shared by chunks and metadata objects.
//!
//! `sealed = seal(key, aad(kind, id), flag ‖ body)` where `flag` is `0` (body stored raw) or
//! `1` (body is one zstd frame). Compression is kept only when it makes the body shorter.

use zerok_core::{Key32, aead};

use super::{Kind, aad};

/// Flag byte: body stored as is.
pub const RAW: u8 = 0;
/// Flag byte: body is one zstd frame.
pub const ZSTD: u8 = 1;

/// Reusable compression state (one per worker thread: zstd contexts are costly to make).
pub struct Sealer {
    compressor: zstd::bulk::Compressor<'static>,
    scratch: Vec<u8>,
}

impl Sealer {
    /// A sealer compressing at zstd `level`.
    ///
    /// # Panics
    /// If zstd cannot allocate its context.
    pub fn new(level: i32) -> Self {
        Self { compressor: zstd::bulk::Compressor::new(level).expect("zstd context"), scratch: Vec::new() }
    }

    /// Compresses (when it helps) and seals `body`.
    pub fn seal(&mut self, key: &Key32, kind: Kind, id: &[u8; 32], body: &[u8]) -> Vec<u8> {
        let bound = zstd::zstd_safe::compress_bound(body.len());
        self.scratch.clear();
        self.scratch.reserve(bound);
        let aad = aad(kind, id);
        match self.compressor.compress_to_buffer(body, &mut self.scratch) {
            Ok(n) if n < body.len() => aead::seal_parts(key, &aad, &[&[ZSTD], &self.scratch[..n]]),
            _ => aead::seal_parts(key, &aad, &[&[RAW], body]),
        }
    }
}

/// Compresses (when it helps) and seals `body` with a one-off [`Sealer`].
pub fn seal(key: &Key32, kind: Kind, id: &[u8; 32], body: &[u8], level: i32) -> Vec<u8> {
    Sealer::new(level).seal(key, kind, id, body)
}

/// Why an envelope did not open.
#[derive(Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Authentication failed.
    Decrypt,
    /// Unknown flag, bad zstd frame, or larger than allowed.
    Malformed(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Decrypt => f.write_str("authentication failed (altered or wrong key)"),
            OpenError::Malformed(why) => f.write_str(why),
        }
    }
}

/// Opens and decompresses an envelope; the body may not exceed `max_len` bytes.
///
/// # Errors
/// [`OpenError`] when authentication fails or the body is malformed or too large.
pub fn open(key: &Key32, kind: Kind, id: &[u8; 32], sealed: &[u8], max_len: usize) -> Result<Vec<u8>, OpenError> {
    let mut plain = aead::open(key, &aad(kind, id), sealed).map_err(|_| OpenError::Decrypt)?;
    match plain.first() {
        Some(&RAW) => {
            plain.remove(0);
            if plain.len() > max_len {
                return Err(OpenError::Malformed(format!("body of {} bytes exceeds {max_len}", plain.len())));
            }
            Ok(plain)
        }
        Some(&ZSTD) => decompress(&plain[1..], max_len),
        Some(flag) => Err(OpenError::Malformed(format!("unknown compression flag {flag}"))),
        None => Err(OpenError::Malformed("empty envelope".into())),
    }
}

/// Decompresses one zstd frame of at most `max_len` bytes: in one call into an exact
/// buffer when the frame states its size (ours always do), else by streaming with a cap.
fn decompress(frame: &[u8], max_len: usize) -> Result<Vec<u8>, OpenError> {
    let too_big = || OpenError::Malformed(format!("body exceeds {max_len} bytes"));
    if let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(frame) {
        if size > max_len as u64 {
            return Err(too_big());
        }
        let mut out = Vec::with_capacity(size as usize);
        // One decompression context per thread: creating one costs more than opening a tree.
        thread_local! {
            static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { std::cell::RefCell::new(None) };
        }
        DCTX.with_borrow_mut(|d| {
            if d.is_none() {
                *d = Some(zstd::bulk::Decompressor::new()?);
            }
            d.as_mut().expect("just made").decompress_to_buffer(frame, &mut out)
        })
        .map_err(|e| OpenError::Malformed(format!("zstd: {e}")))?;
        return if out.len() as u64 == size {
            Ok(out)
        } else {
            Err(OpenError::Malformed("zstd: frame size mismatch".into()))
        };
    }
    let mut out = Vec::new();
    let decoder = zstd::stream::read::Decoder::new(frame).map_err(|e| OpenError::Malformed(e.to_string()))?;
    let read = std::io::copy(&mut std::io::Read::take(decoder, max_len as u64 + 1), &mut out)
        .map_err(|e| OpenError::Malformed(format!("zstd: {e}")))?;
    if read > max_len as u64 {
        return Err(too_big());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compresses_only_when_it_shrinks() {
        let key = Key32::from_bytes([3; 32]);
        let text = b"abcabcabc".repeat(1000);
        let sealed = seal(&key, Kind::Data, &[0; 32], &text, 3);
        assert!(sealed.len() < 200);
        assert_eq!(open(&key, Kind::Data, &[0; 32], &sealed, 1 << 20).unwrap(), text);
        let random: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let sealed = seal(&key, Kind::Data, &[0; 32], &random, 3);
        assert!(sealed.len() <= random.len() + 1 + aead::OVERHEAD);
        assert_eq!(open(&key, Kind::Data, &[0; 32], &sealed, 1 << 20).unwrap(), random);
    }

    #[test]
    fn kind_id_and_size_are_enforced() {
        let key = Key32::from_bytes([3; 32]);
        let sealed = seal(&key, Kind::Tree, &[1; 32], &[0u8; 10_000], 3);
        assert_eq!(open(&key, Kind::Data, &[1; 32], &sealed, 1 << 20), Err(OpenError::Decrypt));
        assert_eq!(open(&key, Kind::Tree, &[2; 32], &sealed, 1 << 20), Err(OpenError::Decrypt));
        assert!(matches!(open(&key, Kind::Tree, &[1; 32], &sealed, 100), Err(OpenError::Malformed(_))));
    }

    #[test]
    fn streamed_frames_open_and_size_bombs_are_refused() {
        let key = Key32::from_bytes([4; 32]);
        let body = vec![7u8; 100_000];
        // A frame without a content size (streaming encoder) takes the capped path.
        let mut plain = vec![ZSTD];
        let mut enc = zstd::stream::write::Encoder::new(&mut plain, 3).unwrap();
        std::io::Write::write_all(&mut enc, &body).unwrap();
        enc.finish().unwrap();
        let sealed = aead::seal(&key, &aad(Kind::Data, &[0; 32]), &plain);
        assert_eq!(open(&key, Kind::Data, &[0; 32], &sealed, 100_000).unwrap(), body);
        assert!(matches!(open(&key, Kind::Data, &[0; 32], &sealed, 99_999), Err(OpenError::Malformed(_))));
        // A frame that declares more than allowed is refused before allocating.
        let sealed = seal(&key, Kind::Data, &[0; 32], &vec![0u8; 10 << 20], 3);
        assert!(matches!(open(&key, Kind::Data, &[0; 32], &sealed, 1 << 20), Err(OpenError::Malformed(_))));
    }
}
