//! The sync client (spec §6): a device's membership in one sync group, its connections to
//! the group's relays, pushing and pulling signed, encrypted messages, events, the signed
//! roster (pairing, revocation, rotation; see `zerok_core::sync`), and following the group
//! through rotations.
//!
//! State lives under `ZEROK_HOME/sync/`: `device.key` (this device's identity, 0600),
//! `group.json` (group secret, relays, per-relay cursors, groups still being drained after
//! a rotation; 0600), `roster.bin` (the verified roster log), `seen` (ids of delivered
//! messages) and `outbox/` (pushes not yet acknowledged, sent again on the next connect).

mod attach;
mod conn;
mod content;
mod invite;
mod link;
mod membership;
mod relays;
mod state;
mod wake;

pub use attach::AttachedPush;
pub use conn::{RelayConn, Requester};
pub use content::{ContentSource, ContentStore, DEFAULT_MAX_CONTENT_BYTES, Fetched, GRACE_SECS, Record};
pub use invite::{INVITE_SECS, Invite, InviteCode};
pub use link::ConnectionStatus;
pub use membership::RosterDevice;
pub use state::{GroupState, SyncHome};
pub use zerok_wire::NetOptions;

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::sync::broadcast;
use zerok_core::sync::{
    BlobId, DeviceId, ErrorCode, GroupId, GroupKeys, Message, SigningKey,
    content::{Ack, Attached, ContentHash, ContentRef},
    message::{BlobEntry, Pull},
    roster::{Roster, create_entry},
};
use zerok_wire::RelayAddr;

use crate::Error;

/// Something that happened on a connection.
#[derive(Clone, Debug, PartialEq)]
pub enum SyncEvent {
    /// A relay accepted this device (at connect, or dialled back after it was lost).
    Connected {
        /// Which.
        relay: String,
    },
    /// The last session with a relay ended; it is dialled again unless this device closed it.
    Disconnected {
        /// Which.
        relay: String,
        /// Why, on one line.
        reason: String,
    },
    /// A lost relay is being dialled again (attempts counted from 1).
    Reconnecting {
        /// Which.
        relay: String,
        /// This attempt.
        attempt: u32,
    },
    /// The client's overall [`ConnectionStatus`] changed.
    StatusChanged {
        /// Now.
        status: ConnectionStatus,
    },
    /// A push was acknowledged by the first relay that took it.
    BlobPushed {
        /// Its id.
        blob_id: BlobId,
        /// Its cursor there.
        cursor: u64,
    },
    /// Something failed in the background (a relay that refuses this device on reconnect).
    Error {
        /// One line.
        message: String,
    },
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
    /// A payload not signed by the device the relay names, or by no member.
    Forged {
        /// Its cursor.
        cursor: u64,
    },
    /// A message id delivered before, offered again at a new cursor: dropped.
    Duplicate {
        /// Its new cursor.
        cursor: u64,
    },
    /// A relay's roster moved on.
    RosterChanged {
        /// Relay that says so.
        relay: String,
        /// Its last roster position.
        seq: u64,
    },
    /// A roster entry that does not verify was refused (and not applied).
    RosterRefused {
        /// Why.
        reason: String,
    },
    /// This device moved to the group's new secret.
    Rotated,
    /// An attachment is being fetched.
    ContentProgress {
        /// Which.
        hash: ContentHash,
        /// Ciphertext bytes here so far.
        received: u64,
        /// Ciphertext bytes in all.
        total: u64,
    },
}

/// A received, decrypted message whose sender signature verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The group it was pushed in (a new one after each rotation; cursors restart there).
    pub group: GroupId,
    /// Cursor at the relay it came from.
    pub cursor: u64,
    /// Sender-chosen id.
    pub blob_id: BlobId,
    /// Who pushed it.
    pub sender: DeviceId,
    /// Plaintext.
    pub data: Vec<u8>,
    /// The attachment that came with it, to fetch with [`SyncClient::fetch_content`].
    pub content: Option<ContentRef>,
}

/// What one read delivered: messages for the app, and acknowledgements of attachments.
#[derive(Debug, Default)]
struct Delivered {
    messages: Vec<Received>,
    acks: Vec<(BlobId, DeviceId, ContentHash)>,
}

impl Delivered {
    fn ids(&self) -> Vec<BlobId> {
        self.messages.iter().map(|m| m.blob_id).chain(self.acks.iter().map(|a| a.0)).collect()
    }

    fn extend(&mut self, other: Delivered) {
        self.messages.extend(other.messages);
        self.acks.extend(other.acks);
    }
}

/// HELLO to every relay of the group at once (one that is down costs the others
/// nothing); at least one must accept. The connections come in preference order.
async fn connect_all(dialer: relays::Dialer, state: &GroupState) -> Result<Vec<(RelayAddr, RelayConn)>, Error> {
    let mut dials = tokio::task::JoinSet::new();
    for (i, relay) in state.relays()?.into_iter().enumerate() {
        let (cursor, dialer) = (state.cursor(&relay.to_string()), dialer.clone());
        dials.spawn(async move {
            let conn = dialer.dial(&relay, cursor).await;
            (i, relay, conn)
        });
    }
    let mut dialled = dials.join_all().await;
    dialled.sort_by_key(|(i, ..)| *i);
    let mut conns = Vec::new();
    let mut failures = Vec::new();
    for (_, relay, conn) in dialled {
        match conn {
            Ok(conn) => conns.push((relay, conn)),
            Err(e) => failures.push((relay, e)),
        }
    }
    if conns.is_empty() {
        let revoked = |e: &Error| e.code() == Some(ErrorCode::DeviceRevoked);
        if !failures.is_empty() && failures.iter().all(|(_, e)| revoked(e)) {
            return Err(Error::Revoked);
        }
        if let Some(i) = failures.iter().position(|(_, e)| e.is_refusal()) {
            return Err(failures.swap_remove(i).1);
        }
        let text: Vec<String> = failures.iter().map(|(r, e)| format!("{r}: {e}")).collect();
        return Err(Error::Unreachable(text.join("; ")));
    }
    Ok(conns)
}

/// First byte of a message plaintext: an app message.
const KIND_DATA: u8 = 0;
/// An app message with an attachment ([`Attached`]).
const KIND_CONTENT: u8 = 1;
/// An attachment acknowledged ([`Ack`]).
const KIND_ACK: u8 = 2;

/// Opens one page of payloads off the async threads (AEAD, then the sender's Ed25519
/// signature: the costly part of a pull), each sender's key decoded once.
fn open_page(keys: &GroupKeys, blobs: &[BlobEntry]) -> Vec<Result<Vec<u8>, zerok_core::Error>> {
    let mut senders: std::collections::HashMap<DeviceId, Option<zerok_core::sync::VerifyingKey>> = Default::default();
    blobs
        .iter()
        .map(|b| {
            let key = senders
                .entry(b.sender_id)
                .or_insert_with(|| zerok_core::sync::VerifyingKey::from_bytes(&b.sender_id.0).ok());
            match key {
                Some(key) => keys.open_from(&b.blob_id, &b.sender_id, key, &b.payload),
                None => Err(zerok_core::Error::Signature),
            }
        })
        .collect()
}

/// Reads one group at one relay after `after`, in cursor order: each payload decrypted,
/// its sender signature checked and the sender a member (or former member) of the
/// roster; ids delivered before are dropped. A payload that fails is never delivered and
/// never skipped silently: it is reported as an event ([`SyncEvent::DecryptFailed`],
/// [`SyncEvent::Forged`]) and the read goes on past it, so one bad message (a member's, or
/// a relay's) cannot stop a device for good. Pages are opened on the blocking pool while
/// the next one is fetched. Returns the messages, the cursor reached, and whether the
/// read stopped at its page limit with more to read.
async fn read_group(
    conn: &RelayConn,
    keys: &GroupKeys,
    roster: &Roster,
    mut after: u64,
    seen: &mut HashSet<BlobId>,
    events: &broadcast::Sender<SyncEvent>,
) -> Result<(Delivered, u64, bool), Error> {
    type Opened = (Vec<BlobEntry>, Vec<Result<Vec<u8>, zerok_core::Error>>);
    let mut out = Delivered::default();
    // Ids delivered by this read join `seen` only when it succeeds (a failed read delivers
    // nothing, so nothing it saw may be dropped later as a duplicate).
    let mut fresh = HashSet::new();
    let mut opening: Option<tokio::task::JoinHandle<Result<Opened, Error>>> = None;
    let (mut more, mut pages, mut capped, mut bytes) = (true, 0, false, 0usize);
    while more || opening.is_some() {
        // A relay serving pages without end (junk at rising cursors) cannot hold a pull,
        // nor can a backlog fill a phone's memory: a read returns after so many pages or
        // bytes, and the next one goes on.
        if more && (pages >= MAX_PAGES_PER_READ || bytes >= MAX_BYTES_PER_READ) {
            (more, capped) = (false, true);
        }
        pages += 1;
        let fetched = if more {
            let reply = conn.request(&Message::Pull(Pull { after_cursor: after, limit: PULL_PAGE })).await?;
            let Message::PullResponse(resp) = reply else { return Err(Error::unexpected(&reply)) };
            (after, more) = page_end(after, &resp)?;
            bytes += resp.blobs.iter().map(|b| b.payload.len()).sum::<usize>();
            Some(tokio::spawn(open_halves(keys.clone(), resp.blobs)))
        } else {
            None
        };
        if let Some(task) = std::mem::replace(&mut opening, fetched) {
            let (blobs, opened) = task.await.map_err(|e| Error::State(e.to_string()))??;
            deliver(keys, roster, blobs, opened, (seen, &mut fresh), events, &mut out);
        }
    }
    seen.extend(fresh);
    Ok((out, after, capped))
}

/// Where a page of a pull ends and whether to ask for more. A relay that sends cursors
/// out of order, or says more follow and sends none (a pull that would never end), is
/// refused.
fn page_end(after: u64, page: &zerok_core::sync::message::PullResponse) -> Result<(u64, bool), Error> {
    let mut last = after;
    for b in &page.blobs {
        if b.cursor <= last {
            return Err(Error::Connection(format!("relay sent cursor {} out of order", b.cursor)));
        }
        last = b.cursor;
    }
    if page.has_more && page.blobs.is_empty() {
        return Err(Error::Connection("relay said more messages follow and sent none".into()));
    }
    Ok((last, page.has_more))
}

/// Pages one read takes at most (of [`PULL_PAGE`] messages each).
const MAX_PAGES_PER_READ: u32 = 200;

/// Ciphertext bytes after which one read takes no further page (it may end one page past).
const MAX_BYTES_PER_READ: usize = 16 << 20;

/// Messages asked for per PULL (the relay caps it and fills at most one frame).
const PULL_PAGE: u32 = 500;

/// Opens a page in two halves on the blocking pool, one per core.
async fn open_halves(
    keys: GroupKeys,
    blobs: Vec<BlobEntry>,
) -> Result<(Vec<BlobEntry>, Vec<Result<Vec<u8>, zerok_core::Error>>), Error> {
    let blobs = Arc::new(blobs);
    let mid = blobs.len() / 2;
    let half = |range: std::ops::Range<usize>| {
        let (keys, blobs) = (keys.clone(), blobs.clone());
        tokio::task::spawn_blocking(move || open_page(&keys, &blobs[range]))
    };
    let (first, second) = (half(0..mid), half(mid..blobs.len()));
    let failed = |e: tokio::task::JoinError| Error::State(e.to_string());
    let mut opened = first.await.map_err(failed)?;
    opened.extend(second.await.map_err(failed)?);
    let blobs = Arc::try_unwrap(blobs).unwrap_or_else(|shared| (*shared).clone());
    Ok((blobs, opened))
}

/// Hands out one opened page in order: duplicates dropped, failures reported.
fn deliver(
    keys: &GroupKeys,
    roster: &Roster,
    blobs: Vec<BlobEntry>,
    opened: Vec<Result<Vec<u8>, zerok_core::Error>>,
    (seen, fresh): (&HashSet<BlobId>, &mut HashSet<BlobId>),
    events: &broadcast::Sender<SyncEvent>,
    out: &mut Delivered,
) {
    for (BlobEntry { blob_id, cursor, sender_id, .. }, plain) in blobs.into_iter().zip(opened) {
        if seen.contains(&blob_id) || fresh.contains(&blob_id) {
            let _ = events.send(SyncEvent::Duplicate { cursor });
            continue;
        }
        let known = roster.is_member(&sender_id) || roster.is_removed(&sender_id);
        let plain = match plain {
            Ok(p) if known => p,
            Err(zerok_core::Error::Decrypt) => {
                tracing::warn!(cursor, "a message that does not decrypt was refused");
                let _ = events.send(SyncEvent::DecryptFailed { cursor });
                continue;
            }
            _ => {
                tracing::warn!(cursor, "a message not signed by the member the relay names was refused");
                let _ = events.send(SyncEvent::Forged { cursor });
                continue;
            }
        };
        let received = |data: &[u8], content| Received {
            group: keys.id(),
            cursor,
            blob_id,
            sender: sender_id,
            data: data.to_vec(),
            content,
        };
        match plain.split_first() {
            Some((&KIND_DATA, data)) => out.messages.push(received(data, None)),
            Some((&KIND_CONTENT, body)) => match rmp_serde::from_slice::<Attached>(body) {
                Ok(a) if a.content.is_sane() => out.messages.push(received(&a.data, Some(a.content))),
                _ => {
                    let _ = events.send(SyncEvent::DecryptFailed { cursor });
                    continue;
                }
            },
            Some((&KIND_ACK, body)) => match rmp_serde::from_slice::<Ack>(body) {
                Ok(ack) => out.acks.push((blob_id, sender_id, ack.hash)),
                Err(_) => {
                    let _ = events.send(SyncEvent::DecryptFailed { cursor });
                    continue;
                }
            },
            _ => {
                let _ = events.send(SyncEvent::DecryptFailed { cursor });
                continue;
            }
        }
        fresh.insert(blob_id);
    }
}

/// Creates a new group with this device as its first member.
///
/// # Errors
/// This device is already in a group, or no relay answers.
pub async fn create(home: SyncHome, relays: &[RelayAddr], device_name: &str) -> Result<SyncClient, Error> {
    if home.has_group() {
        return Err(Error::Invalid("this device is already in a sync group".into()));
    }
    if relays.is_empty() {
        return Err(Error::Invalid("give at least one relay".into()));
    }
    let secret = zerok_core::sync::GroupSecret::generate();
    let genesis = create_entry(secret.derive().id(), &home.signing_key()?, device_name);
    home.save_group(&GroupState::new(&secret, relays, device_name, vec![genesis])?)?;
    SyncClient::connect(home).await
}

/// Joins a group from an invite URL, or from a short code looked up at `relay` (a code
/// does not say which relay holds it): fetches the roster log (anchored at the invite's
/// position), appends this device's join entry, and connects as a member.
///
/// # Errors
/// Already in a group; malformed, expired, used or cancelled invite; wrong code; a
/// roster that does not verify or does not pass through the invite's position.
pub async fn join(
    home: SyncHome,
    invite_or_code: &str,
    relay: Option<&RelayAddr>,
    device_name: &str,
) -> Result<SyncClient, Error> {
    if home.has_group() {
        return Err(Error::Invalid("this device is already in a sync group".into()));
    }
    let invite = if invite_or_code.trim().starts_with("zerok://") {
        Invite::from_url(invite_or_code)?
    } else {
        let code = InviteCode::parse(invite_or_code)?;
        let relay =
            relay.ok_or_else(|| Error::Invite("a short code needs the address of the relay that holds it".into()))?;
        let endpoint = home.endpoint(std::slice::from_ref(relay)).await?;
        let sealed = conn::lookup_invite(&endpoint, relay, &code.lookup()).await;
        endpoint.close().await;
        code.open(&sealed?)?
    };
    let relays: Vec<RelayAddr> = invite.relays.iter().filter_map(|r| RelayAddr::parse(r).ok()).collect();
    let chain = membership::admit(home.device_key()?, &invite, &relays, device_name, home.net()?).await?;
    home.save_group(&GroupState::new(&invite.group_secret(), &relays, device_name, chain)?)?;
    SyncClient::connect(home).await
}

/// A connected member of a sync group.
pub struct SyncClient {
    home: SyncHome,
    state: GroupState,
    keys: GroupKeys,
    /// This device's key: signs its messages and roster entries.
    device: SigningKey,
    endpoint: iroh::Endpoint,
    conns: Vec<(RelayAddr, RelayConn)>,
    events: broadcast::Sender<SyncEvent>,
    reconnect: ReconnectPolicy,
    activity: Arc<AtomicU64>,
    /// Ids of messages delivered (see [`SyncHome::seen_load`]).
    seen: HashSet<BlobId>,
    /// The last read stopped at its page limit.
    read_more: bool,
    /// Relay clock minus this device's, seconds (from the primary's WELCOME).
    clock_offset: i64,
    /// When an unreachable primary relay was last tried again.
    primary_tried: Option<std::time::Instant>,
    /// Pushes completing at other relays, and relays dialled back.
    background: relays::Background,
    /// Which relays are up, and the status and events that say so.
    links: Arc<link::Links>,
    /// Relays lost, for the redial task.
    lost: Arc<tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<link::Lost>>>,
    /// The task dialling lost relays again while the client lives.
    redial: tokio::task::JoinSet<()>,
    /// Records of attachments sent and received.
    refs: content::Refs,
    /// Who may fetch this device's attachments.
    members: Arc<content::Members>,
    /// What this device served.
    served: Arc<zerok_wire::blobs::Served>,
    /// The attachment store, and what serves it on the endpoint (opened on first use).
    blobs: Option<(ContentStore, iroh::protocol::Router)>,
    /// Largest attachment pushed.
    max_content: u64,
}

/// How a client recovers a lost connection before reporting an error.
#[derive(Clone, Copy, Debug)]
pub struct ReconnectPolicy {
    /// Reconnect attempts per failed request (0: fail at once).
    pub attempts: u32,
    /// Add the spec's 0–5 s random jitter to each delay (so devices do not return to a
    /// restarted relay all at once). Off only in tests.
    pub jitter: bool,
    /// Longest wait for a relay to answer one request.
    pub request_timeout: std::time::Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self { attempts: 3, jitter: true, request_timeout: conn::REQUEST_TIMEOUT }
    }
}

impl SyncClient {
    /// Connects to the group's relays (all of them; at least one must answer), brings the
    /// roster up to date with each (following a rotation made meanwhile, however long
    /// this device was away), and sends the pushes left in the outbox again.
    ///
    /// # Errors
    /// No group on this device, no relay reachable, this device revoked, or a roster
    /// entry that does not verify.
    pub async fn connect(home: SyncHome) -> Result<Self, Error> {
        let state = home.load_group()?;
        let keys = state.secret().derive();
        let device = home.signing_key()?;
        let endpoint = home.endpoint(&state.relays()?).await?;
        let (events, _) = broadcast::channel(1024);
        let (links, lost) = link::Links::new(events.clone());
        let dialer = relays::Dialer {
            endpoint: endpoint.clone(),
            keys: keys.clone(),
            name: state.device_name.clone(),
            events: events.clone(),
            links: links.clone(),
            timeout: ReconnectPolicy::default().request_timeout,
        };
        let conns = connect_all(dialer, &state).await?;
        let seen = home.seen_load();
        let refs = content::Refs::new(&home.content_dir());
        let clock_offset = conns[0].1.welcome.time as i64 - invite::now() as i64;
        let mut client = Self {
            home,
            state,
            keys,
            device,
            endpoint,
            conns,
            events,
            reconnect: ReconnectPolicy::default(),
            activity: Arc::default(),
            seen,
            read_more: false,
            clock_offset,
            primary_tried: None,
            background: relays::Background::default(),
            links,
            lost: Arc::new(tokio::sync::Mutex::new(lost)),
            redial: tokio::task::JoinSet::new(),
            refs,
            members: Arc::default(),
            served: Arc::default(),
            blobs: None,
            max_content: DEFAULT_MAX_CONTENT_BYTES,
        };
        if client.refs.any() {
            // Online: this device serves what it sent, and lets go of what waited out the
            // grace period.
            client.blobs().await?;
            client.release_held().await?;
        }
        client.start_redial();
        client.note_unreachable()?;
        client.sync_rosters().await?;
        // Pushes queued while the group rotated (or before a crash during the move) may be
        // sealed for an old group.
        let old: Vec<GroupKeys> = client.state.draining_secrets().iter().map(|s| s.derive()).collect();
        client.reseal_outbox(&old)?;
        client.flush_outbox().await?;
        Ok(client)
    }

    /// Counts messages pushed and pulled by this client (what cloud backup watches to
    /// snapshot after bursts of sync activity).
    pub fn activity(&self) -> Arc<AtomicU64> {
        self.activity.clone()
    }

    /// Changes how lost connections are recovered, and the request timeout.
    pub fn set_reconnect_policy(&mut self, policy: ReconnectPolicy) {
        self.reconnect = policy;
        for (_, conn) in &mut self.conns {
            conn.set_timeout(policy.request_timeout);
        }
        self.start_redial();
        // Relays its dials had in hand are asked for again.
        if let Err(e) = self.note_unreachable() {
            tracing::warn!(error = %e, "the group's relays could not be listed");
        }
    }

    /// (Re)starts the task that dials lost relays, with the current group and policy.
    pub(super) fn start_redial(&mut self) {
        self.redial.abort_all();
        self.links.restart();
        let dialer = self.dialer();
        self.redial.spawn(link::redial(dialer, self.links.clone(), self.lost.clone(), self.reconnect.jitter));
    }

    /// Where the client stands with its relays.
    pub fn connection_status(&self) -> ConnectionStatus {
        self.links.status()
    }

    /// Expiry of an invite made now: 10 minutes by the relay's clock, not this device's.
    fn invite_expiry(&self) -> u64 {
        (invite::now() as i64 + self.clock_offset).max(0) as u64 + INVITE_SECS
    }

    /// This device's id.
    pub fn device_id(&self) -> DeviceId {
        DeviceId(*self.endpoint.id().as_bytes())
    }

    /// Events: connections (up, lost, dialled again, the overall status), the relays'
    /// notices (new messages, revocations, roster changes), pushes acknowledged, and
    /// messages refused (decryption or signature failures).
    pub fn subscribe(&self) -> broadcast::Receiver<SyncEvent> {
        self.events.subscribe()
    }

    /// Whether the last [`SyncClient::pull`] (or [`SyncClient::pull_after`]) left messages
    /// for the next one: one read stops after so many pages or 16 MiB, and after a key rotation a
    /// pull reads the old group to its end first while the current group waits.
    pub fn has_more(&self) -> bool {
        self.read_more || self.state.is_draining()
    }

    /// The primary relay's last pulled cursor.
    pub fn last_cursor(&self) -> u64 {
        self.conns.first().map_or(0, |(r, _)| self.state.cursor(&r.to_string()))
    }

    /// Seals `data` for the device's group and queues it without any network, for when no
    /// relay is reachable; the next [`SyncClient::connect`] sends it.
    ///
    /// # Errors
    /// This device is in no group, or the outbox cannot be written.
    pub fn queue_offline(home: &SyncHome, data: &[u8]) -> Result<BlobId, Error> {
        let keys = home.load_group()?.secret().derive();
        let blob_id = BlobId::random();
        home.outbox_put(&blob_id, &keys.seal(&blob_id, &home.signing_key()?, &[&[KIND_DATA][..], data].concat()))?;
        Ok(blob_id)
    }

    /// Pulls everything new, in order, decrypted and sender-checked: first the roster (a
    /// rotation is followed), then what is left of groups this device rotated away from
    /// (messages pushed there before the rotation), then the current group from the first
    /// relay, in preference order, that answers (cursors are per relay).
    ///
    /// A payload that does not decrypt or verify is not delivered: it is reported as an
    /// event and passed over (see `read_group`).
    ///
    /// # Errors
    /// Connection failures, refusals, a roster entry that does not verify, this device
    /// revoked.
    pub async fn pull(&mut self) -> Result<Vec<Received>, Error> {
        self.tend().await?;
        let live = self.sync_rosters().await?;
        let mut out = self.drain().await?;
        if self.state.is_draining() {
            // An old group is left to read: the current one waits, to keep the order.
            return self.take_delivered(out).await;
        }
        let relay = live.first().copied().ok_or_else(|| Error::Unreachable("no relay answered".into()))?;
        let key = self.conns[relay].0.to_string();
        let after = self.state.cursor(&key);
        let read =
            read_group(&self.conns[relay].1, &self.keys, self.state.roster(), after, &mut self.seen, &self.events)
                .await;
        match read {
            Ok((got, reached, more)) => {
                self.read_more = more;
                self.state.set_cursor(&key, reached);
                self.home.save_group(&self.state)?;
                self.home.seen_add(&got.ids())?;
                out.extend(got);
            }
            // What was drained from an old group is delivered; this error comes back next time.
            Err(e) if out.messages.is_empty() && out.acks.is_empty() => return Err(e),
            Err(e) => tracing::warn!(error = %e, "the current group could not be read this time"),
        }
        self.take_delivered(out).await
    }

    /// Reads the current group again after `after`, a cursor of the relay [`SyncClient::pull`]
    /// reads from (the first in preference order that answers): for an app rebuilding its
    /// state from the relay's log. Messages delivered before are delivered again (only
    /// repeats within this read are dropped); the saved cursor stays where it is. Returns
    /// the messages and the cursor the read reached: one read stops after so many pages (or 16 MiB),
    /// so an app reads on from there until the cursor stops moving.
    ///
    /// # Errors
    /// As [`SyncClient::pull`].
    pub async fn pull_after(&mut self, after: u64) -> Result<(Vec<Received>, u64), Error> {
        self.tend().await?;
        let live = self.sync_rosters().await?;
        let relay = live.first().copied().ok_or_else(|| Error::Unreachable("no relay answered".into()))?;
        let mut seen = HashSet::new();
        let conn = &self.conns[relay].1;
        let (got, reached, more) =
            read_group(conn, &self.keys, self.state.roster(), after, &mut seen, &self.events).await?;
        self.read_more = more;
        Ok((got.messages, reached))
    }

    /// Files what a read delivered: attachments referenced, acknowledgements; the
    /// messages for the app.
    async fn take_delivered(&mut self, out: Delivered) -> Result<Vec<Received>, Error> {
        self.activity.fetch_add(out.messages.len() as u64, Ordering::Relaxed);
        self.note_content(&out).await?;
        Ok(out.messages)
    }

    /// Reads the groups this device rotated away from to their ends, oldest first, then
    /// forgets them. An old group is given up (with a warning) only when every relay
    /// refuses this device there; one that cannot be reached now is kept for next time.
    async fn drain(&mut self) -> Result<Delivered, Error> {
        let mut out = Delivered::default();
        while let Some(old) = self.state.draining() {
            let keys = old.secret().derive();
            let (mut got, mut refusals, mut failure) = (None, 0, None);
            let relays = self.state.relays()?;
            for relay in &relays {
                let name = relay.to_string();
                let cursor = self.state.draining().map_or(0, |d| d.cursor(&name));
                let endpoint = &self.endpoint;
                let conn = match RelayConn::connect(
                    endpoint,
                    relay,
                    &keys,
                    &self.state.device_name,
                    cursor,
                    self.events.clone(),
                )
                .await
                {
                    Ok(c) if c.welcome.member => c,
                    // Only a refusal that will not pass counts toward giving the group up
                    // (not an overloaded or rate-limiting relay).
                    Ok(_) => {
                        refusals += 1;
                        continue;
                    }
                    Err(e)
                        if matches!(
                            e.code(),
                            Some(ErrorCode::DeviceRevoked | ErrorCode::Unauthorized | ErrorCode::NotMember)
                        ) =>
                    {
                        refusals += 1;
                        continue;
                    }
                    Err(e) => {
                        failure = Some(e);
                        continue;
                    }
                };
                let read = read_group(&conn, &keys, self.state.roster(), cursor, &mut self.seen, &self.events).await;
                conn.close();
                match read {
                    Ok((messages, reached, more)) => {
                        if let Some(d) = self.state.draining() {
                            d.set_cursor(&name, reached);
                        }
                        got = Some((messages, more));
                        break;
                    }
                    Err(e) => failure = Some(e),
                }
            }
            match (got, failure) {
                (Some((messages, more)), _) => {
                    // Read to its end: forgotten. Stopped at the page limit: read on next time.
                    if !more {
                        self.state.drained();
                    }
                    self.home.save_group(&self.state)?;
                    self.home.seen_add(&messages.ids())?;
                    out.extend(messages);
                    if more {
                        break;
                    }
                }
                (None, None) if refusals == relays.len() => {
                    tracing::warn!("giving up the messages left in a group this device rotated away from");
                    self.state.drained();
                    self.home.save_group(&self.state)?;
                }
                (None, failure) => {
                    self.home.save_group(&self.state)?;
                    if out.messages.is_empty() && out.acks.is_empty() {
                        return Err(failure.unwrap_or_else(|| Error::Unreachable("no relay".into())));
                    }
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Makes an invite for another device: a URL (for a QR code, holds the secret) and a
    /// short code whose sealed invite is stored at the primary relay. Either admits one
    /// device, once, for 10 minutes by the relay's clock (see [`Invite`]).
    ///
    /// # Errors
    /// The relay refused to store it.
    pub async fn invite(&mut self) -> Result<(String, InviteCode), Error> {
        self.sync_rosters().await?;
        let invite = Invite::new(&self.state, &self.device, self.invite_expiry());
        let code = InviteCode::generate().for_invite(&invite);
        let put = code.seal(&invite);
        match self.request(0, &Message::InvitePut(put)).await? {
            Message::Ok => Ok((invite.to_url(), code)),
            other => Err(Error::unexpected(&other)),
        }
    }

    /// Deletes a message this device pushed, at every relay, without waiting for the other
    /// devices to pull it.
    ///
    /// # Errors
    /// [`Error::Refused`] with `NOT_BLOB_OWNER` for another device's message.
    pub async fn force_delete(&mut self, blob_id: BlobId) -> Result<(), Error> {
        // Not sent again to a relay that has not acknowledged it yet.
        self.forget_push(&blob_id)?;
        let msg = Message::Delete(zerok_core::sync::message::Delete { blob_id, force: true });
        for i in 0..self.conns.len() {
            match self.request(i, &msg).await? {
                Message::Deleted(d) if d.blob_id == blob_id => {}
                other => return Err(Error::unexpected(&other)),
            }
        }
        Ok(())
    }

    /// Cancels a short code before it is used (the relay drops its sealed invite; the
    /// URL form stays valid until it expires).
    ///
    /// # Errors
    /// Connection failures.
    pub async fn cancel_invite(&mut self, code: &InviteCode) -> Result<(), Error> {
        let invite_key = code.invite_key().ok_or_else(|| Error::Invite("not an invite made here".into()))?;
        let msg = Message::InviteCancel(zerok_core::sync::message::InviteCancel { lookup: code.lookup(), invite_key });
        // At every relay: the code was filed at whichever answered first.
        self.at_every_relay(&msg).await
    }

    /// Each relay and whether its connection is up.
    pub fn status(&self) -> Vec<(String, bool)> {
        self.conns.iter().map(|(r, c)| (r.to_string(), c.is_open())).collect()
    }

    /// Lets pushes still running at other relays finish (at most the request timeout),
    /// then closes the connections.
    pub async fn disconnect(mut self) {
        self.links.close();
        self.redial.abort_all();
        self.finish_background().await;
        for (_, conn) in &self.conns {
            conn.close();
        }
        match self.blobs.take() {
            // Closes the endpoint, and the attachment store with it.
            Some((store, router)) => {
                if router.shutdown().await.is_err() {
                    store.shutdown().await;
                }
            }
            None => self.endpoint.close().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use zerok_core::sync::message::{BlobEntry, PullResponse};

    use super::*;

    fn page(cursors: &[u64], has_more: bool) -> PullResponse {
        let blobs = cursors
            .iter()
            .map(|&cursor| BlobEntry {
                blob_id: BlobId::random(),
                cursor,
                sender_id: DeviceId([1; 32]),
                payload: vec![],
                timestamp: 0,
            })
            .collect();
        PullResponse { blobs, has_more, max_cursor: cursors.last().copied().unwrap_or(0) }
    }

    #[test]
    fn a_page_that_promises_more_and_holds_none_ends_the_pull_with_an_error() {
        assert_eq!(page_end(3, &page(&[4, 9], true)).unwrap(), (9, true));
        assert_eq!(page_end(3, &page(&[], false)).unwrap(), (3, false));
        let endless = page_end(3, &page(&[], true)).unwrap_err();
        assert!(endless.to_string().contains("sent none"), "{endless}");
        assert!(page_end(3, &page(&[5, 5], false)).is_err(), "out of order");
        assert!(page_end(3, &page(&[2], false)).is_err(), "behind the cursor asked for");
    }
}
