//! Sealing a secret to one device (for group-secret rotation): an ephemeral X25519 key
//! agreement with the device's Ed25519 identity converted to its Montgomery form.
//!
//! ```text
//! e = 32 random bytes;  E = X25519(e, 9);  R = Montgomery(device public key)
//! key = HKDF-SHA256(salt = "zerok-seal-to-device-v1", IKM = X25519(e, R), info = E ‖ R)
//! sealed = E (32) ‖ XChaCha20-Poly1305(key, aad = device public key, plaintext)
//! ```
//! The device opens it with the scalar of its Ed25519 secret key (RFC 8032 expansion).

use curve25519_dalek::montgomery::MontgomeryPoint;
use ed25519_dalek::{SigningKey, VerifyingKey};
use hkdf::Hkdf;
use sha2::Sha256;

use super::DeviceId;
use crate::{Error, Key32, Result, aead, secret::random_bytes};

const SALT: &[u8] = b"zerok-seal-to-device-v1";

fn derive(shared: &MontgomeryPoint, eph: &[u8; 32], recipient: &[u8; 32]) -> Key32 {
    let mut okm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(SALT), shared.as_bytes())
        .expand(&[&eph[..], recipient].concat(), &mut okm)
        .expect("valid length");
    let key = Key32::from_bytes(okm);
    zeroize::Zeroize::zeroize(&mut okm);
    key
}

/// Seals `plaintext` so only `device` can open it.
///
/// # Errors
/// [`Error::Id`] when the device id is not a valid Ed25519 public key.
pub fn seal_to(device: &DeviceId, plaintext: &[u8]) -> Result<Vec<u8>> {
    let public = VerifyingKey::from_bytes(&device.0).map_err(|_| Error::Id(device.to_string()))?;
    let recipient = public.to_montgomery();
    let mut e = random_bytes::<32>();
    let eph = MontgomeryPoint::mul_base_clamped(e);
    let shared = recipient.mul_clamped(e);
    zeroize::Zeroize::zeroize(&mut e);
    let key = derive(&shared, eph.as_bytes(), recipient.as_bytes());
    let mut out = eph.to_bytes().to_vec();
    out.extend_from_slice(&aead::seal(&key, &device.0, plaintext));
    Ok(out)
}

/// Opens what [`seal_to`] sealed for the device whose Ed25519 secret key is `secret`.
///
/// # Errors
/// [`Error::Decrypt`] when it was sealed for another device or altered.
pub fn open_as(secret: &[u8; 32], sealed: &[u8]) -> Result<Vec<u8>> {
    if sealed.len() < 32 + aead::OVERHEAD {
        return Err(Error::Decrypt);
    }
    let signing = SigningKey::from_bytes(secret);
    let me = signing.verifying_key();
    let eph = MontgomeryPoint(sealed[..32].try_into().expect("32 bytes"));
    let mut scalar = signing.to_scalar_bytes();
    let shared = eph.mul_clamped(scalar);
    zeroize::Zeroize::zeroize(&mut scalar);
    let key = derive(&shared, eph.as_bytes(), me.to_montgomery().as_bytes());
    aead::open(&key, me.as_bytes(), &sealed[32..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_recipient_opens() {
        let alice = random_bytes::<32>();
        let bob = random_bytes::<32>();
        let alice_id = DeviceId(SigningKey::from_bytes(&alice).verifying_key().to_bytes());
        let sealed = seal_to(&alice_id, b"new group secret").unwrap();
        assert_eq!(open_as(&alice, &sealed).unwrap(), b"new group secret");
        assert!(open_as(&bob, &sealed).is_err());
        let mut bad = sealed.clone();
        bad[40] ^= 1;
        assert!(open_as(&alice, &bad).is_err());
    }
}
