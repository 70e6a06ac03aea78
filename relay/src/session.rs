//! One connection: HELLO (with its group proof) within the timeout — or invite lookups,
//! which need no group — then requests, one bidirectional stream each. A device that is
//! not in the relay's roster of the group may only read the roster and append to it (its
//! join, or a log the relay lost); a removed device is refused at HELLO under any key. A
//! malformed or oversized frame closes this connection only.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use iroh::endpoint::{Connection, RecvStream, SendStream};
use zerok_core::sync::{
    DeviceId, ErrorCode, GroupId, Message,
    group::verify_hello,
    message::{
        DEFAULT_PULL_LIMIT, DeviceRevoked, Hello, InviteFound, Notify, PROTOCOL_VERSION, Presence, PullResponse,
        PushAck, RosterAppended, RosterEntries, Welcome,
    },
    roster::{Change, Entry},
};
use zerok_wire::{WireError, read_frame, write_frame};

use crate::{
    NewBlob, StoreError,
    metrics::Metrics,
    server::{Online, State},
};

/// QUIC close codes.
const CLOSE_BAD_FRAME: u32 = 3;
const CLOSE_REFUSED: u32 = 4;
const CLOSE_BYE: u32 = 0;
/// Largest sealed invite accepted.
const MAX_SEALED_INVITE_BYTES: usize = 4096;

/// An invite bucket is 16 bits of a code's hash: four lowercase hex digits.
fn valid_lookup(lookup: &str) -> bool {
    lookup.len() == 4 && lookup.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
/// Clocks of devices and relay may disagree by this much.
const CLOCK_SLACK_SECS: u64 = 60;
/// Invites live at most this long.
const MAX_INVITE_SECS: u64 = 600;
/// WELCOME counts pending messages up to this many (bounds the work of a HELLO).
const PENDING_COUNT_CAP: u32 = 10_000;
/// How long a refused peer gets to read the refusal before the connection closes.
const REFUSAL_GRACE: Duration = Duration::from_secs(2);
/// Bytes a PULL_RESPONSE needs besides its entries.
const PULL_OVERHEAD_BYTES: usize = 128;

struct Session {
    state: Arc<State>,
    conn: Connection,
    device: DeviceId,
    /// In the relay's roster of the session's group (set at HELLO, and by a join).
    member: AtomicBool,
    /// The name from HELLO (truncated).
    name: std::sync::OnceLock<String>,
}

/// Runs a connection to its end.
pub async fn run(state: Arc<State>, conn: Connection) {
    let device = DeviceId(*conn.remote_id().as_bytes());
    let member = AtomicBool::new(false);
    let name = std::sync::OnceLock::new();
    let session = Arc::new(Session { state: state.clone(), conn: conn.clone(), device, member, name });
    let Some(group) = session.until_hello().await else { return };
    Metrics::inc(&state.metrics.sessions_active);
    if session.member.load(Ordering::Relaxed) {
        session.go_online(group);
    }
    tracing::debug!(group = %crate::server::log_group(&group), "session open");
    loop {
        let (send, recv) = tokio::select! {
            _ = state.stop_token().cancelled() => {
                conn.close((ErrorCode::RelayShuttingDown as u32).into(), b"relay shutting down");
                break;
            }
            s = conn.accept_bi() => match s { Ok(s) => s, Err(_) => break },
        };
        let session = session.clone();
        state.tasks.spawn(async move { session.serve_stream(group, send, recv).await });
    }
    state.go_offline(&group, &device, &conn);
    state.metrics.sessions_active.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
}

impl Session {
    /// Registers this member's connection for notices (NOTIFY, roster changes).
    fn go_online(&self, group: GroupId) {
        let notices = self.state.go_online(group, self.device, self.conn.clone());
        let (state, conn) = (self.state.clone(), self.conn.clone());
        self.state.tasks.spawn(async move {
            notices.run(conn, || Metrics::inc(&state.metrics.notifies_total)).await;
        });
    }

    fn max_frame(&self) -> usize {
        self.state.config.limits.max_frame_bytes
    }

    fn bad_frame(&self, e: &WireError) {
        if matches!(e, WireError::Frame(_)) {
            Metrics::inc(&self.state.metrics.bad_frames_total);
            self.conn.close(CLOSE_BAD_FRAME.into(), b"bad frame");
        }
    }

    /// Serves streams until a valid HELLO; returns its group, or None when the connection
    /// was refused or ended.
    async fn until_hello(&self) -> Option<GroupId> {
        let deadline = tokio::time::sleep(Duration::from_secs(self.state.config.limits.hello_timeout_secs));
        tokio::pin!(deadline);
        let mut lookups = 0;
        loop {
            let (mut send, mut recv) = tokio::select! {
                _ = &mut deadline => {
                    self.conn.close(CLOSE_REFUSED.into(), b"no HELLO in time");
                    return None;
                }
                _ = self.state.stop_token().cancelled() => return None,
                s = self.conn.accept_bi() => s.ok()?,
            };
            // The deadline covers the first frame too: a peer that sends part of one, or a
            // length and nothing more, is closed with everyone who sends nothing.
            let read = tokio::select! {
                _ = &mut deadline => {
                    self.conn.close(CLOSE_REFUSED.into(), b"no HELLO in time");
                    return None;
                }
                r = read_frame(&mut recv, self.max_frame()) => r,
            };
            let msg = match read {
                Ok(m) => m,
                Err(e) => {
                    self.bad_frame(&e);
                    return None;
                }
            };
            match msg {
                Message::Hello(hello) => match self.hello(&hello).await {
                    Ok(welcome) => {
                        write_frame(&mut send, &welcome).await.ok()?;
                        return Some(hello.group_id);
                    }
                    Err(refusal) => {
                        Metrics::inc(&self.state.metrics.hello_refused_total);
                        self.refuse(&mut send, &refusal, b"HELLO refused").await;
                        return None;
                    }
                },
                Message::InviteGet(get) if lookups < self.state.config.limits.invite_lookups_per_connection => {
                    lookups += 1;
                    let reply = self.take_invite(&get.lookup).await;
                    write_frame(&mut send, &reply).await.ok()?;
                }
                _ => {
                    self.refuse(&mut send, &ErrorCode::InvalidMessage.message("HELLO first"), b"HELLO first").await;
                    return None;
                }
            }
        }
    }

    /// Sends a refusal, gives the peer a moment to read it, and closes the connection.
    async fn refuse(&self, send: &mut SendStream, reply: &Message, reason: &[u8]) {
        if write_frame(send, reply).await.is_ok() {
            let _ = tokio::time::timeout(REFUSAL_GRACE, send.stopped()).await;
        }
        self.conn.close(CLOSE_REFUSED.into(), reason);
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&crate::Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        crate::store::on_blocking(&self.state.store, f).await
    }

    /// Refuses a device that is not (or no longer) a member, and a push into a rotated
    /// group (vault mode checks before writing the object; the transit store checks in the
    /// push's own transaction).
    async fn may_push(&self, group: GroupId) -> Result<(), StoreError> {
        let device = self.device;
        let standing = self.blocking(move |s| s.standing(&group, &device)).await?;
        match standing {
            s if !s.member => Err(StoreError::NotMember),
            s if s.closed => Err(StoreError::Rotated),
            _ => Ok(()),
        }
    }

    async fn hello(&self, h: &Hello) -> Result<Message, Message> {
        if h.version != PROTOCOL_VERSION {
            return Err(ErrorCode::VersionMismatch
                .message(format!("protocol version {} unsupported; this relay speaks {PROTOCOL_VERSION}", h.version)));
        }
        verify_hello(&h.group_id, &h.auth_key, &h.proof, &self.device, self.state.relay_id())
            .map_err(|_| ErrorCode::Unauthorized.message("membership proof does not verify for this connection"))?;
        let name: String = h.device_name.chars().take(self.state.config.limits.max_device_name_chars).collect();
        let _ = self.name.set(name.clone());
        let (group, device, now) = (h.group_id, self.device, self.state.now());
        let result = self
            .blocking(move |s| {
                let standing = s.standing(&group, &device)?;
                if standing.removed || s.is_revoked(&group, &device)? {
                    return Err(StoreError::Revoked);
                }
                if !standing.member {
                    return Ok((standing, 0, 0));
                }
                s.hello(&group, &device, &name, now)?;
                Ok((standing, s.max_cursor(&group)?, s.pending_count(&group, &device, PENDING_COUNT_CAP)?))
            })
            .await;
        match result {
            Ok((standing, max_cursor, pending_count)) => {
                self.member.store(standing.member, Ordering::Relaxed);
                Ok(Message::Welcome(Welcome {
                    version: PROTOCOL_VERSION,
                    relay_id: self.state.relay_id_hex(),
                    max_cursor,
                    pending_count,
                    roster_seq: standing.roster_seq,
                    member: standing.member,
                    time: now,
                }))
            }
            Err(StoreError::Revoked) => Err(ErrorCode::DeviceRevoked.message("this device was revoked from the group")),
            Err(e) => Err(ErrorCode::RelayOverloaded.message(e.to_string())),
        }
    }

    async fn take_invite(&self, lookup: &str) -> Message {
        if !valid_lookup(lookup) {
            return ErrorCode::InvalidMessage.message("bad invite code");
        }
        let (lookup, now) = (lookup.to_string(), self.state.now());
        match self.blocking(move |s| s.invites(&lookup, now)).await {
            Ok(found) if found.is_empty() => {
                ErrorCode::InviteNotFound.message("no such invite (expired, used or cancelled)")
            }
            Ok(found) => Message::InviteFound(InviteFound { sealed: found.into_iter().map(Into::into).collect() }),
            Err(e) => ErrorCode::RelayOverloaded.message(e.to_string()),
        }
    }

    async fn serve_stream(&self, group: GroupId, mut send: SendStream, mut recv: RecvStream) {
        let msg = match read_frame(&mut recv, self.max_frame()).await {
            Ok(m) => m,
            Err(e) => return self.bad_frame(&e),
        };
        if let Message::Bye(_) = msg {
            self.conn.close(CLOSE_BYE.into(), b"bye");
            return;
        }
        let reply = self.request(group, msg).await;
        if write_frame(&mut send, &reply).await.is_ok() {
            let _ = send.stopped().await;
        }
    }

    async fn request(&self, group: GroupId, msg: Message) -> Message {
        let (state, device, now) = (&self.state, self.device, self.state.now());
        let refused = |e: StoreError| match e {
            StoreError::Quota(q) => {
                ErrorCode::GroupQuotaExceeded.message(format!("group storage quota of {q} bytes reached"))
            }
            StoreError::Revoked => ErrorCode::DeviceRevoked.message("this device was revoked from the group"),
            StoreError::NotOwner => ErrorCode::NotBlobOwner.message("only the sender may force-delete"),
            StoreError::Rotated => {
                ErrorCode::GroupRotated.message("the group has moved to a new secret; follow the roster")
            }
            StoreError::NotMember => ErrorCode::NotMember.message("this device is not a member of the group"),
            StoreError::Conflict => {
                ErrorCode::RosterConflict.message("the roster changed meanwhile; fetch it and try again")
            }
            StoreError::Roster(why) => ErrorCode::RosterRefused.message(why),
            StoreError::UnknownRoster => {
                ErrorCode::UnknownGroup.message("this relay knows no roster for the group: send it from its start")
            }
            StoreError::Db(e) => ErrorCode::RelayOverloaded.message(e),
        };
        let limited =
            matches!(msg, Message::Push(_) | Message::Pull(_) | Message::RosterAppend(_) | Message::InvitePut(_));
        if limited && !state.allow(&device) {
            return ErrorCode::RateLimited.message("rate limit reached; retry later");
        }
        let guest_may = matches!(msg, Message::RosterGet(_) | Message::RosterAppend(_) | Message::InviteGet(_));
        if !guest_may && !self.member.load(Ordering::Relaxed) {
            return refused(StoreError::NotMember);
        }
        match msg {
            Message::Push(p) => {
                let limits = &state.config.storage;
                if p.payload.len() as u64 > limits.max_blob_bytes {
                    return ErrorCode::BlobTooLarge.message(format!("payload over {} bytes", limits.max_blob_bytes));
                }
                let ttl = if p.ttl == 0 { limits.default_ttl_secs } else { (p.ttl as u64).min(limits.max_ttl_secs) };
                let quota = limits.max_group_bytes;
                let size = p.payload.len() as u32;
                let blob_id = p.blob_id;
                let pushed = async {
                    let (blob_id, payload) = (&p.blob_id, &p.payload);
                    let blob = NewBlob { group: &group, sender: &device, blob_id, payload, ttl_secs: ttl, now };
                    match &state.archive {
                        Some(archive) => {
                            self.may_push(group).await?;
                            archive.push(&blob, quota).await
                        }
                        None => state.committer.push(&blob).await,
                    }
                }
                .await;
                match pushed {
                    Ok(pushed) => {
                        Metrics::inc(&state.metrics.pushes_total);
                        state.metrics.bytes_received_total.fetch_add(size as u64, std::sync::atomic::Ordering::Relaxed);
                        if !pushed.duplicate {
                            let note =
                                Notify { blob_id, cursor: pushed.cursor, sender_id: device, timestamp: now, size };
                            self.broadcast(&group, Some(&device), Message::Notify(note));
                        }
                        Message::PushAck(PushAck { blob_id, cursor: pushed.cursor, timestamp: pushed.timestamp })
                    }
                    Err(e) => refused(e),
                }
            }
            Message::Pull(p) => {
                let limit = match p.limit {
                    0 => DEFAULT_PULL_LIMIT,
                    n => n.min(state.config.limits.max_pull_limit),
                } as usize;
                let budget = self.max_frame().saturating_sub(PULL_OVERHEAD_BYTES);
                let after = p.after_cursor;
                let mut pulled = self
                    .blocking(move |s| {
                        s.ack(&group, &device, after, now)?;
                        s.pull_within(&group, after, limit, budget)
                    })
                    .await;
                if let (Some(archive), Ok((blobs, _))) = (&state.archive, &mut pulled) {
                    match archive.fill(&group, std::mem::take(blobs)).await {
                        Ok(filled) => *blobs = filled,
                        Err(e) => pulled = Err(e),
                    }
                }
                match pulled {
                    Ok((blobs, has_more)) => {
                        Metrics::inc(&state.metrics.pulls_total);
                        let max_cursor = blobs.last().map_or(after, |b| b.cursor);
                        Message::PullResponse(PullResponse { blobs, has_more, max_cursor })
                    }
                    Err(e) => refused(e),
                }
            }
            Message::Presence(_) => {
                let online: std::collections::HashSet<DeviceId> =
                    state.online_devices(&group).into_iter().map(|(d, _)| d).collect();
                match self
                    .blocking(move |s| {
                        s.ack(&group, &device, 0, now)?;
                        s.devices(&group)
                    })
                    .await
                {
                    Ok(mut devices) => {
                        for d in &mut devices {
                            d.online = online.contains(&d.device_id);
                        }
                        Message::Presence(Presence { devices })
                    }
                    Err(e) => refused(e),
                }
            }
            Message::Delete(d) => {
                let deleted = async {
                    match &state.archive {
                        Some(archive) => archive.delete(group, d.blob_id, device, d.force).await,
                        None => self.blocking(move |s| s.delete(&group, &d.blob_id, &device, d.force)).await,
                    }
                }
                .await;
                match deleted {
                    Ok(_) => Message::Ok,
                    Err(e) => refused(e),
                }
            }
            Message::RosterGet(get) => {
                let budget = self.max_frame().saturating_sub(PULL_OVERHEAD_BYTES);
                match self.blocking(move |s| s.roster_entries(&group, get.after_seq, budget)).await {
                    Ok(p) => Message::RosterEntries(RosterEntries {
                        entries: p.entries,
                        has_more: p.has_more,
                        seq: p.seq,
                        head: p.head,
                    }),
                    Err(e) => refused(e),
                }
            }
            Message::RosterAppend(append) => match self.append_roster(group, append.entries).await {
                Ok(seq) => Message::RosterAppended(RosterAppended { seq }),
                Err(e) => refused(e),
            },
            Message::InvitePut(put) => {
                if !valid_lookup(&put.lookup)
                    || put.sealed.len() > MAX_SEALED_INVITE_BYTES
                    || put.expires > now + MAX_INVITE_SECS + CLOCK_SLACK_SECS
                {
                    return ErrorCode::InvalidMessage
                        .message("invite too large, code too long, or expiry over 10 minutes");
                }
                match self
                    .blocking(move |s| s.put_invite(&put.lookup, &put.invite_key, &put.sealed, put.expires, now))
                    .await
                {
                    Ok(()) => Message::Ok,
                    Err(e) => refused(e),
                }
            }
            Message::InviteGet(get) => self.take_invite(&get.lookup).await,
            Message::InviteCancel(c) => match self.blocking(move |s| s.cancel_invite(&c.lookup, &c.invite_key)).await {
                Ok(()) => Message::Ok,
                Err(e) => refused(e),
            },
            Message::RegisterPush(_) | Message::UnregisterPush(_) => {
                ErrorCode::InvalidPushToken.message("this relay has no push gateway configured")
            }
            Message::ContentRef(_) | Message::ContentAck(_) => ErrorCode::InvalidMessage
                .message("large content travels between devices over iroh-blobs, not through the relay"),
            _ => ErrorCode::InvalidMessage.message("unexpected message"),
        }
    }

    /// Appends roster entries; then this session may become a member (its join), the
    /// group's online devices hear of the change, and removed devices are cut off.
    async fn append_roster(&self, group: GroupId, entries: Vec<Entry>) -> Result<u64, StoreError> {
        let (state, device, now) = (&self.state, self.device, self.state.now());
        let appended = self.blocking(move |s| s.roster_append(&group, &entries, now)).await?;
        let standing = self.blocking(move |s| s.standing(&group, &device)).await?;
        if standing.member && !self.member.swap(true, Ordering::Relaxed) {
            let name = self.name.get().cloned().unwrap_or_default();
            self.blocking(move |s| s.hello(&group, &device, &name, now)).await?;
            self.go_online(group);
        }
        if !appended.changes.is_empty() {
            self.broadcast(&group, Some(&device), Message::RosterAppended(RosterAppended { seq: appended.seq }));
        }
        for change in &appended.changes {
            let Change::Removed { device: target, by, .. } = change else { continue };
            if let Some(archive) = &state.archive {
                archive.revoke(group, *target).await?;
            }
            let notice = DeviceRevoked { device_id: *target, revoked_by: *by, timestamp: now };
            self.broadcast(&group, None, Message::DeviceRevoked(notice));
            for (_, Online { conn, .. }) in state.online_devices(&group).into_iter().filter(|(d, _)| d == target) {
                state.tasks.spawn(async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    conn.close(CLOSE_REFUSED.into(), b"device revoked");
                });
            }
        }
        Ok(appended.seq)
    }

    /// Queues `msg` for every online device of the group but `except` (see `notices`).
    fn broadcast(&self, group: &GroupId, except: Option<&DeviceId>, msg: Message) {
        for (device, online) in self.state.online_devices(group) {
            if Some(&device) != except {
                online.notices.push(msg.clone());
            }
        }
    }
}
