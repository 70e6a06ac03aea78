//! DELETE: with `force`, the sender's message goes at once; without, it is marked and goes
//! once every current member has pulled past it. The reply says which.

use zerok_core::sync::{
    Message,
    message::{Delete, Deleted},
};

use super::Peer;
use crate::Result;

pub async fn delete(peer: &Peer, d: Delete) -> Result<Message> {
    let removed = peer.state.storage.delete(peer.group, peer.device, d.blob_id, d.force).await?;
    Ok(Message::Deleted(Deleted { blob_id: d.blob_id, removed }))
}
