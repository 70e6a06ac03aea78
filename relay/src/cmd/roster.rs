//! ROSTER_GET and ROSTER_APPEND. After an append this session may become a member (its
//! join), the group's online devices hear of the change, and removed devices are told and
//! cut off.

use std::{sync::atomic::Ordering, time::Duration};

use zerok_core::sync::{
    Message,
    message::{DeviceRevoked, RosterAppend, RosterAppended, RosterEntries, RosterGet},
    roster::Change,
};
use zerok_wire::CloseCode;

use super::Peer;
use crate::Result;

/// How long a removed device's session stays open to read its DEVICE_REVOKED.
const REVOKED_GRACE: Duration = Duration::from_millis(200);

pub async fn get(peer: &Peer, get: RosterGet) -> Result<Message> {
    let page = peer.state.storage.roster_get(peer.group, get.after_seq, peer.reply_budget()).await?;
    Ok(Message::RosterEntries(RosterEntries {
        entries: page.entries,
        has_more: page.has_more,
        seq: page.seq,
        head: page.head,
    }))
}

pub async fn append(peer: &Peer, append: RosterAppend) -> Result<Message> {
    let (state, group, device, now) = (&peer.state, peer.group, peer.device, peer.state.now());
    let appended = state.storage.roster_append(group, append.entries, now).await?;
    if !peer.is_member() && state.storage.standing(group, device).await?.member {
        let name = peer.name.get().cloned().unwrap_or_default();
        state.storage.joined(group, device, name, now).await?;
        if !peer.member.swap(true, Ordering::Relaxed) {
            peer.go_online();
        }
    }
    let seq = appended.seq;
    if !appended.changes.is_empty() {
        state.broadcast(&group, Some(&device), &Message::RosterAppended(RosterAppended { seq }));
    }
    for change in &appended.changes {
        let Change::Removed { device: target, by, .. } = change else { continue };
        let notice = DeviceRevoked { device_id: *target, revoked_by: *by, timestamp: now };
        state.broadcast(&group, None, &Message::DeviceRevoked(notice));
        for (_, online) in state.online_devices(&group).into_iter().filter(|(d, _)| d == target) {
            state.tasks.spawn(async move {
                tokio::time::sleep(REVOKED_GRACE).await;
                CloseCode::Refused.close(&online.conn, "device revoked");
            });
        }
    }
    Ok(Message::RosterAppended(RosterAppended { seq }))
}
