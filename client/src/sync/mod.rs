//! The sync client (spec §6): a device's membership in one sync group, its connections to
//! the group's relays, pushing and pulling encrypted messages, events, the device roster,
//! revocation, and pairing by invite.
//!
//! State lives under `ZEROK_HOME/sync/`: `device.key` (this device's iroh identity, 0600),
//! `group.json` (group secret, relays, per-relay cursors; 0600) and `outbox/` (pushes not
//! yet acknowledged, one file each, sent again on the next connect).

mod conn;
mod invite;
mod state;

pub use conn::{RelayConn, SyncError};
pub use invite::{INVITE_SECS, Invite, InviteCode};
pub use state::{GroupState, SyncHome};

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use tokio::sync::broadcast;
use zerok_core::sync::{
    BlobId, DeviceId, ErrorCode, GroupKeys, GroupSecret, Message,
    message::{BlobEntry, DeviceInfo, Pull, Push, RevokeDevice, RevokeReason},
    seal,
};
use zerok_wire::RelayAddr;

/// Something that happened on a connection.
#[derive(Clone, Debug, PartialEq)]
pub enum SyncEvent {
    /// A relay has a new message.
    BlobAvailable {
        /// Relay that has it.
        relay: String,
        /// Its cursor there.
        cursor: u64,
        /// Who pushed it.
        sender: DeviceId,
    },
    /// A device was revoked.
    DeviceRevoked {
        /// Which.
        device: DeviceId,
    },
    /// A payload did not decrypt (wrong group secret, tampering): never skipped silently.
    DecryptFailed {
        /// Its cursor.
        cursor: u64,
    },
}

/// A received, decrypted message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// Cursor at the relay it came from.
    pub cursor: u64,
    /// Sender-chosen id.
    pub blob_id: BlobId,
    /// Who pushed it.
    pub sender: DeviceId,
    /// Plaintext.
    pub data: Vec<u8>,
}

/// HELLO to every relay of the group; at least one must accept.
async fn connect_all(
    endpoint: &iroh::Endpoint,
    state: &GroupState,
    keys: &GroupKeys,
    events: &broadcast::Sender<SyncEvent>,
) -> Result<Vec<(RelayAddr, RelayConn)>, SyncError> {
    let mut conns = Vec::new();
    let mut failures = Vec::new();
    for relay in state.relays()? {
        let cursor = state.cursor(&relay.to_string());
        match RelayConn::connect(endpoint, &relay, keys, &state.device_name, cursor, events.clone()).await {
            Ok(conn) => conns.push((relay, conn)),
            Err(e) => failures.push(format!("{relay}: {e}")),
        }
    }
    if conns.is_empty() {
        return Err(match failures.len() {
            1 => SyncError::Unreachable(failures.remove(0)),
            _ => SyncError::Unreachable(failures.join("; ")),
        });
    }
    Ok(conns)
}

/// First byte of a message plaintext: an app message.
const KIND_DATA: u8 = 0;
/// First byte of a message plaintext: a group-secret rotation (see the `core::sync` docs).
const KIND_ROTATE: u8 = 1;

/// A rotation message: the new group secret sealed to each remaining device.
#[derive(serde::Serialize, serde::Deserialize)]
struct Rotation {
    sealed: Vec<(DeviceId, serde_bytes::ByteBuf)>,
}

/// Creates a new group with this device as its first member.
///
/// # Errors
/// This device is already in a group, or no relay answers.
pub async fn create(home: SyncHome, relays: &[RelayAddr], device_name: &str) -> Result<SyncClient, SyncError> {
    if home.has_group() {
        return Err(SyncError::State("this device is already in a sync group".into()));
    }
    if relays.is_empty() {
        return Err(SyncError::State("give at least one relay".into()));
    }
    home.save_group(&GroupState::new(&zerok_core::sync::GroupSecret::generate(), relays, device_name))?;
    SyncClient::connect(home).await
}

/// Joins a group from an invite URL, or from a short code looked up at `relay` (a code
/// does not say which relay holds it).
///
/// # Errors
/// Already in a group; malformed, expired, used or cancelled invite; wrong code.
pub async fn join(
    home: SyncHome,
    invite_or_code: &str,
    relay: Option<&RelayAddr>,
    device_name: &str,
) -> Result<SyncClient, SyncError> {
    if home.has_group() {
        return Err(SyncError::State("this device is already in a sync group".into()));
    }
    let invite = if invite_or_code.trim().starts_with("zerok://") {
        Invite::from_url(invite_or_code)?
    } else {
        let code = InviteCode::parse(invite_or_code)?;
        let relay =
            relay.ok_or_else(|| SyncError::Invite("a short code needs the relay address (--relay ADDR)".into()))?;
        let endpoint = home.endpoint(std::slice::from_ref(relay)).await?;
        let sealed = conn::lookup_invite(&endpoint, relay, code.lookup()).await;
        endpoint.close().await;
        code.open(&sealed?)?
    };
    let relays: Vec<RelayAddr> = invite.relays.iter().filter_map(|r| RelayAddr::parse(r).ok()).collect();
    home.save_group(&GroupState::new(&invite.group_secret(), &relays, device_name))?;
    SyncClient::connect(home).await
}

/// A connected member of a sync group.
pub struct SyncClient {
    home: SyncHome,
    state: GroupState,
    keys: GroupKeys,
    endpoint: iroh::Endpoint,
    conns: Vec<(RelayAddr, RelayConn)>,
    events: broadcast::Sender<SyncEvent>,
    reconnect: ReconnectPolicy,
    activity: Arc<AtomicU64>,
}

/// How a client recovers a lost connection before reporting an error.
#[derive(Clone, Copy, Debug)]
pub struct ReconnectPolicy {
    /// Reconnect attempts per failed request (0: fail at once).
    pub attempts: u32,
    /// Add the spec's 0–5 s random jitter to each delay (so devices do not return to a
    /// restarted relay all at once). Off only in tests.
    pub jitter: bool,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self { attempts: 3, jitter: true }
    }
}

impl SyncClient {
    /// Connects to the group's relays (all of them; at least one must answer). Pushes left
    /// in the outbox are sent again.
    ///
    /// # Errors
    /// No group on this device, or no relay reachable.
    pub async fn connect(home: SyncHome) -> Result<Self, SyncError> {
        let state = home.load_group()?;
        let keys = state.secret().derive();
        let endpoint = home.endpoint(&state.relays()?).await?;
        let (events, _) = broadcast::channel(1024);
        let conns = connect_all(&endpoint, &state, &keys, &events).await?;
        let mut client = Self {
            home,
            state,
            keys,
            endpoint,
            conns,
            events,
            reconnect: ReconnectPolicy::default(),
            activity: Arc::default(),
        };
        client.flush_outbox().await?;
        Ok(client)
    }

    /// Counts messages pushed and pulled by this client (what cloud backup watches to
    /// snapshot after bursts of sync activity).
    pub fn activity(&self) -> Arc<AtomicU64> {
        self.activity.clone()
    }

    /// Changes how lost connections are recovered.
    pub fn set_reconnect_policy(&mut self, policy: ReconnectPolicy) {
        self.reconnect = policy;
    }

    /// Sends a request to relay `i`; on a lost connection, reconnects with jittered
    /// exponential backoff (spec §12.2: 1, 2, 4 … 30 s) and sends it once more.
    async fn request(&mut self, i: usize, msg: &Message) -> Result<Message, SyncError> {
        let first = self.conns[i].1.request(msg).await;
        let Err(SyncError::Connection(_)) = first else { return first };
        let relay = self.conns[i].0.clone();
        let mut backoff = zerok_core::sync::backoff::Backoff::default();
        for _ in 0..self.reconnect.attempts {
            let seed = if self.reconnect.jitter { u64::from_le_bytes(zerok_core::random_bytes()) } else { 0 };
            tokio::time::sleep(backoff.next_delay(seed)).await;
            let cursor = self.state.cursor(&relay.to_string());
            match RelayConn::connect(
                &self.endpoint,
                &relay,
                &self.keys,
                &self.state.device_name,
                cursor,
                self.events.clone(),
            )
            .await
            {
                Ok(conn) => {
                    self.conns[i].1 = conn;
                    return self.conns[i].1.request(msg).await;
                }
                Err(refused @ SyncError::Refused { .. }) => return Err(refused),
                Err(_) => continue,
            }
        }
        first
    }

    /// This device's id.
    pub fn device_id(&self) -> DeviceId {
        DeviceId(*self.endpoint.id().as_bytes())
    }

    /// Events from the relays (NOTIFY, revocations, decryption failures).
    pub fn subscribe(&self) -> broadcast::Receiver<SyncEvent> {
        self.events.subscribe()
    }

    /// The primary relay's last pulled cursor.
    pub fn last_cursor(&self) -> u64 {
        self.conns.first().map_or(0, |(r, _)| self.state.cursor(&r.to_string()))
    }

    /// Encrypts and pushes `data` to every connected relay; returns the blob id and the
    /// primary relay's cursor. The push is kept in the outbox until acknowledged.
    ///
    /// # Errors
    /// The relay refused it (size, quota, rate, revoked) or no relay acknowledged it.
    pub async fn push(&mut self, data: &[u8]) -> Result<(BlobId, u64), SyncError> {
        let blob_id = BlobId::random();
        let payload = self.keys.seal(&blob_id, &[&[KIND_DATA][..], data].concat());
        self.home.outbox_put(&blob_id, &payload)?;
        let cursor = self.send_push(blob_id, payload).await?;
        self.home.outbox_remove(&blob_id)?;
        Ok((blob_id, cursor))
    }

    /// Pushes to every relay. Where the relay's cursor directly follows what the device
    /// already had, nobody pushed in between, so the device's state now holds every message
    /// up to it (what a backup of that state records; pulls still return the whole log).
    async fn send_push(&mut self, blob_id: BlobId, payload: Vec<u8>) -> Result<u64, SyncError> {
        let msg = Message::Push(Push { blob_id, payload, ttl: 0 });
        let mut first: Option<Result<u64, SyncError>> = None;
        let mut advanced = false;
        for i in 0..self.conns.len() {
            let result = match self.request(i, &msg).await {
                Ok(Message::PushAck(ack)) if ack.blob_id == blob_id => Ok(ack.cursor),
                Ok(other) => Err(SyncError::unexpected(&other)),
                Err(e) => Err(e),
            };
            if let Ok(cursor) = result {
                advanced |= self.state.note_pushed(&self.conns[i].0.to_string(), cursor);
            }
            first.get_or_insert(result);
        }
        if advanced {
            self.home.save_pushed(&self.state)?;
        }
        if let Some(Ok(_)) = &first {
            self.activity.fetch_add(1, Ordering::Relaxed);
        }
        first.unwrap_or(Err(SyncError::Unreachable("no relay connected".into())))
    }

    /// Resends queued pushes. A push the relay can never accept (too large, not a member
    /// any more) is dropped with a warning; one that failed for a passing reason (network,
    /// quota, rate) stays queued for the next connect, and so do those after it, in order.
    async fn flush_outbox(&mut self) -> Result<(), SyncError> {
        for (blob_id, payload) in self.home.outbox_list()? {
            match self.send_push(blob_id, payload).await {
                Ok(_) => self.home.outbox_remove(&blob_id)?,
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

    /// Seals `data` for the device's group and queues it without any network, for when no
    /// relay is reachable; the next [`SyncClient::connect`] sends it.
    ///
    /// # Errors
    /// This device is in no group, or the outbox cannot be written.
    pub fn queue_offline(home: &SyncHome, data: &[u8]) -> Result<BlobId, SyncError> {
        let keys = home.load_group()?.secret().derive();
        let blob_id = BlobId::random();
        home.outbox_put(&blob_id, &keys.seal(&blob_id, &[&[KIND_DATA][..], data].concat()))?;
        Ok(blob_id)
    }

    /// Pulls everything new from the first relay that answers (primary first), in cursor
    /// order, decrypted. A payload
    /// that does not decrypt is reported as an event and an error, never skipped silently.
    ///
    /// # Errors
    /// Connection failures, refusals, or [`SyncError::Decrypt`] naming the first cursor
    /// that did not decrypt (the cursor is kept just before it).
    pub async fn pull(&mut self) -> Result<Vec<Received>, SyncError> {
        let mut out = Vec::new();
        loop {
            let relay = self.live_relay().await?;
            let key = self.conns[relay].0.to_string();
            let mut after = self.state.cursor(&key);
            let mut rotate_to = None;
            'pages: loop {
                let reply = self.request(relay, &Message::Pull(Pull { after_cursor: after, limit: 0 })).await?;
                let Message::PullResponse(resp) = reply else { return Err(SyncError::unexpected(&reply)) };
                for BlobEntry { blob_id, cursor, sender_id, payload, .. } in resp.blobs {
                    let plain = match self.keys.open(&blob_id, &payload) {
                        Ok(p) => p,
                        Err(_) => {
                            let _ = self.events.send(SyncEvent::DecryptFailed { cursor });
                            self.state.set_cursor(&key, after);
                            self.home.save_group(&self.state)?;
                            return Err(SyncError::Decrypt { cursor });
                        }
                    };
                    after = cursor;
                    match plain.split_first() {
                        Some((&KIND_DATA, data)) => {
                            out.push(Received { cursor, blob_id, sender: sender_id, data: data.to_vec() })
                        }
                        Some((&KIND_ROTATE, body)) => {
                            if let Some(secret) = self.rotation_secret(body)? {
                                rotate_to = Some(secret);
                                break 'pages;
                            }
                        }
                        _ => return Err(SyncError::Decrypt { cursor }),
                    }
                }
                if !resp.has_more {
                    break;
                }
            }
            self.state.set_cursor(&key, after);
            self.home.save_group(&self.state)?;
            match rotate_to {
                Some(secret) => self.switch_group(secret).await?,
                None => {
                    self.activity.fetch_add(out.len() as u64, Ordering::Relaxed);
                    return Ok(out);
                }
            }
        }
    }

    /// The first relay, in preference order, that answers (pull failover: cursors are per
    /// relay, so each keeps its own).
    async fn live_relay(&mut self) -> Result<usize, SyncError> {
        let mut last = SyncError::Unreachable("no relay connected".into());
        for i in 0..self.conns.len() {
            match self.request(i, &Message::Presence(Default::default())).await {
                Ok(Message::Presence(_)) => return Ok(i),
                Ok(other) => last = SyncError::unexpected(&other),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// This device's new group secret from a rotation message, if the message has one for
    /// it (a revoked device finds none).
    fn rotation_secret(&self, body: &[u8]) -> Result<Option<GroupSecret>, SyncError> {
        let rotation: Rotation =
            rmp_serde::from_slice(body).map_err(|_| SyncError::State("malformed rotation message".into()))?;
        let me = self.device_id();
        let Some((_, sealed)) = rotation.sealed.iter().find(|(d, _)| *d == me) else { return Ok(None) };
        let mut secret = self.home.device_key()?.to_bytes();
        let opened = seal::open_as(&secret, sealed);
        zeroize::Zeroize::zeroize(&mut secret);
        let mut raw: [u8; 32] = opened
            .map_err(|_| SyncError::State("rotation message sealed for this device does not open".into()))?
            .as_slice()
            .try_into()
            .map_err(|_| SyncError::State("malformed rotation secret".into()))?;
        let new = GroupSecret::from_bytes(raw);
        zeroize::Zeroize::zeroize(&mut raw);
        Ok(Some(new))
    }

    /// Moves this device to a new group secret (new group id, cursors from zero) and
    /// reconnects.
    async fn switch_group(&mut self, secret: GroupSecret) -> Result<(), SyncError> {
        let relays = self.state.relays()?;
        let next = GroupState::new(&secret, &relays, &self.state.device_name);
        self.home.save_group(&next)?;
        let keys = secret.derive();
        self.conns = connect_all(&self.endpoint, &next, &keys, &self.events).await?;
        self.state = next;
        self.keys = keys;
        Ok(())
    }

    /// Revokes `device` and rotates the group secret: every other device that is not
    /// revoked gets the new secret sealed to its own key (through the old group, which the
    /// revoked device can no longer read), and this device moves to the new group at once.
    /// Nothing pushed afterwards can be decrypted by the revoked device.
    ///
    /// # Errors
    /// Refusals or connection failures.
    pub async fn revoke_and_rotate(&mut self, device: DeviceId, reason: RevokeReason) -> Result<(), SyncError> {
        self.revoke_device(device, reason).await?;
        let me = self.device_id();
        let secret = GroupSecret::generate();
        let mut sealed = Vec::new();
        for d in self.list_devices().await? {
            if d.revoked || d.device_id == me || d.device_id == device {
                continue;
            }
            let s = seal::seal_to(&d.device_id, secret.expose()).map_err(|e| SyncError::State(e.to_string()))?;
            sealed.push((d.device_id, serde_bytes::ByteBuf::from(s)));
        }
        let body = rmp_serde::to_vec(&Rotation { sealed }).expect("encodes");
        let blob_id = BlobId::random();
        let payload = self.keys.seal(&blob_id, &[&[KIND_ROTATE][..], &body].concat());
        // Not through the outbox: a rotation that was not acknowledged must not be replayed
        // into the new group; this device simply stays in the old one and may retry.
        self.send_push(blob_id, payload).await?;
        self.switch_group(secret).await
    }

    /// The group's devices as the primary relay knows them.
    ///
    /// # Errors
    /// Connection failures.
    pub async fn list_devices(&mut self) -> Result<Vec<DeviceInfo>, SyncError> {
        match self.request(0, &Message::Presence(Default::default())).await? {
            Message::Presence(p) => Ok(p.devices),
            other => Err(SyncError::unexpected(&other)),
        }
    }

    /// Revokes a device at every relay.
    ///
    /// # Errors
    /// Refusals or connection failures.
    pub async fn revoke_device(&mut self, device: DeviceId, reason: RevokeReason) -> Result<(), SyncError> {
        let msg = Message::RevokeDevice(RevokeDevice { device_id: device, reason, clear_pending: true });
        for i in 0..self.conns.len() {
            match self.request(i, &msg).await? {
                Message::DeviceRevoked(_) => {}
                other => return Err(SyncError::unexpected(&other)),
            }
        }
        Ok(())
    }

    /// Makes an invite for another device: a URL (for a QR code, holds the secret) and a
    /// short code whose lookup half is stored at the primary relay, sealed under its key
    /// half (which never leaves the devices). Single use; expires in 10 minutes.
    ///
    /// # Errors
    /// The relay refused to store it.
    pub async fn invite(&mut self) -> Result<(String, InviteCode), SyncError> {
        let invite = Invite::new(&self.state);
        let code = InviteCode::generate();
        let put = code.seal(&invite);
        match self.request(0, &Message::InvitePut(put)).await? {
            Message::Ok => Ok((invite.to_url(), code)),
            other => Err(SyncError::unexpected(&other)),
        }
    }

    /// Deletes a message this device pushed, at every relay, without waiting for the other
    /// devices to pull it.
    ///
    /// # Errors
    /// [`SyncError::Refused`] with `NOT_BLOB_OWNER` for another device's message.
    pub async fn force_delete(&mut self, blob_id: BlobId) -> Result<(), SyncError> {
        let msg = Message::Delete(zerok_core::sync::message::Delete { blob_id, force: true });
        for i in 0..self.conns.len() {
            match self.request(i, &msg).await? {
                Message::Ok => {}
                other => return Err(SyncError::unexpected(&other)),
            }
        }
        Ok(())
    }

    /// Cancels an invite before it is used.
    ///
    /// # Errors
    /// Connection failures.
    pub async fn cancel_invite(&mut self, code: &InviteCode) -> Result<(), SyncError> {
        let msg = Message::InviteCancel(zerok_core::sync::message::InviteGet { lookup: code.lookup().to_string() });
        match self.request(0, &msg).await? {
            Message::Ok => Ok(()),
            other => Err(SyncError::unexpected(&other)),
        }
    }

    /// Each relay and whether its connection is up.
    pub fn status(&self) -> Vec<(String, bool)> {
        self.conns.iter().map(|(r, c)| (r.to_string(), c.is_open())).collect()
    }

    /// Closes the connections.
    pub async fn disconnect(self) {
        for (_, conn) in &self.conns {
            conn.close();
        }
        self.endpoint.close().await;
    }
}
