//! PRESENCE: the group's devices, with who is online now. The list is bounded: a group
//! has at most `max-group-devices` members, and the relay checks at start that so many
//! fit one frame.

use std::collections::HashSet;

use zerok_core::sync::{DeviceId, Message, message::Presence};

use super::Peer;
use crate::Result;

pub async fn presence(peer: &Peer) -> Result<Message> {
    let state = &peer.state;
    let online: HashSet<DeviceId> = state.online_devices(&peer.group).into_iter().map(|(d, _)| d).collect();
    // Revoked devices keep their records: room for as many as the group may hold again.
    let limit = state.config.limits.max_group_devices;
    let mut devices = state.storage.devices(peer.group, peer.device, state.now(), limit).await?;
    for d in &mut devices {
        d.online = online.contains(&d.device_id);
    }
    Ok(Message::Presence(Presence { devices }))
}
