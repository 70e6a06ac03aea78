//! Wire messages (spec §5) and error codes (spec §12). Encoded as MessagePack maps (named
//! fields), externally tagged: `{"PUSH": {"blob_id": bin16, "payload": bin, "ttl": 0}}`.
//! Byte fields are MessagePack `bin` (the original sent arrays of integers, 1.5× larger).

use serde::{Deserialize, Serialize};

use super::{
    BlobId, DeviceId, GroupId,
    roster::{Entry, EntryHash, InviteKey},
};

/// Protocol version carried in HELLO and WELCOME. Version 2: membership by the signed
/// roster (ROSTER_*), payloads signed by their sender, bucketed short-code invites.
pub const PROTOCOL_VERSION: u8 = 2;
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
    /// C→R: roster entries after a position.
    RosterGet(RosterGet),
    /// R→C: a batch of roster entries.
    RosterEntries(RosterEntries),
    /// C→R: append signed roster entries (the first must extend the relay's head).
    RosterAppend(RosterAppend),
    /// R→C: appended; the relay's roster is now at `seq`. Also sent unasked (on a
    /// unidirectional stream) to the group's online devices when the roster changes.
    RosterAppended(RosterAppended),
    /// R→C: a device was removed.
    DeviceRevoked(DeviceRevoked),
    /// C→R: register a mobile push token.
    RegisterPush(RegisterPush),
    /// C→R: drop the push token.
    UnregisterPush(UnregisterPush),
    /// C→R: archive an attachment (vault relays).
    ContentRef(ContentRef),
    /// R→C: the attachment is archived.
    ContentAck(ContentAck),
    /// C→R: store a sealed pairing invite under a lookup key (short codes).
    InvitePut(InvitePut),
    /// C→R: fetch the sealed invites of a bucket.
    InviteGet(InviteGet),
    /// C→R: cancel an invite before use.
    InviteCancel(InviteCancel),
    /// R→C: a sealed invite.
    InviteFound(InviteFound),
    /// R→C: done (INVITE_PUT, INVITE_CANCEL).
    Ok,
    /// Either way: a request failed.
    Error(ErrorMsg),
    /// C→R: closing.
    Bye(Bye),
    /// R→C: a DELETE was taken: the message is gone, or marked until every member has it.
    Deleted(Deleted),
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
    /// The relay's roster position for this group's log (0: it knows no roster).
    pub roster_seq: u64,
    /// Whether this device is a member in the relay's roster. A device that is not may
    /// only read the roster and append to it (a join, or a log the relay lacks).
    pub member: bool,
    /// The relay's clock, Unix seconds (invite expiry is measured by relays' clocks, so a
    /// device with a wrong clock still makes invites that live 10 minutes).
    pub time: u64,
    /// A vault-mode relay: it archives attachments announced with CONTENT_REF.
    #[serde(default)]
    pub vault: bool,
}

/// Asks for roster entries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RosterGet {
    /// Exclusive lower bound on `seq`.
    pub after_seq: u64,
}

/// Roster entries in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RosterEntries {
    /// The entries.
    pub entries: Vec<Entry>,
    /// More follow the last one.
    pub has_more: bool,
    /// The relay's last position.
    pub seq: u64,
    /// Hash of the relay's last entry (a device whose log has another entry there is on a
    /// fork: the relay's copy is not used).
    pub head: EntryHash,
}

/// Appends entries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RosterAppend {
    /// In order; those the relay already has (same bytes) are skipped.
    pub entries: Vec<Entry>,
}

/// The relay's roster position after an append.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RosterAppended {
    /// Last position.
    pub seq: u64,
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

/// The answer to DELETE.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Deleted {
    /// Which.
    pub blob_id: BlobId,
    /// Gone now; false: marked, removed once every current member has pulled past it.
    pub removed: bool,
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

/// Asks a vault relay to archive an attachment: it fetches the ciphertext from the
/// device that sent this, over iroh-blobs. Sent to vault relays only (WELCOME `vault`):
/// the reference itself travels sealed in a message, and a transit relay learns nothing
/// of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContentRef {
    /// BLAKE3 of the ciphertext.
    #[serde(with = "serde_bytes")]
    pub content_hash: [u8; 32],
    /// Ciphertext size.
    pub encrypted_size: u64,
}

/// R→C: the vault relay holds the attachment (the answer to CONTENT_REF once it is
/// archived; `OK` while it is still being fetched).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContentAck {
    /// BLAKE3 of the ciphertext.
    #[serde(with = "serde_bytes")]
    pub content_hash: [u8; 32],
}

/// Stores a sealed invite.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InvitePut {
    /// Bucket of the short code (16 bits of its hash; several invites may share one).
    pub lookup: String,
    /// The invite's one-time key: the relay drops the invite once a join used it.
    pub invite_key: InviteKey,
    /// The invite sealed under the key half.
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
    /// Expiry, Unix seconds (at most 10 minutes ahead).
    pub expires: u64,
}

/// Fetches the invites of a bucket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InviteGet {
    /// Bucket of the short code.
    pub lookup: String,
}

/// Cancels an invite before use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InviteCancel {
    /// Bucket of the short code.
    pub lookup: String,
    /// The invite's one-time key.
    pub invite_key: InviteKey,
}

/// The live sealed invites of a bucket (the joiner opens the one its code seals).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InviteFound {
    /// Sealed invites.
    pub sealed: Vec<serde_bytes::ByteBuf>,
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
    /// The group moved to a new secret; follow the roster's rotation.
    GroupRotated = 1007,
    /// A roster entry does not extend the relay's head (another change came first).
    RosterConflict = 1008,
    /// A roster entry that does not verify or is not allowed (not a member, used or
    /// expired invite, bad signature).
    RosterRefused = 1009,
    /// This device is not a member of the group.
    NotMember = 1010,
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
    /// The relay's database or object store failed; try again later.
    StorageUnavailable = 3002,
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
            GroupRotated,
            RosterConflict,
            RosterRefused,
            NotMember,
            RateLimited,
            BlobTooLarge,
            GroupQuotaExceeded,
            InvalidPushToken,
            RelayOverloaded,
            RelayShuttingDown,
            StorageUnavailable,
        ]
        .into_iter()
        .find(|c| *c as u32 == code)
    }
}
