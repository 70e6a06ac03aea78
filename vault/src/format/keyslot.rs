//! `keys/<slot-id>`: the master key sealed under a key-encryption key derived from one
//! secret (recovery key, device key or passphrase). Plaintext MessagePack map (the KDF
//! parameters must be readable before unlocking); only `sealed` is secret.

use serde::{Deserialize, Serialize};
use zerok_core::{Kdf, Key32, MasterKey, SlotId, aead, random_bytes};

use super::{Kind, aad};
use crate::{Error, Result};

/// Largest key slot accepted.
pub const MAX_SLOT_BYTES: usize = 16 << 10;

/// What kind of secret opens a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SlotKind {
    /// The recovery key shown at `init`.
    Recovery,
    /// A random key stored on one device.
    Device,
    /// A passphrase (Argon2id).
    Passphrase,
}

impl std::fmt::Display for SlotKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SlotKind::Recovery => "recovery",
            SlotKind::Device => "device",
            SlotKind::Passphrase => "passphrase",
        })
    }
}

/// One key slot.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeySlot {
    /// Slot format version (1).
    pub version: u32,
    /// What opens it.
    pub kind: SlotKind,
    /// KDF and its parameters.
    pub kdf: Kdf,
    /// Random KDF salt.
    #[serde(with = "serde_bytes")]
    pub salt: [u8; 16],
    /// Who it is for (device name), shown by `key list`.
    pub label: String,
    /// Creation time, Unix seconds.
    pub created: i64,
    /// `seal(KEK, aad(KeySlot, slot id), master key)`.
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

impl KeySlot {
    /// Seals `master` under `secret` for slot `id`.
    ///
    /// # Errors
    /// [`Error::Core`] for invalid KDF parameters.
    pub fn seal(id: &SlotId, kind: SlotKind, kdf: Kdf, secret: &[u8], master: &MasterKey, label: &str) -> Result<Self> {
        let salt = random_bytes();
        let kek = kdf.derive_kek(secret, &salt)?;
        let sealed = aead::seal(&kek, &aad(Kind::KeySlot, &id.0), master.key().expose());
        Ok(Self { version: 1, kind, kdf, salt, label: label.to_string(), created: crate::now_secs(), sealed })
    }

    /// Unseals the master key.
    ///
    /// # Errors
    /// [`Error::WrongKey`] when `secret` does not open this slot.
    pub fn open(&self, id: &SlotId, secret: &[u8]) -> Result<MasterKey> {
        let kek = self.kdf.derive_kek(secret, &self.salt)?;
        let mut plain = aead::open(&kek, &aad(Kind::KeySlot, &id.0), &self.sealed).map_err(|_| Error::WrongKey)?;
        let bytes: [u8; 32] =
            plain.as_slice().try_into().map_err(|_| Error::corrupt(super::names::key(id), "bad key length"))?;
        zeroize::Zeroize::zeroize(&mut plain);
        Ok(MasterKey::from_key(Key32::from_bytes(bytes)))
    }

    /// Encodes as a MessagePack map.
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("slot encodes")
    }

    /// Decodes, refusing oversized input and unknown versions.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Unsupported`].
    pub fn decode(id: &SlotId, bytes: &[u8]) -> Result<Self> {
        let name = super::names::key(id);
        if bytes.len() > MAX_SLOT_BYTES {
            return Err(Error::corrupt(name, "too large"));
        }
        let slot: Self = rmp_serde::from_slice(bytes).map_err(|e| Error::corrupt(&name, e.to_string()))?;
        if slot.version != 1 {
            return Err(Error::Unsupported { version: slot.version, supported: 1 });
        }
        Ok(slot)
    }
}
