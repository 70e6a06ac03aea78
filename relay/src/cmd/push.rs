//! PUSH: size and lifetime limits, then a durable store (the PUSH_ACK follows the commit),
//! then NOTIFY to the group's other online devices, and a wake to those offline that
//! registered a push token.

use std::sync::atomic::Ordering;

use zerok_core::sync::{
    Message,
    message::{Notify, Push, PushAck},
};

use super::Peer;
use crate::{Error, Result, metrics::Metrics, store::NewBlob};

/// Wakes the group's offline members with push tokens, off the push's path.
fn wake_offline(peer: &Peer, cursor: u64) {
    if peer.state.waker.is_none() {
        return;
    }
    let (state, group, sender) = (peer.state.clone(), peer.group, peer.device);
    let online = state.online_devices(&group).into_iter().map(|(d, _)| d).collect();
    peer.state.tasks.spawn(async move {
        match state.storage.wake_targets(group, sender, online).await {
            Ok(targets) if !targets.is_empty() => {
                if let Some(waker) = &state.waker {
                    waker.wake(&group, targets, cursor);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "push tokens could not be read"),
        }
    });
}

pub async fn push(peer: &Peer, p: Push) -> Result<Message> {
    let (state, group, device, now) = (&peer.state, peer.group, peer.device, peer.state.now());
    let limits = &state.config.storage;
    if p.payload.is_empty() {
        return Err(Error::Invalid("empty payload".into()));
    }
    if p.payload.len() as u64 > limits.max_blob_bytes {
        return Err(Error::TooLarge(limits.max_blob_bytes));
    }
    let ttl = if p.ttl == 0 { limits.default_ttl_secs } else { (p.ttl as u64).min(limits.max_ttl_secs) };
    let blob = NewBlob { group: &group, sender: &device, blob_id: &p.blob_id, payload: &p.payload, ttl_secs: ttl, now };
    let pushed = state.storage.push(&blob).await?;
    let size = p.payload.len() as u32;
    Metrics::inc(&state.metrics.pushes_total);
    state.metrics.bytes_received_total.fetch_add(size as u64, Ordering::Relaxed);
    if !pushed.duplicate {
        let note = Notify { blob_id: p.blob_id, cursor: pushed.cursor, sender_id: device, timestamp: now, size };
        state.broadcast(&group, Some(&device), &Message::Notify(note));
        wake_offline(peer, pushed.cursor);
    }
    Ok(Message::PushAck(PushAck { blob_id: p.blob_id, cursor: pushed.cursor, timestamp: pushed.timestamp }))
}
