//! Hostile clients against a real relay on loopback: connections that never say HELLO,
//! streams that send a length and nothing more, floods of every request kind. Each test
//! checks that the attacker is cut off in bounded time and that a member of another group
//! is served meanwhile.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use common::{WAIT, code_of, home, raw_request, start_relay};
use iroh::endpoint::Connection;
use zerok_client::sync::{SyncClient, create};
use zerok_core::sync::{
    BlobId, DeviceId, ErrorCode, GroupKeys, GroupSecret, Message, SigningKey,
    message::{
        Delete, Hello, InviteCancel, InviteGet, InvitePut, PROTOCOL_VERSION, Presence, Pull, Push, RosterAppend,
        RosterGet,
    },
    roster::{InviteKey, create_entry},
};
use zerok_relay::{Config, Relay};
use zerok_wire::{ALPN, NetOptions};

/// Tight limits, so the tests run in seconds.
fn tight(c: &mut Config) {
    c.limits.hello_timeout_secs = 2;
    c.limits.request_timeout_secs = 1;
    c.limits.max_pending = 256;
    c.limits.max_pending_per_ip = 32;
}

async fn endpoint_on(ip: &str, key: iroh::SecretKey) -> iroh::Endpoint {
    zerok_wire::bind(key, format!("{ip}:0").parse().unwrap(), vec![], NetOptions::default()).await.unwrap()
}

/// A device that creates a group of its own by hand and stays connected as its member.
async fn lone_member(relay: &Relay) -> (iroh::Endpoint, Connection, GroupKeys, SigningKey) {
    let key = iroh::SecretKey::generate();
    let signing = SigningKey::from_bytes(&key.to_bytes());
    let ep = endpoint_on("127.0.0.1", key).await;
    let keys = GroupSecret::generate().derive();
    let conn = ep.connect(relay.addr().endpoint_addr(), ALPN).await.unwrap();
    let me = DeviceId(*ep.id().as_bytes());
    let hello = Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        device_name: "flood".into(),
        group_id: keys.id(),
        last_cursor: 0,
        auth_key: keys.auth_public(),
        proof: keys.hello_proof(&me, &relay.addr().id),
    });
    assert!(matches!(raw_request(&conn, &hello).await.unwrap(), Message::Welcome(_)));
    let genesis = create_entry(keys.id(), &signing, "flood");
    let appended = raw_request(&conn, &Message::RosterAppend(RosterAppend { entries: vec![genesis] })).await.unwrap();
    assert!(matches!(appended, Message::RosterAppended(_)), "{appended:?}");
    (ep, conn, keys, signing)
}

/// A member of another group, as an app runs it.
async fn bystander(dir: &std::path::Path, relay: &Relay) -> SyncClient {
    create(home(dir, "bystander"), &[relay.addr()], "bystander").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_say_hello_are_closed_in_time_and_never_lock_a_member_out() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(&dir.path().join("relay"), 0, |c| {
        tight(c);
        // Fewer session slots than strangers: waiting for HELLO must not take one.
        c.limits.max_sessions = 100;
    })
    .await;
    let member = bystander(dir.path(), &relay).await;
    member.disconnect().await;

    // 2,000 connections from 20 addresses, none of which will ever say HELLO.
    let target = relay.addr().endpoint_addr();
    let mut floods = Vec::new();
    for host in 2..22 {
        let ep = endpoint_on(&format!("127.0.0.{host}"), iroh::SecretKey::generate()).await;
        let target = target.clone();
        floods.push(tokio::spawn(async move {
            let mut attempts = tokio::task::JoinSet::new();
            for _ in 0..100 {
                let (ep, target) = (ep.clone(), target.clone());
                attempts.spawn(async move { tokio::time::timeout(WAIT, ep.connect(target, ALPN)).await.ok()?.ok() });
            }
            let held: Vec<Connection> = attempts.join_all().await.into_iter().flatten().collect();
            (ep, held)
        }));
    }
    let mut held = Vec::new();
    let mut endpoints = Vec::new();
    for flood in floods {
        let (ep, conns) = flood.await.unwrap();
        held.extend(conns);
        endpoints.push(ep);
    }
    let refused = relay.state().metrics.connections_refused_total.load(Ordering::Relaxed) as usize;
    let waiting = relay.state().admission.waiting();
    assert!(refused > 0, "an address over its share is refused before the handshake");
    assert!(waiting <= 256, "the waiting room is bounded: {waiting}");
    eprintln!("{} handshakes, {refused} refused at once, {waiting} waiting", held.len());

    // The room is full of strangers: a member still gets in, at once, and is served.
    let started = Instant::now();
    let mut member = SyncClient::connect(home(dir.path(), "bystander")).await.unwrap();
    member.push(b"still served").await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "a member's HELLO waited {:?}", started.elapsed());

    // Every stranger is gone by the HELLO timeout (evicted or timed out), none later.
    let deadline = Instant::now() + Duration::from_secs(2 + 3);
    for conn in &held {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            tokio::time::timeout(left, conn.closed()).await.is_ok(),
            "a silent connection outlived the HELLO timeout"
        );
    }
    assert_eq!(relay.state().admission.waiting(), 0);
    member.disconnect().await;
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_only_streams_hold_a_few_streams_for_a_moment_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(&dir.path().join("relay"), 0, tight).await;
    let (_ep, conn, ..) = lone_member(&relay).await;
    let mut member = bystander(dir.path(), &relay).await;

    // 100 requests that each declare a 1 MiB frame and send nothing more.
    let opened = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicUsize::new(0));
    let streams: Vec<_> = (0..100)
        .map(|_| {
            let (conn, opened, stopped) = (conn.clone(), opened.clone(), stopped.clone());
            tokio::spawn(async move {
                let Ok((mut send, _recv)) = conn.open_bi().await else { return };
                opened.fetch_add(1, Ordering::Relaxed);
                let _ = send.write_all(&(1u32 << 20).to_be_bytes()).await;
                // The relay stops reading at its request timeout.
                if tokio::time::timeout(Duration::from_secs(20), send.stopped()).await.is_ok() {
                    stopped.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first = opened.load(Ordering::Relaxed);
    assert!(first <= 16, "the relay gives one connection 16 open requests, not {first}");
    for i in 0..10 {
        member.push(format!("meanwhile {i}").as_bytes()).await.unwrap();
    }
    for s in streams {
        tokio::time::timeout(Duration::from_secs(30), s).await.expect("the relay frees stalled streams").unwrap();
    }
    assert_eq!(opened.load(Ordering::Relaxed), 100, "credit comes back as stalled requests time out");
    assert_eq!(stopped.load(Ordering::Relaxed), 100, "each stalled request was stopped by the relay");
    assert!(conn.close_reason().is_none(), "a slow request costs its stream, not the connection");
    member.disconnect().await;
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_kind_is_rate_limited_and_spends_only_its_own_devices_budget() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(&dir.path().join("relay"), 0, |c| {
        tight(c);
        c.limits.messages_per_minute = 30;
    })
    .await;
    let (_ep, conn, keys, signing) = lone_member(&relay).await;
    let mut member = bystander(dir.path(), &relay).await;
    let push = || {
        let blob_id = BlobId::random();
        Message::Push(Push { blob_id, payload: keys.seal(&blob_id, &signing, b"\0junk"), ttl: 0 })
    };
    let kinds: Vec<(&str, Message)> = vec![
        ("PRESENCE", Message::Presence(Presence::default())),
        ("PUSH", push()),
        ("PULL", Message::Pull(Pull { after_cursor: 0, limit: 10 })),
        ("DELETE", Message::Delete(Delete { blob_id: BlobId::random(), force: false })),
        ("ROSTER_GET", Message::RosterGet(RosterGet { after_seq: 0 })),
        ("ROSTER_APPEND", Message::RosterAppend(RosterAppend { entries: vec![] })),
        (
            "INVITE_PUT",
            Message::InvitePut(InvitePut {
                lookup: "abcd".into(),
                invite_key: InviteKey([1; 32]),
                sealed: vec![1; 64],
                expires: 0,
            }),
        ),
        ("INVITE_GET", Message::InviteGet(InviteGet { lookup: "abcd".into() })),
        (
            "INVITE_CANCEL",
            Message::InviteCancel(InviteCancel { lookup: "abcd".into(), invite_key: InviteKey([1; 32]) }),
        ),
    ];
    // A flood of presence heartbeats (each one a write) runs out of the device's budget...
    let mut limited = 0;
    for _ in 0..40 {
        let reply = raw_request(&conn, &Message::Presence(Presence::default())).await.unwrap();
        limited += usize::from(code_of(&reply) == Some(ErrorCode::RateLimited as u32));
    }
    assert!(limited >= 10, "only {limited} of 40 were limited");
    // ... and then no kind of request gets through.
    for (name, msg) in &kinds {
        let reply = raw_request(&conn, msg).await.unwrap();
        assert_eq!(code_of(&reply), Some(ErrorCode::RateLimited as u32), "{name}: {reply:?}");
    }
    // A member of another group is not touched.
    for i in 0..5 {
        member.push(format!("mine {i}").as_bytes()).await.unwrap();
    }
    member.disconnect().await;
    relay.shutdown().await;
}
