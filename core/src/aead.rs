//! XChaCha20-Poly1305 with a random 24-byte nonce and associated data.
//!
//! A sealed message is `nonce (24) ‖ ciphertext ‖ tag (16)`: [`OVERHEAD`] bytes longer than
//! its plaintext. The associated data binds the message to its place (object kind and id),
//! so a valid ciphertext moved to another name fails to open.

use chacha20poly1305::{AeadInOut, KeyInit, XChaCha20Poly1305, XNonce};

use crate::{Error, Key32, Result, secret::random_bytes};

/// Bytes of nonce.
pub const NONCE_BYTES: usize = 24;
/// Bytes of authentication tag.
pub const TAG_BYTES: usize = 16;
/// Sealed length minus plaintext length.
pub const OVERHEAD: usize = NONCE_BYTES + TAG_BYTES;

/// Encrypts `plaintext` under `key` with a fresh random nonce.
pub fn seal(key: &Key32, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    seal_with_nonce(key, random_bytes(), aad, plaintext)
}

/// Encrypts with a caller-chosen nonce. Only for golden test vectors: reusing a nonce
/// under one key destroys confidentiality.
pub fn seal_with_nonce(key: &Key32, nonce: [u8; NONCE_BYTES], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    seal_parts_with_nonce(key, nonce, aad, &[plaintext])
}

/// Encrypts the concatenation of `parts` (saves the caller a copy to join them).
pub fn seal_parts(key: &Key32, aad: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    seal_parts_with_nonce(key, random_bytes(), aad, parts)
}

fn seal_parts_with_nonce(key: &Key32, nonce: [u8; NONCE_BYTES], aad: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(len + OVERHEAD);
    out.extend_from_slice(&nonce);
    for part in parts {
        out.extend_from_slice(part);
    }
    let tag = cipher
        .encrypt_inout_detached(&XNonce::from(nonce), aad, out[NONCE_BYTES..].as_mut().into())
        .expect("plaintext within XChaCha20 limits");
    out.extend_from_slice(&tag);
    out
}

/// Decrypts a sealed message.
///
/// # Errors
/// [`Error::Decrypt`] when the message is too short, the key is wrong, or any byte of the
/// message or of `aad` differs from what was sealed.
pub fn open(key: &Key32, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
    if sealed.len() < OVERHEAD {
        return Err(Error::Decrypt);
    }
    let (nonce, rest) = sealed.split_at(NONCE_BYTES);
    let (body, tag) = rest.split_at(rest.len() - TAG_BYTES);
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    let mut out = body.to_vec();
    let nonce = XNonce::try_from(nonce).map_err(|_| Error::Decrypt)?;
    let tag = chacha20poly1305::Tag::try_from(tag).map_err(|_| Error::Decrypt)?;
    cipher.decrypt_inout_detached(&nonce, aad, out.as_mut_slice().into(), &tag).map_err(|_| Error::Decrypt)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let key = Key32::from_bytes([1; 32]);
        let sealed = seal(&key, b"ctx", b"payload");
        assert_eq!(sealed.len(), 7 + OVERHEAD);
        assert_eq!(open(&key, b"ctx", &sealed).unwrap(), b"payload");
        assert!(open(&key, b"other", &sealed).is_err(), "aad is bound");
        assert!(open(&Key32::from_bytes([2; 32]), b"ctx", &sealed).is_err(), "key is checked");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(open(&key, b"ctx", &bad).is_err(), "flip at {i} detected");
        }
        assert!(open(&key, b"ctx", &sealed[..10]).is_err());
    }

    #[test]
    fn golden_vector() {
        // Cross-checked against the 0k-Sync digest's XChaCha20-Poly1305 vector
        // (enc_key, nonce 00..17, "hello", no AAD).
        let key = Key32::from_bytes(
            hex::decode("9e40233baa07337a4f04a8e5dcbbe1c1657600c3b325ef408615beb399234cb8")
                .unwrap()
                .try_into()
                .unwrap(),
        );
        let nonce: [u8; 24] = std::array::from_fn(|i| i as u8);
        let sealed = seal_with_nonce(&key, nonce, b"", b"hello");
        assert_eq!(hex::encode(&sealed[24..]), "2359b6237b972c92264502d8910a686b7efce7d84b");
    }
}
