//! HELLO: the protocol version, the group proof for this very connection, the rate
//! limits (a HELLO is a request too), then the device's standing in the relay's roster
//! (member, guest, or refused).

use zerok_core::sync::{
    DeviceId, ErrorCode, Message,
    group::verify_hello,
    message::{Hello, PROTOCOL_VERSION, Welcome},
};

use crate::{Error, state::State};

/// What a HELLO that was accepted gives the session.
pub struct Accepted {
    /// The reply.
    pub welcome: Welcome,
    /// A current member (else a guest).
    pub member: bool,
    /// The name, truncated.
    pub name: String,
}

/// Judges a HELLO from `device`; the refusal is the reply to send.
pub async fn hello(state: &State, device: DeviceId, h: &Hello) -> Result<Accepted, Message> {
    if h.version != PROTOCOL_VERSION {
        return Err(ErrorCode::VersionMismatch
            .message(format!("protocol version {} unsupported; this relay speaks {PROTOCOL_VERSION}", h.version)));
    }
    verify_hello(&h.group_id, &h.auth_key, &h.proof, &device, state.relay_id())
        .map_err(|_| ErrorCode::Unauthorized.message("membership proof does not verify for this connection"))?;
    state.allow(&h.group_id, &device).map_err(|e| e.to_message())?;
    let name: String = h.device_name.chars().take(state.config.limits.max_device_name_chars).collect();
    let now = state.now();
    let welcomed =
        state.storage.hello(h.group_id, device, name.clone(), now).await.map_err(|e: Error| e.to_message())?;
    let welcome = Welcome {
        version: PROTOCOL_VERSION,
        relay_id: state.relay_id_hex(),
        max_cursor: welcomed.max_cursor,
        pending_count: welcomed.pending,
        roster_seq: welcomed.standing.roster_seq,
        member: welcomed.standing.member,
        time: now,
        vault: state.storage.is_vault(),
    };
    Ok(Accepted { welcome, member: welcomed.standing.member, name })
}
