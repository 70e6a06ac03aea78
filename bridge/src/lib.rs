//! zerok-bridge: one non-generic handle over `zerok-client` for the Python, Node.js and
//! Tauri bindings — sync, cloud backup and new-device restore behind plain data (strings,
//! bytes, integers), errors of a few named kinds, one event stream, and one tokio runtime
//! the handle owns and shuts down in a fixed order (backup stopped → sync disconnected,
//! its endpoint closed → runtime dropped).
//!
//! Secrets stay on this side: what crosses into the host language is the recovery key
//! (once, when a vault is created, for the user to write down) and invites (for the user
//! to pass on), never a group secret or a device key.
//!
//! # Layout
//! - `error`: [`BridgeError`] and its [`ErrorKind`]s.
//! - `types`: the plain data the methods take and give.
//! - `event`: [`Event`] — the client's and cloud backup's events as one plain stream.
//! - `handle`: [`Bridge`] — the handle.

mod error;
mod event;
mod handle;
mod types;

pub use error::{BridgeError, ErrorKind};
pub use event::Event;
pub use handle::{Bridge, Config};
pub use types::{
    BackupReport, BackupSettings, BackupStatus, InviteInfo, Message, Pulled, Pushed, Restored, SyncStatus,
};
