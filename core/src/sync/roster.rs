//! The roster: which devices are in a sync group, decided by the devices themselves. A
//! hash-chained log of entries, each signed by a member's device key, that every device
//! and every relay verifies the same way (see the `core::sync` module docs for the
//! protocol and its threat model).
//!
//! ```text
//! Entry  = {body: bin (MessagePack map Body), sig: bin64}
//! sig    = Ed25519(author's device key, "zerok-roster-entry-v1" ‖ body)
//! hash   = SHA-256("zerok-roster-hash-v1" ‖ body ‖ sig)
//! Body   = {v: 1, group: bin32, seq: u64 (1 = genesis), prev: bin32 (hash of entry seq-1,
//!           zeros for the genesis), author: bin32 (device id), op: Op}
//! Op     = {"create": {name}}
//!        | {"join": {name, ticket: Ticket, invite_proof: bin64}}
//!        | {"remove": {device: bin32, rotation: nil | {next: bin32, sealed: [{device, sealed}]}}}
//! Ticket = {group, inviter, invite_key: bin32, expires: u64, sig: bin64}
//!   sig          = Ed25519(inviter's device key, "zerok-invite-ticket-v1" ‖ group ‖ invite_key ‖ expires BE)
//!   invite_proof = Ed25519(invite secret key, "zerok-invite-join-v1" ‖ group ‖ author)
//! ```

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{DeviceId, GroupId};

/// Version of the entry body.
pub const ROSTER_VERSION: u8 = 1;
/// Largest encoded entry accepted (a rotation to [`MAX_MEMBERS`] devices fits).
pub const MAX_ENTRY_BYTES: usize = 64 * 1024;
/// Most devices a group may have.
pub const MAX_MEMBERS: usize = 256;
/// Longest device name in an entry, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest secret sealed to one device in a rotation.
const MAX_SEALED_BYTES: usize = 256;

const ENTRY_LABEL: &[u8] = b"zerok-roster-entry-v1";
const HASH_LABEL: &[u8] = b"zerok-roster-hash-v1";
const TICKET_LABEL: &[u8] = b"zerok-invite-ticket-v1";
const JOIN_LABEL: &[u8] = b"zerok-invite-join-v1";

/// Why an entry was refused. Every variant means the entry changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RosterError {
    /// Not a well-formed entry (encoding, version, size).
    #[error("malformed roster entry: {0}")]
    Malformed(&'static str),
    /// It does not extend this roster's head (a concurrent change won, or a fork).
    #[error("roster entry {seq} does not follow the head at {head}")]
    NotNext {
        /// The entry's position.
        seq: u64,
        /// This roster's last position.
        head: u64,
    },
    /// A signature does not verify.
    #[error("roster entry signature does not verify ({0})")]
    BadSignature(&'static str),
    /// Signed by, or naming, a device that may not do this.
    #[error("roster entry refused: {0}")]
    Refused(&'static str),
}

type Result<T> = std::result::Result<T, RosterError>;

/// Hash of an entry: what the next entry's `prev` names.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EntryHash(#[serde(with = "serde_bytes")] pub [u8; 32]);

/// Public half of a one-time invite key (see [`Ticket`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InviteKey(#[serde(with = "serde_bytes")] pub [u8; 32]);

impl std::fmt::Debug for EntryHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EntryHash({})", hex::encode(&self.0[..8]))
    }
}

impl std::fmt::Debug for InviteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InviteKey([REDACTED])")
    }
}

/// A member's admission of one future device: whoever holds the invite secret key may
/// join once, while the inviter is still a member.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    /// The group it admits to.
    pub group: GroupId,
    /// The member who made it.
    pub inviter: DeviceId,
    /// Public key of the one-time invite key.
    pub invite_key: InviteKey,
    /// Expiry, Unix seconds (enforced by relays with their clock; devices do not trust
    /// their own clocks for it).
    pub expires: u64,
    /// The inviter's signature.
    #[serde(with = "serde_bytes")]
    pub sig: [u8; 64],
}

fn ticket_message(group: &GroupId, key: &InviteKey, expires: u64) -> Vec<u8> {
    [TICKET_LABEL, &group.0, &key.0, &expires.to_be_bytes()].concat()
}

fn join_message(group: &GroupId, device: &DeviceId) -> Vec<u8> {
    [JOIN_LABEL, &group.0, &device.0].concat()
}

impl Ticket {
    /// A ticket signed by `inviter` for the invite key whose secret is `invite_secret`.
    pub fn new(group: GroupId, inviter: &SigningKey, invite_secret: &[u8; 32], expires: u64) -> Self {
        let invite_key = InviteKey(SigningKey::from_bytes(invite_secret).verifying_key().to_bytes());
        let sig = inviter.sign(&ticket_message(&group, &invite_key, expires)).to_bytes();
        Self { group, inviter: DeviceId(inviter.verifying_key().to_bytes()), invite_key, expires, sig }
    }

    fn verify(&self) -> Result<()> {
        verify(&self.inviter.0, &ticket_message(&self.group, &self.invite_key, self.expires), &self.sig, "ticket")
    }
}

/// A new group secret sealed to one remaining device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SealedSecret {
    /// Recipient.
    pub device: DeviceId,
    /// `seal::seal_to(device, new secret)`.
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

/// A move to a new group secret (hence a new group id and cursor space).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rotation {
    /// The new group's id (devices check the secret they open derives it).
    pub next: GroupId,
    /// The new secret, once for every device that remains — exactly those.
    pub sealed: Vec<SealedSecret>,
}

/// What an entry does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Genesis: the author is the first member.
    Create {
        /// The author's name.
        name: String,
    },
    /// The author joins with a ticket.
    Join {
        /// The author's name.
        name: String,
        /// A current member's admission.
        ticket: Ticket,
        /// Signature by the invite secret key over the group and the author.
        #[serde(with = "serde_bytes")]
        invite_proof: [u8; 64],
    },
    /// A member removes a device (itself included), moving the rest to a new secret.
    Remove {
        /// The device removed.
        device: DeviceId,
        /// The new secret for the others; `None` only for a device that is merely lost.
        rotation: Option<Rotation>,
    },
}

/// The signed content of an entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Body {
    /// [`ROSTER_VERSION`].
    pub v: u8,
    /// The group this entry is appended in.
    pub group: GroupId,
    /// Position in the log, from 1.
    pub seq: u64,
    /// Hash of the previous entry.
    pub prev: EntryHash,
    /// Signer.
    pub author: DeviceId,
    /// The change.
    pub op: Op,
}

/// An entry as stored and sent: the exact body bytes and the author's signature.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
    #[serde(with = "serde_bytes")]
    sig: [u8; 64],
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Entry({:?})", self.hash())
    }
}

fn verify(key: &[u8; 32], msg: &[u8], sig: &[u8; 64], what: &'static str) -> Result<()> {
    let key = VerifyingKey::from_bytes(key).map_err(|_| RosterError::BadSignature(what))?;
    key.verify_strict(msg, &Signature::from_bytes(sig)).map_err(|_| RosterError::BadSignature(what))
}

impl Entry {
    /// Signs `body` with the author's device key.
    pub fn sign(body: &Body, author: &SigningKey) -> Self {
        let body = rmp_serde::to_vec_named(body).expect("entries encode");
        let sig = author.sign(&[ENTRY_LABEL, &body].concat()).to_bytes();
        Self { body, sig }
    }

    /// The encoded entry.
    pub fn to_bytes(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("entries encode")
    }

    /// Decodes an entry (size checked first).
    ///
    /// # Errors
    /// [`RosterError::Malformed`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(RosterError::Malformed("entry too large"));
        }
        rmp_serde::from_slice(bytes).map_err(|_| RosterError::Malformed("not an entry"))
    }

    /// Bytes of body and signature.
    pub fn len(&self) -> usize {
        self.body.len() + self.sig.len()
    }

    /// Whether the body is empty (never, for a valid entry).
    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    /// The entry's hash.
    pub fn hash(&self) -> EntryHash {
        EntryHash(
            Sha256::new().chain_update(HASH_LABEL).chain_update(&self.body).chain_update(self.sig).finalize().into(),
        )
    }

    /// The signed body, decoded (its signature is not checked here).
    ///
    /// # Errors
    /// [`RosterError::Malformed`].
    pub fn body(&self) -> Result<Body> {
        let body: Body = rmp_serde::from_slice(&self.body).map_err(|_| RosterError::Malformed("bad body"))?;
        if body.v != ROSTER_VERSION {
            return Err(RosterError::Malformed("unsupported roster version"));
        }
        Ok(body)
    }

    /// The body, checked: bounded in size, in its one canonical encoding (so no field can
    /// be smuggled in beside the signed ones), and signed by its author.
    fn verified_body(&self) -> Result<Body> {
        if self.body.len() + 64 > MAX_ENTRY_BYTES {
            return Err(RosterError::Malformed("entry too large"));
        }
        let body = self.body()?;
        if rmp_serde::to_vec_named(&body).ok().as_deref() != Some(self.body.as_slice()) {
            return Err(RosterError::Malformed("entry not in canonical encoding"));
        }
        verify(&body.author.0, &[ENTRY_LABEL, &self.body].concat(), &self.sig, "author")?;
        Ok(body)
    }
}

/// A current member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Name it gave itself.
    pub name: String,
    /// Who admitted it (itself for the creator).
    pub added_by: DeviceId,
    /// Position of its admission.
    pub seq: u64,
}

/// A removed device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// Name it had.
    pub name: String,
    /// Who admitted it.
    pub added_by: DeviceId,
    /// Who removed it.
    pub removed_by: DeviceId,
    /// Position of the removal.
    pub seq: u64,
}

/// What an applied entry changed.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// The first member.
    Created(DeviceId),
    /// A device joined.
    Joined {
        /// The new member.
        device: DeviceId,
        /// Its inviter.
        by: DeviceId,
        /// The invite it used (now spent).
        invite: InviteKey,
    },
    /// A device was removed.
    Removed {
        /// The removed device.
        device: DeviceId,
        /// The member who removed it.
        by: DeviceId,
        /// The new secret, when the others moved on.
        rotation: Option<Rotation>,
    },
}

/// The verified state a roster log leads to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Roster {
    group: GroupId,
    seq: u64,
    head: EntryHash,
    members: BTreeMap<DeviceId, Member>,
    removed: BTreeMap<DeviceId, Removed>,
    used_invites: BTreeSet<InviteKey>,
    /// Every group of the lineage: a rotation never returns to one.
    #[serde(default)]
    groups: BTreeSet<GroupId>,
}

fn checked_name(name: &str) -> Result<String> {
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(RosterError::Malformed("device name too long or with control characters"));
    }
    Ok(name.to_string())
}

impl Roster {
    /// The roster a genesis entry starts.
    ///
    /// # Errors
    /// Anything but a well-signed `create` at position 1.
    pub fn genesis(entry: &Entry) -> Result<(Self, Change)> {
        let body = entry.verified_body()?;
        let Op::Create { name } = &body.op else { return Err(RosterError::Refused("a log starts with create")) };
        if body.seq != 1 || body.prev != EntryHash::default() {
            return Err(RosterError::NotNext { seq: body.seq, head: 0 });
        }
        let member = Member { name: checked_name(name)?, added_by: body.author, seq: 1 };
        let roster = Self {
            group: body.group,
            seq: 1,
            head: entry.hash(),
            members: BTreeMap::from([(body.author, member)]),
            removed: BTreeMap::new(),
            used_invites: BTreeSet::new(),
            groups: BTreeSet::from([body.group]),
        };
        Ok((roster, Change::Created(body.author)))
    }

    /// Replays a whole log from its genesis.
    ///
    /// # Errors
    /// The first entry that does not apply.
    pub fn replay(entries: &[Entry]) -> Result<Self> {
        let (first, rest) = entries.split_first().ok_or(RosterError::Malformed("empty roster log"))?;
        let mut roster = Self::genesis(first)?.0;
        for e in rest {
            roster.step(e, None)?;
        }
        Ok(roster)
    }

    /// The roster after `entry`, and what it changed. `clock` (Unix seconds) enforces
    /// ticket expiry; relays pass theirs, devices pass `None`.
    ///
    /// # Errors
    /// [`RosterError`] when the entry does not extend this roster or is not allowed.
    pub fn apply(&self, entry: &Entry, clock: Option<u64>) -> Result<(Self, Change)> {
        let mut next = self.clone();
        let change = next.step(entry, clock)?;
        Ok((next, change))
    }

    /// [`Roster::apply`] in place: every check comes before the first change, so a refused
    /// entry leaves the roster as it was.
    ///
    /// # Errors
    /// As [`Roster::apply`].
    pub fn step(&mut self, entry: &Entry, clock: Option<u64>) -> Result<Change> {
        let body = entry.verified_body()?;
        if body.seq != self.seq + 1 || body.prev != self.head {
            return Err(RosterError::NotNext { seq: body.seq, head: self.seq });
        }
        if body.group != self.group {
            return Err(RosterError::Refused("entry for another group (the group has rotated)"));
        }
        let change = match body.op {
            Op::Create { .. } => return Err(RosterError::Refused("create only starts a log")),
            Op::Join { name, ticket, invite_proof } => {
                if self.members.contains_key(&body.author) || self.removed.contains_key(&body.author) {
                    return Err(RosterError::Refused("this device is or was a member"));
                }
                if self.members.len() >= MAX_MEMBERS {
                    return Err(RosterError::Refused("the group is full"));
                }
                if ticket.group != self.group {
                    return Err(RosterError::Refused("invite for another group (made before a rotation)"));
                }
                if !self.members.contains_key(&ticket.inviter) {
                    return Err(RosterError::Refused("the inviter is not a member"));
                }
                if self.used_invites.contains(&ticket.invite_key) {
                    return Err(RosterError::Refused("this invite was already used"));
                }
                if clock.is_some_and(|now| now >= ticket.expires) {
                    return Err(RosterError::Refused("this invite has expired"));
                }
                ticket.verify()?;
                verify(&ticket.invite_key.0, &join_message(&self.group, &body.author), &invite_proof, "invite proof")?;
                let member = Member { name: checked_name(&name)?, added_by: ticket.inviter, seq: body.seq };
                self.members.insert(body.author, member);
                self.used_invites.insert(ticket.invite_key);
                Change::Joined { device: body.author, by: ticket.inviter, invite: ticket.invite_key }
            }
            Op::Remove { device, rotation } => {
                if !self.members.contains_key(&body.author) {
                    return Err(RosterError::Refused("only a member may remove a device"));
                }
                if !self.members.contains_key(&device) {
                    return Err(RosterError::Refused("not a member"));
                }
                if self.members.len() == 1 {
                    return Err(RosterError::Refused("the last member cannot be removed"));
                }
                if let Some(rotation) = &rotation {
                    let recipients: BTreeSet<DeviceId> = rotation.sealed.iter().map(|s| s.device).collect();
                    if recipients.len() != rotation.sealed.len()
                        || !recipients.iter().eq(self.members.keys().filter(|d| **d != device))
                        || rotation.sealed.iter().any(|s| s.sealed.len() > MAX_SEALED_BYTES)
                    {
                        return Err(RosterError::Refused("a rotation is sealed to exactly the remaining members"));
                    }
                    if self.groups.contains(&rotation.next) {
                        return Err(RosterError::Refused("a rotation names a group new to the lineage"));
                    }
                }
                let gone = self.members.remove(&device).expect("checked above");
                if let Some(rotation) = &rotation {
                    self.group = rotation.next;
                    self.groups.insert(rotation.next);
                }
                let removed =
                    Removed { name: gone.name, added_by: gone.added_by, removed_by: body.author, seq: body.seq };
                self.removed.insert(device, removed);
                Change::Removed { device, by: body.author, rotation }
            }
        };
        self.seq = body.seq;
        self.head = entry.hash();
        Ok(change)
    }

    /// The group devices use now (the latest rotation's).
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// Position of the last entry.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Hash of the last entry.
    pub fn head(&self) -> EntryHash {
        self.head
    }

    /// Whether `device` is a current member.
    pub fn is_member(&self, device: &DeviceId) -> bool {
        self.members.contains_key(device)
    }

    /// Whether `device` was removed.
    pub fn is_removed(&self, device: &DeviceId) -> bool {
        self.removed.contains_key(device)
    }

    /// Current members.
    pub fn members(&self) -> &BTreeMap<DeviceId, Member> {
        &self.members
    }

    /// Removed devices.
    pub fn removed(&self) -> &BTreeMap<DeviceId, Removed> {
        &self.removed
    }
}

/// Makes the next entry on `roster` signed by `author`.
pub fn next_entry(roster: &Roster, author: &SigningKey, op: Op) -> Entry {
    let body = Body {
        v: ROSTER_VERSION,
        group: roster.group,
        seq: roster.seq + 1,
        prev: roster.head,
        author: DeviceId(author.verifying_key().to_bytes()),
        op,
    };
    Entry::sign(&body, author)
}

/// The genesis entry of a new group.
pub fn create_entry(group: GroupId, author: &SigningKey, name: &str) -> Entry {
    let body = Body {
        v: ROSTER_VERSION,
        group,
        seq: 1,
        prev: EntryHash::default(),
        author: DeviceId(author.verifying_key().to_bytes()),
        op: Op::Create { name: name.chars().take(MAX_NAME_CHARS).collect() },
    };
    Entry::sign(&body, author)
}

/// The joining device's entry: `device` proves it holds the ticket's invite secret.
pub fn join_entry(roster: &Roster, device: &SigningKey, name: &str, ticket: Ticket, invite_secret: &[u8; 32]) -> Entry {
    let me = DeviceId(device.verifying_key().to_bytes());
    let invite_proof = SigningKey::from_bytes(invite_secret).sign(&join_message(&roster.group, &me)).to_bytes();
    let name = name.chars().filter(|c| !c.is_control()).take(MAX_NAME_CHARS).collect();
    next_entry(roster, device, Op::Join { name, ticket, invite_proof })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn id(k: &SigningKey) -> DeviceId {
        DeviceId(k.verifying_key().to_bytes())
    }

    const G: GroupId = GroupId([7; 32]);

    fn joined(r: &Roster, inviter: &SigningKey, device: &SigningKey, invite: u8) -> (Roster, Entry) {
        let ticket = Ticket::new(r.group(), inviter, &[invite; 32], 1_000);
        let e = join_entry(r, device, "dev", ticket, &[invite; 32]);
        (r.apply(&e, Some(10)).unwrap().0, e)
    }

    #[test]
    fn golden_genesis() {
        let e = create_entry(G, &key(1), "laptop");
        assert_eq!(hex::encode(e.to_bytes()), GOLDEN_GENESIS);
        assert_eq!(hex::encode(e.hash().0), GOLDEN_GENESIS_HASH);
        let (r, change) = Roster::genesis(&Entry::from_bytes(&hex::decode(GOLDEN_GENESIS).unwrap()).unwrap()).unwrap();
        assert_eq!(change, Change::Created(id(&key(1))));
        assert_eq!((r.seq(), r.head(), r.group()), (1, e.hash(), G));
    }

    // Signature and hash cross-checked with an independent Ed25519 and SHA-256 (Python
    // `cryptography`, hashlib) over the body bytes taken from this encoding.
    const GOLDEN_GENESIS: &str = concat!(
        "82a4626f6479c49986a17601a567726f7570c4200707070707070707070707070707070707070707070707070707070707070707",
        "a373657101a470726576c4200000000000000000000000000000000000000000000000000000000000000000a6617574686f72",
        "c4208a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5ca26f7081a663726561746581a46e616d65",
        "a66c6170746f70a3736967c440b58e84e87802da765dd61a6b82f78943d1a7c39d21b9829f2f455f2b19316ef0e758ab1b852e",
        "e846bbbdde9c0bd66905810faa34279aac190b821e254305b106"
    );
    const GOLDEN_GENESIS_HASH: &str = "bb37edcf7b706700270b1a99a6ccdf5af29d8bd0e6cd804b05d0b5c7e10605d9";

    #[test]
    fn join_needs_a_live_unused_ticket_from_a_member() {
        let (a, b, c) = (key(1), key(2), key(3));
        let r = Roster::genesis(&create_entry(G, &a, "a")).unwrap().0;
        let (r2, _) = joined(&r, &a, &b, 9);
        assert!(r2.is_member(&id(&b)));
        assert_eq!(r2.members()[&id(&b)].added_by, id(&a));
        // The same invite again, for another device: single use.
        let ticket = Ticket::new(G, &a, &[9; 32], 1_000);
        let again = join_entry(&r2, &c, "c", ticket.clone(), &[9; 32]);
        assert_eq!(r2.apply(&again, None).unwrap_err(), RosterError::Refused("this invite was already used"));
        // Expired by the relay's clock.
        let t2 = Ticket::new(G, &a, &[8; 32], 5);
        assert!(r2.apply(&join_entry(&r2, &c, "c", t2.clone(), &[8; 32]), Some(6)).is_err());
        assert!(r2.apply(&join_entry(&r2, &c, "c", t2, &[8; 32]), Some(4)).is_ok());
        // Without the invite secret, or with a ticket by a non-member.
        let t3 = Ticket::new(G, &a, &[6; 32], 1_000);
        assert!(matches!(r2.apply(&join_entry(&r2, &c, "c", t3, &[5; 32]), None), Err(RosterError::BadSignature(_))));
        let t4 = Ticket::new(G, &key(4), &[6; 32], 1_000);
        assert!(r2.apply(&join_entry(&r2, &c, "c", t4, &[6; 32]), None).is_err());
        // Stale prev (a concurrent join won).
        let t5 = Ticket::new(G, &a, &[4; 32], 1_000);
        let stale = join_entry(&r, &c, "c", t5, &[4; 32]);
        assert!(matches!(r2.apply(&stale, None), Err(RosterError::NotNext { .. })));
    }

    #[test]
    fn an_entry_must_be_canonical_and_bounded() {
        let a = key(1);
        let genesis = create_entry(G, &a, "a");
        // The same signed fields plus one the rules do not know: refused although signed.
        let body = genesis.body().unwrap();
        let mut bytes = rmp_serde::to_vec_named(&body).unwrap();
        bytes[0] += 1; // one more map entry …
        bytes.extend_from_slice(&rmp_serde::to_vec(&"pad").unwrap());
        bytes.extend_from_slice(&rmp_serde::to_vec(&serde_bytes::ByteBuf::from(vec![0u8; 1000])).unwrap());
        let sig = a.sign(&[ENTRY_LABEL, &bytes].concat()).to_bytes();
        let smuggled = Entry { body: bytes, sig };
        assert!(smuggled.body().is_ok(), "it decodes …");
        assert_eq!(Roster::genesis(&smuggled).unwrap_err(), RosterError::Malformed("entry not in canonical encoding"));
        let huge = Entry { body: vec![0x80; MAX_ENTRY_BYTES], sig: [0; 64] };
        assert_eq!(Roster::genesis(&huge).unwrap_err(), RosterError::Malformed("entry too large"));
    }

    #[test]
    fn removal_and_rotation_rules() {
        let (a, b, c) = (key(1), key(2), key(3));
        let r = Roster::genesis(&create_entry(G, &a, "a")).unwrap().0;
        let (r, _) = joined(&r, &a, &b, 9);
        let (r, _) = joined(&r, &a, &c, 8);
        let next = GroupId([8; 32]);
        let sealed = |ds: &[&SigningKey]| Rotation {
            next,
            sealed: ds.iter().map(|d| SealedSecret { device: id(d), sealed: vec![1; 80] }).collect(),
        };
        // A rotation that leaves out a remaining member, or includes the removed one.
        for bad in [sealed(&[&a]), sealed(&[&a, &b, &c])] {
            let e = next_entry(&r, &a, Op::Remove { device: id(&b), rotation: Some(bad) });
            assert!(r.apply(&e, None).is_err());
        }
        let e = next_entry(&r, &a, Op::Remove { device: id(&b), rotation: Some(sealed(&[&a, &c])) });
        let (r2, change) = r.apply(&e, None).unwrap();
        assert!(
            matches!(change, Change::Removed { device, by, rotation: Some(_) } if device == id(&b) && by == id(&a))
        );
        assert_eq!(r2.group(), next);
        assert!(r2.is_removed(&id(&b)) && !r2.is_member(&id(&b)));
        // The removed device can no longer remove anyone, in either group.
        let revenge = next_entry(&r2, &b, Op::Remove { device: id(&a), rotation: None });
        assert_eq!(r2.apply(&revenge, None).unwrap_err(), RosterError::Refused("only a member may remove a device"));
        // An entry for the old group after the rotation.
        let mut old = r2.clone();
        old.group = G;
        let late = next_entry(&old, &c, Op::Remove { device: id(&a), rotation: None });
        assert!(r2.apply(&late, None).is_err());
        // Tampered body: the signature fails.
        let mut bytes = e.to_bytes();
        let last = bytes.len() - 70;
        bytes[last] ^= 1;
        if let Ok(t) = Entry::from_bytes(&bytes) {
            assert!(r.apply(&t, None).is_err());
        }
        // A rotation back to a group the lineage had (a cycle) is refused.
        let back = Rotation { next: G, sealed: vec![SealedSecret { device: id(&c), sealed: vec![1; 80] }] };
        let cycle = next_entry(&r2, &a, Op::Remove { device: id(&a), rotation: Some(back) });
        assert_eq!(
            r2.apply(&cycle, None).unwrap_err(),
            RosterError::Refused("a rotation names a group new to the lineage")
        );
        // Replay of the whole log gives the same state.
        let log = [create_entry(G, &a, "a")];
        assert_eq!(Roster::replay(&log).unwrap().seq(), 1);
    }
}
