//! Membership, on the devices' side: keeping the roster log in step with every relay
//! (verifying each entry; sending a relay what it lacks), following rotations, admitting
//! this device with an invite, revoking devices, and listing the roster.

use zerok_core::sync::{
    DeviceId, GroupSecret, Message,
    message::{RosterAppend, RosterGet},
    roster::{Change, Entry, EntryHash, Op, Roster, Rotation, SealedSecret, join_entry, next_entry},
    seal,
};
use zerok_wire::{NetOptions, RelayAddr};

use super::{Invite, RelayConn, SyncClient, SyncEvent, SyncHome};
use crate::Error;

/// How often a client whose primary relay was unreachable tries it again.
const PRIMARY_RETRY: std::time::Duration = std::time::Duration::from_secs(30);
/// Tries a roster change this many times when other changes keep coming first.
const ROSTER_ATTEMPTS: usize = 8;
/// Most roster entries taken from a relay at once (bounds what a relay can make a device
/// hold).
const MAX_FETCH_ENTRIES: usize = 100_000;
/// … and most bytes of them.
const MAX_FETCH_BYTES: usize = 64 << 20;

/// A device of the roster, with what the relay knows of its presence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RosterDevice {
    /// Its id.
    pub device_id: DeviceId,
    /// The name in its roster entry.
    pub name: String,
    /// The member who admitted it (itself for the group's creator).
    pub added_by: DeviceId,
    /// Removed from the group.
    pub revoked: bool,
    /// Who removed it.
    pub removed_by: Option<DeviceId>,
    /// Connected to the primary relay now.
    pub online: bool,
    /// Last contact with the primary relay, Unix seconds (0: never).
    pub last_seen: u64,
}

/// Every roster entry a relay has after `after`, and its last position and entry hash.
async fn fetch(conn: &RelayConn, after: u64) -> Result<(Vec<Entry>, u64, EntryHash), Error> {
    let (mut out, mut after, mut bytes) = (Vec::new(), after, 0);
    loop {
        match conn.request(&Message::RosterGet(RosterGet { after_seq: after })).await? {
            Message::RosterEntries(r) => {
                let got = r.entries.len() as u64;
                after += got;
                bytes += r.entries.iter().map(Entry::len).sum::<usize>();
                out.extend(r.entries);
                if out.len() > MAX_FETCH_ENTRIES || bytes > MAX_FETCH_BYTES {
                    return Err(Error::Roster("a relay sent a roster longer than any this client takes".into()));
                }
                if !r.has_more || got == 0 {
                    return Ok((out, r.seq, r.head));
                }
            }
            other => return Err(Error::unexpected(&other)),
        }
    }
}

async fn append(conn: &RelayConn, entries: Vec<Entry>) -> Result<u64, Error> {
    match conn.request(&Message::RosterAppend(RosterAppend { entries })).await? {
        Message::RosterAppended(a) => Ok(a.seq),
        other => Err(Error::unexpected(&other)),
    }
}

fn refused(e: impl std::fmt::Display) -> Error {
    Error::Roster(e.to_string())
}

/// Admits the device of `identity` with `invite`: fetches the roster log from the first relay that
/// answers, checks it passes through the invite's position (the inviter's view: the
/// anchor of trust), verifies every entry, and appends the join entry. Returns the log.
///
/// # Errors
/// No relay, a log that does not verify or is not anchored, an invite refused (used,
/// expired, made before a rotation, inviter revoked).
pub(super) async fn admit(
    identity: iroh::SecretKey,
    invite: &Invite,
    relays: &[RelayAddr],
    name: &str,
    net: NetOptions,
) -> Result<Vec<Entry>, Error> {
    let mut raw = identity.to_bytes();
    let device = zerok_core::sync::SigningKey::from_bytes(&raw);
    zeroize::Zeroize::zeroize(&mut raw);
    let keys = invite.group_secret().derive();
    let endpoint = SyncHome::endpoint_as(identity, relays, net).await?;
    let (events, _) = tokio::sync::broadcast::channel(16);
    // Joins, like every roster change, are made at the primary relay (the others are
    // caught up by the members' next sync), so concurrent changes are ordered in one place.
    let primary = relays.first().ok_or_else(|| Error::Invite("the invite names no relay".into()))?;
    let conn = match RelayConn::connect(&endpoint, primary, &keys, name, 0, events).await {
        Ok(c) => c,
        Err(e) => {
            endpoint.close().await;
            return Err(e);
        }
    };
    let result = async {
        let (mut chain, _, _) = fetch(&conn, 0).await?;
        let anchored = chain.get(invite.seq.saturating_sub(1) as usize).is_some_and(|e| e.hash() == invite.head);
        if !anchored {
            return Err(Error::Invite("the relay's roster does not contain the inviting device's".into()));
        }
        let mut roster = Roster::replay(&chain).map_err(refused)?;
        if roster.is_member(&zerok_core::sync::DeviceId(device.verifying_key().to_bytes())) {
            // Joined before, and stopped before saving: the log already says so.
            return Ok(chain);
        }
        for _ in 0..ROSTER_ATTEMPTS {
            let entry = join_entry(&roster, &device, name, invite.ticket.clone(), &invite.invite_secret);
            match append(&conn, vec![entry.clone()]).await {
                Ok(_) => {
                    chain.push(entry);
                    return Ok(chain);
                }
                Err(e) if e.code() == Some(zerok_core::sync::ErrorCode::RosterConflict) => {
                    let (more, _, _) = fetch(&conn, roster.seq()).await?;
                    for e in more {
                        roster = roster.apply(&e, None).map_err(refused)?.0;
                        chain.push(e);
                    }
                }
                Err(Error::Refused { message, .. }) => return Err(Error::Invite(message)),
                Err(e) => return Err(e),
            }
        }
        Err(Error::Invite("the roster kept changing; try again".into()))
    }
    .await;
    conn.close();
    endpoint.close().await;
    result
}

impl SyncClient {
    /// Brings the roster in step with every relay: entries a relay has beyond this
    /// device's are verified and applied (a refused one is reported and stops the sync);
    /// a relay that lacks entries (behind, or its state lost) is sent them. Then follows
    /// any rotation. Returns the relays that answered, in preference order.
    ///
    /// # Errors
    /// No relay answered, a roster entry does not verify, or this device was revoked.
    pub(super) async fn sync_rosters(&mut self) -> Result<Vec<usize>, Error> {
        self.reach_primary().await;
        let mut live = Vec::new();
        let mut last = Error::Unreachable("no relay connected".into());
        for i in 0..self.conns.len() {
            match self.sync_roster_at(i).await {
                Ok(()) => live.push(i),
                Err(e @ Error::Revoked) => return Err(e),
                // A relay whose log does not verify or forks from this device's is not used.
                Err(e) => {
                    tracing::warn!(error = %e, "relay left out of this sync");
                    last = e;
                }
            }
        }
        if live.is_empty() {
            return Err(last);
        }
        if self.follow_rotations().await? {
            // Reconnected in the new group: every connection is new.
            live = (0..self.conns.len()).collect();
        }
        self.refresh_members()?;
        Ok(live)
    }

    /// The primary relay is where roster news comes from: a client that started while it
    /// was down tries it again (at most every [`PRIMARY_RETRY`]) and puts it first.
    async fn reach_primary(&mut self) {
        let Ok(Some(primary)) = self.state.relays().map(|r| r.into_iter().next()) else { return };
        if self.conns.iter().any(|(r, _)| *r == primary) {
            return;
        }
        if self.primary_tried.is_some_and(|t| t.elapsed() < PRIMARY_RETRY) {
            return;
        }
        self.primary_tried = Some(std::time::Instant::now());
        if let Ok(conn) = self.dial(&primary).await {
            self.conns.insert(0, (primary, conn));
        }
    }

    async fn sync_roster_at(&mut self, i: usize) -> Result<(), Error> {
        let mine = self.state.roster().seq();
        let fetched = match fetch(&self.conns[i].1, mine).await {
            Err(Error::Connection(_)) => {
                self.reconnect(i).await?;
                fetch(&self.conns[i].1, mine).await
            }
            other => other,
        };
        let (entries, relay_seq, relay_head) = fetched?;
        // New entries are taken from the primary relay only, where changes are ordered: a
        // relay that missed changes could otherwise serve a removed device's entry made on
        // the head it knew (a fork). The others are checked and caught up.
        let adopt = self.primary().is_ok_and(|p| p == i);
        let entries = if adopt { entries } else { Vec::new() };
        let changed = !entries.is_empty();
        for entry in entries {
            self.apply_entry(entry)?;
        }
        if changed {
            self.home.save_group(&self.state)?;
        }
        let mine = self.state.roster().seq();
        let agreed = match relay_seq {
            0 => true,
            n if n <= mine => self.state.chain()[n as usize - 1].hash() == relay_head,
            // A secondary ahead of this device: its news comes from the primary. Said out
            // loud, since a primary that hides changes would look just like this.
            _ if !adopt => {
                let reason = format!("{} has roster changes the primary has not given this device", self.conns[i].0);
                let _ = self.events.send(SyncEvent::RosterRefused { reason });
                tracing::warn!("a secondary relay is ahead of the primary on the roster");
                true
            }
            _ => false,
        };
        if !agreed {
            let reason = format!("the roster at {} differs from this device's (a fork)", self.conns[i].0);
            let _ = self.events.send(SyncEvent::RosterRefused { reason: reason.clone() });
            return Err(Error::Roster(reason));
        }
        let me = self.device_id();
        if relay_seq < mine && agreed {
            let missing = self.state.chain()[relay_seq as usize..].to_vec();
            if let Err(e) = append(&self.conns[i].1, missing).await {
                if e.code() == Some(zerok_core::sync::ErrorCode::RosterConflict) {
                    let reason = format!("the roster at {} conflicts with this device's (a fork)", self.conns[i].0);
                    let _ = self.events.send(SyncEvent::RosterRefused { reason: reason.clone() });
                    return Err(Error::Roster(reason));
                }
                return Err(e);
            }
            // The relay re-checks this session's membership after an append.
            self.conns[i].1.welcome.member |= self.state.roster().is_member(&me);
        }
        if !self.conns[i].1.welcome.member && self.state.roster().is_member(&me) {
            // The relay learnt this device's membership just now: say HELLO again so the
            // session counts as a member's (and gets its notices).
            self.reconnect_now(i).await?;
        }
        if self.state.roster().is_removed(&me) {
            return Err(Error::Revoked);
        }
        Ok(())
    }

    /// A new HELLO on relay `i` at once (no backoff).
    async fn reconnect_now(&mut self, i: usize) -> Result<(), Error> {
        self.conns[i].1 = self.dial(&self.conns[i].0).await?;
        Ok(())
    }

    /// Verifies and applies one entry beyond the head.
    fn apply_entry(&mut self, entry: Entry) -> Result<(), Error> {
        match self.state.roster().apply(&entry, None) {
            Ok((roster, change)) => {
                if let Change::Removed { device, .. } = change {
                    let _ = self.events.send(SyncEvent::DeviceRevoked { device });
                }
                self.state.push_entry(entry, roster);
                Ok(())
            }
            Err(e) => {
                let _ = self.events.send(SyncEvent::RosterRefused { reason: e.to_string() });
                Err(refused(e))
            }
        }
    }

    /// Moves through every rotation the roster made since this device's group: opens the
    /// new secret sealed to this device (checking it derives the announced group), keeps
    /// the old group for draining, re-seals queued pushes, and reconnects. A rotation whose
    /// secret does not open (a member sealed garbage) is reported and passed over: a later
    /// one may open (a member who removes the culprit rotates again), and meanwhile this
    /// device stays in the last group it could enter, able to make that removal itself.
    ///
    /// # Errors
    /// [`Error::Revoked`] when a rotation left this device out.
    async fn follow_rotations(&mut self) -> Result<bool, Error> {
        if self.state.roster().group() == self.keys.id() {
            return Ok(false);
        }
        let rotations: Vec<(zerok_core::sync::GroupId, Rotation)> = self
            .state
            .chain()
            .iter()
            .filter_map(|e| e.body().ok())
            .filter_map(|b| match b.op {
                Op::Remove { rotation: Some(r), .. } => Some((b.group, r)),
                _ => None,
            })
            .collect();
        let Some(start) = rotations.iter().position(|(from, _)| *from == self.keys.id()) else {
            let reason = "the roster moved on without a rotation out of this device's group".to_string();
            let _ = self.events.send(SyncEvent::RosterRefused { reason });
            return Ok(false);
        };
        let mut moved = false;
        for (_, rotation) in &rotations[start..] {
            let secret = match self.open_rotation(rotation) {
                Ok(secret) => secret,
                Err(Error::Revoked) => return Err(Error::Revoked),
                Err(e) => {
                    tracing::warn!(error = %e, "a rotation this device cannot open was passed over");
                    let _ = self.events.send(SyncEvent::RosterRefused { reason: e.to_string() });
                    continue;
                }
            };
            // The move is saved before the outbox is re-sealed: a crash in between leaves
            // pushes sealed for an old group, and every old group still held is tried.
            self.state.rotate_to(&secret);
            self.keys = secret.derive();
            self.home.save_group(&self.state)?;
            let old: Vec<zerok_core::sync::GroupKeys> =
                self.state.draining_secrets().iter().map(GroupSecret::derive).collect();
            self.reseal_outbox(&old)?;
            moved = true;
        }
        if moved {
            for (_, conn) in &self.conns {
                conn.close();
            }
            self.background.restart();
            // Before dialling the new group: a failure there leaves no task dialling the old.
            self.start_redial();
            self.conns = super::connect_all(self.dialer(), &self.state).await?;
            self.note_unreachable()?;
            let _ = self.events.send(SyncEvent::Rotated);
        }
        Ok(moved)
    }

    fn open_rotation(&self, rotation: &Rotation) -> Result<GroupSecret, Error> {
        let me = self.device_id();
        let sealed = rotation.sealed.iter().find(|s| s.device == me).ok_or(Error::Revoked)?;
        let mut raw = self.device.to_bytes();
        let opened = seal::open_as(&raw, &sealed.sealed);
        zeroize::Zeroize::zeroize(&mut raw);
        let mut bytes: [u8; 32] = opened
            .map_err(|_| refused("the rotation's secret for this device does not open"))?
            .as_slice()
            .try_into()
            .map_err(|_| refused("malformed rotation secret"))?;
        let secret = GroupSecret::from_bytes(bytes);
        zeroize::Zeroize::zeroize(&mut bytes);
        if secret.derive().id() != rotation.next {
            return Err(refused("the rotation's secret does not derive the group it announces"));
        }
        Ok(secret)
    }

    /// Queued pushes sealed for an `old` group are sealed again for the current one. One
    /// that opens under none (damaged) is set aside as `<id>.unreadable`, never sent.
    pub(super) fn reseal_outbox(&self, old: &[zerok_core::sync::GroupKeys]) -> Result<(), Error> {
        let me = self.device_id();
        for (blob_id, sealed) in self.home.outbox_list()? {
            if self.keys.open(&blob_id, &me, &sealed).is_ok() {
                continue;
            }
            match old.iter().find_map(|k| k.open(&blob_id, &me, &sealed).ok()) {
                Some(plain) => self.home.outbox_put(&blob_id, &self.keys.seal(&blob_id, &self.device, &plain))?,
                None => {
                    tracing::warn!("a queued push that does not open was set aside");
                    self.home.outbox_set_aside(&blob_id)?;
                }
            }
        }
        Ok(())
    }

    /// Removes `device` from the group. With `rotate` (the default of the CLI) the group
    /// moves to a new secret sealed to exactly the roster's remaining devices, so nothing
    /// pushed afterwards can be read by the removed device under any key; without it the
    /// relays refuse the device, but it keeps the secret (for a device that is only lost).
    /// Concurrent changes are retried on the new head; a device someone else removed
    /// meanwhile counts as done.
    ///
    /// # Errors
    /// Not a member, no primary relay, refusals.
    pub async fn revoke(&mut self, device: DeviceId, rotate: bool) -> Result<(), Error> {
        for _ in 0..ROSTER_ATTEMPTS {
            self.sync_rosters().await?;
            let roster = self.state.roster().clone();
            if roster.is_removed(&device) {
                return Ok(());
            }
            if !roster.is_member(&device) {
                return Err(Error::State("no such device in the group's roster".into()));
            }
            let secret = rotate.then(GroupSecret::generate);
            let rotation = match &secret {
                Some(secret) => {
                    let mut sealed = Vec::new();
                    for d in roster.members().keys().filter(|d| **d != device) {
                        let s = seal::seal_to(d, secret.expose()).map_err(|e| Error::State(e.to_string()))?;
                        sealed.push(SealedSecret { device: *d, sealed: s });
                    }
                    Some(Rotation { next: secret.derive().id(), sealed })
                }
                None => None,
            };
            let entry = next_entry(&roster, &self.device, Op::Remove { device, rotation });
            let primary = self.primary()?;
            match append(&self.conns[primary].1, vec![entry.clone()]).await {
                Ok(_) => {
                    self.apply_entry(entry)?;
                    self.home.save_group(&self.state)?;
                    // Mirrors: the other relays get the entry too.
                    for i in (0..self.conns.len()).filter(|i| *i != primary) {
                        if let Err(e) = self.sync_roster_at(i).await {
                            tracing::warn!(error = %e, "a relay did not take the roster change; it gets it later");
                        }
                    }
                    return self.follow_rotations().await.map(|_| ());
                }
                Err(e) if e.code() == Some(zerok_core::sync::ErrorCode::RosterConflict) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::State("the roster kept changing; try again".into()))
    }

    /// Replaces this device's identity with a fresh key, for a device rebuilt from another
    /// one's backup: the old key admits the new one (a ticket), the new one joins and then
    /// removes the old one with a rotation, so whoever still holds the old key (the lost
    /// device, perhaps stolen) is cut off, and the two never share an identity.
    ///
    /// # Errors
    /// The group's latest rotation cannot be followed, the primary relay is unreachable, or
    /// the join or removal is refused.
    pub async fn replace_identity(mut self, name: &str) -> Result<SyncClient, Error> {
        self.sync_rosters().await?;
        if self.state.roster().group() != self.keys.id() {
            return Err(Error::Roster("this device cannot open the group's latest rotation".into()));
        }
        let invite = Invite::new(&self.state, &self.device, self.invite_expiry());
        let (old, home, relays) = (self.device_id(), self.home.clone(), self.state.relays()?);
        self.disconnect().await;
        // The home keeps the old identity until the new one is in the roster: a failure
        // before leaves it as it was (the old key still opens the vault's place).
        let fresh = iroh::SecretKey::generate();
        let chain = admit(fresh.clone(), &invite, &relays, name, home.net()?).await?;
        let mut state = home.load_group()?;
        state.replace_chain(chain)?;
        home.set_device_key(&fresh.to_bytes())?;
        home.save_group(&state)?;
        let mut client = SyncClient::connect(home).await?;
        client.revoke(old, true).await?;
        Ok(client)
    }

    /// The index of the group's primary relay (the first configured), where roster changes
    /// are made first so that concurrent ones are ordered in one place.
    ///
    /// # Errors
    /// [`Error::Unreachable`] when it is not connected.
    fn primary(&self) -> Result<usize, Error> {
        let first = self.state.relays()?.into_iter().next();
        self.conns.iter().position(|(r, c)| Some(r) == first.as_ref() && c.is_open()).ok_or_else(|| {
            Error::Unreachable("roster changes are made at the primary relay, which is unreachable".into())
        })
    }

    /// The group's devices by the verified roster (removed ones too), with presence
    /// from the primary relay.
    ///
    /// # Errors
    /// Connection failures, or a roster entry that does not verify.
    pub async fn list_devices(&mut self) -> Result<Vec<RosterDevice>, Error> {
        self.sync_rosters().await?;
        let presence = match self.request(0, &Message::Presence(Default::default())).await? {
            Message::Presence(p) => p.devices,
            other => return Err(Error::unexpected(&other)),
        };
        let seen = |d: &DeviceId| presence.iter().find(|p| p.device_id == *d);
        let roster = self.state.roster();
        let mut out: Vec<RosterDevice> = roster
            .members()
            .iter()
            .map(|(id, m)| RosterDevice {
                device_id: *id,
                name: m.name.clone(),
                added_by: m.added_by,
                revoked: false,
                removed_by: None,
                online: seen(id).is_some_and(|p| p.online),
                last_seen: seen(id).map_or(0, |p| p.last_seen),
            })
            .collect();
        out.extend(roster.removed().iter().map(|(id, r)| RosterDevice {
            device_id: *id,
            name: r.name.clone(),
            added_by: r.added_by,
            revoked: true,
            removed_by: Some(r.removed_by),
            online: false,
            last_seen: seen(id).map_or(0, |p| p.last_seen),
        }));
        Ok(out)
    }
}
