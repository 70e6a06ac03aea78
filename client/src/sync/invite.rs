//! Pairing (spec §8, hardened): an invite carries the group secret, the relay addresses,
//! the roster position it was made at, and a one-time invite key with a member's ticket
//! for it (`core::sync::roster::Ticket`). The joining device appends a join entry that
//! proves it holds the invite key; relays and devices accept one join per ticket, and
//! relays refuse it after the ticket's expiry (by their own clocks).
//!
//! - **URL** (for a QR code, shown only on the inviting device's screen):
//!   `zerok://pair?invite=<base64url(MessagePack invite)>`.
//! - **Short code** `XXXX-XXXX-XXXX-XXXX` (Crockford base32, 80 secret bits). The relay
//!   stores the sealed invite in a *bucket* named by 16 bits of the code's hash
//!   (`lookup = hex(BLAKE3-derive_key("zerok invite lookup v2", code)[..2])`), sealed
//!   (XChaCha20-Poly1305, aad `"zerok-invite-v2" ‖ lookup`) under `Argon2id(code, salt =
//!   BLAKE3-derive_key("zerok invite salt v2", lookup)[..16], 19 MiB, 2 passes)`. A joiner
//!   gets every live invite of its bucket and opens the one its code seals. The lookup
//!   tells the relay 16 of the 80 bits, so a relay that keeps a sealed invite must try
//!   2^64 codes, each one Argon2id evaluation, to open it offline.

use base64::Engine;
use serde::{Deserialize, Serialize};
use zerok_core::{
    Kdf, aead, random_bytes,
    recovery::crockford,
    sync::{
        GroupSecret, SigningKey,
        message::InvitePut,
        roster::{EntryHash, InviteKey, Ticket},
    },
};
use zerok_wire::RelayAddr;

use super::GroupState;
use crate::Error;

/// Invite lifetime.
pub const INVITE_SECS: u64 = 600;
const URL_PREFIX: &str = "zerok://pair?invite=";
const SEAL_AAD: &[u8] = b"zerok-invite-v2";
/// Invite format version.
const INVITE_VERSION: u8 = 2;

/// This device's clock, Unix seconds.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// What a new device needs to join.
#[derive(Clone, Serialize, Deserialize)]
pub struct Invite {
    /// Format version (2).
    pub v: u8,
    /// Relay addresses, primary first.
    pub relays: Vec<String>,
    /// Group secret.
    #[serde(with = "serde_bytes")]
    pub secret: [u8; 32],
    /// Secret half of the one-time invite key.
    #[serde(with = "serde_bytes")]
    pub invite_secret: [u8; 32],
    /// The inviter's admission of the invite key.
    pub ticket: Ticket,
    /// Roster position the invite was made at …
    pub seq: u64,
    /// … and the hash of the entry there: the joiner's anchor for the log the relay sends.
    pub head: EntryHash,
}

impl std::fmt::Debug for Invite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Invite({} relays, expires {}, [REDACTED])", self.relays.len(), self.ticket.expires)
    }
}

impl Drop for Invite {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
        zeroize::Zeroize::zeroize(&mut self.invite_secret);
    }
}

impl Invite {
    /// An invite to the group in `state`, admitted by `inviter`, expiring at `expires`
    /// (Unix seconds by the relay's clock).
    pub fn new(state: &GroupState, inviter: &SigningKey, expires: u64) -> Self {
        let invite_secret = random_bytes::<32>();
        let roster = state.roster();
        Self {
            v: INVITE_VERSION,
            relays: state.relays_text().to_vec(),
            secret: *state.secret().expose(),
            ticket: Ticket::new(roster.group(), inviter, &invite_secret, expires),
            invite_secret,
            seq: roster.seq(),
            head: roster.head(),
        }
    }

    /// The URL form.
    pub fn to_url(&self) -> String {
        format!(
            "{URL_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rmp_serde::to_vec_named(self).expect("encodes"))
        )
    }

    /// Parses the URL form. Expiry is the relay's to judge (by its clock, not this
    /// device's).
    ///
    /// # Errors
    /// [`Error::Invite`] when malformed.
    pub fn from_url(url: &str) -> Result<Self, Error> {
        let payload =
            url.trim().strip_prefix(URL_PREFIX).ok_or_else(|| Error::Invite("not a zerok://pair invite".into()))?;
        if payload.len() > 8192 {
            return Err(Error::Invite("invite too long".into()));
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| Error::Invite("bad encoding".into()))?;
        Self::decode(&bytes)
    }

    fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let invite: Self = rmp_serde::from_slice(bytes).map_err(|_| Error::Invite("malformed invite".into()))?;
        if invite.v != INVITE_VERSION {
            return Err(Error::Invite(format!("unsupported invite version {} (this zerok reads 2)", invite.v)));
        }
        if invite.relays.is_empty() || invite.relays.iter().any(|r| RelayAddr::parse(r).is_err()) {
            return Err(Error::Invite("invite names no valid relay".into()));
        }
        Ok(invite)
    }

    /// The group secret.
    pub fn group_secret(&self) -> GroupSecret {
        GroupSecret::from_bytes(self.secret)
    }
}

/// A short pairing code: 80 secret bits, of which the relay learns a 16-bit bucket.
#[derive(Clone)]
pub struct InviteCode {
    raw: [u8; 10],
    /// The invite it was made for (on the inviting device), so it can be cancelled.
    key: Option<InviteKey>,
}

impl Drop for InviteCode {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.raw);
    }
}

impl std::fmt::Debug for InviteCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InviteCode([REDACTED])")
    }
}

impl std::fmt::Display for InviteCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = crockford().encode(&self.raw);
        write!(f, "{}-{}-{}-{}", &text[..4], &text[4..8], &text[8..12], &text[12..])
    }
}

impl InviteCode {
    /// A fresh random code.
    pub fn generate() -> Self {
        Self { raw: random_bytes(), key: None }
    }

    /// Remembers which invite this code seals (for [`InviteCode::invite_key`]).
    #[must_use]
    pub fn for_invite(mut self, invite: &Invite) -> Self {
        self.key = Some(invite.ticket.invite_key);
        self
    }

    /// The one-time key of the invite this code was made for, on the inviting device.
    pub fn invite_key(&self) -> Option<InviteKey> {
        self.key
    }

    /// Parses `XXXX-XXXX-XXXX-XXXX` (case, dashes and spaces do not matter).
    ///
    /// # Errors
    /// [`Error::Invite`] for the wrong length or characters.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bad = || Error::Invite("a pairing code is 16 characters: XXXX-XXXX-XXXX-XXXX".into());
        let mut raw = crockford().decode(text.trim().as_bytes()).map_err(|_| bad())?;
        let code = raw.as_slice().try_into().map(|raw| Self { raw, key: None }).map_err(|_| bad());
        zeroize::Zeroize::zeroize(&mut raw);
        code
    }

    /// The bucket the relay files the invite under (16 bits of the code's hash).
    pub fn lookup(&self) -> String {
        hex::encode(&blake3::derive_key("zerok invite lookup v2", &self.raw)[..2])
    }

    fn kek(&self) -> zerok_core::Key32 {
        let salt: [u8; 16] =
            blake3::derive_key("zerok invite salt v2", self.lookup().as_bytes())[..16].try_into().expect("16");
        Kdf::Argon2id { m_kib: zerok_core::keys::ARGON2_MIN_M_KIB, t: 2, p: 1 }
            .derive_kek(&self.raw, &salt)
            .expect("valid parameters")
    }

    fn aad(&self) -> Vec<u8> {
        [SEAL_AAD, self.lookup().as_bytes()].concat()
    }

    /// Seals an invite for the relay.
    pub fn seal(&self, invite: &Invite) -> InvitePut {
        let mut body = rmp_serde::to_vec_named(invite).expect("encodes");
        let sealed = aead::seal(&self.kek(), &self.aad(), &body);
        zeroize::Zeroize::zeroize(&mut body);
        InvitePut {
            lookup: self.lookup(),
            invite_key: invite.ticket.invite_key,
            sealed,
            expires: invite.ticket.expires,
        }
    }

    /// Opens the invite this code sealed among a bucket's.
    ///
    /// # Errors
    /// [`Error::Invite`] when none opens (wrong code, or used and cancelled).
    pub fn open(&self, bucket: &[Vec<u8>]) -> Result<Invite, Error> {
        let (kek, aad) = (self.kek(), self.aad());
        for sealed in bucket {
            if let Ok(mut body) = aead::open(&kek, &aad, sealed) {
                let invite = Invite::decode(&body);
                zeroize::Zeroize::zeroize(&mut body);
                return invite;
            }
        }
        Err(Error::Invite("the code does not match any invite at this relay".into()))
    }
}

#[cfg(test)]
mod tests {
    use zerok_core::sync::roster::create_entry;

    use super::*;

    fn state() -> (GroupState, SigningKey) {
        let relay = RelayAddr::parse(&format!(
            "{}@127.0.0.1:4433",
            hex::encode(iroh::SecretKey::from_bytes(&[1; 32]).public().as_bytes())
        ))
        .unwrap();
        let secret = GroupSecret::generate();
        let key = SigningKey::from_bytes(&[3; 32]);
        let chain = vec![create_entry(secret.derive().id(), &key, "laptop")];
        (GroupState::new(&secret, &[relay], "laptop", chain).unwrap(), key)
    }

    #[test]
    fn url_round_trip_anchors_the_roster() {
        let (s, key) = state();
        let invite = Invite::new(&s, &key, 1_000);
        let back = Invite::from_url(&invite.to_url()).unwrap();
        assert_eq!(back.secret, *s.secret().expose());
        assert_eq!((back.seq, back.head), (1, s.roster().head()));
        assert_eq!(back.ticket, invite.ticket);
        assert!(Invite::from_url("zerok://pair?invite=!!!").is_err());
    }

    #[test]
    fn code_seals_and_only_the_right_code_opens() {
        let (s, key) = state();
        let invite = Invite::new(&s, &key, 1_000);
        let code = InviteCode::generate();
        let text = code.to_string();
        assert_eq!(text.len(), 19);
        let parsed = InviteCode::parse(&text.to_lowercase()).unwrap();
        let put = code.seal(&invite);
        assert_eq!((put.lookup.len(), put.lookup.clone()), (4, parsed.lookup()));
        assert!(!put.sealed.windows(32).any(|w| w == invite.secret), "the relay never sees the secret");
        let other = InviteCode::generate().seal(&Invite::new(&s, &key, 1_000)).sealed;
        let bucket = vec![other, put.sealed.clone()];
        assert_eq!(parsed.open(&bucket).unwrap().invite_secret, invite.invite_secret);
        assert!(InviteCode::generate().open(&bucket).is_err());
        assert!(InviteCode::parse("ABCD-EFGH").is_err());
    }
}
