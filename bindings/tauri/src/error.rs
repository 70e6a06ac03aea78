//! The plugin's one error: what a command rejects with. The webview gets it as
//! `{ kind, message, retryable }`, `kind` one of zerok's named kinds (`WrongKey`,
//! `Revoked`, `Unreachable`, `NotFound`, `Corrupt`, `Quota`, `InvalidInput`, `Invite`,
//! `Closed`, `Other`), so a script branches on `kind` and retries when `retryable`.

use serde::{Serialize, Serializer, ser::SerializeStruct};
use zerok_bridge::{BridgeError, ErrorKind};

/// A failed command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// zerok refused or failed.
    #[error(transparent)]
    Zerok(#[from] BridgeError),
}

impl Error {
    /// An argument or setting that cannot be used.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        BridgeError::new(ErrorKind::InvalidInput, message).into()
    }

    /// The kind a script branches on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Zerok(e) => e.kind,
        }
    }

    /// Whether the same command may succeed later.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Zerok(e) => e.retryable,
        }
    }
}

impl Serialize for Error {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let message = match self {
            Error::Zerok(e) => &e.message,
        };
        let mut s = serializer.serialize_struct("Error", 3)?;
        s.serialize_field("kind", self.kind().as_str())?;
        s.serialize_field("message", message)?;
        s.serialize_field("retryable", &self.retryable())?;
        s.end()
    }
}
