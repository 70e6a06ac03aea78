//! REGISTER_PUSH / UNREGISTER_PUSH: a member's mobile push token, so a PUSH can wake it
//! while it is offline (see `push`). Tokens are bounded and plain: an APNs token is 64 hex
//! digits, an FCM one under 200 characters of `[A-Za-z0-9_:-]`.

use zerok_core::sync::{
    ErrorCode, Message,
    message::{RegisterPush, UnregisterPush},
};

use super::Peer;
use crate::{Result, store::PushToken};

/// Longest token taken.
const MAX_TOKEN_CHARS: usize = 4096;
/// Longest app id taken.
const MAX_APP_ID_CHARS: usize = 255;

fn plain(text: &str) -> bool {
    text.chars().all(|c| c.is_ascii_alphanumeric() || "_:-.".contains(c))
}

pub async fn register(peer: &Peer, r: RegisterPush) -> Result<Message> {
    if peer.state.waker.is_none() {
        return Ok(ErrorCode::InvalidPushToken.message("this relay has no push gateway configured"));
    }
    let app_ok = r.app_id.as_ref().is_none_or(|a| a.len() <= MAX_APP_ID_CHARS && plain(a));
    if r.token.is_empty() || r.token.len() > MAX_TOKEN_CHARS || !plain(&r.token) || !app_ok {
        return Ok(ErrorCode::InvalidPushToken.message("malformed push token or app id"));
    }
    let token = PushToken { token: r.token, platform: r.platform, app_id: r.app_id };
    peer.state.storage.set_push_token(peer.group, peer.device, token).await?;
    Ok(Message::Ok)
}

pub async fn unregister(peer: &Peer, _: UnregisterPush) -> Result<Message> {
    peer.state.storage.drop_push_token(peer.group, peer.device).await?;
    Ok(Message::Ok)
}
