//! The sync protocol's pure parts: group keys and the membership proof, payload
//! encryption, wire messages and framing, reconnect backoff, invites, and a redacting
//! wrapper for logging identifiers.
//!
//! # Keys and membership
//!
//! ```text
//! group secret S (32 random bytes, shared by the group's devices, never sent to a relay)
//!   prk = HKDF-SHA256-extract(salt = "zerok-group-v1", S)
//!   sync key  = expand(prk, "sync")      XChaCha20-Poly1305 key of message payloads
//!   auth seed = expand(prk, "auth")      Ed25519 signing key of the group ("group auth key")
//!   group_id  = SHA-256("zerok-group-id-v1" ‖ group auth public key)
//! ```
//!
//! The relay never learns S, yet only members may use a group: HELLO carries the group's
//! auth public key and a signature over `"zerok-hello-v1" ‖ group_id ‖ client endpoint id ‖
//! relay endpoint id`. The relay checks the public key hashes to the group id and the
//! signature verifies for *this* connection's two endpoint ids (iroh authenticates both), so
//! a proof copied from another connection is useless. A non-member with a guessed or copied
//! group id cannot produce it, so it can neither read, push nor delete.
//!
//! # Revocation and rotation
//!
//! REVOKE_DEVICE makes the relay refuse that device's endpoint id in the group from then on
//! and tells the others (DEVICE_REVOKED). Because the revoked device still knows S, the
//! revoking device then *rotates*: it makes a new secret S′ (hence a new group id, cursor
//! space and keys) and hands S′ to each remaining device sealed to that device alone, so
//! nothing pushed under S′ can be read by the revoked device.

pub mod backoff;
pub mod frame;
pub mod group;
pub mod message;
pub mod redact;
pub mod roster;
pub mod seal;

pub use ed25519_dalek::SigningKey;
pub use group::{BlobId, DeviceId, GroupId, GroupKeys, GroupSecret};
pub use message::{ErrorCode, Message};
pub use redact::Redacted;
