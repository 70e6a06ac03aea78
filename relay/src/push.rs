//! Waking offline devices (spec §16). On a PUSH, each other member of the group that is
//! offline and registered a push token is sent a *silent* push through the configured
//! [`PushGateway`]; its app wakes and pulls. A wake carries nothing of the group: the token,
//! the platform and app, a tag that is the same for one device in one group at this relay
//! and means nothing elsewhere, and the cursor. Wakes go out from a bounded queue off the
//! push path (a full queue drops them: a wake is a hint, the next PUSH sends another), and
//! one device is woken at most once per `min-interval-secs`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use zerok_core::sync::{DeviceId, GroupId, Redacted, message::PushPlatform};

use crate::{Error, Result, store::PushToken};

/// One silent push.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WakeUp {
    /// The device's token.
    pub token: String,
    /// Its platform.
    pub platform: PushPlatform,
    /// Its app (APNs bundle id).
    pub app_id: Option<String>,
    /// Opaque: the same for one device in one group at this relay, and nothing else.
    pub tag: String,
    /// The group's newest cursor.
    pub cursor: u64,
}

/// Where wakes go: an operator's APNs/FCM bridge, or the log.
pub trait PushGateway: Send + Sync + 'static {
    /// Sends one wake.
    fn wake(&self, wake: WakeUp) -> BoxFuture<'_, Result<()>>;
}

/// Writes each wake to the log (token and tag redacted).
pub struct LogGateway;

impl PushGateway for LogGateway {
    fn wake(&self, wake: WakeUp) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            tracing::info!(token = %Redacted(&wake.token), platform = ?wake.platform, cursor = wake.cursor, "push wake");
            Ok(())
        })
    }
}

/// POSTs each wake as JSON ([`WakeUp`]) to an operator's URL.
pub struct WebhookGateway {
    url: String,
    client: reqwest::Client,
}

/// Longest a webhook may take to answer.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

impl WebhookGateway {
    /// A gateway posting to `url` (`http://` or `https://`).
    ///
    /// # Errors
    /// [`Error::Config`] for another scheme.
    pub fn new(url: &str) -> Result<Self> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::Config(format!("push webhook-url {url:?}: http:// or https:// expected")));
        }
        let client = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .build()
            .map_err(|e| Error::Config(format!("push webhook: {e}")))?;
        Ok(Self { url: url.to_string(), client })
    }
}

impl PushGateway for WebhookGateway {
    fn wake(&self, wake: WakeUp) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let body = serde_json::to_vec(&wake).map_err(|e| Error::Io(e.to_string()))?;
            let reply = self
                .client
                .post(&self.url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map_err(|e| Error::Io(format!("push webhook: {}", e.without_url())))?;
            if !reply.status().is_success() {
                return Err(Error::Io(format!("push webhook answered {}", reply.status())));
            }
            Ok(())
        })
    }
}

/// Wakes waiting to go out.
const QUEUE: usize = 1024;

/// Sends wakes through a gateway, coalesced per device.
pub struct Waker {
    queue: tokio::sync::mpsc::Sender<WakeUp>,
    last: Mutex<HashMap<(GroupId, DeviceId), tokio::time::Instant>>,
    interval: Duration,
    secret: [u8; 32],
}

impl Waker {
    /// Starts the worker sending through `gateway`; `secret` keys the tags.
    pub fn start(gateway: Arc<dyn PushGateway>, interval: Duration, secret: [u8; 32]) -> Self {
        let (queue, mut rx) = tokio::sync::mpsc::channel::<WakeUp>(QUEUE);
        tokio::spawn(async move {
            while let Some(wake) = rx.recv().await {
                if let Err(e) = gateway.wake(wake).await {
                    tracing::warn!(error = %e, "a push wake failed");
                }
            }
        });
        Self { queue, last: Mutex::default(), interval, secret }
    }

    /// Queues a wake for each of `tokens` not woken within the interval.
    pub fn wake(&self, group: &GroupId, tokens: Vec<(DeviceId, PushToken)>, cursor: u64) {
        let now = tokio::time::Instant::now();
        let mut last = self.last.lock().expect("not poisoned");
        last.retain(|_, at| now.duration_since(*at) < self.interval);
        for (device, t) in tokens {
            if last.contains_key(&(*group, device)) {
                continue;
            }
            let tag = blake3::keyed_hash(&self.secret, &[group.0, device.0].concat()).to_hex()[..32].to_string();
            let wake = WakeUp { token: t.token, platform: t.platform, app_id: t.app_id, tag, cursor };
            if self.queue.try_send(wake).is_ok() {
                last.insert((*group, device), now);
            }
        }
    }
}
