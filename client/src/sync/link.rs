//! A client's links to its relays while it lives: which relays are up, the overall
//! [`ConnectionStatus`], the events that tell an app (`Connected`, `Disconnected`,
//! `Reconnecting`, `StatusChanged`), and the task that dials a lost relay again with the
//! spec's backoff (1, 2, 4 … 30 s, each plus 0–5 s of jitter) until it is back or the
//! client is gone — whether or not the app is making requests. A relay dialled back is
//! handed to the client, which takes it in at its next call.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
};

use tokio::sync::{broadcast, mpsc};
use zerok_core::sync::backoff::Backoff;
use zerok_wire::RelayAddr;

use super::{
    SyncEvent,
    relays::{Dialer, Done},
};

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

/// The relays' state, shared by the client, its connections and the redial task.
#[derive(Debug)]
pub(super) struct Links {
    events: broadcast::Sender<SyncEvent>,
    lost: mpsc::UnboundedSender<RelayAddr>,
    state: Mutex<LinkState>,
}

#[derive(Debug)]
struct LinkState {
    /// Open connections of each relay (a reconnect may overlap the old one for a moment).
    up: BTreeMap<String, BTreeSet<usize>>,
    /// Relays being dialled again, and the attempt under way (1 while the first is pending).
    dialling: BTreeMap<String, u32>,
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
    pub fn new(events: broadcast::Sender<SyncEvent>) -> (Arc<Self>, mpsc::UnboundedReceiver<RelayAddr>) {
        let (lost, rx) = mpsc::unbounded_channel();
        let state = LinkState {
            up: BTreeMap::new(),
            dialling: BTreeMap::new(),
            status: ConnectionStatus::Disconnected,
            closed: false,
        };
        (Arc::new(Self { events, lost, state: Mutex::new(state) }), rx)
    }

    /// The status now.
    pub fn status(&self) -> ConnectionStatus {
        self.state.lock().expect("links").status
    }

    fn update(&self, change: impl FnOnce(&mut LinkState) -> Option<SyncEvent>) {
        let (event, status) = {
            let mut s = self.state.lock().expect("links");
            let event = change(&mut s);
            let status = match (s.closed, s.up.is_empty(), s.dialling.values().max()) {
                (true, ..) => ConnectionStatus::Disconnected,
                (false, false, _) => ConnectionStatus::Connected,
                (false, true, Some(&attempt)) => ConnectionStatus::Reconnecting { attempt },
                (false, true, None) => ConnectionStatus::Disconnected,
            };
            let changed = std::mem::replace(&mut s.status, status) != status;
            (event, changed.then_some(status))
        };
        if let Some(e) = event {
            let _ = self.events.send(e);
        }
        if let Some(status) = status {
            let _ = self.events.send(SyncEvent::StatusChanged { status });
        }
    }

    /// Connection `conn` to `relay` said WELCOME.
    pub fn up(&self, relay: &RelayAddr, conn: usize) {
        let name = relay.to_string();
        self.update(|s| {
            s.dialling.remove(&name);
            let fresh = s.up.get(&name).is_none_or(BTreeSet::is_empty);
            s.up.entry(name.clone()).or_default().insert(conn);
            fresh.then_some(SyncEvent::Connected { relay: name })
        });
    }

    /// Connection `conn` to `relay` ended; a relay whose last connection the relay or the
    /// network ended (not this device) is dialled again.
    pub fn down(&self, relay: &RelayAddr, conn: usize, reason: String, by_peer: bool) {
        let name = relay.to_string();
        let mut ask = false;
        self.update(|s| {
            let open = s.up.get_mut(&name)?;
            open.remove(&conn);
            if !open.is_empty() {
                return None;
            }
            s.up.remove(&name);
            ask = by_peer && s.ask(&name);
            Some(SyncEvent::Disconnected { relay: name.clone(), reason })
        });
        if ask {
            let _ = self.lost.send(relay.clone());
        }
    }

    /// Asks for `relay` to be dialled again (unless it is already, or the client closed).
    pub fn redial(&self, relay: &RelayAddr) {
        let name = relay.to_string();
        let mut ask = false;
        self.update(|s| {
            ask = s.ask(&name);
            None
        });
        if ask {
            let _ = self.lost.send(relay.clone());
        }
    }

    /// Attempt `attempt` at dialling `relay` again is about to start.
    pub fn attempt(&self, relay: &RelayAddr, attempt: u32) {
        let name = relay.to_string();
        self.update(|s| {
            s.dialling.insert(name.clone(), attempt);
            Some(SyncEvent::Reconnecting { relay: name, attempt })
        });
    }

    /// `relay` will not be dialled again (it refused this device, or the group moved on).
    pub fn give_up(&self, relay: &RelayAddr, error: Option<String>) {
        let name = relay.to_string();
        self.update(|s| {
            s.dialling.remove(&name);
            error.map(|message| SyncEvent::Error { message: format!("{name}: {message}") })
        });
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
        self.update(|s| {
            s.closed = true;
            s.dialling.clear();
            None
        });
    }
}

/// Dials each relay `lost` names again, with backoff, until it answers (handed over as
/// [`Done::Dialled`]), refuses this device, or the client closes. Ends with the client.
pub(super) async fn redial(
    dialer: Dialer,
    links: Arc<Links>,
    lost: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<RelayAddr>>>,
    done: mpsc::UnboundedSender<Done>,
    jitter: bool,
) {
    let mut lost = lost.lock().await;
    let mut dials = tokio::task::JoinSet::new();
    loop {
        let relay = tokio::select! {
            relay = lost.recv() => match relay {
                Some(r) => r,
                None => return,
            },
            Some(_) = dials.join_next(), if !dials.is_empty() => continue,
        };
        let (dialer, links, done) = (dialer.clone(), links.clone(), done.clone());
        dials.spawn(async move {
            let mut backoff = Backoff::default();
            for attempt in 1..=u32::MAX {
                links.attempt(&relay, attempt);
                tokio::time::sleep(backoff.next_delay(super::relays::seed(jitter))).await;
                if links.is_closed() {
                    return;
                }
                match dialer.dial(&relay, 0).await {
                    Ok(conn) => {
                        let group = dialer.keys.id();
                        if done.send(Done::Dialled { relay, group, conn }).is_err() {
                            tracing::debug!("a relay came back after its client was gone");
                        }
                        return;
                    }
                    Err(e) if e.is_refusal() => {
                        links.give_up(&relay, Some(e.to_string()));
                        return;
                    }
                    Err(e) => tracing::debug!(error = %e, attempt, "a relay is still down"),
                }
            }
        });
    }
}
