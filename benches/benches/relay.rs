//! Relay scenarios on loopback, in-process, printed as a table (not criterion: latency
//! percentiles are the point). `cargo bench -p zerok-benches --bench relay`.
//!
//! - push → NOTIFY latency at the other device, p50/p99, 1 KiB and 64 KiB payloads;
//! - sequential pushes per second from one device (each acknowledged after a durable commit);
//! - 8 devices pushing at once (group commit), total pushes/s and per-push p50/p99;
//! - pull of 2,000 and 10,000 buffered 1 KiB messages;
//! - `zerok sync push` as a whole process (when `target/release/zerok` is built);
//! - a member's paced pushes, idle and while hostile clients attack the relay (`attack`).

use std::time::{Duration, Instant};

use zerok_client::sync::{RelayConn, SyncClient, SyncEvent, SyncHome, create, join};
use zerok_core::sync::{
    BlobId, GroupKeys, GroupSecret, Message, SigningKey,
    message::{Push, RosterAppend},
    roster::{Roster, Ticket, create_entry, join_entry},
};
use zerok_relay::{Config, Relay};
use zerok_wire::NetOptions;

#[path = "relay/attack.rs"]
mod attack;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3
}

async fn pair(dir: &std::path::Path, relay: &Relay) -> (SyncClient, SyncClient) {
    let mut a = create(SyncHome::new(&dir.join("a")), &[relay.addr()], "bench-a").await.unwrap();
    let (url, _) = a.invite().await.unwrap();
    let b = join(SyncHome::new(&dir.join("b")), &url, None, "bench-b").await.unwrap();
    (a, b)
}

async fn latency_and_rate(size: usize, n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(dir.path()).await;
    let (mut a, b) = pair(dir.path(), &relay).await;
    let mut events = b.subscribe();
    let payload = vec![7u8; size];
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        a.push(&payload).await.unwrap();
        loop {
            match tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap().unwrap() {
                SyncEvent::BlobAvailable { .. } => break,
                _ => continue,
            }
        }
        lat.push(t.elapsed());
    }
    lat.sort();
    let t = Instant::now();
    let mut push = Vec::with_capacity(n);
    for _ in 0..n {
        let s = Instant::now();
        a.push(&payload).await.unwrap();
        push.push(s.elapsed());
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    push.sort();
    println!(
        "{:>6} B  push→NOTIFY p50 {:6.2} ms  p99 {:6.2} ms | push+ack p50 {:6.2} ms  p99 {:6.2} ms  {:7.0} pushes/s",
        size,
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&push, 0.5),
        pct(&push, 0.99),
        rate
    );
    relay.shutdown().await;
}

async fn pull_many(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(dir.path()).await;
    let (mut a, mut b) = pair(dir.path(), &relay).await;
    let payload = vec![1u8; 1024];
    for _ in 0..n {
        a.push(&payload).await.unwrap();
    }
    let t = Instant::now();
    let got = b.pull().await.unwrap();
    assert_eq!(got.len(), n);
    println!("pull of {n} buffered 1 KiB messages: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    relay.shutdown().await;
}

async fn concurrent(devices: usize, per_device: usize) {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(dir.path()).await;
    let (mut first, second) = pair(dir.path(), &relay).await;
    let mut clients = vec![second];
    for i in 2..devices {
        let (url, _) = first.invite().await.unwrap();
        clients.push(join(SyncHome::new(&dir.path().join(format!("d{i}"))), &url, None, "bench").await.unwrap());
    }
    clients.push(first);
    let t = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let payload = vec![3u8; 1024];
                let mut lat = Vec::with_capacity(per_device);
                for _ in 0..per_device {
                    let s = Instant::now();
                    c.push(&payload).await.unwrap();
                    lat.push(s.elapsed());
                }
                lat
            })
        })
        .collect();
    report(&format!("{devices} devices pushing 1 KiB at once (full client)"), tasks, t).await;
    relay.shutdown().await;
}

/// `zerok sync push` as a process, end to end (start, key load, connect, HELLO, push,
/// durable ack, exit), when the release binary is built.
async fn process_push(runs: usize) {
    let exe = std::env::current_exe().unwrap();
    let zerok = exe.parent().and_then(|d| d.parent()).map(|d| d.join("zerok")).filter(|p| p.exists());
    let Some(zerok) = zerok else {
        println!("zerok sync push as a process: skipped (cargo build --release -p zerok-cli first)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let relay = start(dir.path()).await;
    let (a, _b) = pair(dir.path(), &relay).await;
    a.disconnect().await;
    let message = dir.path().join("message");
    std::fs::write(&message, b"hello").unwrap();
    let home = dir.path().join("a");
    let lat = tokio::task::spawn_blocking(move || {
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                let out = std::process::Command::new(&zerok)
                    .args(["sync", "push", message.to_str().unwrap(), "--json"])
                    .env("ZEROK_HOME", &home)
                    // As a shell runs it: cargo's library path for build scripts sends the
                    // dynamic loader through some forty extra folders.
                    .env_remove("LD_LIBRARY_PATH")
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                t.elapsed()
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let mut lat = lat;
    lat.sort();
    println!("zerok sync push as a process: p50 {:6.2} ms  p99 {:6.2} ms", pct(&lat, 0.5), pct(&lat, 0.99));
    relay.shutdown().await;
}

/// A group of `devices` speaking the protocol by hand: the first creates it and admits the
/// others; each is connected as a member.
async fn raw_group(relay: &Relay, devices: usize) -> (GroupKeys, Vec<(iroh::Endpoint, RelayConn, SigningKey)>) {
    let keys = GroupSecret::generate().derive();
    let (events, _) = tokio::sync::broadcast::channel(16);
    // The devices' roster: the first creates the group and admits the others.
    let ids: Vec<iroh::SecretKey> = (0..devices).map(|_| iroh::SecretKey::generate()).collect();
    let signing: Vec<SigningKey> = ids.iter().map(|k| SigningKey::from_bytes(&k.to_bytes())).collect();
    let mut chain = vec![create_entry(keys.id(), &signing[0], "bench")];
    let mut roster = Roster::genesis(&chain[0]).unwrap().0;
    for key in &signing[1..] {
        let invite = zerok_core::random_bytes::<32>();
        let ticket = Ticket::new(keys.id(), &signing[0], &invite, u64::MAX);
        let entry = join_entry(&roster, key, "bench", ticket, &invite);
        roster = roster.apply(&entry, None).unwrap().0;
        chain.push(entry);
    }
    let mut conns = Vec::new();
    for (i, id) in ids.into_iter().enumerate() {
        let ep = zerok_wire::bind(id, "127.0.0.1:0".parse().unwrap(), vec![], NetOptions::default()).await.unwrap();
        let conn = RelayConn::connect(&ep, &relay.addr(), &keys, "bench", 0, events.clone()).await.unwrap();
        if i == 0 {
            let reply = conn.request(&Message::RosterAppend(RosterAppend { entries: chain.clone() })).await.unwrap();
            assert!(matches!(reply, Message::RosterAppended(_)), "{reply:?}");
        }
        let conn = RelayConn::connect(&ep, &relay.addr(), &keys, "bench", 0, events.clone()).await.unwrap();
        assert!(conn.welcome.member);
        conns.push((ep, conn, signing[i].clone()));
    }
    (keys, conns)
}

/// The relay alone, as the original 0k-Sync relay was measured: long-lived protocol
/// connections (no client outbox), `devices` of them pushing 1 KiB at once, each push
/// answered only after its durable commit.
async fn protocol_pushes(devices: usize, per_device: usize) {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(dir.path()).await;
    let (keys, conns) = raw_group(&relay, devices).await;
    let t = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|(ep, conn, signing)| {
            let keys = keys.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_device);
                for _ in 0..per_device {
                    let blob_id = BlobId::random();
                    let payload = keys.seal(&blob_id, &signing, &[5u8; 1024]);
                    let s = Instant::now();
                    let reply = conn.request(&Message::Push(Push { blob_id, payload, ttl: 0 })).await.unwrap();
                    lat.push(s.elapsed());
                    assert!(matches!(reply, Message::PushAck(_)), "{reply:?}");
                }
                drop(ep);
                lat
            })
        })
        .collect();
    report(&format!("protocol, {devices} device(s) pushing 1 KiB"), tasks, t).await;
    relay.shutdown().await;
}

/// Waits for the pushing tasks and prints the total rate since `started` and the latency
/// percentiles of every push.
async fn report(label: &str, tasks: Vec<tokio::task::JoinHandle<Vec<Duration>>>, started: Instant) {
    let mut lat = Vec::new();
    for task in tasks {
        lat.extend(task.await.unwrap());
    }
    let rate = lat.len() as f64 / started.elapsed().as_secs_f64();
    lat.sort();
    println!(
        "{label}: {rate:7.0} pushes/s in all, push→ack p50 {:6.2} ms  p99 {:6.2} ms",
        pct(&lat, 0.5),
        pct(&lat, 0.99)
    );
}

/// A relay for one scenario, started on a quiet disk: what earlier scenarios left in the page
/// cache is flushed first, so this one's syncs do not queue behind their writeback (as
/// `compare.py` does before each tool).
async fn start(dir: &std::path::Path) -> Relay {
    let _ = std::process::Command::new("sync").status();
    let mut c = Config::default();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.http.enabled = false;
    c.storage.data_dir = dir.join("relay");
    c.limits.messages_per_minute = 1_000_000;
    c.limits.global_per_second = 1_000_000;
    c.limits.group_per_second = 1_000_000;
    c.storage.max_group_bytes = 1 << 30;
    Relay::start(c).await.unwrap()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        println!("relay on loopback, every PUSH_ACK after a durable commit (redb, group commit)");
        println!("full client (durable outbox per push), one device pushing, one listening:");
        latency_and_rate(1024, 500).await;
        latency_and_rate(64 << 10, 300).await;
        protocol_pushes(1, 2_000).await;
        protocol_pushes(8, 1_000).await;
        concurrent(8, 500).await;
        pull_many(2_000).await;
        pull_many(10_000).await;
        process_push(50).await;
        attack::member_under_attack(500).await;
    });
}
