//! The relay: start (data folder, identity, storage, endpoint, HTTP), the accept loop,
//! periodic cleanup, and an ordered shutdown (stop accepting → close sessions → let
//! in-flight writes finish → HTTP off).

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use iroh::{Endpoint, SecretKey, endpoint::IncomingAddr, protocol::ProtocolHandler};
use iroh_blobs::BlobsProtocol;
use zerok_vault::Backend;
use zerok_wire::{CloseCode, NetOptions, RelayAddr};

use crate::{
    Config, Error, LogGateway, PushGateway, PushGatewayKind, Result, WebhookGateway, content::Attachments,
    metrics::Metrics, push::Waker, session, state::State, storage::Storage,
};

/// File in the data folder holding the relay's identity key (mode 0600).
pub const KEY_FILE: &str = "relay.key";

/// A running relay.
pub struct Relay {
    endpoint: Endpoint,
    state: Arc<State>,
    http_addr: Option<SocketAddr>,
}

fn load_or_create_key(dir: &Path) -> Result<SecretKey> {
    let path = dir.join(KEY_FILE);
    let io = |e: std::io::Error| Error::Io(format!("{}: {e}", path.display()));
    match std::fs::read(&path) {
        Ok(bytes) => {
            let raw: [u8; 32] =
                bytes.as_slice().try_into().map_err(|_| Error::Io(format!("{}: not a 32-byte key", path.display())))?;
            Ok(SecretKey::from_bytes(&raw))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SecretKey::generate();
            use std::{io::Write, os::unix::fs::OpenOptionsExt};
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(io)?;
            f.write_all(&key.to_bytes()).and_then(|_| f.sync_all()).map_err(io)?;
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

impl Relay {
    /// Opens the store, binds the endpoint and HTTP, and starts accepting.
    ///
    /// # Errors
    /// When the data folder, key, store or sockets cannot be set up.
    pub async fn start(config: Config) -> Result<Relay> {
        Self::start_on(config, None).await
    }

    /// As [`Relay::start`]; in vault mode, keeps payloads in `backend` (an object store the
    /// embedding program opened itself) instead of opening `object-store`.
    ///
    /// # Errors
    /// As [`Relay::start`].
    pub async fn start_on(config: Config, backend: Option<Backend>) -> Result<Relay> {
        let dir = &config.storage.data_dir;
        std::fs::create_dir_all(dir).map_err(|e| Error::Io(format!("{}: {e}", dir.display())))?;
        let key = load_or_create_key(dir)?;
        config.check().map_err(Error::Config)?;
        let storage = Storage::open(&config, backend).await?;
        let net = NetOptions {
            iroh_relays: config.server.iroh_relays,
            discovery: config.server.discovery,
            mdns: config.server.mdns,
            server: true,
        };
        let archive = storage.backend();
        let mut alpns = vec![zerok_wire::ALPN.to_vec()];
        if archive.is_some() {
            alpns.push(iroh_blobs::ALPN.to_vec());
        }
        let endpoint = zerok_wire::bind(key.clone(), config.server.listen, alpns, net).await?;
        let attachments = match archive {
            Some(backend) => Some(Arc::new(
                Attachments::open(
                    &dir.join("content"),
                    backend,
                    zerok_core::sync::content::encrypted_len(config.storage.max_content_bytes),
                    config.storage.max_group_content_bytes,
                )
                .await?,
            )),
            None => None,
        };
        let mut state = State::new(config, storage, endpoint.clone(), attachments);
        state.waker = push_waker(&state.config.push, &key)?;
        let state = Arc::new(state);
        let blobs = state.attachments.as_ref().map(|a| a.protocol(Arc::downgrade(&state)));
        let http_addr = if state.config.http.enabled {
            let listener = tokio::net::TcpListener::bind(state.config.http.listen)
                .await
                .map_err(|e| Error::Io(format!("HTTP {}: {e}", state.config.http.listen)))?;
            let addr = listener.local_addr().ok();
            state.tasks.spawn(crate::http::serve(listener, state.clone(), state.stop_token().clone()));
            addr
        } else {
            None
        };
        state.tasks.spawn(accept_loop(endpoint.clone(), state.clone(), blobs));
        state.tasks.spawn(cleanup_loop(state.clone()));
        Ok(Relay { endpoint, state, http_addr })
    }

    /// The address clients pass as `ADDR`: `ENDPOINT_ID@IP:PORT`.
    pub fn addr(&self) -> RelayAddr {
        RelayAddr { id: *self.state.relay_id(), addr: self.endpoint.bound_sockets().first().copied() }
    }

    /// The HTTP address actually bound (for `/health`, `/metrics`).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Shared state (tests and benches inspect it).
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// Graceful shutdown: stop accepting, tell sessions, wait (bounded) for in-flight work,
    /// close the endpoint. Every acknowledged push is already durable.
    pub async fn shutdown(self) {
        self.state.stop_token().cancel();
        self.state.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.state.tasks.wait()).await;
        self.state.storage.stop().await;
        self.endpoint.close().await;
        if let Some(content) = &self.state.attachments {
            content.shutdown().await;
        }
    }
}

/// Accepts connections: an address over its share of the waiting room is refused before
/// the QUIC handshake; the others get a place (see `admission`) and a session task.
async fn accept_loop(endpoint: Endpoint, state: Arc<State>, blobs: Option<BlobsProtocol>) {
    let hello_timeout = Duration::from_secs(state.config.limits.hello_timeout_secs);
    loop {
        let incoming = tokio::select! {
            _ = state.stop_token().cancelled() => return,
            i = endpoint.accept() => match i { Some(i) => i, None => return },
        };
        let ip = match incoming.remote_addr() {
            IncomingAddr::Ip(addr) => Some(addr.ip()),
            _ => None,
        };
        // A crowded room takes only peers that proved their address (a QUIC retry costs
        // them a round trip), so forged source addresses cannot spend others' shares.
        if state.admission.crowded() && !incoming.remote_addr_validated() {
            let _ = incoming.retry();
            continue;
        }
        let Some(ticket) = state.admission.admit(ip) else {
            Metrics::inc(&state.metrics.connections_refused_total);
            incoming.refuse();
            continue;
        };
        let (state, blobs) = (state.clone(), blobs.clone());
        state.tasks.clone().spawn(async move {
            let Ok(Ok(conn)) = tokio::time::timeout(hello_timeout, incoming).await else { return };
            Metrics::inc(&state.metrics.connections_total);
            if state.shutting_down() {
                CloseCode::ShuttingDown.close(&conn, "relay shutting down");
                return;
            }
            if conn.alpn() == iroh_blobs::ALPN {
                // Attachments (vault mode): each request is asked of the archive's gate.
                drop(ticket);
                let (Some(blobs), Some(_slot)) = (blobs, state.sessions_per_ip.take(ip)) else {
                    CloseCode::TooManySessions.close(&conn, "too many sessions");
                    return;
                };
                let _ = blobs.accept(conn).await;
                return;
            }
            session::run(state, conn, ip, ticket).await;
        });
    }
}

/// The configured push gateway's waker; tags are keyed by a key derived from the relay's.
fn push_waker(push: &crate::PushConfig, key: &SecretKey) -> Result<Option<Waker>> {
    let gateway: Arc<dyn PushGateway> = match (push.gateway, &push.webhook_url) {
        (PushGatewayKind::None, _) => return Ok(None),
        (PushGatewayKind::Log, _) => Arc::new(LogGateway),
        (PushGatewayKind::Webhook, Some(url)) => Arc::new(WebhookGateway::new(url)?),
        (PushGatewayKind::Webhook, None) => return Err(Error::Config("[push] webhook-url missing".into())),
    };
    let secret = blake3::derive_key("zerok relay push tag v1", &key.to_bytes());
    Ok(Some(Waker::start(gateway, Duration::from_secs(push.min_interval_secs), secret)))
}

async fn cleanup_loop(state: Arc<State>) {
    let mut tick = tokio::time::interval(Duration::from_secs(state.config.cleanup.interval_secs.max(1)));
    loop {
        tokio::select! {
            _ = state.stop_token().cancelled() => return,
            _ = tick.tick() => {}
        }
        match state.storage.cleanup(state.now()).await {
            Ok(n) => {
                state.metrics.expired_total.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(removed = n, "cleanup");
            }
            Err(e) => tracing::warn!(error = %e, "cleanup failed"),
        }
        state.forget_quiet();
    }
}
