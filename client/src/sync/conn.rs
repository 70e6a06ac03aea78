//! One connection to one relay: HELLO with the group proof, request/response on a
//! bidirectional stream each, and a task turning the relay's unidirectional NOTIFY /
//! DEVICE_REVOKED / roster notices into events.

use std::sync::Arc;

use iroh::endpoint::ConnectionError;
use tokio::sync::broadcast;
use zerok_core::sync::{
    DeviceId, GroupKeys, Message,
    frame::MAX_FRAME_BYTES,
    message::{Hello, PROTOCOL_VERSION, Welcome},
};
use zerok_wire::{ALPN, CloseCode, RelayAddr, read_frame, write_frame};

use super::{SyncEvent, link::Links};
use crate::Error;

/// Longest wait for a relay to answer a connection attempt.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Longest wait for a relay to answer one request, unless the client sets another.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A session with one relay.
pub struct RelayConn {
    conn: iroh::endpoint::Connection,
    events_task: tokio::task::JoinHandle<()>,
    /// The client's links, told when this session ends (`None`: a session of its own, such
    /// as reading a group left behind).
    links: Option<(Arc<Links>, RelayAddr, u64)>,
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
    pub async fn request(&self, msg: &Message) -> Result<Message, Error> {
        request_on(&self.conn, msg, self.timeout).await
    }
}

impl Drop for RelayConn {
    fn drop(&mut self) {
        self.events_task.abort();
        if let Some((links, relay, cursor)) = &self.links {
            links.down((relay, *cursor), self.conn.stable_id(), "closed".into(), false);
        }
    }
}

impl RelayConn {
    /// Connects and says HELLO: a session of its own, reporting the relay's notices on
    /// `events`.
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
    ) -> Result<Self, Error> {
        Self::open(endpoint, relay, (keys, device_name, last_cursor), events, None).await
    }

    /// [`RelayConn::connect`] as one of a client's sessions: `links` are told when it is up
    /// and when it ends.
    pub(super) async fn connect_linked(
        endpoint: &iroh::Endpoint,
        relay: &RelayAddr,
        hello: (&GroupKeys, &str, u64),
        events: broadcast::Sender<SyncEvent>,
        links: Arc<Links>,
    ) -> Result<Self, Error> {
        Self::open(endpoint, relay, hello, events, Some(links)).await
    }

    async fn open(
        endpoint: &iroh::Endpoint,
        relay: &RelayAddr,
        (keys, device_name, last_cursor): (&GroupKeys, &str, u64),
        events: broadcast::Sender<SyncEvent>,
        links: Option<Arc<Links>>,
    ) -> Result<Self, Error> {
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
                return Err(Error::unexpected(&other));
            }
        };
        let relay_name = relay.to_string();
        let watched = conn.clone();
        // Up before the task that reports it down can run.
        if let Some(links) = &links {
            links.up(relay, conn.stable_id());
        }
        let link = links.as_ref().map(|l| (l.clone(), relay.clone(), last_cursor));
        let events_task = tokio::spawn(async move {
            let ended = loop {
                let mut recv = match watched.accept_uni().await {
                    Ok(recv) => recv,
                    Err(e) => break e,
                };
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
            };
            if let Some((links, relay, cursor)) = link {
                let by_peer = !matches!(ended, ConnectionError::LocallyClosed);
                links.down((&relay, cursor), watched.stable_id(), ended.to_string(), by_peer);
            }
        });
        let links = links.map(|l| (l, relay.clone(), last_cursor));
        Ok(Self { conn, events_task, links, welcome, timeout: REQUEST_TIMEOUT })
    }

    /// Sends one request and waits for its reply, at most the request timeout.
    ///
    /// # Errors
    /// Transport failures and timeouts ([`Error::Connection`]); an ERROR reply is
    /// returned as a message for the caller to map.
    pub async fn request(&self, msg: &Message) -> Result<Message, Error> {
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
/// Unreachable relay, or [`Error::Refused`] when there is no such invite.
pub async fn lookup_invite(endpoint: &iroh::Endpoint, relay: &RelayAddr, lookup: &str) -> Result<Vec<Vec<u8>>, Error> {
    let conn = dial(endpoint, relay).await?;
    let get = Message::InviteGet(zerok_core::sync::message::InviteGet { lookup: lookup.to_string() });
    let reply = request_on(&conn, &get, REQUEST_TIMEOUT).await;
    CloseCode::Bye.close(&conn, "done");
    match reply? {
        Message::InviteFound(found) => Ok(found.sealed.into_iter().map(|b| b.into_vec()).collect()),
        other => Err(Error::unexpected(&other)),
    }
}

/// Connects to a relay, giving up after [`CONNECT_TIMEOUT`].
async fn dial(endpoint: &iroh::Endpoint, relay: &RelayAddr) -> Result<iroh::endpoint::Connection, Error> {
    tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect(relay.endpoint_addr(), ALPN))
        .await
        .map_err(|_| Error::Connection(format!("no answer from {relay} within {}s", CONNECT_TIMEOUT.as_secs())))?
        .map_err(|e| Error::Connection(e.to_string()))
}

async fn request_on(
    conn: &iroh::endpoint::Connection,
    msg: &Message,
    timeout: std::time::Duration,
) -> Result<Message, Error> {
    let exchange = async {
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| Error::Connection(e.to_string()))?;
        write_frame(&mut send, msg).await?;
        Ok(read_frame(&mut recv, MAX_FRAME_BYTES).await?)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| Error::Connection(format!("no reply within {} ms", timeout.as_millis())))?
}
