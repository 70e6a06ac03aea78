//! The library's one error type: what an app branches on (a wrong key, a revoked device, a
//! relay or store out of reach, something missing, damaged or over quota), and whether
//! trying again later may help ([`Error::is_retryable`]).

use std::path::{Path, PathBuf};

use zerok_core::sync::{ErrorCode, Message};

/// Everything `zerok-client` can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The recovery key, passphrase or device key given opens nothing here.
    #[error("wrong key: {0}")]
    WrongKey(String),
    /// This device was removed from the sync group: the signed roster says so (or a
    /// rotation left it out), or every relay of the group refuses it as revoked. One relay
    /// saying so is only that relay's [`Error::Refused`] (a relay cannot revoke anyone).
    #[error("this device was revoked from the sync group")]
    Revoked,
    /// No relay (or store) could be reached.
    #[error("no relay reachable: {0}")]
    Unreachable(String),
    /// A connection that failed or misbehaved mid-request (dropped, timed out, answered
    /// out of protocol).
    #[error("connection: {0}")]
    Connection(String),
    /// What was asked for is not there: no vault at the URL, no such snapshot, no sync
    /// group on this device.
    #[error("not found: {0}")]
    NotFound(String),
    /// Stored or relayed data that fails verification.
    #[error("{0}")]
    Corrupt(String),
    /// A relay refused for size, quota or rate ([`ErrorCode::BlobTooLarge`],
    /// [`ErrorCode::GroupQuotaExceeded`], [`ErrorCode::RateLimited`]).
    #[error("relay refused: {message} (code {code})")]
    Quota {
        /// [`ErrorCode`] value.
        code: u32,
        /// Its text.
        message: String,
    },
    /// A relay refused for another reason.
    #[error("relay refused: {message} (code {code})")]
    Refused {
        /// [`ErrorCode`] value.
        code: u32,
        /// Its text.
        message: String,
    },
    /// An invite or code that is malformed, expired or used.
    #[error("invite: {0}")]
    Invite(String),
    /// A roster entry or log that does not verify (refused, never applied).
    #[error("roster: {0}")]
    Roster(String),
    /// An attachment that cannot be read, stored, fetched or opened.
    #[error("{0}")]
    Content(String),
    /// Input the caller gave that cannot be used: a URL, a relay address, a setting.
    #[error("{0}")]
    Invalid(String),
    /// This device's own state (what a [`crate::Home`] holds) is missing what the call
    /// needs, or conflicts with it.
    #[error("{0}")]
    State(String),
    /// A callback of the app's failed (a quiesce hook, or a replay's apply): what it said.
    #[error("{0}")]
    App(String),
    /// A file of this device's state that cannot be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A vault failure of another kind (the vault's error names the object).
    #[error(transparent)]
    Vault(zerok_vault::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A relay's answer that is not the one asked for: its ERROR, sorted by what it means.
    pub(crate) fn unexpected(msg: &Message) -> Self {
        match msg {
            Message::Error(e) => match ErrorCode::from_u32(e.code) {
                Some(ErrorCode::BlobTooLarge | ErrorCode::GroupQuotaExceeded | ErrorCode::RateLimited) => {
                    Error::Quota { code: e.code, message: e.message.clone() }
                }
                _ => Error::Refused { code: e.code, message: e.message.clone() },
            },
            other => Error::Connection(format!("unexpected reply {:?}", std::mem::discriminant(other))),
        }
    }

    /// The relay's error code, when a relay refused.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Refused { code, .. } | Error::Quota { code, .. } => ErrorCode::from_u32(*code),
            _ => None,
        }
    }

    /// Whether a relay answered with a refusal (as opposed to not answering).
    pub fn is_refusal(&self) -> bool {
        matches!(self, Error::Refused { .. } | Error::Quota { .. } | Error::Revoked)
    }

    /// Whether the same call may succeed later without anything changed by the user: a
    /// relay or store out of reach, a dropped connection, a relay busy, shutting down or
    /// rate-limiting, a vault locked or its store failing. Not for a wrong key, a revoked
    /// device, damage, a full quota or bad input.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Unreachable(_) | Error::Connection(_) => true,
            Error::Quota { code, .. } | Error::Refused { code, .. } => matches!(
                ErrorCode::from_u32(*code),
                Some(
                    ErrorCode::RateLimited
                        | ErrorCode::RelayOverloaded
                        | ErrorCode::RelayShuttingDown
                        | ErrorCode::StorageUnavailable
                )
            ),
            Error::Vault(zerok_vault::Error::Store { retryable, .. }) => *retryable,
            Error::Vault(zerok_vault::Error::Locked(_)) => true,
            _ => false,
        }
    }

    /// A state file at `path` that could not be read or written.
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_path_buf(), source }
    }
}

impl From<zerok_vault::Error> for Error {
    fn from(e: zerok_vault::Error) -> Self {
        use zerok_vault::Error as V;
        match e {
            V::WrongKey => Error::WrongKey(e.to_string()),
            V::NotFound { .. } | V::NoVault(_) | V::Snapshot(..) => Error::NotFound(e.to_string()),
            V::Corrupt { .. } => Error::Corrupt(e.to_string()),
            V::InvalidUrl { .. } | V::Invalid(_) => Error::Invalid(e.to_string()),
            e => Error::Vault(e),
        }
    }
}

impl From<zerok_wire::WireError> for Error {
    fn from(e: zerok_wire::WireError) -> Self {
        Error::Connection(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use zerok_core::sync::message::ErrorMsg;

    use super::*;

    fn refusal(code: ErrorCode) -> Error {
        Error::unexpected(&Message::Error(ErrorMsg { code: code as u32, message: "no".into() }))
    }

    #[test]
    fn relay_refusals_are_sorted_by_what_an_app_does_next() {
        // One relay's word is not a revocation: only the roster, or every relay, says so.
        assert!(matches!(refusal(ErrorCode::DeviceRevoked), Error::Refused { .. }));
        assert!(matches!(refusal(ErrorCode::GroupQuotaExceeded), Error::Quota { .. }));
        assert!(matches!(refusal(ErrorCode::BlobTooLarge), Error::Quota { .. }));
        assert!(matches!(refusal(ErrorCode::NotBlobOwner), Error::Refused { .. }));
        assert!(refusal(ErrorCode::RateLimited).is_retryable());
        assert!(refusal(ErrorCode::RelayShuttingDown).is_retryable());
        assert!(!refusal(ErrorCode::GroupQuotaExceeded).is_retryable());
        assert!(!refusal(ErrorCode::DeviceRevoked).is_retryable());
        assert!(refusal(ErrorCode::DeviceRevoked).is_refusal());
        assert_eq!(refusal(ErrorCode::BlobTooLarge).code(), Some(ErrorCode::BlobTooLarge));
    }

    #[test]
    fn vault_errors_keep_their_kind() {
        assert!(matches!(Error::from(zerok_vault::Error::WrongKey), Error::WrongKey(_)));
        assert!(matches!(Error::from(zerok_vault::Error::NoVault("x".into())), Error::NotFound(_)));
        let store = |retryable| zerok_vault::Error::Store { object: "config".into(), message: "no".into(), retryable };
        assert!(Error::from(store(true)).is_retryable());
        assert!(!Error::from(store(false)).is_retryable(), "access denied stays denied");
        assert!(!Error::from(zerok_vault::Error::WrongKey).is_retryable());
    }
}
