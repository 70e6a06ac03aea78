//! The one error type of zerok-core.

/// What can go wrong in pure key and format handling.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Authenticated decryption failed: wrong key, or the bytes were altered.
    #[error("authentication failed (wrong key or corrupted data)")]
    Decrypt,
    /// A recovery key that does not parse or whose checksum does not match.
    #[error("invalid recovery key: {0}")]
    RecoveryKey(&'static str),
    /// A hex identifier of the wrong length or with bad digits.
    #[error("invalid id {0:?}")]
    Id(String),
    /// A signature that does not verify (a message re-attributed to another sender).
    #[error("signature does not verify")]
    Signature,
    /// Key-derivation parameters that are out of range.
    #[error("invalid key-derivation parameters: {0}")]
    Kdf(String),
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
