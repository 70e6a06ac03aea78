//! Errors as the bindings show them: a kind from a short fixed list (a Python exception
//! class, a Node.js `code`), one line of text, and whether trying again later may help.

use zerok_client::Error;

/// What went wrong, in words an app branches on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The recovery key (or passphrase) opens nothing here.
    WrongKey,
    /// This device was removed from the sync group.
    Revoked,
    /// No relay or store could be reached (retry later).
    Unreachable,
    /// What was asked for is not there (no vault, snapshot or sync group).
    NotFound,
    /// Stored or relayed data failed verification.
    Corrupt,
    /// A relay refused for size, quota or rate.
    Quota,
    /// An argument that cannot be used (an address, a path, a setting), or a call made in
    /// the wrong state (pushing before joining a group).
    InvalidInput,
    /// An invite that is malformed, expired, used or cancelled.
    Invite,
    /// The handle was closed.
    Closed,
    /// Anything else (local I/O, a refusal of another kind, a bug).
    Other,
}

impl ErrorKind {
    /// Its name, as the bindings spell it (`WrongKey`, `Unreachable`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::WrongKey => "WrongKey",
            ErrorKind::Revoked => "Revoked",
            ErrorKind::Unreachable => "Unreachable",
            ErrorKind::NotFound => "NotFound",
            ErrorKind::Corrupt => "Corrupt",
            ErrorKind::Quota => "Quota",
            ErrorKind::InvalidInput => "InvalidInput",
            ErrorKind::Invite => "Invite",
            ErrorKind::Closed => "Closed",
            ErrorKind::Other => "Other",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed call.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct BridgeError {
    /// Which kind.
    pub kind: ErrorKind,
    /// One line.
    pub message: String,
    /// Whether the same call may succeed later.
    pub retryable: bool,
}

impl BridgeError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), retryable: kind == ErrorKind::Unreachable }
    }
}

impl From<Error> for BridgeError {
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::WrongKey(_) => ErrorKind::WrongKey,
            Error::Revoked => ErrorKind::Revoked,
            Error::Unreachable(_) | Error::Connection(_) => ErrorKind::Unreachable,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Corrupt(_) => ErrorKind::Corrupt,
            Error::Quota { .. } => ErrorKind::Quota,
            Error::Invalid(_) => ErrorKind::InvalidInput,
            Error::Invite(_) => ErrorKind::Invite,
            Error::Vault(zerok_vault::Error::Store { retryable: true, .. }) => ErrorKind::Unreachable,
            _ => ErrorKind::Other,
        };
        let message = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
        Self { kind, message, retryable: e.is_retryable() }
    }
}

impl From<zerok_vault::Error> for BridgeError {
    fn from(e: zerok_vault::Error) -> Self {
        Error::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_keep_what_an_app_branches_on() {
        let wrong: BridgeError = Error::WrongKey("recovery key refused".into()).into();
        assert_eq!((wrong.kind, wrong.retryable), (ErrorKind::WrongKey, false));
        assert_eq!(wrong.to_string(), "WrongKey: wrong key: recovery key refused");
        let down: BridgeError = Error::Unreachable("r: timed\nout".into()).into();
        assert_eq!((down.kind, down.retryable), (ErrorKind::Unreachable, true));
        assert!(!down.message.contains('\n'), "one line: {down}");
        let store = zerok_vault::Error::Store { object: "config".into(), message: "503".into(), retryable: true };
        assert_eq!(BridgeError::from(store).kind, ErrorKind::Unreachable);
    }
}
