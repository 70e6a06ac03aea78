//! A group on two relays, the second behind a loopback link that can turn into a black
//! hole (its host stalled): pushes do not wait for it, it is dialled again when it
//! returns and gets what it missed, and a pull that fails over to it delivers nothing
//! twice; a hostile second relay that answers every request with DEVICE_REVOKED is left
//! out, and cannot make a member believe it was revoked.

mod common;

use std::time::{Duration, Instant};

use common::{home, start_relay};
use zerok_client::sync::{ReconnectPolicy, SyncClient, create, join};
use zerok_testkit::UdpProxy;
use zerok_wire::RelayAddr;

fn quick() -> ReconnectPolicy {
    ReconnectPolicy { attempts: 0, jitter: false, request_timeout: Duration::from_secs(1) }
}

fn up(client: &SyncClient) -> usize {
    client.status().iter().filter(|(_, up)| *up).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_relay_costs_pushes_nothing_is_dialled_again_and_caught_up() {
    let dir = tempfile::tempdir().unwrap();
    let r1 = start_relay(&dir.path().join("r1"), 0, |_| {}).await;
    let r2 = start_relay(&dir.path().join("r2"), 0, |_| {}).await;
    let link = UdpProxy::start(r2.addr().addr.unwrap()).await;
    let behind = RelayAddr { id: r2.addr().id, addr: Some(link.addr) };
    let mut a = create(home(dir.path(), "a"), &[r1.addr(), behind], "laptop").await.unwrap();
    a.set_reconnect_policy(quick());
    let (url, _) = a.invite().await.unwrap();
    let mut b = join(home(dir.path(), "b"), &url, None, "phone").await.unwrap();
    b.set_reconnect_policy(quick());
    assert_eq!((up(&a), up(&b)), (2, 2));

    // The second relay's host stalls: pushes return at the first relay's acknowledgement.
    link.set_black_hole(true);
    let started = Instant::now();
    for i in 0..5 {
        a.push(format!("stalled {i}").as_bytes()).await.unwrap();
    }
    assert!(started.elapsed() < Duration::from_secs(2), "5 pushes took {:?}", started.elapsed());

    // Restarted while it is still down: the connect does not wait on it either.
    a.disconnect().await;
    let mut a = SyncClient::connect(home(dir.path(), "a")).await.unwrap();
    a.set_reconnect_policy(quick());
    assert_eq!(up(&a), 1);
    a.push(b"while it was down").await.unwrap();

    // It returns: dialled again with backoff, and sent everything it missed.
    link.set_black_hole(false);
    let deadline = Instant::now() + Duration::from_secs(20);
    while up(&a) < 2 {
        assert!(Instant::now() < deadline, "the relay was never dialled again");
        tokio::time::sleep(Duration::from_millis(300)).await;
        a.pull().await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while r2.state().storage.totals().await.1 < 6 {
        assert!(Instant::now() < deadline, "the returned relay never got what it missed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = b.pull().await.unwrap();
    assert_eq!(got.len(), 6, "from the first relay");

    // The first relay goes away: the pull fails over to the second, which has all six,
    // and delivers only what is new.
    r1.shutdown().await;
    a.push(b"after the failover").await.unwrap();
    let got = b.pull().await.unwrap();
    let texts: Vec<&[u8]> = got.iter().map(|m| m.data.as_slice()).collect();
    assert_eq!(texts, [&b"after the failover"[..]], "nothing delivered twice");
    a.disconnect().await;
    b.disconnect().await;
    r2.shutdown().await;
}

/// A relay that welcomes every device and then answers each request with DEVICE_REVOKED (a
/// hostile secondary: it cannot revoke anyone, only claim to).
async fn revoking_relay() -> (iroh::Endpoint, RelayAddr, tokio::task::JoinHandle<()>) {
    use zerok_core::sync::{
        ErrorCode, Message,
        frame::MAX_FRAME_BYTES,
        message::{ErrorMsg, PROTOCOL_VERSION, Welcome},
    };
    let key = iroh::SecretKey::generate();
    let id = *key.public().as_bytes();
    let net = zerok_wire::NetOptions { server: true, ..Default::default() };
    let ep = zerok_wire::bind(key, "127.0.0.1:0".parse().unwrap(), vec![zerok_wire::ALPN.to_vec()], net).await.unwrap();
    let addr = RelayAddr { id, addr: ep.bound_sockets().first().copied() };
    let accepting = ep.clone();
    let task = tokio::spawn(async move {
        while let Some(incoming) = accepting.accept().await {
            let Ok(conn) = incoming.await else { continue };
            tokio::spawn(async move {
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    let reply = match zerok_wire::read_frame(&mut recv, MAX_FRAME_BYTES).await {
                        Ok(Message::Hello(_)) => Message::Welcome(Welcome {
                            version: PROTOCOL_VERSION,
                            relay_id: hex::encode(id),
                            max_cursor: 0,
                            pending_count: 0,
                            roster_seq: 0,
                            member: true,
                            vault: false,
                            time: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
                        }),
                        Ok(_) => Message::Error(ErrorMsg {
                            code: ErrorCode::DeviceRevoked as u32,
                            message: "you were revoked (says this relay)".into(),
                        }),
                        Err(_) => return,
                    };
                    let _ = zerok_wire::write_frame(&mut send, &reply).await;
                }
            });
        }
    });
    (ep, addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_claims_a_member_is_revoked_is_only_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let r1 = start_relay(&dir.path().join("r1"), 0, |_| {}).await;
    let (hostile, liar, task) = revoking_relay().await;
    let mut a = create(home(dir.path(), "a"), &[r1.addr(), liar], "laptop").await.unwrap();
    a.set_reconnect_policy(quick());
    a.push(b"still a member").await.unwrap();
    let got = a.pull().await.expect("one relay's claim is not a revocation");
    assert_eq!(got.into_iter().map(|m| m.data).collect::<Vec<_>>(), [b"still a member"]);
    task.abort();
    hostile.close().await;
    r1.shutdown().await;
}
