//! CONTENT_REF (vault mode): a member asks the relay to archive an attachment it holds.
//! The relay fetches it from that device over iroh-blobs and answers CONTENT_ACK once it
//! is archived, OK while the fetch is under way (the device asks again). A transit relay
//! keeps no attachments.

use zerok_core::sync::{
    Message,
    content::ContentHash,
    message::{ContentAck, ContentRef},
};

use super::Peer;
use crate::{Error, Result, content::Archived};

pub async fn content_ref(peer: &Peer, r: ContentRef) -> Result<Message> {
    let state = &peer.state;
    let Some(archive) = &state.attachments else {
        return Err(Error::Invalid("this relay keeps no attachments (not a vault relay)".into()));
    };
    state.storage.member(peer.group, peer.device).await?;
    let from = crate::content::dial_back(&peer.conn);
    let hash = ContentHash(r.content_hash);
    match archive.request(&state.endpoint, peer.group, hash, r.encrypted_size, from)? {
        Archived::Held => Ok(Message::ContentAck(ContentAck { content_hash: r.content_hash })),
        Archived::Fetching => Ok(Message::Ok),
    }
}
