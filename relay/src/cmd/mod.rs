//! Requests after HELLO, one module per kind. [`serve`] spends the rate limits and hands a
//! request to its module; each answers with its reply or an [`Error`], mapped to the wire
//! in one place. Membership is checked by the storage interface, not here.

mod content;
mod delete;
pub mod hello;
pub mod invite;
mod presence;
mod pull;
mod push;
mod push_token;
mod roster;

use std::sync::{
    Arc, OnceLock,
    atomic::{AtomicBool, Ordering},
};

use iroh::endpoint::Connection;
use zerok_core::sync::{DeviceId, GroupId, Message};

use crate::{Error, Result, metrics::Metrics, state::State};

/// Bytes a reply needs besides its entries.
const REPLY_OVERHEAD_BYTES: usize = 128;

/// A device in a session, past HELLO.
pub struct Peer {
    /// Shared state.
    pub state: Arc<State>,
    /// Its connection.
    pub conn: Connection,
    /// Its endpoint id.
    pub device: DeviceId,
    /// The group of its HELLO.
    pub group: GroupId,
    /// In the relay's roster of the group (set at HELLO, and by its join).
    pub member: AtomicBool,
    /// The name from HELLO (truncated).
    pub name: OnceLock<String>,
}

impl Peer {
    /// Registers this member's connection for notices (NOTIFY, roster changes).
    pub fn go_online(&self) {
        let notices = self.state.go_online(self.group, self.device, self.conn.clone());
        let (state, conn) = (self.state.clone(), self.conn.clone());
        self.state.tasks.spawn(async move {
            notices.run(conn, || Metrics::inc(&state.metrics.notifies_total)).await;
        });
    }

    /// Whether the relay's roster had this device as a member at HELLO or since its join.
    pub fn is_member(&self) -> bool {
        self.member.load(Ordering::Relaxed)
    }

    /// Largest reply frame, less what a reply needs besides its entries.
    fn reply_budget(&self) -> usize {
        self.state.config.limits.max_frame_bytes.saturating_sub(REPLY_OVERHEAD_BYTES)
    }
}

/// Answers one request.
pub async fn serve(peer: &Peer, msg: Message) -> Message {
    let reply = match peer.state.allow(&peer.group, &peer.device) {
        Err(e) => Err(e),
        Ok(()) => dispatch(peer, msg).await,
    };
    reply.unwrap_or_else(|e| {
        if matches!(e, Error::Db(_) | Error::Damaged(_) | Error::ObjectStore(_)) {
            tracing::warn!(error = %e, "a request failed in storage");
        }
        e.to_message()
    })
}

async fn dispatch(peer: &Peer, msg: Message) -> Result<Message> {
    match msg {
        Message::Push(p) => push::push(peer, p).await,
        Message::Pull(p) => pull::pull(peer, p).await,
        Message::Presence(_) => presence::presence(peer).await,
        Message::Delete(d) => delete::delete(peer, d).await,
        Message::RosterGet(get) => roster::get(peer, get).await,
        Message::RosterAppend(append) => roster::append(peer, append).await,
        Message::InvitePut(put) => invite::put(peer, put).await,
        Message::InviteGet(get) => invite::get(&peer.state, &get.lookup).await,
        Message::InviteCancel(c) => invite::cancel(peer, c).await,
        Message::RegisterPush(r) => push_token::register(peer, r).await,
        Message::UnregisterPush(u) => push_token::unregister(peer, u).await,
        Message::ContentRef(r) => content::content_ref(peer, r).await,
        _ => Err(Error::Invalid("unexpected message".into())),
    }
}
