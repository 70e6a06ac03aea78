//! Group secret → sync key, group auth key, group id; the HELLO membership proof; payload
//! encryption bound to group and blob.

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Error, Key32, Result, aead, secret::random_bytes};

const GROUP_SALT: &[u8] = b"zerok-group-v1";
const GROUP_ID_LABEL: &[u8] = b"zerok-group-id-v1";
const HELLO_LABEL: &[u8] = b"zerok-hello-v1";
const PAYLOAD_LABEL: &[u8] = b"zerok-sync-v2";
const SENDER_LABEL: &[u8] = b"zerok-message-v2";
/// Bytes a signed payload adds to the data: the sender's signature and the AEAD's.
pub const PAYLOAD_OVERHEAD: usize = 64 + aead::OVERHEAD;

/// A group's id: SHA-256 of its auth public key (see the module docs).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupId(#[serde(with = "serde_bytes")] pub [u8; 32]);

/// A device's id: its iroh endpoint id (an Ed25519 public key), persistent per device.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeviceId(#[serde(with = "serde_bytes")] pub [u8; 32]);

/// A message's id: 16 random bytes chosen by the sender.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlobId(#[serde(with = "serde_bytes")] pub [u8; 16]);

macro_rules! hex_debug {
    ($($t:ident),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($t), "({})"), crate::sync::Redacted(self))
            }
        }
        impl AsRef<[u8]> for $t {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }
        impl $t {
            /// Parses the hex form.
            ///
            /// # Errors
            /// [`Error::Id`] for bad length or digits.
            pub fn from_hex(text: &str) -> Result<Self> {
                let mut out = [0u8; std::mem::size_of::<Self>()];
                hex::decode_to_slice(text, &mut out).map_err(|_| Error::Id(text.to_string()))?;
                Ok(Self(out))
            }
        }
    )*};
}
pub(crate) use hex_debug;
hex_debug!(GroupId, DeviceId, BlobId);

impl BlobId {
    /// A fresh random blob id.
    pub fn random() -> Self {
        Self(random_bytes())
    }
}

/// The secret shared by a sync group's devices.
#[derive(Clone, Debug)]
pub struct GroupSecret(Key32);

impl GroupSecret {
    /// A fresh secret, for a new group or a rotation.
    pub fn generate() -> Self {
        Self(Key32::generate())
    }

    /// Wraps stored secret bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Key32::from_bytes(bytes))
    }

    /// The raw secret, for sealing it into storage or an invite.
    pub fn expose(&self) -> &[u8; 32] {
        self.0.expose()
    }

    /// Derives the group's keys and id.
    pub fn derive(&self) -> GroupKeys {
        let hk = Hkdf::<Sha256>::new(Some(GROUP_SALT), self.0.expose());
        let mut sync = [0u8; 32];
        let mut auth = [0u8; 32];
        hk.expand(b"sync", &mut sync).expect("valid length");
        hk.expand(b"auth", &mut auth).expect("valid length");
        let signing = SigningKey::from_bytes(&auth);
        zeroize::Zeroize::zeroize(&mut auth);
        let public = signing.verifying_key().to_bytes();
        let id = GroupId(Sha256::new().chain_update(GROUP_ID_LABEL).chain_update(public).finalize().into());
        let keys = GroupKeys { sync: Key32::from_bytes(sync), signing, id };
        zeroize::Zeroize::zeroize(&mut sync);
        keys
    }
}

/// A group's derived keys.
#[derive(Clone)]
pub struct GroupKeys {
    sync: Key32,
    signing: SigningKey,
    id: GroupId,
}

impl std::fmt::Debug for GroupKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GroupKeys({:?}, [REDACTED])", self.id)
    }
}

fn hello_message(group: &GroupId, client: &DeviceId, relay: &[u8; 32]) -> Vec<u8> {
    [HELLO_LABEL, &group.0, &client.0, relay].concat()
}

fn payload_aad(group: &GroupId, blob: &BlobId, sender: &DeviceId) -> Vec<u8> {
    [PAYLOAD_LABEL, &group.0, &blob.0, &sender.0].concat()
}

fn sender_message(group: &GroupId, blob: &BlobId, sender: &DeviceId, data: &[u8]) -> Vec<u8> {
    [SENDER_LABEL, &group.0, &blob.0, &sender.0, data].concat()
}

impl GroupKeys {
    /// The group id.
    pub fn id(&self) -> GroupId {
        self.id
    }

    /// The group auth public key, sent in HELLO.
    pub fn auth_public(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// Signs the HELLO proof for one connection (client and relay endpoint ids).
    pub fn hello_proof(&self, client: &DeviceId, relay: &[u8; 32]) -> [u8; 64] {
        self.signing.sign(&hello_message(&self.id, client, relay)).to_bytes()
    }

    /// Encrypts a message payload from `sender` (its device key), bound to this group,
    /// `blob` and the sender: `sealed = AEAD(sync key, aad = "zerok-sync-v2" ‖ group ‖ blob ‖
    /// sender id, sig ‖ data)` with `sig = Ed25519(sender, "zerok-message-v2" ‖ group ‖ blob ‖
    /// sender id ‖ data)`. Other members know the sync key, so the signature is what stops
    /// them (and the relay) from re-attributing a message.
    pub fn seal(&self, blob: &BlobId, sender: &SigningKey, data: &[u8]) -> Vec<u8> {
        let from = DeviceId(sender.verifying_key().to_bytes());
        let sig = sender.sign(&sender_message(&self.id, blob, &from, data)).to_bytes();
        aead::seal_parts(&self.sync, &payload_aad(&self.id, blob, &from), &[&sig, data])
    }

    /// Decrypts a payload the relay says `sender` pushed to this group as `blob`.
    ///
    /// # Errors
    /// [`Error::Decrypt`] when the payload was altered, moved to another blob id, group or
    /// sender, or sealed under another group secret (for example before a rotation);
    /// [`Error::Signature`] when `sender` did not sign it.
    pub fn open(&self, blob: &BlobId, sender: &DeviceId, sealed: &[u8]) -> Result<Vec<u8>> {
        let key = VerifyingKey::from_bytes(&sender.0).map_err(|_| Error::Signature)?;
        self.open_from(blob, sender, &key, sealed)
    }

    /// [`GroupKeys::open`] with the sender's key already decoded (a reader of many
    /// messages from few devices decodes each key once).
    ///
    /// # Errors
    /// As [`GroupKeys::open`]; `key` must be `sender`'s.
    pub fn open_from(&self, blob: &BlobId, sender: &DeviceId, key: &VerifyingKey, sealed: &[u8]) -> Result<Vec<u8>> {
        let mut plain = aead::open(&self.sync, &payload_aad(&self.id, blob, sender), sealed)?;
        if plain.len() < 64 || key.as_bytes() != &sender.0 {
            return Err(Error::Signature);
        }
        let sig = ed25519_dalek::Signature::from_bytes(plain[..64].try_into().expect("64 bytes"));
        key.verify_strict(&sender_message(&self.id, blob, sender, &plain[64..]), &sig).map_err(|_| Error::Signature)?;
        plain.drain(..64);
        Ok(plain)
    }
}

/// Checks a HELLO membership proof, as the relay does.
///
/// # Errors
/// [`Error::Decrypt`] when the public key does not hash to `group` or the signature does not
/// verify for these endpoint ids.
pub fn verify_hello(
    group: &GroupId,
    auth_public: &[u8; 32],
    proof: &[u8; 64],
    client: &DeviceId,
    relay: &[u8; 32],
) -> Result<()> {
    let expected: [u8; 32] = Sha256::new().chain_update(GROUP_ID_LABEL).chain_update(auth_public).finalize().into();
    if expected != group.0 {
        return Err(Error::Decrypt);
    }
    let key = VerifyingKey::from_bytes(auth_public).map_err(|_| Error::Decrypt)?;
    let sig = ed25519_dalek::Signature::from_bytes(proof);
    key.verify(&hello_message(group, client, relay), &sig).map_err(|_| Error::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> GroupKeys {
        GroupSecret::from_bytes(std::array::from_fn(|i| i as u8)).derive()
    }

    #[test]
    fn golden_group_id() {
        assert_eq!(keys().id().to_string(), GOLDEN_GROUP_ID);
    }

    // Cross-checked with an independent HKDF (Python hmac) and Ed25519 (libsodium via PyNaCl).
    const GOLDEN_GROUP_ID: &str = "638f0e9f3d0dd20869bf98276364383a1357e3836a495e2c3121a98aea7956ac";

    #[test]
    fn proof_is_bound_to_group_and_both_endpoints() {
        let k = keys();
        let (client, relay) = (DeviceId([1; 32]), [2u8; 32]);
        let proof = k.hello_proof(&client, &relay);
        let public = k.auth_public();
        assert!(verify_hello(&k.id(), &public, &proof, &client, &relay).is_ok());
        assert!(
            verify_hello(&k.id(), &public, &proof, &DeviceId([3; 32]), &relay).is_err(),
            "replayed by another client"
        );
        assert!(verify_hello(&k.id(), &public, &proof, &client, &[4; 32]).is_err(), "replayed at another relay");
        let other = GroupSecret::generate().derive();
        assert!(
            verify_hello(&k.id(), &other.auth_public(), &other.hello_proof(&client, &relay), &client, &relay).is_err()
        );
        assert!(verify_hello(&GroupId([9; 32]), &public, &proof, &client, &relay).is_err(), "guessed group id");
    }

    #[test]
    fn payloads_are_bound_to_group_blob_and_sender() {
        let k = keys();
        let blob = BlobId([5; 16]);
        let (alice, mallory) = (SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 32]));
        let (a, m) = (DeviceId(alice.verifying_key().to_bytes()), DeviceId(mallory.verifying_key().to_bytes()));
        let sealed = k.seal(&blob, &alice, b"state");
        assert_eq!(sealed.len(), 5 + PAYLOAD_OVERHEAD);
        assert_eq!(k.open(&blob, &a, &sealed).unwrap(), b"state");
        assert!(k.open(&BlobId([6; 16]), &a, &sealed).is_err());
        assert!(k.open(&blob, &m, &sealed).is_err(), "a relay naming another sender");
        assert!(GroupSecret::generate().derive().open(&blob, &a, &sealed).is_err());
        // A member who knows the sync key re-seals Alice's words under Mallory's id: no
        // valid signature, so it is refused as well.
        let plain = aead::open(&k.sync, &payload_aad(&k.id, &blob, &a), &sealed).unwrap();
        let forged = aead::seal(&k.sync, &payload_aad(&k.id, &blob, &m), &plain);
        assert!(matches!(k.open(&blob, &m, &forged), Err(Error::Signature)));
    }
}
