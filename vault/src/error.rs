//! The one error type of zerok-vault.

/// What can go wrong with a vault. Each variant names the object or path involved so the
/// user can tell which one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The vault URL could not be understood.
    #[error("invalid vault URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The object store failed (after its bounded retries).
    #[error("storage error on {object}: {message}")]
    Store {
        /// The object or prefix being accessed.
        object: String,
        /// What the store said, on one line (the server's error code and message when it
        /// sent one).
        message: String,
        /// Whether trying again later might succeed.
        retryable: bool,
    },
    /// An object that should exist does not.
    #[error("missing object {object}")]
    NotFound {
        /// The object name.
        object: String,
    },
    /// An object exists but is damaged: fails authentication, hash, or parse.
    #[error("corrupted object {object}: {reason}")]
    Corrupt {
        /// The object name (and blob within it, when known).
        object: String,
        /// What check failed.
        reason: String,
    },
    /// No key slot opens with the given secret.
    #[error("wrong key: no key slot of this vault opens with it")]
    WrongKey,
    /// The vault was written by a newer zerok.
    #[error("unsupported vault format version {version} (this zerok reads up to {supported})")]
    Unsupported {
        /// The version found.
        version: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// `init` on a location that already holds a vault.
    #[error("a vault already exists at {0}; refusing to overwrite it")]
    AlreadyExists(String),
    /// The location holds no vault.
    #[error("no vault at {0} (run `zerok init` first)")]
    NoVault(String),
    /// A local file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The local path.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A snapshot tree names a path that would land outside the restore target.
    #[error("refusing unsafe path {0:?} from snapshot (it would escape the target)")]
    UnsafePath(String),
    /// Another process holds a conflicting lock.
    #[error("vault is locked: {0}")]
    Locked(String),
    /// Prune revoked this operation's lock (it stalled past the store clock's limit); its
    /// work may have been collected.
    #[error("{0}")]
    Revoked(String),
    /// A snapshot id or prefix that matches nothing, or more than one snapshot.
    #[error("snapshot {0:?}: {1}")]
    Snapshot(String, &'static str),
    /// Bad input that fits no other variant.
    #[error("{0}")]
    Invalid(String),
    /// An append-only vault refused a deletion by a device's credentials, or its storage
    /// could not be made append-only.
    #[error("{0}")]
    AppendOnly(String),
    /// Key handling failed.
    #[error(transparent)]
    Core(#[from] zerok_core::Error),
}

impl Error {
    /// True when trying again later might succeed (network and server trouble).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Store { retryable: true, .. })
    }

    /// A storage error, described on one line.
    pub(crate) fn store(object: &str, source: &object_store::Error) -> Self {
        let retryable = !matches!(
            source,
            object_store::Error::NotFound { .. }
                | object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. }
                | object_store::Error::NotImplemented { .. }
                | object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
        );
        Error::Store { object: object.to_string(), message: describe(source), retryable }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io { path: path.display().to_string(), source }
    }

    pub(crate) fn corrupt(object: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Corrupt { object: object.into(), reason: reason.into() }
    }
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// The most telling part of a store error on one line: an S3 `<Code>` and `<Message>` when
/// the server sent them, else the innermost cause.
fn describe(err: &object_store::Error) -> String {
    let full = err.to_string();
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = full.find(&open)? + open.len();
        let end = full[start..].find(&format!("</{name}>"))? + start;
        Some(full[start..end].to_string())
    };
    if let Some(code) = tag("Code") {
        let hint = match code.as_str() {
            "NoSuchBucket" => " (create it, or run `zerok init --create-bucket`)",
            "SignatureDoesNotMatch" | "InvalidAccessKeyId" => " (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)",
            _ => "",
        };
        return format!("{code}: {}{hint}", tag("Message").unwrap_or_default());
    }
    let mut inner: &dyn std::error::Error = err;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}
