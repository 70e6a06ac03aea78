//! Short-code invites: INVITE_PUT and INVITE_CANCEL by a session, INVITE_GET by anyone
//! (before HELLO too: a joiner has no group yet).

use zerok_core::sync::{
    Message,
    message::{InviteCancel, InviteFound, InvitePut},
};

use super::Peer;
use crate::{Error, Result, state::State};

/// Largest sealed invite accepted.
const MAX_SEALED_INVITE_BYTES: usize = 4096;
/// Clocks of devices and relay may disagree by this much.
const CLOCK_SLACK_SECS: u64 = 60;
/// Invites live at most this long.
const MAX_INVITE_SECS: u64 = 600;

/// An invite bucket is 16 bits of a code's hash: four lowercase hex digits.
fn valid_lookup(lookup: &str) -> bool {
    lookup.len() == 4 && lookup.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn check_lookup(lookup: &str) -> Result<()> {
    if valid_lookup(lookup) { Ok(()) } else { Err(Error::Invalid("bad invite code".into())) }
}

pub async fn put(peer: &Peer, put: InvitePut) -> Result<Message> {
    let now = peer.state.now();
    check_lookup(&put.lookup)?;
    if put.sealed.len() > MAX_SEALED_INVITE_BYTES || put.expires > now + MAX_INVITE_SECS + CLOCK_SLACK_SECS {
        return Err(Error::Invalid("invite too large, or expiry over 10 minutes".into()));
    }
    peer.state
        .storage
        .put_invite((peer.group, peer.device), put.lookup, put.invite_key, put.sealed, (put.expires, now))
        .await?;
    Ok(Message::Ok)
}

/// The sealed invites of a bucket.
///
/// # Errors
/// A malformed code, [`Error::InviteNotFound`], storage failures.
pub async fn get(state: &State, lookup: &str) -> Result<Message> {
    check_lookup(lookup)?;
    let found = state.storage.invites(lookup.to_string(), state.now()).await?;
    Ok(Message::InviteFound(InviteFound { sealed: found.into_iter().map(Into::into).collect() }))
}

pub async fn cancel(peer: &Peer, c: InviteCancel) -> Result<Message> {
    check_lookup(&c.lookup)?;
    peer.state.storage.cancel_invite((peer.group, peer.device), c.lookup, c.invite_key).await?;
    Ok(Message::Ok)
}
