//! The sync client against a real relay on loopback (iroh relays and discovery off):
//! devices exchanging messages, offline catch-up, relay restart, pairing, revocation, and
//! hostile clients (non-members, replayed proofs, oversized and garbage frames, limits).

use std::time::Duration;

use zerok_client::sync::{ConnectionStatus, ReconnectPolicy, SyncClient, SyncEvent, create, join};
use zerok_core::sync::{
    DeviceId, ErrorCode, GroupSecret, Message, SigningKey,
    message::{Hello, PROTOCOL_VERSION, Pull},
};
use zerok_relay::Config;
use zerok_wire::{ALPN, RelayAddr};

mod common;

use common::{WAIT, add_device, code_of, free_udp_port, home, next_event, raw_endpoint, raw_request, start_relay};

use zerok_client::Error;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_devices_pair_and_exchange_in_both_directions() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(&dir.path().join("relay"), 0, |_| {}).await;
    let addr = relay.addr();
    let mut a = create(home(dir.path(), "a"), std::slice::from_ref(&addr), "laptop").await.unwrap();
    let mut b = add_device(&mut a, dir.path(), "b", "phone").await;
    let (_, code) = b.invite().await.unwrap();
    let mut c = join(home(dir.path(), "c"), &code.to_string(), Some(&addr), "tablet").await.unwrap();

    let mut b_events = b.subscribe();
    a.push(b"from a").await.unwrap();
    let e = next_event(&mut b_events, |e| matches!(e, SyncEvent::BlobAvailable { .. })).await;
    assert!(matches!(e, SyncEvent::BlobAvailable { cursor: 1, sender, .. } if sender == a.device_id()));
    b.push(b"from b").await.unwrap();
    c.push(b"from c").await.unwrap();

    for client in [&mut a, &mut b, &mut c] {
        let got: Vec<Vec<u8>> = client.pull().await.unwrap().into_iter().map(|m| m.data).collect();
        assert_eq!(got, [&b"from a"[..], b"from b", b"from c"]);
        assert_eq!(client.last_cursor(), 3);
        assert!(client.pull().await.unwrap().is_empty(), "nothing twice");
    }
    let devices = a.list_devices().await.unwrap();
    assert_eq!(devices.len(), 3);
    assert!(devices.iter().all(|d| d.online && !d.revoked), "{devices:?}");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_device_catches_up_and_acknowledged_messages_survive_a_relay_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let relay = start_relay(&dir.path().join("relay"), port, |_| {}).await;
    let addr = relay.addr();
    let mut a = create(home(dir.path(), "a"), std::slice::from_ref(&addr), "laptop").await.unwrap();
    add_device(&mut a, dir.path(), "b", "phone").await.disconnect().await;
    for i in 0..5u8 {
        a.push(&[i; 100]).await.unwrap();
    }
    a.disconnect().await;
    relay.shutdown().await;

    // Same data folder and port: same identity, same messages.
    let relay = start_relay(&dir.path().join("relay"), port, |_| {}).await;
    assert_eq!(relay.addr(), addr, "identity persists across restarts");
    let mut b = SyncClient::connect(home(dir.path(), "b")).await.unwrap();
    let got = b.pull().await.unwrap();
    assert_eq!(got.iter().map(|m| m.data[0]).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    assert_eq!(got.last().unwrap().cursor, 5);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_made_offline_is_kept_and_sent_on_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let relay = start_relay(&dir.path().join("relay"), port, |_| {}).await;
    let mut a = create(home(dir.path(), "a"), &[relay.addr()], "laptop").await.unwrap();
    a.set_reconnect_policy(ReconnectPolicy { attempts: 1, jitter: false, ..Default::default() });
    relay.shutdown().await;
    let err = a.push(b"while offline").await.unwrap_err();
    assert!(matches!(err, Error::Connection(_)), "{err}");
    drop(a);
    // With no relay at all, a push is sealed and queued without the network.
    SyncClient::queue_offline(&home(dir.path(), "a"), b"queued cold").unwrap();
    let relay = start_relay(&dir.path().join("relay"), port, |_| {}).await;
    let mut a = SyncClient::connect(home(dir.path(), "a")).await.unwrap();
    let got: Vec<Vec<u8>> = a.pull().await.unwrap().into_iter().map(|m| m.data).collect();
    assert_eq!(got, [&b"while offline"[..], b"queued cold"], "the outbox was flushed in order on reconnect");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_members_and_replayed_proofs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(&dir.path().join("relay"), 0, |_| {}).await;
    let addr = relay.addr();
    let secret = GroupSecret::generate();
    let keys = secret.derive();
    let mut a = create(home(dir.path(), "a"), std::slice::from_ref(&addr), "laptop").await.unwrap();
    a.push(b"private").await.unwrap();

    // A stranger who copied the group id (it never learns the secret).
    let real_group = {
        let state = home(dir.path(), "a").load_group().unwrap();
        state.secret().derive()
    };
    let stranger = raw_endpoint().await;
    let me = DeviceId(*stranger.id().as_bytes());
    let conn = stranger.connect(addr.endpoint_addr(), ALPN).await.unwrap();
    let forged = Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        device_name: "x".into(),
        group_id: real_group.id(),
        last_cursor: 0,
        auth_key: keys.auth_public(),
        proof: keys.hello_proof(&me, &addr.id),
    });
    let reply = raw_request(&conn, &forged).await.unwrap();
    assert_eq!(code_of(&reply), Some(ErrorCode::Unauthorized as u32));

    // A proof made for another device's connection, replayed from this one.
    let stranger2 = raw_endpoint().await;
    let conn2 = stranger2.connect(addr.endpoint_addr(), ALPN).await.unwrap();
    let replayed = Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        device_name: "x".into(),
        group_id: real_group.id(),
        last_cursor: 0,
        auth_key: real_group.auth_public(),
        proof: real_group.hello_proof(&a.device_id(), &addr.id),
    });
    let reply = raw_request(&conn2, &replayed).await.unwrap();
    assert_eq!(code_of(&reply), Some(ErrorCode::Unauthorized as u32));

    // No HELLO: reads are refused and the connection closed.
    let stranger3 = raw_endpoint().await;
    let conn3 = stranger3.connect(addr.endpoint_addr(), ALPN).await.unwrap();
    let reply = raw_request(&conn3, &Message::Pull(Pull { after_cursor: 0, limit: 10 })).await.unwrap();
    assert_eq!(code_of(&reply), Some(ErrorCode::InvalidMessage as u32));
    assert!(tokio::time::timeout(WAIT, conn3.closed()).await.is_ok());
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_garbage_frames_close_only_that_connection() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(&dir.path().join("relay"), 0, |_| {}).await;
    let addr = relay.addr();
    let mut a = create(home(dir.path(), "a"), std::slice::from_ref(&addr), "laptop").await.unwrap();

    for junk in [&u32::MAX.to_be_bytes()[..], &(2u32 << 20).to_be_bytes()[..], b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"] {
        let ep = raw_endpoint().await;
        let conn = ep.connect(addr.endpoint_addr(), ALPN).await.unwrap();
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        send.write_all(junk).await.unwrap();
        send.finish().unwrap();
        assert!(tokio::time::timeout(WAIT, conn.closed()).await.is_ok(), "connection closed for {junk:?}");
    }
    // The member's session is unaffected.
    a.push(b"still here").await.unwrap();
    assert_eq!(a.pull().await.unwrap()[0].data, b"still here");
    let bad = relay.state().metrics.bad_frames_total.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(bad, 3);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_stalling_inside_its_first_frame_is_closed_at_the_hello_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(&dir.path().join("relay"), 0, |c| c.limits.hello_timeout_secs = 1).await;
    let addr = relay.addr();
    // Half a length header, and a whole one announcing 1 MiB that never comes.
    for stall in [&[0u8, 0][..], &(1u32 << 20).to_be_bytes()[..]] {
        let ep = raw_endpoint().await;
        let conn = ep.connect(addr.endpoint_addr(), ALPN).await.unwrap();
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        send.write_all(stall).await.unwrap();
        let started = std::time::Instant::now();
        assert!(
            tokio::time::timeout(WAIT, conn.closed()).await.is_ok(),
            "a stalled first frame {stall:?} holds its slot"
        );
        assert!(started.elapsed() < Duration::from_secs(5), "closed after {:?}", started.elapsed());
    }
    // A member still gets in.
    let mut a = create(home(dir.path(), "a"), std::slice::from_ref(&addr), "laptop").await.unwrap();
    a.push(b"in").await.unwrap();
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_size_and_quota_return_their_error_codes() {
    let dir = tempfile::tempdir().unwrap();
    const PER_MINUTE: u32 = 12;
    let relay = start_relay(&dir.path().join("relay"), 0, |c| {
        // Every request counts: the roster's genesis and reads, and the pushes.
        c.limits.messages_per_minute = PER_MINUTE;
        c.storage.max_blob_bytes = 500;
        c.storage.max_group_bytes = 800 + zerok_relay::RECORD_OVERHEAD_BYTES;
    })
    .await;
    let mut a = create(home(dir.path(), "a"), &[relay.addr()], "laptop").await.unwrap();
    let too_big = a.push(&[0; 600]).await.unwrap_err();
    assert_eq!(too_big.code(), Some(ErrorCode::BlobTooLarge), "{too_big}");
    a.push(&[0; 380]).await.unwrap(); // 485 bytes stored with its signature and tag
    let quota = a.push(&[0; 350]).await.unwrap_err();
    assert_eq!(quota.code(), Some(ErrorCode::GroupQuotaExceeded), "{quota}");
    let mut limited = None;
    for _ in 0..PER_MINUTE {
        match a.list_devices().await {
            Ok(_) => continue,
            Err(e) => {
                limited = Some(e);
                break;
            }
        }
    }
    let limited = limited.expect("the device's requests are limited");
    assert_eq!(limited.code(), Some(ErrorCode::RateLimited), "{limited}");
    relay.shutdown().await;
}

/// A backlog larger than one read's budget (16 MiB) comes in reads that say more follow:
/// a phone that was away does not take it all into memory at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_over_one_read_comes_in_reads_that_say_more_follow() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(&dir.path().join("relay"), 0, |_| {}).await;
    let mut a = create(home(dir.path(), "a"), &[relay.addr()], "laptop").await.unwrap();
    let mut b = add_device(&mut a, dir.path(), "b", "phone").await;
    const N: u8 = 20;
    for i in 0..N {
        a.push(&vec![i; 990_000]).await.unwrap();
    }
    let mut reads = vec![b.pull().await.unwrap()];
    assert!(b.has_more(), "the first read took {} of {N}", reads[0].len());
    while b.has_more() && reads.len() < 5 {
        reads.push(b.pull().await.unwrap());
    }
    assert!(!b.has_more());
    let firsts: Vec<u8> = reads.iter().flatten().map(|m| m.data[0]).collect();
    assert_eq!(firsts, (0..N).collect::<Vec<_>>(), "every message once, in order");
    assert!(reads.len() >= 2 && reads[0].len() < N as usize);
    relay.shutdown().await;
}

/// A push too large for one frame would have the relay close the connection; queued, it
/// would be sent first at every connect and block every push after it, across restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_no_frame_can_carry_is_refused_before_it_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(&dir.path().join("relay"), 0, |c| c.storage.max_blob_bytes = 8 << 20).await;
    let mut a = create(home(dir.path(), "a"), &[relay.addr()], "laptop").await.unwrap();
    let mut b = add_device(&mut a, dir.path(), "b", "phone").await;
    let err = a.push(&vec![7; 2 << 20]).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BlobTooLarge), "{err}");
    assert!(!err.is_retryable(), "{err}");
    a.push(b"after").await.unwrap();
    drop(a);
    // Connecting again sends nothing left over, and later pushes still flow.
    let mut a = SyncClient::connect(home(dir.path(), "a")).await.unwrap();
    a.push(b"later").await.unwrap();
    let got: Vec<Vec<u8>> = b.pull().await.unwrap().into_iter().map(|m| m.data).collect();
    assert_eq!(got, [b"after".to_vec(), b"later".to_vec()]);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_device_is_refused_and_others_are_told() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(&dir.path().join("relay"), 0, |_| {}).await;
    let addr = relay.addr();
    let mut a = create(home(dir.path(), "a"), std::slice::from_ref(&addr), "laptop").await.unwrap();
    let b = add_device(&mut a, dir.path(), "b", "lost phone").await;
    let c = add_device(&mut a, dir.path(), "c", "tablet").await;
    let mut c_events = c.subscribe();
    let lost = b.device_id();
    a.revoke(lost, false).await.unwrap();
    let e = next_event(&mut c_events, |e| matches!(e, SyncEvent::DeviceRevoked { .. })).await;
    assert_eq!(e, SyncEvent::DeviceRevoked { device: lost });
    drop(b);
    let err = SyncClient::connect(home(dir.path(), "b")).await.err().expect("revoked device refused");
    assert!(err.to_string().contains("revoked"), "{err}");
    let roster = a.list_devices().await.unwrap();
    assert!(roster.iter().any(|d| d.device_id == lost && d.revoked));
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invites_are_single_use_and_codes_need_the_right_key() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(&dir.path().join("relay"), 0, |_| {}).await;
    let addr = relay.addr();
    let mut a = create(home(dir.path(), "a"), std::slice::from_ref(&addr), "laptop").await.unwrap();
    let (_, code) = a.invite().await.unwrap();
    join(home(dir.path(), "b"), &code.to_string(), Some(&addr), "phone").await.unwrap();
    let reused =
        join(home(dir.path(), "c"), &code.to_string(), Some(&addr), "thief").await.err().expect("reuse refused");
    assert_eq!(reused.code(), Some(ErrorCode::InviteNotFound), "{reused}");
    assert!(!home(dir.path(), "c").has_group(), "a failed join leaves no state");

    // Another code that lands in the same bucket is as likely as any other: a wrong code
    // opens nothing the relay hands out.
    let (_, code) = a.invite().await.unwrap();
    let text = code.to_string();
    let wrong = format!("{}-0000-0000", &text[..9]);
    let err = join(home(dir.path(), "d"), &wrong, Some(&addr), "guess").await.err().expect("wrong key refused");
    assert!(matches!(err, Error::Invite(_)) || err.code() == Some(ErrorCode::InviteNotFound), "{err}");
    // A wrong guess costs the real code nothing.
    join(home(dir.path(), "e"), &text, Some(&addr), "tablet").await.unwrap();
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_address_text_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(&dir.path().join("relay"), 0, |_| {}).await;
    let text = relay.addr().to_string();
    assert_eq!(RelayAddr::parse(&text).unwrap(), relay.addr());
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_rotation_the_revoked_device_cannot_read_and_the_others_carry_on() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(&dir.path().join("relay"), 0, |_| {}).await;
    let addr = relay.addr();
    let mut a = create(home(dir.path(), "a"), std::slice::from_ref(&addr), "laptop").await.unwrap();
    let b = add_device(&mut a, dir.path(), "b", "stolen phone").await;
    let mut c = add_device(&mut a, dir.path(), "c", "tablet").await;
    a.push(b"before").await.unwrap();
    let old = home(dir.path(), "b").load_group().unwrap().secret().derive();
    let stolen = b.device_id();
    drop(b);

    a.revoke(stolen, true).await.unwrap();
    a.push(b"after").await.unwrap();
    let got: Vec<Vec<u8>> = c.pull().await.unwrap().into_iter().map(|m| m.data).collect();
    assert_eq!(got, [&b"before"[..], b"after"], "the tablet followed the rotation");
    c.push(b"tablet in the new group").await.unwrap();
    assert_eq!(a.pull().await.unwrap().last().unwrap().data, b"tablet in the new group");

    let new = home(dir.path(), "c").load_group().unwrap().secret().derive();
    assert_ne!(new.id(), old.id(), "a new group id and keys");
    let probe = zerok_core::sync::BlobId::random();
    let signer = SigningKey::from_bytes(&[1; 32]);
    let sealed = new.seal(&probe, &signer, b"x");
    assert!(
        old.open(&probe, &DeviceId(signer.verifying_key().to_bytes()), &sealed).is_err(),
        "old keys open nothing new"
    );
    // The stolen device is refused in the old group and cannot prove membership in the new.
    let err = SyncClient::connect(home(dir.path(), "b")).await.err().expect("refused");
    assert!(err.to_string().contains("revoked"), "{err}");
    let ep = raw_endpoint().await;
    let conn = ep.connect(addr.endpoint_addr(), ALPN).await.unwrap();
    let me = DeviceId(*ep.id().as_bytes());
    let hello = Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        device_name: "stolen".into(),
        group_id: new.id(),
        last_cursor: 0,
        auth_key: old.auth_public(),
        proof: old.hello_proof(&me, &addr.id),
    });
    assert_eq!(code_of(&raw_request(&conn, &hello).await.unwrap()), Some(ErrorCode::Unauthorized as u32));
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_client_reconnects_after_the_relay_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let relay = start_relay(&dir.path().join("relay"), port, |_| {}).await;
    let mut a = create(home(dir.path(), "a"), &[relay.addr()], "laptop").await.unwrap();
    a.set_reconnect_policy(ReconnectPolicy { attempts: 3, jitter: false, ..Default::default() });
    a.push(b"before restart").await.unwrap();
    relay.shutdown().await;
    let relay = start_relay(&dir.path().join("relay"), port, |_| {}).await;
    let (_, cursor) = a.push(b"after restart").await.unwrap();
    assert_eq!(cursor, 2, "the acknowledged push survived and cursors continue");
    let got: Vec<Vec<u8>> = a.pull().await.unwrap().into_iter().map(|m| m.data).collect();
    assert_eq!(got, [&b"before restart"[..], b"after restart"]);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_relay_is_dialled_back_while_the_app_makes_no_call_and_events_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let relay = start_relay(&dir.path().join("relay"), port, |_| {}).await;
    let mut a = create(home(dir.path(), "a"), &[relay.addr()], "laptop").await.unwrap();
    let mut b = add_device(&mut a, dir.path(), "b", "phone").await;
    let no_jitter = ReconnectPolicy { jitter: false, ..Default::default() };
    b.set_reconnect_policy(no_jitter);
    a.set_reconnect_policy(no_jitter);
    assert_eq!(b.connection_status(), ConnectionStatus::Connected);
    let mut events = b.subscribe();
    let mut a_events = a.subscribe();
    let (first, cursor) = a.push(b"before the restart").await.unwrap();
    let pushed = next_event(&mut a_events, |e| matches!(e, SyncEvent::BlobPushed { .. })).await;
    assert_eq!(pushed, SyncEvent::BlobPushed { blob_id: first, cursor });

    relay.shutdown().await;
    let lost = next_event(&mut events, |e| matches!(e, SyncEvent::Disconnected { .. })).await;
    assert!(matches!(&lost, SyncEvent::Disconnected { relay, .. } if relay.ends_with(&format!(":{port}"))), "{lost:?}");
    next_event(&mut events, |e| {
        matches!(e, SyncEvent::StatusChanged { status: ConnectionStatus::Reconnecting { attempt: 1 } })
    })
    .await;
    next_event(&mut events, |e| matches!(e, SyncEvent::Reconnecting { attempt: 1, .. })).await;

    // Back on the same address: B's background dials it again with no call from the app,
    // and hears of A's next message on the new session.
    let relay = start_relay(&dir.path().join("relay"), port, |_| {}).await;
    next_event(&mut events, |e| matches!(e, SyncEvent::Connected { .. })).await;
    next_event(&mut events, |e| matches!(e, SyncEvent::StatusChanged { status: ConnectionStatus::Connected })).await;
    assert_eq!(b.connection_status(), ConnectionStatus::Connected);
    a.push(b"after the restart").await.unwrap();
    next_event(&mut events, |e| matches!(e, SyncEvent::BlobAvailable { .. })).await;
    let got: Vec<Vec<u8>> = b.pull().await.unwrap().into_iter().map(|m| m.data).collect();
    assert_eq!(got, [&b"before the restart"[..], b"after the restart"]);
    // The log read again from the start, as an app rebuilding its state would; the saved
    // cursor stays.
    let (again, reached) = b.pull_after(0).await.unwrap();
    assert_eq!(again.into_iter().map(|m| m.data).collect::<Vec<_>>(), got);
    assert_eq!(reached, cursor + 1);
    let (later, _) = b.pull_after(cursor).await.unwrap();
    assert_eq!(later.into_iter().map(|m| m.data).collect::<Vec<_>>(), [b"after the restart"]);
    assert!(b.pull().await.unwrap().is_empty());

    b.disconnect().await;
    a.disconnect().await;
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_fan_out_pushes_and_pull_fails_over() {
    let dir = tempfile::tempdir().unwrap();
    let r1 = start_relay(&dir.path().join("r1"), 0, |_| {}).await;
    let r2 = start_relay(&dir.path().join("r2"), 0, |_| {}).await;
    let relays = [r1.addr(), r2.addr()];
    let mut a = create(home(dir.path(), "a"), &relays, "laptop").await.unwrap();
    let (url, code) = a.invite().await.unwrap();
    let mut b = join(home(dir.path(), "b"), &url, None, "phone").await.unwrap();
    b.set_reconnect_policy(ReconnectPolicy { attempts: 0, jitter: false, ..Default::default() });
    a.cancel_invite(&code).await.unwrap();
    a.push(b"to both").await.unwrap();
    assert_eq!(b.status().iter().filter(|(_, up)| *up).count(), 2);
    r1.shutdown().await;
    let got = b.pull().await.unwrap();
    assert_eq!(got.len(), 1, "pulled from the second relay");
    assert_eq!(got[0].data, b"to both");
    r2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_expiry_and_force_delete_rules() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(&dir.path().join("relay"), 0, |c| {
        c.storage.default_ttl_secs = 1;
        c.cleanup.interval_secs = 1;
    })
    .await;
    let mut a = create(home(dir.path(), "a"), &[relay.addr()], "laptop").await.unwrap();
    let mut b = add_device(&mut a, dir.path(), "b", "phone").await;
    let (kept, _) = a.push(b"gone soon").await.unwrap();
    let err = b.force_delete(kept).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotBlobOwner), "{err}");
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert!(b.pull().await.unwrap().is_empty(), "expired after its TTL");
    assert!(relay.state().metrics.expired_total.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    let (mine, _) = a.push(b"retracted").await.unwrap();
    a.force_delete(mine).await.unwrap();
    assert!(b.pull().await.unwrap().is_empty(), "force-deleted by its sender");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_mode_keeps_history_and_rebuilds_it_from_the_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    let vault_mode = |c: &mut Config| {
        c.storage.mode = zerok_relay::StorageMode::Vault;
        c.storage.object_store = Some(bucket.display().to_string());
        c.storage.default_ttl_secs = 1;
        c.cleanup.interval_secs = 1;
    };
    let port = free_udp_port();
    let relay = start_relay(&dir.path().join("relay"), port, vault_mode).await;
    let addr = relay.addr();
    let mut a = create(home(dir.path(), "a"), std::slice::from_ref(&addr), "laptop").await.unwrap();
    let mut b = add_device(&mut a, dir.path(), "b", "phone").await;
    let lost = add_device(&mut a, dir.path(), "c", "lost").await;
    let mut ids = Vec::new();
    for i in 0..6u8 {
        ids.push(a.push(&[i; 64]).await.unwrap().0);
    }
    assert_eq!(b.pull().await.unwrap().len(), 6);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    a.force_delete(ids[5]).await.unwrap();
    a.revoke(lost.device_id(), false).await.unwrap();
    drop(lost);
    // No TTL and no delete-on-acknowledge: B pulled everything, yet a fresh pull from
    // cursor 0 still gets the whole history (less the deleted message).
    let everything = |n: usize| (0..n as u8).collect::<Vec<_>>();
    let mut d = add_device(&mut a, dir.path(), "d", "new desktop").await;
    let history = d.pull().await.unwrap();
    assert_eq!(history.iter().map(|m| m.data[0]).collect::<Vec<_>>(), everything(5));
    a.disconnect().await;
    b.disconnect().await;
    d.disconnect().await;
    relay.shutdown().await;

    // Local metadata lost: the relay rebuilds it from the bucket.
    std::fs::remove_file(dir.path().join("relay").join(zerok_relay::STORE_FILE)).unwrap();
    let relay = start_relay(&dir.path().join("relay"), port, vault_mode).await;
    assert_eq!(relay.addr(), addr);
    std::fs::remove_dir_all(dir.path().join("d")).unwrap();
    let mut a = SyncClient::connect(home(dir.path(), "a")).await.unwrap();
    let mut e = add_device(&mut a, dir.path(), "e", "rebuilt reader").await;
    let history = e.pull().await.unwrap();
    assert_eq!(history.iter().map(|m| m.data[0]).collect::<Vec<_>>(), everything(5));
    assert_eq!(history.last().unwrap().cursor, 5);
    assert_eq!(a.push(b"next").await.unwrap().1, 7, "a deleted message's cursor is never handed out again");
    let err = SyncClient::connect(home(dir.path(), "c")).await.err().expect("still revoked after the rebuild");
    assert!(err.to_string().contains("revoked"), "{err}");
    a.disconnect().await;
    e.disconnect().await;
    relay.shutdown().await;
}
