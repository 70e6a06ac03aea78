//! Relay scenarios on loopback, in-process, printed as a table (not criterion: latency
//! percentiles are the point). `cargo bench -p zerok-benches --bench relay`.
//!
//! - push → NOTIFY latency at the other device, p50/p99, 1 KiB and 64 KiB payloads;
//! - sequential pushes per second from one device (each acknowledged after a durable commit);
//! - pull of 10,000 buffered 1 KiB messages.

use std::time::{Duration, Instant};

use zerok_client::sync::{SyncClient, SyncEvent, SyncHome, create, join};
use zerok_relay::{Config, Relay};

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

async fn start(dir: &std::path::Path) -> Relay {
    let mut c = Config::default();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.http.enabled = false;
    c.storage.data_dir = dir.join("relay");
    c.limits.messages_per_minute = 1_000_000;
    c.limits.global_per_second = 1_000_000;
    c.storage.max_group_bytes = 1 << 30;
    Relay::start(c).await.unwrap()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        println!("relay on loopback, durable commit per push (redb), one device pushing, one listening");
        latency_and_rate(1024, 500).await;
        latency_and_rate(64 << 10, 300).await;
        pull_many(10_000).await;
    });
}
