//! The connections to a group's relays: requests with reconnects, pushes that return at the
//! first relay's PUSH_ACK while the others complete in the background, and the outbox.
//!
//! Relays that are lost are dialled again by `link`'s task, whatever the app is doing;
//! what it dials back is taken in here.
//!
//! A push goes to the relays in preference order until one acknowledges it (a relay that
//! answers `GROUP_ROTATED` stops it there: a relay that missed the rotation must not get
//! it); the rest are sent at once, each on its own task, so a dead or stalled secondary
//! costs a push nothing. The push stays in the outbox until every relay of the group has
//! acknowledged it, and is sent again (relays take a retry as a duplicate) on the next
//! connect or when a relay that was down is back.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use tokio::sync::mpsc;
use zerok_core::sync::{BlobId, ErrorCode, GroupKeys, Message, backoff::Backoff, message::Push};
use zerok_wire::RelayAddr;

use super::{
    KIND_DATA, RelayConn, SyncClient,
    link::{Dialled, Links},
};
use crate::Error;

/// What dialling a relay of the group takes, owned, so a task of its own can dial too:
/// one way to open a session, whether at connect, on reconnect or in the background.
#[derive(Clone)]
pub(super) struct Dialer {
    pub endpoint: iroh::Endpoint,
    pub keys: GroupKeys,
    pub name: String,
    pub events: tokio::sync::broadcast::Sender<super::SyncEvent>,
    pub links: Arc<Links>,
    pub timeout: std::time::Duration,
}

impl Dialer {
    /// HELLO to `relay` from `cursor`, with this client's request timeout.
    pub async fn dial(&self, relay: &RelayAddr, cursor: u64) -> Result<RelayConn, Error> {
        let hello = (&self.keys, self.name.as_str(), cursor);
        let mut conn =
            RelayConn::connect_linked(&self.endpoint, relay, hello, self.events.clone(), self.links.clone()).await?;
        conn.set_timeout(self.timeout);
        Ok(conn)
    }
}

/// Longest a disconnecting client waits for pushes still running at other relays.
const FINISH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What a background task finished.
pub(super) enum Done {
    /// A push to a relay other than the one that answered first, on connection `conn`.
    Pushed { relay: String, conn: usize, blob_id: BlobId, reply: Result<Message, Error> },
}

/// Background work of a client: its tasks, their results, and what they wait on.
#[derive(Default)]
pub(super) struct Background {
    tasks: tokio::task::JoinSet<()>,
    done: Option<(mpsc::UnboundedSender<Done>, mpsc::UnboundedReceiver<Done>)>,
    /// Pushes some relay has not acknowledged yet: the relays still to answer.
    unacked: HashMap<BlobId, HashSet<String>>,
    /// A relay answered a push with `GROUP_ROTATED`: the roster is to be followed first.
    rotated: bool,
}

impl Background {
    /// Drops everything running for the group just left (after a rotation): its pushes are
    /// in the outbox, re-sealed; its dials would open sessions in the old group.
    pub fn restart(&mut self) {
        self.tasks.abort_all();
        *self = Self::default();
    }

    fn sender(&mut self) -> mpsc::UnboundedSender<Done> {
        self.done.get_or_insert_with(mpsc::unbounded_channel).0.clone()
    }

    fn try_next(&mut self) -> Option<Done> {
        while self.tasks.try_join_next().is_some() {}
        self.done.as_mut()?.1.try_recv().ok()
    }
}

/// The seed of one backoff delay's jitter (none when the policy turns it off).
pub(super) fn seed(jitter: bool) -> u64 {
    if jitter { u64::from_le_bytes(zerok_core::random_bytes()) } else { 0 }
}

impl SyncClient {
    /// Sends a request to relay `i`; on a lost connection, reconnects (see
    /// [`SyncClient::reconnect`]) and sends it once more.
    pub(super) async fn request(&mut self, i: usize, msg: &Message) -> Result<Message, Error> {
        let Some((_, conn)) = self.conns.get(i) else {
            return Err(Error::Unreachable("no relay connected".into()));
        };
        let first = conn.request(msg).await;
        let Err(Error::Connection(_)) = first else { return first };
        match self.reconnect(i).await {
            Ok(()) => self.conns[i].1.request(msg).await,
            Err(refused) if refused.is_refusal() => Err(refused),
            Err(_) => first,
        }
    }

    /// What dialling a relay in the current group takes.
    pub(super) fn dialer(&self) -> Dialer {
        Dialer {
            endpoint: self.endpoint.clone(),
            keys: self.keys.clone(),
            name: self.state.device_name.clone(),
            events: self.events.clone(),
            links: self.links.clone(),
            timeout: self.reconnect.request_timeout,
        }
    }

    /// HELLO to `relay` in the current group, from this device's cursor there.
    pub(super) async fn dial(&self, relay: &RelayAddr) -> Result<RelayConn, Error> {
        self.dialer().dial(relay, self.state.cursor(&relay.to_string())).await
    }

    /// Reconnects to relay `i` with jittered exponential backoff (spec §12.2: 1, 2, 4 …
    /// 30 s), at most [`super::ReconnectPolicy::attempts`] times.
    pub(super) async fn reconnect(&mut self, i: usize) -> Result<(), Error> {
        let relay = self.conns[i].0.clone();
        let mut backoff = Backoff::default();
        let mut last = Error::Connection("no reconnect attempt".into());
        for attempt in 1..=self.reconnect.attempts {
            self.links.note_attempt(&relay, attempt);
            tokio::time::sleep(backoff.next_delay(seed(self.reconnect.jitter))).await;
            match self.dial(&relay).await {
                Ok(conn) => {
                    self.conns[i].1 = conn;
                    return Ok(());
                }
                Err(refused) if refused.is_refusal() => return Err(refused),
                Err(e) => last = e,
            }
        }
        // Not back yet: the background goes on dialling it (if it is not already).
        self.links.redial(&relay, self.state.cursor(&relay.to_string()));
        Err(last)
    }

    /// Takes in what background work finished (see [`SyncClient::take_in_background`])
    /// and sends the outbox again when a relay came back.
    pub(super) async fn tend(&mut self) -> Result<(), Error> {
        if self.take_in_background().await? {
            self.flush_outbox().await?;
        }
        Ok(())
    }

    /// Takes in pushes acknowledged and relays dialled back, and follows a rotation a relay
    /// reported; true when a relay came back.
    async fn take_in_background(&mut self) -> Result<bool, Error> {
        let mut back = false;
        while let Some(done) = self.background.try_next() {
            self.settle(done)?;
        }
        for dialled in self.links.take_ready() {
            back |= self.take_in(dialled)?;
        }
        if std::mem::take(&mut self.background.rotated) {
            self.sync_rosters().await?;
        }
        Ok(back)
    }

    /// Applies one finished background push.
    fn settle(&mut self, done: Done) -> Result<(), Error> {
        match done {
            Done::Pushed { relay, conn, blob_id, reply } => {
                match reply {
                    Ok(Message::PushAck(ack)) if ack.blob_id == blob_id => {
                        if self.state.note_pushed(&relay, ack.cursor) {
                            self.home.save_pushed(&self.state)?;
                        }
                        self.acknowledged(blob_id, &relay)?;
                    }
                    Ok(other) => {
                        let e = Error::unexpected(&other);
                        // That relay knows of a rotation this device has not followed: follow it
                        // before the next push (the outbox is re-sealed for the new group).
                        self.background.rotated |= e.code() == Some(ErrorCode::GroupRotated);
                        tracing::warn!(error = %e, "a relay refused a push; kept in the outbox");
                    }
                    Err(e) => {
                        // Lost or stalled: dial it again with backoff; once back, it gets the outbox.
                        tracing::warn!(error = %e, "a push to a relay failed; kept in the outbox");
                        if let Some(i) = self.conns.iter().position(|(_, c)| c.id() == conn) {
                            self.relay_lost(i);
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// Takes in a session the background dialled back; true when the relay is back.
    fn take_in(&mut self, Dialled { relay, group, conn }: Dialled) -> Result<bool, Error> {
        let open = self.conns.iter().position(|(r, _)| *r == relay);
        if group != self.keys.id() || open.is_some_and(|i| self.conns[i].1.is_open()) {
            // Dialled in a group since left, or connected meanwhile.
            conn.close();
            return Ok(false);
        }
        if let Some(i) = open {
            // In place of the session that was lost.
            self.conns[i].1 = conn;
            return Ok(true);
        }
        let order = self.state.relays()?;
        let rank = |r: &RelayAddr| order.iter().position(|o| o == r).unwrap_or(usize::MAX);
        let at = self.conns.iter().position(|(r, _)| rank(r) > rank(&relay)).unwrap_or(self.conns.len());
        self.conns.insert(at, (relay, conn));
        Ok(true)
    }

    /// Drops the session with relay `i` (it failed or stalled) and has the relay dialled
    /// again in the background.
    pub(super) fn relay_lost(&mut self, i: usize) {
        let (relay, conn) = self.conns.remove(i);
        conn.close();
        self.links.redial(&relay, self.state.cursor(&relay.to_string()));
    }

    /// Forgets a push (force-deleted): it leaves the outbox and is sent nowhere again.
    pub(super) fn forget_push(&mut self, blob_id: &BlobId) -> Result<(), Error> {
        self.background.unacked.remove(blob_id);
        self.home.outbox_remove(blob_id)
    }

    /// Has every relay of the group that has no connection dialled again.
    pub(super) fn note_unreachable(&mut self) -> Result<(), Error> {
        for relay in self.state.relays()? {
            if !self.conns.iter().any(|(r, c)| *r == relay && c.is_open()) {
                self.links.redial(&relay, self.state.cursor(&relay.to_string()));
            }
        }
        Ok(())
    }

    /// `relay` has the push: once every relay has it, it leaves the outbox.
    fn acknowledged(&mut self, blob_id: BlobId, relay: &str) -> Result<(), Error> {
        let Some(waiting) = self.background.unacked.get_mut(&blob_id) else { return Ok(()) };
        waiting.remove(relay);
        if waiting.is_empty() {
            self.background.unacked.remove(&blob_id);
            self.home.outbox_remove(&blob_id)?;
        }
        Ok(())
    }

    /// Waits (a moment: what does not finish stays in the outbox) for pushes still running
    /// in the background and takes in their results, so acknowledged ones leave the outbox.
    pub(super) async fn finish_background(&mut self) {
        let pending = async { while self.background.tasks.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(self.reconnect.request_timeout.min(FINISH_WAIT), pending).await;
        self.background.tasks.abort_all();
        while let Some(done) = self.background.try_next() {
            if let Err(e) = self.settle(done) {
                tracing::warn!(error = %e, "could not record a finished push");
            }
        }
    }

    /// Encrypts and pushes `data` to the group's relays; returns the blob id and the
    /// cursor of the first relay that acknowledged it (the primary, when it answers). The
    /// other relays get it in the background; the push stays in the outbox until every
    /// relay has acknowledged it.
    ///
    /// # Errors
    /// The relay refused it (size, quota, rate, revoked) or no relay acknowledged it.
    pub async fn push(&mut self, data: &[u8]) -> Result<(BlobId, u64), Error> {
        self.push_plain(&[&[KIND_DATA][..], data].concat()).await
    }

    /// [`SyncClient::push`] of a whole plaintext, its kind byte first.
    pub(super) async fn push_plain(&mut self, plain: &[u8]) -> Result<(BlobId, u64), Error> {
        self.tend().await?;
        let blob_id = BlobId::random();
        let payload = self.keys.seal(&blob_id, &self.device, plain);
        fits_a_frame(&payload)?;
        self.home.outbox_put(&blob_id, &payload)?;
        let cursor = match self.send_push(blob_id, payload).await {
            Err(e) if e.code() == Some(ErrorCode::GroupRotated) => {
                // Another device rotated meanwhile: follow it (the outbox is re-sealed for
                // the new group) and send it there.
                self.sync_rosters().await?;
                let payload = self.home.outbox_get(&blob_id)?;
                self.send_push(blob_id, payload).await?
            }
            other => other?,
        };
        Ok((blob_id, cursor))
    }

    /// Pushes to the relays in order until one acknowledges, then to the others in the
    /// background. Where the relay's cursor directly follows what the device already had,
    /// nobody pushed in between, so the device's state now holds every message up to it
    /// (what a backup of that state records; pulls still return the whole log).
    pub(super) async fn send_push(&mut self, blob_id: BlobId, payload: Vec<u8>) -> Result<u64, Error> {
        fits_a_frame(&payload)?;
        let msg = Message::Push(Push { blob_id, payload, ttl: 0 });
        let mut waiting: HashSet<String> = self.state.relays_text().iter().cloned().collect();
        let mut last = Error::Unreachable("no relay connected".into());
        let mut i = 0;
        let first = loop {
            let Some((relay, _)) = self.conns.get(i) else { return Err(last) };
            let relay = relay.to_string();
            match self.request(i, &msg).await {
                Ok(Message::PushAck(ack)) if ack.blob_id == blob_id => {
                    if self.state.note_pushed(&relay, ack.cursor) {
                        self.home.save_pushed(&self.state)?;
                    }
                    waiting.remove(&relay);
                    break ack.cursor;
                }
                Ok(other) => last = Error::unexpected(&other),
                Err(e @ Error::Connection(_)) => {
                    // Gone: dialled again in the background, so later pushes do not wait on it.
                    self.relay_lost(i);
                    last = e;
                    continue;
                }
                Err(e) => last = e,
            }
            // A relay that knows of a rotation this device has not followed yet: send it to
            // no other relay in the old group (one that missed the rotation would take it,
            // and the removed device may still read there).
            if last.code() == Some(ErrorCode::GroupRotated) {
                return Err(last);
            }
            i += 1;
        };
        self.activity.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = self.events.send(super::SyncEvent::BlobPushed { blob_id, cursor: first });
        let sender = self.background.sender();
        for (relay, conn) in self.conns.iter().skip(i + 1) {
            let (relay, requester, msg, sender) = (relay.to_string(), conn.requester(), msg.clone(), sender.clone());
            let conn = conn.id();
            self.background.tasks.spawn(async move {
                let reply = requester.request(&msg).await;
                let _ = sender.send(Done::Pushed { relay, conn, blob_id, reply });
            });
        }
        if waiting.is_empty() {
            self.home.outbox_remove(&blob_id)?;
        } else {
            self.background.unacked.insert(blob_id, waiting);
        }
        Ok(first)
    }

    /// Takes in what finished in the background and sends what waits in the outbox (an app
    /// about to be suspended flushes before it disconnects).
    ///
    /// # Errors
    /// As [`SyncClient::push`]; what is not sent stays queued for the next connect.
    pub async fn flush(&mut self) -> Result<(), Error> {
        self.take_in_background().await?;
        self.flush_outbox().await
    }

    /// Resends queued pushes. A push the relay can never accept (too large, not a member
    /// any more) is dropped with a warning; one that failed for a passing reason (network,
    /// quota, rate) stays queued for the next connect, and so do those after it, in order.
    pub(super) async fn flush_outbox(&mut self) -> Result<(), Error> {
        for (blob_id, payload) in self.home.outbox_list()? {
            match self.send_push(blob_id, payload).await {
                Ok(_) => {}
                Err(e) if matches!(e.code(), Some(ErrorCode::BlobTooLarge | ErrorCode::InvalidMessage)) => {
                    tracing::warn!(error = %e, "dropping a queued push the relay will never accept");
                    self.home.outbox_remove(&blob_id)?;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "queued pushes kept for the next connect");
                    break;
                }
            }
        }
        Ok(())
    }
}

/// What a push's frame holds besides its payload, at most: the header, the message's field
/// names, the blob id and lengths.
const PUSH_FRAME_OVERHEAD: usize = 256;

/// Refuses a sealed payload that no relay can take in one frame, as a relay refuses a blob
/// over its limit: sent, it would close the connection; queued, it would block the outbox.
fn fits_a_frame(payload: &[u8]) -> Result<(), Error> {
    let max = zerok_core::sync::frame::MAX_FRAME_BYTES - PUSH_FRAME_OVERHEAD;
    if payload.len() <= max {
        return Ok(());
    }
    Err(Error::Quota {
        code: ErrorCode::BlobTooLarge as u32,
        message: format!(
            "a sealed message of {} bytes is over the {max} one frame carries; send large data as an attachment",
            payload.len()
        ),
    })
}

#[cfg(test)]
mod tests {
    use zerok_core::sync::{BlobId, Message, frame, message::Push};

    #[test]
    fn the_largest_payload_allowed_fits_a_frame() {
        let payload = vec![0xff; frame::MAX_FRAME_BYTES - super::PUSH_FRAME_OVERHEAD];
        assert!(super::fits_a_frame(&payload).is_ok());
        let framed = frame::encode(&Message::Push(Push { blob_id: BlobId::random(), payload, ttl: u32::MAX }));
        assert!(framed.len() <= frame::MAX_FRAME_BYTES, "{} bytes", framed.len());
        assert!(super::fits_a_frame(&[0; frame::MAX_FRAME_BYTES]).is_err());
    }
}
