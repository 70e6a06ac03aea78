//! Fixed keys and helpers shared by the fuzz targets and the seed generator
//! (`examples/seeds.rs`): seeds are sealed under these keys, so the targets' "raw" layer
//! sees objects that really open.

use std::sync::LazyLock;

use serde::{Serialize, de::DeserializeOwned};
use zerok_core::{Key32, MasterKey, VaultKeys, aead, sync::SigningKey};

/// The id every sealed seed is bound to (its associated data).
pub const ID: [u8; 32] = [0x1d; 32];
/// The secret that opens the seed key slots.
pub const SLOT_SECRET: [u8; 32] = [0x5e; 32];
/// Ed25519 secret of the seed roster's second device (the recipient of its rotation).
pub const DEVICE_SECRET: [u8; 32] = [0xde; 32];

/// The vault keys of the fixed master key `00 01 … 1f`.
pub fn keys() -> &'static VaultKeys {
    static KEYS: LazyLock<VaultKeys> = LazyLock::new(|| master().derive());
    &KEYS
}

/// The fixed master key.
pub fn master() -> MasterKey {
    MasterKey::from_key(Key32::from_bytes(std::array::from_fn(|i| i as u8)))
}

/// The device key of the seed roster's second device.
pub fn device() -> SigningKey {
    SigningKey::from_bytes(&DEVICE_SECRET)
}

/// Seals `plain` as it stands (for envelopes: flag byte ‖ body) under `key` and `aad`, with
/// a fixed nonce so a crashing input reproduces byte for byte.
pub fn seal_raw(key: &Key32, aad: &[u8], plain: &[u8]) -> Vec<u8> {
    aead::seal_with_nonce(key, [0; aead::NONCE_BYTES], aad, plain)
}

/// Asserts that a decoded value re-encodes to bytes that decode to the same encoding
/// (decode ∘ encode is the identity on everything a decoder accepts).
///
/// # Panics
/// When the re-encoded value does not decode, or encodes differently the second time.
pub fn assert_stable<T: Serialize + DeserializeOwned>(value: &T) {
    let once = rmp_serde::to_vec_named(value).expect("decoded values encode");
    let back: T = rmp_serde::from_slice(&once).expect("re-encoded value decodes");
    assert_eq!(rmp_serde::to_vec_named(&back).expect("encodes"), once, "re-encoding is not stable");
}
