//! The relay's one error type: what can go wrong starting up or serving a request, whether
//! the same request may succeed later, and the one mapping to the wire's ERROR codes.

use zerok_core::sync::{ErrorCode, Message};

/// Relay failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The local database failed.
    #[error("relay store: {0}")]
    Db(String),
    /// A stored record does not decode.
    #[error("relay store: damaged record: {0}")]
    Damaged(String),
    /// Vault mode: the object store failed.
    #[error("object store: {0}")]
    ObjectStore(String),
    /// The group's quota would be exceeded.
    #[error("group storage quota of {0} bytes reached")]
    Quota(u64),
    /// The relay's storage cap, or the free space of its disk, is reached.
    #[error("relay storage is full; try again later")]
    Full,
    /// The device is revoked in this group.
    #[error("this device was revoked from the group")]
    Revoked,
    /// Only the sender may force-delete.
    #[error("only the sender may force-delete a message")]
    NotOwner,
    /// The group rotated to a new secret: no more pushes.
    #[error("the group has moved to a new secret; follow the roster")]
    Rotated,
    /// The device is not a member of the group.
    #[error("this device is not a member of the group")]
    NotMember,
    /// A roster entry does not extend the relay's head.
    #[error("the roster changed meanwhile; fetch it and try again")]
    Conflict,
    /// A roster entry that does not verify or is not allowed.
    #[error("roster entry refused: {0}")]
    Roster(String),
    /// The relay knows no roster for the group: send the log from its genesis.
    #[error("this relay knows no roster for the group: send it from its start")]
    UnknownRoster,
    /// A rate limit was reached.
    #[error("rate limit reached; retry later")]
    RateLimited,
    /// A payload over the relay's limit.
    #[error("payload over {0} bytes")]
    TooLarge(u64),
    /// A request that is malformed or not allowed here.
    #[error("{0}")]
    Invalid(String),
    /// No such invite.
    #[error("no such invite (expired, used or cancelled)")]
    InviteNotFound,
    /// The relay is shutting down.
    #[error("relay shutting down")]
    ShuttingDown,
    /// Start-up: the data folder, key file or a socket.
    #[error("{0}")]
    Io(String),
    /// Start-up: settings that do not fit together.
    #[error("{0}")]
    Config(String),
    /// The endpoint.
    #[error(transparent)]
    Wire(#[from] zerok_wire::WireError),
}

macro_rules! db_err {
    ($($t:ty),*) => {$(impl From<$t> for Error {
        fn from(e: $t) -> Self { Error::Db(e.to_string()) }
    })*};
}
db_err!(redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

/// The relay's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether the same request may succeed later, unchanged (storage trouble, a full
    /// relay or group, a rate limit, a restart).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Db(_)
                | Error::ObjectStore(_)
                | Error::Full
                | Error::Quota(_)
                | Error::RateLimited
                | Error::ShuttingDown
        )
    }

    /// The wire's code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Db(_) | Error::Damaged(_) | Error::ObjectStore(_) | Error::Io(_) => ErrorCode::StorageUnavailable,
            Error::Quota(_) => ErrorCode::GroupQuotaExceeded,
            Error::Full | Error::Config(_) | Error::Wire(_) => ErrorCode::RelayOverloaded,
            Error::Revoked => ErrorCode::DeviceRevoked,
            Error::NotOwner => ErrorCode::NotBlobOwner,
            Error::Rotated => ErrorCode::GroupRotated,
            Error::NotMember => ErrorCode::NotMember,
            Error::Conflict => ErrorCode::RosterConflict,
            Error::Roster(_) => ErrorCode::RosterRefused,
            Error::UnknownRoster => ErrorCode::UnknownGroup,
            Error::RateLimited => ErrorCode::RateLimited,
            Error::TooLarge(_) => ErrorCode::BlobTooLarge,
            Error::Invalid(_) => ErrorCode::InvalidMessage,
            Error::InviteNotFound => ErrorCode::InviteNotFound,
            Error::ShuttingDown => ErrorCode::RelayShuttingDown,
        }
    }

    /// The ERROR message a client is sent. Storage failures say only which kind failed:
    /// their details (which may name objects) go to the relay's log.
    pub fn to_message(&self) -> Message {
        let text = match self {
            Error::Db(_) | Error::Damaged(_) | Error::Io(_) => "relay database unavailable; try again later".into(),
            Error::ObjectStore(_) => "relay object store unavailable; try again later".into(),
            other => other.to_string(),
        };
        self.code().message(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_trouble_is_retryable_and_says_so_without_details() {
        let outage = Error::ObjectStore("groups/ab12…/m/7: connection reset".into());
        assert!(outage.is_retryable());
        let Message::Error(e) = outage.to_message() else { panic!() };
        assert_eq!(e.code, ErrorCode::StorageUnavailable as u32);
        assert!(!e.message.contains("groups/"), "{}", e.message);
        assert!(!Error::NotOwner.is_retryable());
        assert_eq!(Error::Full.code(), ErrorCode::RelayOverloaded);
    }
}
