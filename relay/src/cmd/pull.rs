//! PULL: acknowledges what the device has, then returns the messages after it, at most
//! one frame's worth.

use zerok_core::sync::{
    Message,
    message::{DEFAULT_PULL_LIMIT, Pull, PullResponse},
};

use super::Peer;
use crate::{Result, metrics::Metrics};

pub async fn pull(peer: &Peer, p: Pull) -> Result<Message> {
    let state = &peer.state;
    let limit = match p.limit {
        0 => DEFAULT_PULL_LIMIT,
        n => n.min(state.config.limits.max_pull_limit),
    } as usize;
    let window = (p.after_cursor, limit, peer.reply_budget());
    let (blobs, has_more) = state.storage.pull(peer.group, peer.device, window, state.now()).await?;
    Metrics::inc(&state.metrics.pulls_total);
    let max_cursor = blobs.last().map_or(p.after_cursor, |b| b.cursor);
    Ok(Message::PullResponse(PullResponse { blobs, has_more, max_cursor }))
}
