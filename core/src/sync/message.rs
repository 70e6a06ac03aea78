//! Wire messages (spec §5) and error codes (spec §12). Encoded as MessagePack maps (named
//! fields), externally tagged: `{"PUSH": {"blob_id": bin16, "payload": bin, "ttl": 0}}`.
//! Byte fields are MessagePack `bin` (the original sent arrays of integers, 1.5× larger).

use serde::{Deserialize, Serialize};

use super::{BlobId, DeviceId, GroupId};

/// Protocol version carried in HELLO and WELCOME.
pub const PROTOCOL_VERSION: u8 = 1;
/// Pull batch size when the client asks for 0.
pub const DEFAULT_PULL_LIMIT: u32 = 100;

/// Every message of the protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Message {
    /// C→R: open a session in a group, proving membership.
    Hello(Hello),
    /// R→C: session accepted.
    Welcome(Welcome),
    /// C→R: store a message for the group.
    Push(Push),
    /// R→C: stored durably under `cursor`.
    PushAck(PushAck),
    /// C→R: messages after a cursor.
    Pull(Pull),
    /// R→C: a batch of messages.
    PullResponse(PullResponse),
    /// C→R heartbeat (asks for the roster); R→C the group's devices.
    Presence(Presence),
    /// R→C: a new message is available.
    Notify(Notify),
    /// C→R: delete a message (after everyone acknowledged, or at once with `force`).
    Delete(Delete),
    /// C→R: remove a device from the group.
    RevokeDevice(RevokeDevice),
    /// R→C: a device was removed.
    DeviceRevoked(DeviceRevoked),
    /// C→R: register a mobile push token.
    RegisterPush(RegisterPush),
    /// C→R: drop the push token.
    UnregisterPush(UnregisterPush),
    /// C→R: reference to large content sent out of band.
    ContentRef(ContentRef),
    /// C→R: large content received.
    ContentAck(ContentAck),
    /// C→R: store a sealed pairing invite under a lookup key (short codes).
    InvitePut(InvitePut),
    /// C→R: fetch (and so consume) a sealed invite.
    InviteGet(InviteGet),
    /// C→R: cancel an invite before use.
    InviteCancel(InviteGet),
    /// R→C: a sealed invite.
    InviteFound(InviteFound),
    /// R→C: done (DELETE, INVITE_PUT, INVITE_CANCEL).
    Ok,
    /// Either way: a request failed.
    Error(ErrorMsg),
    /// C→R: closing.
    Bye(Bye),
}

/// Opens a session. `auth_key` and `proof` prove membership (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`].
    pub version: u8,
    /// Human name of the device (truncated by the relay).
    pub device_name: String,
    /// The group.
    pub group_id: GroupId,
    /// Last cursor this device has from this relay.
    pub last_cursor: u64,
    /// The group's auth public key.
    #[serde(with = "serde_bytes")]
    pub auth_key: [u8; 32],
    /// Signature over `"zerok-hello-v1" ‖ group_id ‖ client id ‖ relay id`.
    #[serde(with = "serde_bytes")]
    pub proof: [u8; 64],
}

/// Session accepted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    /// [`PROTOCOL_VERSION`].
    pub version: u8,
    /// The relay's endpoint id (hex).
    pub relay_id: String,
    /// Highest cursor assigned in the group.
    pub max_cursor: u64,
    /// Messages of others this device has not pulled yet (counted up to 10,000).
    pub pending_count: u32,
}

/// Stores a message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Push {
    /// Sender-chosen id (the AEAD binds the payload to it).
    pub blob_id: BlobId,
    /// Ciphertext.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// Seconds to keep it; 0 = relay default.
    pub ttl: u32,
}

/// Push stored durably.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PushAck {
    /// The pushed blob.
    pub blob_id: BlobId,
    /// Its cursor in the group.
    pub cursor: u64,
    /// Relay time, Unix seconds.
    pub timestamp: u64,
}

/// Asks for messages after a cursor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pull {
    /// Exclusive lower bound.
    pub after_cursor: u64,
    /// Most messages wanted (0 = [`DEFAULT_PULL_LIMIT`]).
    pub limit: u32,
}

/// One stored message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlobEntry {
    /// Sender-chosen id.
    pub blob_id: BlobId,
    /// Cursor in the group.
    pub cursor: u64,
    /// Who pushed it.
    pub sender_id: DeviceId,
    /// Ciphertext.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// When the relay stored it, Unix seconds.
    pub timestamp: u64,
}

/// A batch of messages in cursor order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PullResponse {
    /// The messages.
    pub blobs: Vec<BlobEntry>,
    /// More remain after the last one.
    pub has_more: bool,
    /// Cursor of the last message returned (or the request's `after_cursor`).
    pub max_cursor: u64,
}

/// A device of the group as the relay knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Endpoint id.
    pub device_id: DeviceId,
    /// Name from its last HELLO.
    pub name: String,
    /// Last contact, Unix seconds.
    pub last_seen: u64,
    /// Connected now.
    pub online: bool,
    /// Revoked devices are listed so others can see it.
    pub revoked: bool,
}

/// Heartbeat / roster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Presence {
    /// Empty from clients; the roster from the relay.
    pub devices: Vec<DeviceInfo>,
}

/// New message available.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notify {
    /// Its id.
    pub blob_id: BlobId,
    /// Its cursor.
    pub cursor: u64,
    /// Who pushed it.
    pub sender_id: DeviceId,
    /// Relay time, Unix seconds.
    pub timestamp: u64,
    /// Payload bytes.
    pub size: u32,
}

/// Deletes a message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delete {
    /// Which.
    pub blob_id: BlobId,
    /// Delete now instead of after every device pulled it (sender only).
    pub force: bool,
}

/// Why a device is revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RevokeReason {
    /// Lost.
    Lost,
    /// Retired.
    Decommissioned,
    /// Compromised.
    Compromised,
}

/// Removes a device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RevokeDevice {
    /// Which device.
    pub device_id: DeviceId,
    /// Why.
    pub reason: RevokeReason,
    /// Drop what it has not pulled.
    pub clear_pending: bool,
}

/// A device was removed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceRevoked {
    /// Which device.
    pub device_id: DeviceId,
    /// By whom.
    pub revoked_by: DeviceId,
    /// When, Unix seconds.
    pub timestamp: u64,
    /// Why.
    pub reason: RevokeReason,
}

/// Mobile push platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PushPlatform {
    /// Apple.
    Apns,
    /// Firebase.
    Fcm,
}

/// Registers a push token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegisterPush {
    /// Token.
    pub token: String,
    /// Platform.
    pub platform: PushPlatform,
    /// APNS bundle id.
    pub app_id: Option<String>,
}

/// Drops the push token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnregisterPush {
    /// Why.
    pub reason: String,
}

/// Large content reference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContentRef {
    /// BLAKE3 of the ciphertext.
    #[serde(with = "serde_bytes")]
    pub content_hash: [u8; 32],
    /// Nonce used.
    #[serde(with = "serde_bytes")]
    pub encryption_nonce: [u8; 24],
    /// Plaintext size.
    pub content_size: u64,
    /// Ciphertext size.
    pub encrypted_size: u64,
}

/// Large content received.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContentAck {
    /// BLAKE3 of the ciphertext.
    #[serde(with = "serde_bytes")]
    pub content_hash: [u8; 32],
}

/// Stores a sealed invite.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InvitePut {
    /// Lookup half of the short code (the key half never leaves the devices).
    pub lookup: String,
    /// The invite sealed under the key half.
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
    /// Expiry, Unix seconds (at most 10 minutes ahead).
    pub expires: u64,
}

/// Fetches or cancels an invite.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InviteGet {
    /// Lookup half of the short code.
    pub lookup: String,
}

/// A sealed invite (now deleted at the relay).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InviteFound {
    /// The invite sealed under the key half.
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

/// A failed request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorMsg {
    /// [`ErrorCode`] value.
    pub code: u32,
    /// Human text.
    pub message: String,
}

/// Closing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bye {
    /// Why.
    pub reason: Option<String>,
}

/// Error codes (spec §12), plus zerok's own from 1005.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ErrorCode {
    /// Malformed or unexpected message.
    InvalidMessage = 1000,
    /// No such group.
    UnknownGroup = 1001,
    /// Membership proof missing or wrong.
    Unauthorized = 1002,
    /// This device was revoked.
    DeviceRevoked = 1003,
    /// Only the sender may force-delete.
    NotBlobOwner = 1004,
    /// No such invite (expired, used or cancelled).
    InviteNotFound = 1005,
    /// Unsupported protocol version.
    VersionMismatch = 1006,
    /// Too many requests.
    RateLimited = 2000,
    /// Payload too large.
    BlobTooLarge = 2001,
    /// Group storage quota reached.
    GroupQuotaExceeded = 2002,
    /// Bad push token.
    InvalidPushToken = 2003,
    /// Relay at capacity.
    RelayOverloaded = 3000,
    /// Relay shutting down.
    RelayShuttingDown = 3001,
}

impl ErrorCode {
    /// An ERROR message with this code.
    pub fn message(self, text: impl Into<String>) -> Message {
        Message::Error(ErrorMsg { code: self as u32, message: text.into() })
    }

    /// The code for a number, if known.
    pub fn from_u32(code: u32) -> Option<Self> {
        use ErrorCode::*;
        [
            InvalidMessage,
            UnknownGroup,
            Unauthorized,
            DeviceRevoked,
            NotBlobOwner,
            InviteNotFound,
            VersionMismatch,
            RateLimited,
            BlobTooLarge,
            GroupQuotaExceeded,
            InvalidPushToken,
            RelayOverloaded,
            RelayShuttingDown,
        ]
        .into_iter()
        .find(|c| *c as u32 == code)
    }
}
