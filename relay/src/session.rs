//! One connection: HELLO (with its group proof) within the HELLO timeout — or invite
//! lookups, which need no group — then requests, one bidirectional stream each, until the
//! connection ends. Before HELLO the connection holds a place in the waiting room (see
//! `admission`); after it, a session slot. A malformed or oversized frame closes this
//! connection only; a request whose frame does not arrive in time, or whose reply is not
//! taken, costs its stream only.

use std::{
    net::IpAddr,
    sync::{Arc, OnceLock, atomic::AtomicBool},
    time::Duration,
};

use iroh::endpoint::{Connection, RecvStream, SendStream};
use zerok_core::sync::{DeviceId, ErrorCode, GroupId, Message};
use zerok_wire::{CloseCode, WireError, read_frame, write_frame};

use crate::{
    admission::Ticket,
    cmd::{self, Peer, hello::Accepted},
    metrics::Metrics,
    state::{State, log_group},
};

/// How long a refused peer gets to read the refusal before the connection closes.
const REFUSAL_GRACE: Duration = Duration::from_secs(2);

/// Runs a connection from `ip` to its end.
pub async fn run(state: Arc<State>, conn: Connection, ip: Option<IpAddr>, ticket: Ticket) {
    let device = DeviceId(*conn.remote_id().as_bytes());
    let Some((group, accepted)) = until_hello(&state, &conn, device, &ticket).await else { return };
    drop(ticket);
    let (Ok(slot), Some(ip_slot)) = (state.sessions.clone().try_acquire_owned(), state.sessions_per_ip.take(ip)) else {
        CloseCode::TooManySessions.close(&conn, "too many sessions");
        return;
    };
    zerok_wire::admit(&conn, state.config.limits.max_streams_per_connection);
    let name = OnceLock::from(accepted.name);
    let member = AtomicBool::new(accepted.member);
    let peer = Arc::new(Peer { state: state.clone(), conn: conn.clone(), device, group, member, name });
    Metrics::inc(&state.metrics.sessions_active);
    if accepted.member {
        peer.go_online();
    }
    tracing::debug!(group = %log_group(&group), "session open");
    // A guest (in no roster) is here to join: it has a while to, not forever.
    let guest_time = tokio::time::sleep(Duration::from_secs(state.config.limits.guest_session_secs));
    tokio::pin!(guest_time);
    loop {
        let (send, recv) = tokio::select! {
            _ = state.stop_token().cancelled() => {
                CloseCode::ShuttingDown.close(&conn, "relay shutting down");
                break;
            }
            _ = &mut guest_time, if !peer.is_member() => {
                CloseCode::Refused.close(&conn, "not a member");
                break;
            }
            s = conn.accept_bi() => match s { Ok(s) => s, Err(_) => break },
        };
        let peer = peer.clone();
        state.tasks.spawn(async move { serve_stream(&peer, send, recv).await });
    }
    state.go_offline(&group, &device, &conn);
    state.metrics.sessions_active.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    drop((slot, ip_slot));
}

fn bad_frame(state: &State, conn: &Connection, e: &WireError) {
    if matches!(e, WireError::Frame(_)) {
        Metrics::inc(&state.metrics.bad_frames_total);
        CloseCode::BadFrame.close(conn, "bad frame");
    }
}

/// Sends a refusal, gives the peer a moment to read it, and closes the connection.
async fn refuse(conn: &Connection, send: &mut SendStream, reply: &Message, reason: &str) {
    let told = async {
        if write_frame(send, reply).await.is_ok() {
            let _ = send.stopped().await;
        }
    };
    let _ = tokio::time::timeout(REFUSAL_GRACE, told).await;
    CloseCode::Refused.close(conn, reason);
}

/// Serves streams until a valid HELLO; returns its group, or None when the connection
/// was refused, evicted from the waiting room, late, or ended. The deadline covers the
/// first frame's bytes too: a peer that sends part of one, or a length and nothing more,
/// is closed with everyone who sends nothing.
async fn until_hello(
    state: &State,
    conn: &Connection,
    device: DeviceId,
    ticket: &Ticket,
) -> Option<(GroupId, Accepted)> {
    let limits = &state.config.limits;
    let late = || {
        CloseCode::Refused.close(conn, "no HELLO in time");
        None
    };
    let deadline = tokio::time::sleep(Duration::from_secs(limits.hello_timeout_secs));
    tokio::pin!(deadline);
    let mut lookups = 0;
    loop {
        let next = async {
            let (send, mut recv) = conn.accept_bi().await.ok()?;
            Some((send, read_frame(&mut recv, limits.max_frame_bytes).await))
        };
        let (mut send, read) = tokio::select! {
            _ = &mut deadline => return late(),
            _ = ticket.evicted() => {
                CloseCode::TooManySessions.close(conn, "relay busy");
                return None;
            }
            _ = state.stop_token().cancelled() => return None,
            next = next => next?,
        };
        let msg = match read {
            Ok(m) => m,
            Err(e) => {
                bad_frame(state, conn, &e);
                return None;
            }
        };
        match msg {
            Message::Hello(hello) => match cmd::hello::hello(state, device, &hello).await {
                Ok(accepted) => {
                    let welcome = Message::Welcome(accepted.welcome.clone());
                    match tokio::time::timeout_at(deadline.deadline(), write_frame(&mut send, &welcome)).await {
                        Ok(Ok(())) => return Some((hello.group_id, accepted)),
                        Ok(Err(_)) => return None,
                        Err(_) => return late(),
                    }
                }
                Err(refusal) => {
                    Metrics::inc(&state.metrics.hello_refused_total);
                    refuse(conn, &mut send, &refusal, "HELLO refused").await;
                    return None;
                }
            },
            Message::InviteGet(get) if lookups < limits.invite_lookups_per_connection => {
                lookups += 1;
                let reply = cmd::invite::get(state, &get.lookup).await.unwrap_or_else(|e| e.to_message());
                match tokio::time::timeout_at(deadline.deadline(), write_frame(&mut send, &reply)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return None,
                    Err(_) => return late(),
                }
            }
            _ => {
                refuse(conn, &mut send, &ErrorCode::InvalidMessage.message("HELLO first"), "HELLO first").await;
                return None;
            }
        }
    }
}

/// One request: its frame within the request timeout, the reply, and the peer's taking
/// of it within the timeout again.
async fn serve_stream(peer: &Peer, mut send: SendStream, mut recv: RecvStream) {
    let state = &peer.state;
    let timeout = Duration::from_secs(state.config.limits.request_timeout_secs);
    let msg = match tokio::time::timeout(timeout, read_frame(&mut recv, state.config.limits.max_frame_bytes)).await {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => return bad_frame(state, &peer.conn, &e),
        Err(_) => {
            let _ = recv.stop(0u32.into());
            return;
        }
    };
    if let Message::Bye(_) = msg {
        CloseCode::Bye.close(&peer.conn, "bye");
        return;
    }
    let reply = cmd::serve(peer, msg).await;
    let answered = async {
        if write_frame(&mut send, &reply).await.is_ok() {
            let _ = send.stopped().await;
        }
    };
    let _ = tokio::time::timeout(timeout, answered).await;
}
