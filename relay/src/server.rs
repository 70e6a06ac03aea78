//! The relay: an iroh endpoint accepting `/zerok-sync/1` connections, one session per
//! connection, the online-device registry for NOTIFY, periodic cleanup, and an ordered
//! shutdown (stop accepting → close sessions → let in-flight writes finish → HTTP off).

use std::{
    collections::HashMap,
    net::SocketAddr,
    num::NonZeroU32,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use iroh::{Endpoint, SecretKey, endpoint::Connection};
use tokio::sync::Semaphore;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use zerok_core::sync::{DeviceId, GroupId, Redacted};
use zerok_vault::Backend;
use zerok_wire::{NetOptions, RelayAddr};

use crate::{
    Config, StorageMode, Store, archive::Archive, committer::Committer, metrics::Metrics, notices::Notices, session,
};

/// File in the data folder holding the relay's identity key (mode 0600).
pub const KEY_FILE: &str = "relay.key";
/// File in the data folder holding the transit store.
pub const STORE_FILE: &str = "transit.redb";

/// Relay start-up failures.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data folder or key file.
    #[error("{0}")]
    Io(String),
    /// The store.
    #[error(transparent)]
    Store(#[from] crate::StoreError),
    /// The endpoint.
    #[error(transparent)]
    Wire(#[from] zerok_wire::WireError),
    /// Settings that do not fit together, or an object store that cannot be opened.
    #[error("{0}")]
    Config(String),
}

/// An online device: its connection and the notices waiting for it.
#[derive(Clone)]
pub struct Online {
    /// The session's connection.
    pub conn: Connection,
    /// Notices for it, sent by the session's sender.
    pub notices: Arc<Notices>,
}

/// State shared by every session.
pub struct State {
    /// Configuration.
    pub config: Config,
    /// The durable store (in vault mode, the metadata only).
    pub store: Arc<Store>,
    /// Vault mode: payloads in object storage.
    pub archive: Option<Arc<Archive>>,
    /// Transit mode: pushes share durable commits.
    pub committer: Committer,
    /// Counters.
    pub metrics: Metrics,
    /// When the relay started (tokio time, so tests can pause and advance it).
    pub started: tokio::time::Instant,
    /// Wall-clock time at start, since the Unix epoch.
    started_unix: Duration,
    relay_id: [u8; 32],
    online: Mutex<HashMap<GroupId, HashMap<DeviceId, Online>>>,
    per_device: DefaultKeyedRateLimiter<DeviceId>,
    global: DefaultDirectRateLimiter,
    stop: CancellationToken,
    /// Tasks that must finish before shutdown completes (sessions, notifies, writes).
    pub tasks: TaskTracker,
}

impl State {
    /// The relay's clock, Unix seconds: wall time at start plus tokio time since, so TTLs
    /// and cleanup follow `tokio::time::pause`/`advance` in tests.
    pub fn now(&self) -> u64 {
        (self.started_unix + self.started.elapsed()).as_secs()
    }

    /// The relay's endpoint id.
    pub fn relay_id(&self) -> &[u8; 32] {
        &self.relay_id
    }

    /// The relay's endpoint id in hex.
    pub fn relay_id_hex(&self) -> String {
        hex::encode(self.relay_id)
    }

    /// True once shutdown began.
    pub fn shutting_down(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Cancelled at shutdown.
    pub fn stop_token(&self) -> &CancellationToken {
        &self.stop
    }

    /// (groups, messages, bytes) stored, for health and metrics.
    pub async fn store_totals(&self) -> (u64, u64, u64) {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.totals()).await.ok().and_then(|r| r.ok()).unwrap_or_default()
    }

    /// Both rate limits for one PUSH/PULL by `device`.
    pub fn allow(&self, device: &DeviceId) -> bool {
        let ok = self.global.check().is_ok() && self.per_device.check_key(device).is_ok();
        if !ok {
            Metrics::inc(&self.metrics.rate_limited_total);
        }
        ok
    }

    /// Registers a session's connection for notices; returns its queue, which the session's
    /// sender drains (see [`Notices::run`]).
    pub fn go_online(&self, group: GroupId, device: DeviceId, conn: Connection) -> Arc<Notices> {
        let notices = Arc::new(Notices::default());
        let online = Online { conn, notices: notices.clone() };
        self.online.lock().expect("registry").entry(group).or_default().insert(device, online);
        notices
    }

    /// Removes a session's registration (only if it is still this connection).
    pub fn go_offline(&self, group: &GroupId, device: &DeviceId, conn: &Connection) {
        let mut online = self.online.lock().expect("registry");
        if let Some(devices) = online.get_mut(group) {
            if devices.get(device).is_some_and(|o| o.conn.stable_id() == conn.stable_id()) {
                devices.remove(device);
            }
            if devices.is_empty() {
                online.remove(group);
            }
        }
    }

    /// Devices of a group online now.
    pub fn online_devices(&self, group: &GroupId) -> Vec<(DeviceId, Online)> {
        let online = self.online.lock().expect("registry");
        online.get(group).map(|d| d.iter().map(|(k, v)| (*k, v.clone())).collect()).unwrap_or_default()
    }
}

/// A running relay.
pub struct Relay {
    endpoint: Endpoint,
    state: Arc<State>,
    http_addr: Option<SocketAddr>,
}

fn load_or_create_key(dir: &Path) -> Result<SecretKey, StartError> {
    let path = dir.join(KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let raw: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| StartError::Io(format!("{}: not a 32-byte key", path.display())))?;
            Ok(SecretKey::from_bytes(&raw))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SecretKey::generate();
            use std::{io::Write, os::unix::fs::OpenOptionsExt};
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| StartError::Io(format!("{}: {e}", path.display())))?;
            f.write_all(&key.to_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| StartError::Io(format!("{}: {e}", path.display())))?;
            Ok(key)
        }
        Err(e) => Err(StartError::Io(format!("{}: {e}", path.display()))),
    }
}

/// The transit store, or in vault mode the metadata store plus the archive (on `backend`,
/// else opened from `object-store`), rebuilt from the bucket where the local metadata lacks
/// what the bucket holds.
async fn open_storage(
    config: &Config,
    backend: Option<Backend>,
) -> Result<(Arc<Store>, Option<Arc<Archive>>), StartError> {
    let path = config.storage.data_dir.join(STORE_FILE);
    let (StorageMode::Vault, Some(url)) = (config.storage.mode, &config.storage.object_store) else {
        return Ok((Arc::new(Store::open(&path)?), None));
    };
    let backend = match backend {
        Some(b) => b,
        None => zerok_vault::Location::parse(url)
            .and_then(|l| l.open(url))
            .map_err(|e| StartError::Config(format!("object-store: {e}")))?,
    };
    let store = Arc::new(Store::open(&path)?.keep_history());
    let archive = Archive::new(backend, store.clone());
    let rebuilt = archive.rebuild().await?;
    tracing::info!(
        groups = rebuilt.groups,
        indexed = rebuilt.messages,
        revocations = rebuilt.revoked,
        "vault mode: archive checked against local metadata"
    );
    Ok((store, Some(Arc::new(archive))))
}

impl Relay {
    /// Opens the store, binds the endpoint and HTTP, and starts accepting.
    ///
    /// # Errors
    /// [`StartError`] when the data folder, key, store or sockets cannot be set up.
    pub async fn start(config: Config) -> Result<Relay, StartError> {
        Self::start_on(config, None).await
    }

    /// As [`Relay::start`]; in vault mode, keeps payloads in `backend` (an object store the
    /// embedding program opened itself) instead of opening `object-store`.
    ///
    /// # Errors
    /// As [`Relay::start`].
    pub async fn start_on(config: Config, backend: Option<Backend>) -> Result<Relay, StartError> {
        let dir = &config.storage.data_dir;
        std::fs::create_dir_all(dir).map_err(|e| StartError::Io(format!("{}: {e}", dir.display())))?;
        let key = load_or_create_key(dir)?;
        config.check().map_err(StartError::Config)?;
        let (store, archive) = open_storage(&config, backend).await?;
        let committer = Committer::start(store.clone(), config.storage.max_group_bytes)
            .map_err(|e| StartError::Io(format!("store writer: {e}")))?;
        let net = NetOptions { iroh_relays: config.server.iroh_relays, discovery: config.server.discovery };
        let endpoint =
            zerok_wire::bind(key.clone(), config.server.listen, vec![zerok_wire::ALPN.to_vec()], net).await?;
        let nz = |n: u32| NonZeroU32::new(n.max(1)).expect("at least 1");
        let state = Arc::new(State {
            per_device: RateLimiter::keyed(Quota::per_minute(nz(config.limits.messages_per_minute))),
            global: RateLimiter::direct(Quota::per_second(nz(config.limits.global_per_second))),
            relay_id: *key.public().as_bytes(),
            config,
            store,
            archive,
            committer,
            metrics: Metrics::default(),
            started: tokio::time::Instant::now(),
            started_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default(),
            online: Mutex::new(HashMap::new()),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        let http_addr = if state.config.http.enabled {
            let listener = tokio::net::TcpListener::bind(state.config.http.listen)
                .await
                .map_err(|e| StartError::Io(format!("HTTP {}: {e}", state.config.http.listen)))?;
            let addr = listener.local_addr().ok();
            state.tasks.spawn(crate::http::serve(listener, state.clone(), state.stop.clone()));
            addr
        } else {
            None
        };
        state.tasks.spawn(accept_loop(endpoint.clone(), state.clone()));
        state.tasks.spawn(cleanup_loop(state.clone()));
        Ok(Relay { endpoint, state, http_addr })
    }

    /// The address clients pass as `ADDR`: `ENDPOINT_ID@IP:PORT`.
    pub fn addr(&self) -> RelayAddr {
        RelayAddr { id: self.state.relay_id, addr: self.endpoint.bound_sockets().first().copied() }
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
        self.state.stop.cancel();
        self.state.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.state.tasks.wait()).await;
        self.state.committer.stop().await;
        self.endpoint.close().await;
    }
}

async fn accept_loop(endpoint: Endpoint, state: Arc<State>) {
    let sessions = Arc::new(Semaphore::new(state.config.limits.max_sessions));
    loop {
        let incoming = tokio::select! {
            _ = state.stop.cancelled() => return,
            i = endpoint.accept() => match i { Some(i) => i, None => return },
        };
        let state = state.clone();
        let sessions = sessions.clone();
        state.tasks.clone().spawn(async move {
            let Ok(conn) = incoming.await else { return };
            Metrics::inc(&state.metrics.connections_total);
            let Ok(permit) = sessions.try_acquire_owned() else {
                conn.close(2u32.into(), b"too many sessions");
                return;
            };
            session::run(state, conn).await;
            drop(permit);
        });
    }
}

async fn cleanup_loop(state: Arc<State>) {
    let mut tick = tokio::time::interval(Duration::from_secs(state.config.cleanup.interval_secs.max(1)));
    loop {
        tokio::select! {
            _ = state.stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let store = state.store.clone();
        let now = state.now();
        match tokio::task::spawn_blocking(move || store.cleanup(now)).await {
            Ok(Ok(n)) => {
                state.metrics.expired_total.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(removed = n, "cleanup");
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "cleanup failed"),
            Err(_) => {}
        }
        state.per_device.retain_recent();
    }
}

/// A group id for logs.
pub fn log_group(g: &GroupId) -> String {
    Redacted(g).to_string()
}

#[cfg(test)]
mod tests {
    use zerok_core::sync::{BlobId, DeviceId, GroupId};

    use super::*;
    use crate::NewBlob;

    #[tokio::test(start_paused = true)]
    async fn ttl_expiry_follows_the_clock() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        config.http.enabled = false;
        config.storage.data_dir = dir.path().to_path_buf();
        config.cleanup.interval_secs = 60;
        let relay = Relay::start(config).await.unwrap();
        let state = relay.state().clone();
        let (group, device) = (GroupId([1; 32]), DeviceId([2; 32]));
        for (n, ttl_secs) in [(1u8, 3600), (2, 7 * 24 * 3600)] {
            let id = BlobId([n; 16]);
            let blob =
                NewBlob { group: &group, sender: &device, blob_id: &id, payload: b"x", ttl_secs, now: state.now() };
            state.store.push(&blob, 1 << 20).unwrap();
        }
        tokio::time::advance(Duration::from_secs(3600 + 61)).await;
        tokio::task::yield_now().await;
        for _ in 0..100 {
            if state.store.pull(&group, 0, 10).unwrap().0.len() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let left = state.store.pull(&group, 0, 10).unwrap().0;
        assert_eq!(
            left.iter().map(|b| b.cursor).collect::<Vec<_>>(),
            [2],
            "the one-hour message expired, the week one stays"
        );
        relay.shutdown().await;
    }
}
