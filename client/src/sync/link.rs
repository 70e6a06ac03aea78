//! A client's links to its relays while it lives: which relays are up, the overall
//! [`ConnectionStatus`], the events that tell an app (`Connected`, `Disconnected`,
//! `Reconnecting`, `StatusChanged`), and the task that dials a lost relay again with the
//! spec's backoff (1, 2, 4 … 30 s, each plus 0–5 s of jitter) until it is back or the
//! client is gone — whether or not the app is making requests.
//!
//! One dialling loop per relay at most. A relay whose sessions keep ending soon after they
//! start (one that says WELCOME and hangs up: full, or hostile) starts each new loop
//! further along its backoff, so it is not hammered. A session dialled back waits in one
//! slot per relay (a newer one replaces it) until the client takes it in at its next call.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::{broadcast, mpsc};
use zerok_core::sync::{GroupId, backoff::Backoff};
use zerok_wire::RelayAddr;

use super::{RelayConn, SyncEvent, relays::Dialer};

/// Where a client stands with its relays, as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionStatus {
    /// No relay connected and none being dialled (before connecting, after disconnecting).
    Disconnected,
    /// At least one relay connected.
    Connected,
    /// No relay connected; dialling again, this many attempts so far.
    Reconnecting {
        /// Attempts made at the relay tried most.
        attempt: u32,
    },
}

/// A session shorter than this counts as a flap: the next redial starts further along
/// the backoff.
const STABLE: Duration = Duration::from_secs(30);
/// Most backoff steps a flapping relay's redial skips (past this the delay is at its cap).
const MAX_FLAPS: u32 = 8;

/// A relay to dial again, and this device's last cursor there (for its HELLO).
pub(super) type Lost = (RelayAddr, u64);

/// The relays' state, shared by the client, its connections and the redial task.
pub(super) struct Links {
    events: broadcast::Sender<SyncEvent>,
    lost: mpsc::UnboundedSender<Lost>,
    state: Mutex<LinkState>,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links").field("status", &self.status()).finish()
    }
}

/// A session dialled back, waiting for the client to take it in.
pub(super) struct Dialled {
    pub relay: RelayAddr,
    pub group: GroupId,
    pub conn: RelayConn,
}

struct LinkState {
    /// Open sessions of each relay (a reconnect may overlap the old one for a moment).
    up: BTreeMap<String, BTreeSet<usize>>,
    /// When each relay's current run of sessions began, and how many ended early.
    since: BTreeMap<String, Instant>,
    flaps: BTreeMap<String, u32>,
    /// Relays being dialled again, and the attempt under way (1 while the first is pending).
    dialling: BTreeMap<String, u32>,
    /// Sessions dialled back, one per relay.
    ready: BTreeMap<String, Dialled>,
    status: ConnectionStatus,
    closed: bool,
}

impl LinkState {
    /// Marks `relay` as to be dialled again (its first attempt pending); false when it
    /// already is, or the client closed.
    fn ask(&mut self, relay: &str) -> bool {
        if self.closed || self.dialling.contains_key(relay) {
            return false;
        }
        self.dialling.insert(relay.to_string(), 1);
        true
    }
}

impl Links {
    /// New links reporting on `events`; the receiver gets each relay to dial again.
    pub fn new(events: broadcast::Sender<SyncEvent>) -> (Arc<Self>, mpsc::UnboundedReceiver<Lost>) {
        let (lost, rx) = mpsc::unbounded_channel();
        let state = LinkState {
            up: BTreeMap::new(),
            since: BTreeMap::new(),
            flaps: BTreeMap::new(),
            dialling: BTreeMap::new(),
            ready: BTreeMap::new(),
            status: ConnectionStatus::Disconnected,
            closed: false,
        };
        (Arc::new(Self { events, lost, state: Mutex::new(state) }), rx)
    }

    /// The status now.
    pub fn status(&self) -> ConnectionStatus {
        self.state.lock().expect("links").status
    }

    /// Applies `change`, then sends its event and any status change — under the lock, so
    /// events come in the order the state changed.
    fn update(&self, change: impl FnOnce(&mut LinkState) -> Option<SyncEvent>) {
        let mut s = self.state.lock().expect("links");
        let event = change(&mut s);
        let status = match (s.closed, s.up.is_empty(), s.dialling.values().max()) {
            (true, ..) => ConnectionStatus::Disconnected,
            (false, false, _) => ConnectionStatus::Connected,
            (false, true, Some(&attempt)) => ConnectionStatus::Reconnecting { attempt },
            (false, true, None) => ConnectionStatus::Disconnected,
        };
        let changed = std::mem::replace(&mut s.status, status) != status;
        if let Some(e) = event {
            let _ = self.events.send(e);
        }
        if changed {
            let _ = self.events.send(SyncEvent::StatusChanged { status });
        }
    }

    /// Session `conn` to `relay` said WELCOME.
    pub fn up(&self, relay: &RelayAddr, conn: usize) {
        let name = relay.to_string();
        self.update(|s| {
            s.dialling.remove(&name);
            s.since.entry(name.clone()).or_insert_with(Instant::now);
            let fresh = s.up.get(&name).is_none_or(BTreeSet::is_empty);
            s.up.entry(name.clone()).or_default().insert(conn);
            fresh.then_some(SyncEvent::Connected { relay: name })
        });
    }

    /// Session `conn` to `relay` (opened at `cursor`) ended; a relay whose last session the
    /// relay or the network ended (not this device) is dialled again.
    pub fn down(&self, (relay, cursor): (&RelayAddr, u64), conn: usize, reason: String, by_peer: bool) {
        let name = relay.to_string();
        let mut ask = false;
        self.update(|s| {
            let open = s.up.get_mut(&name)?;
            open.remove(&conn);
            if !open.is_empty() {
                return None;
            }
            s.up.remove(&name);
            let lasted = s.since.remove(&name).map(|t| t.elapsed());
            let flaps = s.flaps.entry(name.clone()).or_default();
            *flaps = match lasted {
                Some(d) if d >= STABLE => 0,
                _ => (*flaps + 1).min(MAX_FLAPS),
            };
            ask = by_peer && s.ask(&name);
            Some(SyncEvent::Disconnected { relay: name.clone(), reason })
        });
        if ask {
            let _ = self.lost.send((relay.clone(), cursor));
        }
    }

    /// Asks for `relay` to be dialled again, from this device's `cursor` there (unless it
    /// is dialled already, or the client closed).
    pub fn redial(&self, relay: &RelayAddr, cursor: u64) {
        let name = relay.to_string();
        let mut ask = false;
        self.update(|s| {
            ask = s.ask(&name);
            None
        });
        if ask {
            let _ = self.lost.send((relay.clone(), cursor));
        }
    }

    /// A request's own reconnect to `relay` is at `attempt` (reported; the relay's state
    /// is the redial task's).
    pub fn note_attempt(&self, relay: &RelayAddr, attempt: u32) {
        if !self.is_closed() {
            let _ = self.events.send(SyncEvent::Reconnecting { relay: relay.to_string(), attempt });
        }
    }

    /// The redial task's attempt `attempt` at `relay` is about to start; false when it is
    /// no longer wanted (the client closed, or restarted its dialling).
    fn attempt(&self, relay: &RelayAddr, attempt: u32) -> bool {
        let name = relay.to_string();
        let mut wanted = false;
        self.update(|s| {
            let n = s.dialling.get_mut(&name).filter(|_| !s.closed)?;
            *n = attempt;
            wanted = true;
            Some(SyncEvent::Reconnecting { relay: name, attempt })
        });
        wanted
    }

    /// Backoff steps the next redial of `relay` skips (its recent short sessions).
    fn flaps(&self, relay: &RelayAddr) -> u32 {
        self.state.lock().expect("links").flaps.get(&relay.to_string()).copied().unwrap_or(0)
    }

    /// `relay` will not be dialled again (it refused this device for good).
    fn give_up(&self, relay: &RelayAddr, error: String) {
        let name = relay.to_string();
        self.update(|s| {
            s.dialling.remove(&name)?;
            Some(SyncEvent::Error { message: format!("{name}: {error}") })
        });
    }

    /// Keeps a session dialled back for the client (closing one it did not take yet).
    fn hand_over(&self, dialled: Dialled) {
        let mut s = self.state.lock().expect("links");
        if s.closed {
            drop(s);
            dialled.conn.close();
            return;
        }
        let stale = s.ready.insert(dialled.relay.to_string(), dialled);
        drop(s);
        if let Some(old) = stale {
            old.conn.close();
        }
    }

    /// The sessions dialled back since the last call.
    pub fn take_ready(&self) -> Vec<Dialled> {
        std::mem::take(&mut self.state.lock().expect("links").ready).into_values().collect()
    }

    /// Whether the client closed: nothing is dialled any more.
    pub fn is_closed(&self) -> bool {
        self.state.lock().expect("links").closed
    }

    /// Forgets which relays were being dialled (their dials were stopped), so they can be
    /// asked for again.
    pub fn restart(&self) {
        self.update(|s| {
            s.dialling.clear();
            None
        });
    }

    /// The client is disconnecting.
    pub fn close(&self) {
        let ready = {
            let mut s = self.state.lock().expect("links");
            std::mem::take(&mut s.ready)
        };
        for d in ready.into_values() {
            d.conn.close();
        }
        self.update(|s| {
            s.closed = true;
            s.dialling.clear();
            None
        });
    }
}

/// Dials each relay `lost` names again, with backoff, until it answers (kept for the
/// client), refuses this device for good, or the client closes. Ends with the client.
pub(super) async fn redial(
    dialer: Dialer,
    links: Arc<Links>,
    lost: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Lost>>>,
    jitter: bool,
) {
    let mut lost = lost.lock().await;
    let mut dials = tokio::task::JoinSet::new();
    loop {
        let (relay, cursor) = tokio::select! {
            relay = lost.recv() => match relay {
                Some(r) => r,
                None => return,
            },
            Some(_) = dials.join_next(), if !dials.is_empty() => continue,
        };
        let (dialer, links) = (dialer.clone(), links.clone());
        dials.spawn(async move {
            let mut backoff = Backoff::default();
            for _ in 0..links.flaps(&relay) {
                backoff.next_delay(super::relays::seed(jitter));
            }
            for attempt in 1..=u32::MAX {
                if !links.attempt(&relay, attempt) {
                    return;
                }
                tokio::time::sleep(backoff.next_delay(super::relays::seed(jitter))).await;
                match dialer.dial(&relay, cursor).await {
                    Ok(conn) => {
                        links.hand_over(Dialled { relay, group: dialer.keys.id(), conn });
                        return;
                    }
                    Err(e) if e.is_refusal() && !e.is_retryable() => {
                        links.give_up(&relay, e.to_string());
                        return;
                    }
                    Err(e) => tracing::debug!(error = %e, attempt, "a relay is still down"),
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay() -> RelayAddr {
        let id = hex::encode(iroh::SecretKey::from_bytes(&[7; 32]).public().as_bytes());
        RelayAddr::parse(&format!("{id}@127.0.0.1:4433")).unwrap()
    }

    #[test]
    fn one_dialling_loop_per_relay_and_a_relay_that_hangs_up_at_once_backs_off_further() {
        let (events, mut seen) = broadcast::channel(64);
        let (links, mut lost) = Links::new(events);
        let r = relay();
        links.up(&r, 1);
        links.down((&r, 5), 1, "reset by peer".into(), true);
        assert_eq!(
            lost.try_recv().unwrap(),
            (r.clone(), 5),
            "a relay lost by the peer is dialled again, from its cursor"
        );
        // Asked again while its loop runs (a request's own reconnect gave up, a push failed):
        // no second loop.
        links.redial(&r, 5);
        links.redial(&r, 5);
        assert!(lost.try_recv().is_err(), "still one loop");
        assert_eq!(links.status(), ConnectionStatus::Reconnecting { attempt: 1 });
        assert_eq!(links.flaps(&r), 1, "a session that ended at once counts");
        links.up(&r, 2);
        links.down((&r, 5), 2, "closed by peer: too many sessions".into(), true);
        assert_eq!(links.flaps(&r), 2, "and the next redial starts further along the backoff");
        assert_eq!(lost.try_recv().unwrap(), (r.clone(), 5));
        // A loop stopped by a restart does not come back to life, and the relay can be asked
        // for again.
        links.restart();
        assert!(!links.attempt(&r, 2));
        links.redial(&r, 5);
        assert_eq!(lost.try_recv().unwrap(), (r.clone(), 5));
        // Closed: nothing is dialled, and the status says so.
        links.close();
        assert!(!links.attempt(&r, 3));
        links.redial(&r, 5);
        assert!(lost.try_recv().is_err());
        assert_eq!(links.status(), ConnectionStatus::Disconnected);
        let mut statuses = Vec::new();
        while let Ok(e) = seen.try_recv() {
            if let SyncEvent::StatusChanged { status } = e {
                statuses.push(status);
            }
        }
        assert_eq!(statuses.last(), Some(&ConnectionStatus::Disconnected));
        assert!(statuses.windows(2).all(|w| w[0] != w[1]), "only changes are reported: {statuses:?}");
    }
}
