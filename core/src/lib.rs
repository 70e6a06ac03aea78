//! zerok-core: the pure parts of zerok — identifiers, key material, the recovery-key
//! encoding and authenticated encryption.
//!
//! This crate does no I/O: no files, no network, no async runtime. Everything here is
//! deterministic given its inputs (plus the OS random generator for fresh keys and
//! nonces), so it can be tested with golden vectors and reused by every other crate.
//!
//! # Layout
//! - [`ids`]: 32-byte identifier newtypes (`ChunkId`, `PackId`, `SnapshotId`, …).
//! - [`secret`]: key types that zeroize on drop and never print.
//! - [`aead`]: XChaCha20-Poly1305 sealing with associated data.
//! - [`keys`]: the vault master key, its HKDF subkeys, and key-slot KEK derivation.
//! - [`recovery`]: the human-typed recovery key with its checksum.
//! - [`sync`]: the sync protocol — group keys, membership proof, messages, framing.
//!
//! ```
//! use zerok_core::{MasterKey, aead};
//! let master = MasterKey::generate();
//! let keys = master.derive();
//! let sealed = aead::seal(keys.metadata(), b"aad", b"hello");
//! assert_eq!(aead::open(keys.metadata(), b"aad", &sealed).unwrap(), b"hello");
//! ```

pub mod aead;
mod error;
pub mod ids;
pub mod keys;
pub mod recovery;
pub mod secret;
pub mod sync;

pub use error::{Error, Result};
pub use ids::{ChunkId, IndexId, PackId, SlotId, SnapshotId, SyncGroupId, VaultId};
pub use keys::{Kdf, MasterKey, VaultKeys};
pub use recovery::RecoveryKey;
pub use secret::{Key32, random_bytes};
