//! Attachments device to device on loopback, in-process, printed as a table:
//! `cargo bench -p zerok-benches --bench content [-- --mib N --runs R]`.
//!
//! - raw QUIC on the same kind of iroh endpoints (one stream, 1 MiB writes): the limit;
//! - `push_content` of N MiB (default 100): encrypt, hash (BLAKE3/bao), keep;
//! - `fetch_content` of it at the other device: verified while streaming, decrypted,
//!   written; MB/s, the transfer alone (to the last progress event), and the time to the
//!   first MiB (the first progress event);
//! - a 4 KiB attachment fetched whole: the time to first byte and last together.
//!
//! MB/s are of plaintext, 10^6 bytes per second.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use zerok_client::sync::{ContentSource, SyncClient, SyncEvent, SyncHome, create, join};
use zerok_relay::{Config, Relay};
use zerok_wire::NetOptions;

const MIB: usize = 1 << 20;
const RAW_ALPN: &[u8] = b"zerok-bench/raw";

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn mbs(bytes: usize, t: Duration) -> f64 {
    bytes as f64 / t.as_secs_f64() / 1e6
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn endpoint(alpns: Vec<Vec<u8>>) -> iroh::Endpoint {
    let bind = "127.0.0.1:0".parse().unwrap();
    zerok_wire::bind(iroh::SecretKey::generate(), bind, alpns, NetOptions::default()).await.unwrap()
}

/// `bytes` over one QUIC stream between two iroh endpoints; until the receiver read the last.
async fn raw_quic(bytes: usize) -> Duration {
    let (server, client) = (endpoint(vec![RAW_ALPN.to_vec()]).await, endpoint(Vec::new()).await);
    let addr = server.addr();
    let sink = tokio::spawn(async move {
        let conn = server.accept().await.unwrap().await.unwrap();
        let (mut send, mut recv) = conn.accept_bi().await.unwrap();
        let mut n = 0;
        while let Some(chunk) = recv.read_chunk(MIB).await.unwrap() {
            n += chunk.len();
        }
        send.write_all(&(n as u64).to_le_bytes()).await.unwrap();
        send.finish().unwrap();
        conn.closed().await;
        server.close().await;
        n
    });
    let conn = client.connect(addr, RAW_ALPN).await.unwrap();
    let block = vec![0x5au8; MIB];
    let t = Instant::now();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    for _ in 0..bytes / MIB {
        send.write_all(&block).await.unwrap();
    }
    send.finish().unwrap();
    let mut echo = [0u8; 8];
    recv.read_exact(&mut echo).await.unwrap();
    let elapsed = t.elapsed();
    assert_eq!(u64::from_le_bytes(echo) as usize, bytes);
    conn.close(0u32.into(), b"done");
    assert_eq!(sink.await.unwrap(), bytes);
    client.close().await;
    elapsed
}

async fn relay(dir: &Path) -> Relay {
    let mut c = Config::default();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.http.enabled = false;
    c.storage.data_dir = dir.join("relay");
    Relay::start(c).await.unwrap()
}

async fn pair(dir: &Path, relay: &Relay) -> (SyncClient, SyncClient) {
    let mut a = create(SyncHome::new(&dir.join("a")), &[relay.addr()], "bench-a").await.unwrap();
    let (url, _) = a.invite().await.unwrap();
    let b = join(SyncHome::new(&dir.join("b")), &url, None, "bench-b").await.unwrap();
    a.refresh_roster().await.unwrap();
    (a, b)
}

struct Run {
    push: Duration,
    fetch: Duration,
    first_mib: Duration,
    transfer: Duration,
    small: Duration,
}

async fn attachment(bytes: usize) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay(dir.path()).await;
    let (mut a, mut b) = pair(dir.path(), &relay).await;
    let data = zerok_testkit::random_bytes(7, bytes);
    let file = dir.path().join("video.mp4");
    std::fs::write(&file, &data).unwrap();
    let _ = std::process::Command::new("sync").status();

    let t = Instant::now();
    let pushed = a.push_content(ContentSource::Path(file), "video/mp4").await.unwrap();
    let push = t.elapsed();
    let content = b.pull().await.unwrap().pop().and_then(|m| m.content).expect("the reference arrives");
    assert_eq!(content, pushed);

    let mut events = b.subscribe();
    // The first progress event, and the last (all bytes verified, before decryption).
    let progress = tokio::spawn(async move {
        let t = Instant::now();
        let mut first = None;
        loop {
            match events.recv().await {
                Ok(SyncEvent::ContentProgress { received, total, .. }) => {
                    let first = *first.get_or_insert_with(|| t.elapsed());
                    if received == total {
                        return (first, t.elapsed());
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => panic!("no progress before the client closed"),
                _ => {}
            }
        }
    });
    let out = dir.path().join("received.mp4");
    let t = Instant::now();
    let fetched = b.fetch_content(&content, &out).await.unwrap();
    let fetch = t.elapsed();
    let (first_mib, transfer) = progress.await.unwrap();
    assert_eq!(fetched.size as usize, bytes);
    assert!(std::fs::read(&out).unwrap() == data, "bytes fetched equal bytes attached");

    let small = a.push_content(vec![3u8; 4096], "text/plain").await.unwrap();
    let content = b.pull().await.unwrap().pop().and_then(|m| m.content).expect("the reference arrives");
    assert_eq!(content, small);
    let t = Instant::now();
    b.fetch_content(&content, &dir.path().join("note.txt")).await.unwrap();
    let small = t.elapsed();

    a.disconnect().await;
    b.disconnect().await;
    relay.shutdown().await;
    Run { push, fetch, first_mib, transfer, small }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let (mib, runs) = (arg("--mib", 100), arg("--runs", 3));
    let bytes = mib * MIB;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        println!("attachments on loopback, {mib} MiB, medians of {runs} runs (MB/s of plaintext)");
        let mut raw = Vec::new();
        for _ in 0..runs {
            raw.push(mbs(bytes, raw_quic(bytes).await));
        }
        println!("raw QUIC, one stream between iroh endpoints   {:8.1} MB/s", median(raw));
        let mut all = Vec::new();
        for _ in 0..runs {
            all.push(attachment(bytes).await);
        }
        let m = |f: &dyn Fn(&Run) -> f64| median(all.iter().map(f).collect());
        println!("push_content (encrypt, hash, keep)            {:8.1} MB/s", m(&|r| mbs(bytes, r.push)));
        println!("fetch_content (verify, decrypt, write)        {:8.1} MB/s", m(&|r| mbs(bytes, r.fetch)));
        println!("  of which the transfer, verified as it came  {:8.1} MB/s", m(&|r| mbs(bytes, r.transfer)));
        println!("  time to the first MiB                       {:8.2} ms", m(&|r| r.first_mib.as_secs_f64() * 1e3));
        println!("4 KiB attachment fetched whole                {:8.2} ms", m(&|r| r.small.as_secs_f64() * 1e3));
    });
}
