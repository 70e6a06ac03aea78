//! One connection to one relay: HELLO with the group proof, request/response on a
//! bidirectional stream each, and a task turning the relay's unidirectional NOTIFY /
//! DEVICE_REVOKED / roster notices into events.

use tokio::sync::broadcast;
use zerok_core::sync::{
    DeviceId, ErrorCode, GroupKeys, Message,
    frame::MAX_FRAME_BYTES,
    message::{Hello, PROTOCOL_VERSION, Welcome},
};
use zerok_wire::{ALPN, CloseCode, RelayAddr, read_frame, write_frame};

use super::SyncEvent;

/// Longest wait for a relay to answer a connection attempt.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Longest wait for a relay to answer one request, unless the client sets another.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Sync failures.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The relay answered with an ERROR.
    #[error("relay refused: {message} (code {code})")]
    Refused {
        /// [`ErrorCode`] value.
        code: u32,
        /// Its text.
        message: String,
    },
    /// No relay could be reached.
    #[error("no relay reachable: {0}")]
    Unreachable(String),
    /// Transport trouble.
    #[error("connection: {0}")]
    Connection(String),
    /// A payload did not decrypt.
    #[error("message at cursor {cursor} does not decrypt with this group's key")]
    Decrypt {
        /// Its cursor.
        cursor: u64,
    },
    /// Local state.
    #[error("{0}")]
    State(String),
    /// An invite or code that is malformed, expired or used.
    #[error("invite: {0}")]
    Invite(String),
    /// A roster entry or log that does not verify (refused, never applied).
    #[error("roster: {0}")]
    Roster(String),
    /// This device was removed from the group.
    #[error("this device was revoked from the sync group")]
    Revoked,
    /// An attachment that cannot be read, stored, fetched or opened.
    #[error("{0}")]
    Content(String),
    /// A payload whose sender signature does not verify, or whose sender is no member.
    #[error("message at cursor {cursor} is not signed by the device the relay names")]
    Forged {
        /// Its cursor.
        cursor: u64,
    },
}

impl SyncError {
    pub(crate) fn unexpected(msg: &Message) -> Self {
        match msg {
            Message::Error(e) => SyncError::Refused { code: e.code, message: e.message.clone() },
            other => SyncError::Connection(format!("unexpected reply {:?}", std::mem::discriminant(other))),
        }
    }

    /// The relay's error code, when it refused.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            SyncError::Refused { code, .. } => ErrorCode::from_u32(*code),
            _ => None,
        }
    }
}

impl From<zerok_wire::WireError> for SyncError {
    fn from(e: zerok_wire::WireError) -> Self {
        SyncError::Connection(e.to_string())
    }
}

/// A session with one relay.
pub struct RelayConn {
    conn: iroh::endpoint::Connection,
    events_task: tokio::task::JoinHandle<()>,
    /// What the relay said at HELLO.
    pub welcome: Welcome,
    timeout: std::time::Duration,
}

/// Sends requests on a relay's session from a task of its own (a push completing in the
/// background); it ends with the session.
#[derive(Clone)]
pub struct Requester {
    conn: iroh::endpoint::Connection,
    timeout: std::time::Duration,
}

impl Requester {
    /// As [`RelayConn::request`].
    ///
    /// # Errors
    /// Transport failures and timeouts.
    pub async fn request(&self, msg: &Message) -> Result<Message, SyncError> {
        request_on(&self.conn, msg, self.timeout).await
    }
}

impl Drop for RelayConn {
    fn drop(&mut self) {
        self.events_task.abort();
    }
}

impl RelayConn {
    /// Connects and says HELLO.
    ///
    /// # Errors
    /// Unreachable relay, or HELLO refused (not a member, revoked, version).
    pub async fn connect(
        endpoint: &iroh::Endpoint,
        relay: &RelayAddr,
        keys: &GroupKeys,
        device_name: &str,
        last_cursor: u64,
        events: broadcast::Sender<SyncEvent>,
    ) -> Result<Self, SyncError> {
        let conn = dial(endpoint, relay).await?;
        let me = DeviceId(*endpoint.id().as_bytes());
        let hello = Message::Hello(Hello {
            version: PROTOCOL_VERSION,
            device_name: device_name.to_string(),
            group_id: keys.id(),
            last_cursor,
            auth_key: keys.auth_public(),
            proof: keys.hello_proof(&me, &relay.id),
        });
        let welcome = match request_on(&conn, &hello, REQUEST_TIMEOUT).await? {
            Message::Welcome(w) => w,
            other => {
                CloseCode::Bye.close(&conn, "refused");
                return Err(SyncError::unexpected(&other));
            }
        };
        let relay_name = relay.to_string();
        let watched = conn.clone();
        let events_task = tokio::spawn(async move {
            while let Ok(mut recv) = watched.accept_uni().await {
                let event = match read_frame(&mut recv, MAX_FRAME_BYTES).await {
                    Ok(Message::Notify(n)) => {
                        SyncEvent::BlobAvailable { relay: relay_name.clone(), cursor: n.cursor, sender: n.sender_id }
                    }
                    Ok(Message::DeviceRevoked(r)) => SyncEvent::DeviceRevoked { device: r.device_id },
                    Ok(Message::RosterAppended(r)) => {
                        SyncEvent::RosterChanged { relay: relay_name.clone(), seq: r.seq }
                    }
                    _ => continue,
                };
                let _ = events.send(event);
            }
        });
        Ok(Self { conn, events_task, welcome, timeout: REQUEST_TIMEOUT })
    }

    /// Sends one request and waits for its reply, at most the request timeout.
    ///
    /// # Errors
    /// Transport failures and timeouts ([`SyncError::Connection`]); an ERROR reply is
    /// returned as a message for the caller to map.
    pub async fn request(&self, msg: &Message) -> Result<Message, SyncError> {
        request_on(&self.conn, msg, self.timeout).await
    }

    /// Sets how long a request may wait for its reply.
    pub fn set_timeout(&mut self, timeout: std::time::Duration) {
        self.timeout = timeout;
    }

    /// This session's id (a new one after each reconnect).
    pub fn id(&self) -> usize {
        self.conn.stable_id()
    }

    /// A handle for requests from another task.
    pub fn requester(&self) -> Requester {
        Requester { conn: self.conn.clone(), timeout: self.timeout }
    }

    /// Whether the connection is still up.
    pub fn is_open(&self) -> bool {
        self.conn.close_reason().is_none()
    }

    /// Closes the connection.
    pub fn close(&self) {
        CloseCode::Bye.close(&self.conn, "bye");
    }
}

/// Fetches the sealed invites of a code's bucket from a relay, before any HELLO.
///
/// # Errors
/// Unreachable relay, or [`SyncError::Refused`] when there is no such invite.
pub async fn lookup_invite(
    endpoint: &iroh::Endpoint,
    relay: &RelayAddr,
    lookup: &str,
) -> Result<Vec<Vec<u8>>, SyncError> {
    let conn = dial(endpoint, relay).await?;
    let get = Message::InviteGet(zerok_core::sync::message::InviteGet { lookup: lookup.to_string() });
    let reply = request_on(&conn, &get, REQUEST_TIMEOUT).await;
    CloseCode::Bye.close(&conn, "done");
    match reply? {
        Message::InviteFound(found) => Ok(found.sealed.into_iter().map(|b| b.into_vec()).collect()),
        other => Err(SyncError::unexpected(&other)),
    }
}

/// Connects to a relay, giving up after [`CONNECT_TIMEOUT`].
async fn dial(endpoint: &iroh::Endpoint, relay: &RelayAddr) -> Result<iroh::endpoint::Connection, SyncError> {
    tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect(relay.endpoint_addr(), ALPN))
        .await
        .map_err(|_| SyncError::Connection(format!("no answer from {relay} within {}s", CONNECT_TIMEOUT.as_secs())))?
        .map_err(|e| SyncError::Connection(e.to_string()))
}

async fn request_on(
    conn: &iroh::endpoint::Connection,
    msg: &Message,
    timeout: std::time::Duration,
) -> Result<Message, SyncError> {
    let exchange = async {
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| SyncError::Connection(e.to_string()))?;
        write_frame(&mut send, msg).await?;
        Ok(read_frame(&mut recv, MAX_FRAME_BYTES).await?)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| SyncError::Connection(format!("no reply within {} ms", timeout.as_millis())))?
}
