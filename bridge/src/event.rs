//! The sync client's and cloud backup's events as one plain stream: a `kind` from a fixed
//! list and the fields that kind uses.

use zerok_client::{
    cloud::CloudEvent,
    sync::{ConnectionStatus, SyncEvent},
};

/// Something that happened. `kind` is one of `connected`, `disconnected`, `reconnecting`,
/// `status-changed`, `blob-available`, `blob-pushed`, `device-revoked`, `rotated`,
/// `backup-started`, `backup-saved`, `error`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(rename_all = "camelCase"))]
pub struct Event {
    /// What happened.
    pub kind: &'static str,
    /// The relay it concerns.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub relay: Option<String>,
    /// A cursor (a new message's, a push's).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub cursor: Option<u64>,
    /// A message id (hex).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub blob_id: Option<String>,
    /// A device id (hex): the sender of a new message, a device revoked.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub device: Option<String>,
    /// A snapshot id (hex).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub snapshot_id: Option<String>,
    /// `connected`, `reconnecting` or `disconnected` (for `status-changed`).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub status: Option<String>,
    /// A reconnect attempt.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub attempt: Option<u32>,
    /// One line: why a connection ended, what failed.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub message: Option<String>,
}

/// A [`ConnectionStatus`] in words, and the attempt when reconnecting.
pub(crate) fn status_words(status: ConnectionStatus) -> (&'static str, Option<u32>) {
    match status {
        ConnectionStatus::Connected => ("connected", None),
        ConnectionStatus::Reconnecting { attempt } => ("reconnecting", Some(attempt)),
        ConnectionStatus::Disconnected => ("disconnected", None),
    }
}

impl Event {
    fn of(kind: &'static str) -> Self {
        Self { kind, ..Self::default() }
    }

    /// The bridge's event for a sync event (`None`: one apps need not see, such as a
    /// duplicate dropped or an attachment's progress).
    pub(crate) fn from_sync(e: &SyncEvent) -> Option<Self> {
        Some(match e {
            SyncEvent::Connected { relay } => Self { relay: Some(relay.clone()), ..Self::of("connected") },
            SyncEvent::Disconnected { relay, reason } => {
                Self { relay: Some(relay.clone()), message: Some(reason.clone()), ..Self::of("disconnected") }
            }
            SyncEvent::Reconnecting { relay, attempt } => {
                Self { relay: Some(relay.clone()), attempt: Some(*attempt), ..Self::of("reconnecting") }
            }
            SyncEvent::StatusChanged { status } => {
                let (words, attempt) = status_words(*status);
                Self { status: Some(words.into()), attempt, ..Self::of("status-changed") }
            }
            SyncEvent::BlobAvailable { relay, cursor, sender } => Self {
                relay: Some(relay.clone()),
                cursor: Some(*cursor),
                device: Some(sender.to_string()),
                ..Self::of("blob-available")
            },
            SyncEvent::BlobPushed { blob_id, cursor } => {
                Self { blob_id: Some(blob_id.to_string()), cursor: Some(*cursor), ..Self::of("blob-pushed") }
            }
            SyncEvent::DeviceRevoked { device } => {
                Self { device: Some(device.to_string()), ..Self::of("device-revoked") }
            }
            SyncEvent::Rotated => Self::of("rotated"),
            SyncEvent::Error { message } => Self { message: Some(message.clone()), ..Self::of("error") },
            SyncEvent::DecryptFailed { cursor } => Self {
                cursor: Some(*cursor),
                message: Some(format!("the message at cursor {cursor} does not decrypt: refused")),
                ..Self::of("error")
            },
            SyncEvent::Forged { cursor } => Self {
                cursor: Some(*cursor),
                message: Some(format!("the message at cursor {cursor} is not signed by a member: refused")),
                ..Self::of("error")
            },
            SyncEvent::RosterRefused { reason } => {
                Self { message: Some(format!("a roster entry was refused: {reason}")), ..Self::of("error") }
            }
            _ => return None,
        })
    }

    /// The bridge's event for a cloud backup event.
    pub(crate) fn from_cloud(e: &CloudEvent) -> Option<Self> {
        Some(match e {
            CloudEvent::Started => Self::of("backup-started"),
            CloudEvent::Saved { snapshot, .. } => {
                Self { snapshot_id: Some(snapshot.to_string()), ..Self::of("backup-saved") }
            }
            CloudEvent::Failed { error } => Self { message: Some(error.clone()), ..Self::of("error") },
            _ => return None,
        })
    }
}
