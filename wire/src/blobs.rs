//! Serving content over iroh-blobs to those a [`Gate`] lets in, and counting what was
//! served. Devices serve their own attachments to the group's members and vault relays; a
//! vault relay serves each archived attachment to the members of the groups that sent it.
//! Every GET is asked of the gate (peer and hash), GET_MANY and PUSH are refused, and so is
//! OBSERVE (it would tell anyone which hashes are held).

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use iroh::{Endpoint, EndpointAddr, EndpointId, endpoint::Connection};
use iroh_blobs::{
    Hash,
    protocol::{ChunkRanges, ChunkRangesExt, GetRequest},
    provider::events::{
        AbortReason, ConnectMode, EventMask, EventSender, ObserveMode, ProviderMessage, RequestMode, RequestUpdate,
    },
};

use crate::WireError;

/// Who may fetch what.
pub trait Gate: Send + Sync + 'static {
    /// Whether `peer` may fetch `hash`.
    fn allows(&self, peer: EndpointId, hash: Hash) -> impl Future<Output = bool> + Send;
}

/// What a provider served, for metrics and tests.
#[derive(Debug, Default)]
pub struct Served {
    /// Payload bytes sent, over all finished or aborted requests.
    pub bytes: AtomicU64,
    /// Requests allowed.
    pub allowed: AtomicU64,
    /// Requests refused by the gate.
    pub refused: AtomicU64,
}

/// Requests waiting for the gate, per provider.
const EVENT_QUEUE: usize = 256;

/// The provider events of a blobs protocol guarded by `gate`: every GET asks it, every
/// other request kind is refused; bytes served are counted into `served`.
pub fn events<G: Gate>(gate: Arc<G>, served: Arc<Served>) -> EventSender {
    let mask = EventMask {
        connected: ConnectMode::Intercept,
        get: RequestMode::InterceptLog,
        get_many: RequestMode::Disabled,
        push: RequestMode::Disabled,
        observe: ObserveMode::Intercept,
        ..EventMask::DEFAULT
    };
    let (sender, mut rx) = EventSender::channel(EVENT_QUEUE, mask);
    tokio::spawn(async move {
        let peers: Arc<Mutex<HashMap<u64, EndpointId>>> = Arc::default();
        while let Some(msg) = rx.recv().await {
            match msg {
                ProviderMessage::ClientConnected(msg) => {
                    let reply = match msg.endpoint_id {
                        Some(id) => {
                            peers.lock().expect("not poisoned").insert(msg.connection_id, id);
                            Ok(())
                        }
                        None => Err(AbortReason::Permission),
                    };
                    let _ = msg.tx.send(reply).await;
                }
                ProviderMessage::ConnectionClosed(msg) => {
                    peers.lock().expect("not poisoned").remove(&msg.connection_id);
                }
                ProviderMessage::GetRequestReceived(msg) => {
                    let peer = peers.lock().expect("not poisoned").get(&msg.connection_id).copied();
                    let (gate, served) = (gate.clone(), served.clone());
                    let hash = msg.inner.request.hash;
                    let (tx, mut updates) = (msg.tx, msg.rx);
                    tokio::spawn(async move {
                        let allowed = match peer {
                            Some(peer) => gate.allows(peer, hash).await,
                            None => false,
                        };
                        let counter = if allowed { &served.allowed } else { &served.refused };
                        counter.fetch_add(1, Ordering::Relaxed);
                        let _ = tx.send(if allowed { Ok(()) } else { Err(AbortReason::Permission) }).await;
                        while let Ok(Some(update)) = updates.recv().await {
                            if let RequestUpdate::Completed(done) = &update {
                                served.bytes.fetch_add(done.stats.payload_bytes_sent, Ordering::Relaxed);
                            } else if let RequestUpdate::Aborted(gone) = &update {
                                served.bytes.fetch_add(gone.stats.payload_bytes_sent, Ordering::Relaxed);
                            }
                        }
                    });
                }
                ProviderMessage::ObserveRequestReceived(msg) => {
                    let _ = msg.tx.send(Err(AbortReason::Permission)).await;
                }
                _ => {}
            }
        }
    });
    sender
}

/// What `store` lacks of the first `size` bytes of `hash`: the request to fetch. A provider
/// cannot make the fetcher take more than the reference declared (a blob larger than that
/// stays incomplete, one smaller completes at another size: either is refused).
///
/// # Errors
/// [`WireError::Stream`] when the store cannot be read.
pub async fn missing(store: &iroh_blobs::api::Store, hash: Hash, size: u64) -> Result<GetRequest, WireError> {
    let request = GetRequest::builder().root(ChunkRanges::bytes(..size.max(1))).build(hash);
    let local = store.remote().local_for_request(request).await.map_err(|e| WireError::Stream(e.to_string()))?;
    Ok(local.missing())
}

/// Longest wait for a content provider to answer a connection attempt.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Connects to a content provider for fetching, with a receive window fit for large
/// transfers (a relay's endpoint starts every connection with a small one).
///
/// # Errors
/// [`WireError::Stream`] when it cannot be reached in [`CONNECT_TIMEOUT`].
pub async fn connect(endpoint: &Endpoint, addr: impl Into<EndpointAddr>) -> Result<Connection, WireError> {
    let conn = tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect(addr.into(), iroh_blobs::ALPN))
        .await
        .map_err(|_| WireError::Stream("content provider did not answer".into()))?
        .map_err(|e| WireError::Stream(e.to_string()))?;
    crate::admit(&conn, 4);
    Ok(conn)
}
