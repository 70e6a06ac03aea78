//! The shapes the spec gives the JavaScript side where they differ from the bridge's own
//! (which serialize as they are: camelCase keys, bytes as arrays of numbers, ids as hex
//! strings): an invite, a pull, a restore, and the backup schedule a script may set.

use serde::{Deserialize, Serialize};
use zerok_bridge::{InviteInfo, Message, Restored as BridgeRestored};

/// An invite to show the user who pairs (it holds the group's secret: show it to nobody
/// else, never log it; its `Debug` shows neither code).
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Invite {
    /// The `zerok://…` URL to render as a QR code.
    pub qr_code: String,
    /// The short code to type on the other device.
    pub short_code: String,
    /// When it stops working, Unix milliseconds.
    pub expires_at: u64,
}

impl std::fmt::Debug for Invite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invite").field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

impl Invite {
    pub(crate) fn new(i: InviteInfo, now_ms: u64) -> Self {
        Self { qr_code: i.url, short_code: i.code, expires_at: now_ms.saturating_add(i.expires_in_secs * 1000) }
    }
}

/// What a pull brought.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PullResult {
    /// The messages, in order.
    pub blobs: Vec<Message>,
    /// Pull again: more wait (one read stops after so many pages; after a key rotation
    /// the old group is read out first).
    pub has_more: bool,
    /// The cursor the read reached (past messages it refused too): give it as
    /// `afterCursor` to read on from here.
    pub max_cursor: u64,
}

/// How often cloud backup runs (the vault and the folders are the app's settings).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupSchedule {
    /// Every this many seconds (default hourly).
    pub interval_secs: Option<u64>,
    /// After this many messages pushed or pulled (default 100).
    pub after_messages: Option<u64>,
}

/// What restoring this device brought, and where.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Restored {
    /// The folder restored into (the app's setting).
    pub target: String,
    #[serde(flatten)]
    pub restored: BridgeRestored,
}
