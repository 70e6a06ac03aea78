//! What every session shares: configuration, storage, counters, the relay's clock and
//! identity, rate limits, the waiting room and session slots, and the registry of online
//! devices that notices go to.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use iroh::endpoint::Connection;
use tokio::sync::Semaphore;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use zerok_core::sync::{DeviceId, GroupId, Message, Redacted};

use crate::{
    Config, Error, Result,
    admission::{Admission, Sessions},
    metrics::Metrics,
    notices::Notices,
    storage::Storage,
};

/// An online device: its connection and the notices waiting for it.
#[derive(Clone)]
pub struct Online {
    /// The session's connection.
    pub conn: Connection,
    /// Notices for it, sent by the session's sender.
    pub notices: Arc<Notices>,
}

/// Request rates: per device, per group, and in all.
struct Limits {
    per_device: DefaultKeyedRateLimiter<DeviceId>,
    per_group: DefaultKeyedRateLimiter<GroupId>,
    global: DefaultDirectRateLimiter,
}

/// State shared by every session.
pub struct State {
    /// Configuration.
    pub config: Config,
    /// Messages, devices, rosters, invites.
    pub storage: Storage,
    /// Counters.
    pub metrics: Metrics,
    /// When the relay started (tokio time, so tests can pause and advance it).
    pub started: tokio::time::Instant,
    /// Wall-clock time at start, since the Unix epoch.
    started_unix: Duration,
    relay_id: [u8; 32],
    online: Mutex<HashMap<GroupId, HashMap<DeviceId, Online>>>,
    limits: Limits,
    /// Connections waiting for HELLO.
    pub admission: Arc<Admission>,
    /// Slots of sessions past HELLO.
    pub sessions: Arc<Semaphore>,
    /// Sessions per address.
    pub sessions_per_ip: Arc<Sessions>,
    stop: CancellationToken,
    /// Tasks that must finish before shutdown completes (sessions, notifies, writes).
    pub tasks: TaskTracker,
    /// Vault mode: archived attachments.
    pub attachments: Option<Arc<crate::content::Attachments>>,
    /// The relay's endpoint (a vault relay dials devices to fetch attachments).
    pub endpoint: iroh::Endpoint,
    /// Wakes offline devices (none when no push gateway is configured).
    pub waker: Option<crate::push::Waker>,
}

impl State {
    /// Shared state over `storage` for the relay with endpoint id `relay_id`.
    pub fn new(
        config: Config,
        storage: Storage,
        endpoint: iroh::Endpoint,
        attachments: Option<Arc<crate::content::Attachments>>,
    ) -> Self {
        let relay_id = *endpoint.id().as_bytes();
        let nz = |n: u32| NonZeroU32::new(n.max(1)).expect("at least 1");
        let l = &config.limits;
        let limits = Limits {
            per_device: RateLimiter::keyed(Quota::per_minute(nz(l.messages_per_minute))),
            per_group: RateLimiter::keyed(Quota::per_second(nz(l.group_per_second))),
            global: RateLimiter::direct(Quota::per_second(nz(l.global_per_second))),
        };
        Self {
            admission: Admission::new(l.max_pending, l.max_pending_per_ip),
            sessions: Arc::new(Semaphore::new(l.max_sessions)),
            sessions_per_ip: Sessions::new(l.max_sessions_per_ip),
            limits,
            relay_id,
            storage,
            config,
            metrics: Metrics::default(),
            started: tokio::time::Instant::now(),
            started_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default(),
            online: Mutex::new(HashMap::new()),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
            attachments,
            endpoint,
            waker: None,
        }
    }

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

    /// Spends one request of `device` in `group` from each rate limit.
    ///
    /// # Errors
    /// [`Error::RateLimited`].
    pub fn allow(&self, group: &GroupId, device: &DeviceId) -> Result<()> {
        let l = &self.limits;
        let ok =
            l.per_device.check_key(device).is_ok() && l.per_group.check_key(group).is_ok() && l.global.check().is_ok();
        if !ok {
            Metrics::inc(&self.metrics.rate_limited_total);
            return Err(Error::RateLimited);
        }
        Ok(())
    }

    /// Forgets rate-limit state of devices and groups that have been quiet.
    pub fn forget_quiet(&self) {
        self.limits.per_device.retain_recent();
        self.limits.per_group.retain_recent();
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

    /// Queues `msg` for every online device of the group but `except` (see `notices`).
    pub fn broadcast(&self, group: &GroupId, except: Option<&DeviceId>, msg: &Message) {
        for (device, online) in self.online_devices(group) {
            if Some(&device) != except {
                online.notices.push(msg.clone());
            }
        }
    }
}

/// A group id for logs.
pub fn log_group(g: &GroupId) -> String {
    Redacted(g).to_string()
}
