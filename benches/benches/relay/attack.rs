//! A member's pushes while hostile clients attack the relay. The member pushes 1 KiB at a
//! steady 200/s, first on a quiet relay, then while, at once:
//! - 20 addresses keep dialling connections that never say HELLO (200 a second, up to 100
//!   held each);
//! - a member of another group keeps 16 requests open that send a length and nothing more;
//! - 8 devices of that group loop over every request kind as fast as the relay answers.
//!
//! It prints both p50/p99 and what the relay refused. Attackers and relay share the
//! machine's cores, so the figure is a bound on what the relay lets an attacker take.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use zerok_client::sync::RelayConn;
use zerok_core::sync::{
    BlobId, DeviceId, GroupKeys, Message, SigningKey,
    message::{
        Delete, Hello, InviteCancel, InvitePut, PROTOCOL_VERSION, Presence, Pull, Push, RosterAppend, RosterGet,
    },
    roster::InviteKey,
};
use zerok_relay::{Config, Relay};
use zerok_wire::{ALPN, NetOptions};

use super::{pct, raw_group};

/// One member's pushes, `n` of them at 200/s; sorted latencies.
async fn paced(conn: &RelayConn, keys: &GroupKeys, signing: &SigningKey, n: usize) -> Vec<Duration> {
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        tick.tick().await;
        let blob_id = BlobId::random();
        let payload = keys.seal(&blob_id, signing, &[5u8; 1024]);
        let s = Instant::now();
        let reply = conn.request(&Message::Push(Push { blob_id, payload, ttl: 0 })).await.unwrap();
        lat.push(s.elapsed());
        assert!(matches!(reply, Message::PushAck(_)), "{reply:?}");
    }
    lat.sort();
    lat
}

/// Dials from `ip` every 100 ms and never says HELLO, holding up to 100 connections.
async fn silent(relay: iroh::EndpointAddr, ip: String, stop: Arc<AtomicBool>) {
    let addr = format!("{ip}:0").parse().unwrap();
    let ep = zerok_wire::bind(iroh::SecretKey::generate(), addr, vec![], NetOptions::default()).await.unwrap();
    let mut held = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        held.retain(|c: &iroh::endpoint::Connection| c.close_reason().is_none());
        if held.len() < 100
            && let Ok(Ok(conn)) = tokio::time::timeout(Duration::from_secs(3), ep.connect(relay.clone(), ALPN)).await
        {
            held.push(conn);
        }
    }
    ep.close().await;
}

/// A member of `keys`' group (as `signing`, already in its roster) that keeps every
/// request slot it has open with a header that promises a megabyte.
async fn header_only(relay: &Relay, keys: GroupKeys, signing: SigningKey, stop: Arc<AtomicBool>) {
    let secret = iroh::SecretKey::from_bytes(&signing.to_bytes());
    let ep = zerok_wire::bind(secret, "127.0.0.1:0".parse().unwrap(), vec![], NetOptions::default()).await.unwrap();
    let conn = ep.connect(relay.addr().endpoint_addr(), ALPN).await.unwrap();
    let hello = Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        device_name: "stall".into(),
        group_id: keys.id(),
        last_cursor: 0,
        auth_key: keys.auth_public(),
        proof: keys.hello_proof(&DeviceId(*ep.id().as_bytes()), &relay.addr().id),
    });
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    zerok_wire::write_frame(&mut send, &hello).await.unwrap();
    assert!(matches!(zerok_wire::read_frame(&mut recv, 1 << 20).await.unwrap(), Message::Welcome(_)));
    while !stop.load(Ordering::Relaxed) {
        let Ok(Ok((mut send, recv))) = tokio::time::timeout(Duration::from_millis(500), conn.open_bi()).await else {
            continue;
        };
        let _ = send.write_all(&(1u32 << 20).to_be_bytes()).await;
        tokio::spawn(async move {
            let _keep = recv;
            let _ = tokio::time::timeout(Duration::from_secs(30), send.stopped()).await;
        });
    }
    zerok_wire::CloseCode::Bye.close(&conn, "done");
    ep.close().await;
}

/// Loops over every request kind on `conn` until `stop`; counts the replies.
async fn flood(conn: RelayConn, keys: GroupKeys, signing: SigningKey, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) {
    let key = InviteKey([7; 32]);
    while !stop.load(Ordering::Relaxed) {
        let blob_id = BlobId::random();
        let kinds = [
            Message::Push(Push { blob_id, payload: keys.seal(&blob_id, &signing, b"\0junk"), ttl: 0 }),
            Message::Pull(Pull { after_cursor: 0, limit: 100 }),
            Message::Presence(Presence::default()),
            Message::Delete(Delete { blob_id, force: false }),
            Message::RosterGet(RosterGet { after_seq: 0 }),
            Message::RosterAppend(RosterAppend { entries: vec![] }),
            Message::InvitePut(InvitePut { lookup: "abcd".into(), invite_key: key, sealed: vec![1; 256], expires: 0 }),
            Message::InviteCancel(InviteCancel { lookup: "abcd".into(), invite_key: key }),
        ];
        for msg in &kinds {
            if conn.request(msg).await.is_err() {
                return;
            }
            sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// Prints the member's push latency idle and under attack.
pub async fn member_under_attack(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let _ = std::process::Command::new("sync").status();
    let mut c = Config::default();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.http.enabled = false;
    c.storage.data_dir = dir.path().join("relay");
    c.storage.max_group_bytes = 1 << 30;
    // The member pushes 200/s: above the default per-device budget, within the group's.
    c.limits.messages_per_minute = 60_000;
    let relay = Relay::start(c).await.unwrap();
    let (keys, mut members) = raw_group(&relay, 1).await;
    let (_ep, member, signing) = members.pop().unwrap();
    let idle = paced(&member, &keys, &signing, n).await;
    let idle_rss = rss_mib();

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let (hostile_keys, hostile) = raw_group(&relay, 9).await;
    let mut tasks = Vec::new();
    for host in 2..22 {
        tasks.push(tokio::spawn(silent(relay.addr().endpoint_addr(), format!("127.0.0.{host}"), stop.clone())));
    }
    let mut hostile = hostile.into_iter();
    let (stall_ep, stall_conn, stall_signing) = hostile.next().unwrap();
    drop(stall_conn);
    drop(stall_ep);
    let stall = header_only(&relay, hostile_keys.clone(), stall_signing, stop.clone());
    let mut endpoints = Vec::new();
    for (ep, conn, signing) in hostile {
        endpoints.push(ep);
        tasks.push(tokio::spawn(flood(conn, hostile_keys.clone(), signing, stop.clone(), sent.clone())));
    }
    let measure = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let lat = paced(&member, &keys, &signing, n).await;
        let rss = rss_mib();
        stop.store(true, Ordering::Relaxed);
        (lat, rss)
    };
    let ((attacked, attacked_rss), ()) = tokio::join!(measure, stall);
    for t in tasks {
        let _ = t.await;
    }
    let m = &relay.state().metrics;
    println!(
        "member pushes at 200/s, idle: p50 {:6.2} ms  p99 {:6.2} ms | under attack: p50 {:6.2} ms  p99 {:6.2} ms \
         ({:.1}× idle p99) | attackers: {} requests answered, {} rate-limited, {} connections refused at once | \
         process RSS {:.0} → {:.0} MiB",
        pct(&idle, 0.5),
        pct(&idle, 0.99),
        pct(&attacked, 0.5),
        pct(&attacked, 0.99),
        pct(&attacked, 0.99) / pct(&idle, 0.99),
        sent.load(Ordering::Relaxed),
        m.rate_limited_total.load(Ordering::Relaxed),
        m.connections_refused_total.load(Ordering::Relaxed),
        idle_rss,
        attacked_rss,
    );
    relay.shutdown().await;
}
