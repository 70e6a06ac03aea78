//! Pairing (spec §8, fixed): an invite carries the group secret and relay addresses, valid
//! for 10 minutes.
//!
//! - **URL** (for a QR code, shown only on the inviting device's screen):
//!   `zerok://pair?invite=<base64url(MessagePack invite)>`.
//! - **Short code** `XXXX-XXXX-XXXX-XXXX` (Crockford base32, 80 bits): the first half is a
//!   lookup key sent to the relay, the second half never leaves the devices. The invite is
//!   sealed (XChaCha20-Poly1305) under `Argon2id(second half, salt = BLAKE3(lookup)[..16],
//!   19 MiB, 2 passes)` and stored at the relay under the lookup key; the relay hands it out
//!   once and deletes it, and drops it after 10 minutes or on cancel. The relay never sees
//!   the group secret.

use base64::Engine;
use serde::{Deserialize, Serialize};
use zerok_core::{
    Kdf, aead, random_bytes,
    recovery::crockford,
    sync::{GroupSecret, message::InvitePut},
};
use zerok_wire::RelayAddr;

use super::{GroupState, SyncError};

/// Invite lifetime.
pub const INVITE_SECS: u64 = 600;
const URL_PREFIX: &str = "zerok://pair?invite=";
const SEAL_AAD: &[u8] = b"zerok-invite-v1";

/// What a new device needs to join.
#[derive(Clone, Serialize, Deserialize)]
pub struct Invite {
    /// Format version (1).
    pub v: u8,
    /// Relay addresses, primary first.
    pub relays: Vec<String>,
    /// Group secret.
    #[serde(with = "serde_bytes")]
    pub secret: [u8; 32],
    /// Expiry, Unix seconds.
    pub expires: u64,
}

impl std::fmt::Debug for Invite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Invite({} relays, expires {}, [REDACTED])", self.relays.len(), self.expires)
    }
}

impl Drop for Invite {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
    }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Invite {
    /// An invite to the group in `state`, expiring in [`INVITE_SECS`].
    pub fn new(state: &GroupState) -> Self {
        Self {
            v: 1,
            relays: state.relays_text().to_vec(),
            secret: *state.secret().expose(),
            expires: now() + INVITE_SECS,
        }
    }

    /// The URL form.
    pub fn to_url(&self) -> String {
        format!(
            "{URL_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rmp_serde::to_vec_named(self).expect("encodes"))
        )
    }

    /// Parses the URL form and checks expiry.
    ///
    /// # Errors
    /// [`SyncError::Invite`] when malformed or expired.
    pub fn from_url(url: &str) -> Result<Self, SyncError> {
        let payload =
            url.trim().strip_prefix(URL_PREFIX).ok_or_else(|| SyncError::Invite("not a zerok://pair invite".into()))?;
        if payload.len() > 8192 {
            return Err(SyncError::Invite("invite too long".into()));
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| SyncError::Invite("bad encoding".into()))?;
        Self::decode(&bytes)
    }

    fn decode(bytes: &[u8]) -> Result<Self, SyncError> {
        let invite: Self = rmp_serde::from_slice(bytes).map_err(|_| SyncError::Invite("malformed invite".into()))?;
        if invite.v != 1 {
            return Err(SyncError::Invite(format!("unsupported invite version {}", invite.v)));
        }
        if invite.expires <= now() {
            return Err(SyncError::Invite("this invite has expired; make a new one".into()));
        }
        if invite.relays.is_empty() || invite.relays.iter().any(|r| RelayAddr::parse(r).is_err()) {
            return Err(SyncError::Invite("invite names no valid relay".into()));
        }
        Ok(invite)
    }

    /// The group secret.
    pub fn group_secret(&self) -> GroupSecret {
        GroupSecret::from_bytes(self.secret)
    }
}

/// A short pairing code: lookup half (to the relay) and key half (never sent).
#[derive(Clone)]
pub struct InviteCode {
    lookup: String,
    key: String,
}

impl std::fmt::Debug for InviteCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InviteCode([REDACTED])")
    }
}

impl std::fmt::Display for InviteCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}-{}-{}", &self.lookup[..4], &self.lookup[4..], &self.key[..4], &self.key[4..])
    }
}

impl InviteCode {
    /// A fresh random code.
    pub fn generate() -> Self {
        let half = || crockford().encode(&random_bytes::<5>());
        Self { lookup: half(), key: half() }
    }

    /// Parses `XXXX-XXXX-XXXX-XXXX` (case, dashes and spaces do not matter).
    ///
    /// # Errors
    /// [`SyncError::Invite`] for the wrong length or characters.
    pub fn parse(text: &str) -> Result<Self, SyncError> {
        let bad = || SyncError::Invite("a pairing code is 16 characters: XXXX-XXXX-XXXX-XXXX".into());
        let raw = crockford().decode(text.trim().as_bytes()).map_err(|_| bad())?;
        if raw.len() != 10 {
            return Err(bad());
        }
        Ok(Self { lookup: crockford().encode(&raw[..5]), key: crockford().encode(&raw[5..]) })
    }

    /// The half the relay sees.
    pub fn lookup(&self) -> &str {
        &self.lookup
    }

    fn kek(&self) -> zerok_core::Key32 {
        let salt: [u8; 16] =
            blake3::derive_key("zerok invite salt v1", self.lookup.as_bytes())[..16].try_into().expect("16");
        Kdf::Argon2id { m_kib: zerok_core::keys::ARGON2_MIN_M_KIB, t: 2, p: 1 }
            .derive_kek(self.key.as_bytes(), &salt)
            .expect("valid parameters")
    }

    /// Seals an invite for the relay.
    pub fn seal(&self, invite: &Invite) -> InvitePut {
        let body = rmp_serde::to_vec_named(invite).expect("encodes");
        let sealed = aead::seal(&self.kek(), &[SEAL_AAD, self.lookup.as_bytes()].concat(), &body);
        InvitePut { lookup: self.lookup.clone(), sealed, expires: invite.expires }
    }

    /// Opens what the relay returned.
    ///
    /// # Errors
    /// [`SyncError::Invite`] when it does not open (wrong code) or has expired.
    pub fn open(&self, sealed: &[u8]) -> Result<Invite, SyncError> {
        let mut body = aead::open(&self.kek(), &[SEAL_AAD, self.lookup.as_bytes()].concat(), sealed)
            .map_err(|_| SyncError::Invite("the code does not match this invite".into()))?;
        let invite = Invite::decode(&body);
        zeroize::Zeroize::zeroize(&mut body);
        invite
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> GroupState {
        let relay = RelayAddr::parse(&format!(
            "{}@127.0.0.1:4433",
            hex::encode(iroh::SecretKey::from_bytes(&[1; 32]).public().as_bytes())
        ))
        .unwrap();
        GroupState::new(&GroupSecret::generate(), &[relay], "laptop")
    }

    #[test]
    fn url_round_trip_and_expiry() {
        let s = state();
        let invite = Invite::new(&s);
        let back = Invite::from_url(&invite.to_url()).unwrap();
        assert_eq!(back.secret, *s.secret().expose());
        let mut old = Invite::new(&s);
        old.expires = 1;
        assert!(matches!(Invite::from_url(&old.to_url()), Err(SyncError::Invite(m)) if m.contains("expired")));
        assert!(Invite::from_url("zerok://pair?invite=!!!").is_err());
    }

    #[test]
    fn code_seals_and_only_the_right_code_opens() {
        let invite = Invite::new(&state());
        let code = InviteCode::generate();
        let text = code.to_string();
        assert_eq!(text.len(), 19);
        let parsed = InviteCode::parse(&text.to_lowercase()).unwrap();
        let put = code.seal(&invite);
        assert_eq!(put.lookup, parsed.lookup());
        assert!(!put.sealed.windows(32).any(|w| w == invite.secret), "the relay never sees the secret");
        assert_eq!(parsed.open(&put.sealed).unwrap().secret, invite.secret);
        let other = InviteCode { lookup: code.lookup.clone(), key: InviteCode::generate().key };
        assert!(other.open(&put.sealed).is_err());
        assert!(InviteCode::parse("ABCD-EFGH").is_err());
    }
}
