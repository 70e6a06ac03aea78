//! Attachments over iroh-blobs, on real endpoints on loopback (relays and discovery off):
//! device to device bit-exact, a transfer cut halfway resuming without the first half
//! sent again, tampered ciphertext and forged references refused by name, a vault relay
//! serving an attachment after its sender went offline, and the sender releasing its copy
//! once every member acknowledged.

mod common;

use std::{path::Path, time::Duration};

use common::{add_device, home, start_relay};
use zerok_client::sync::{ContentSource, SyncClient, SyncEvent, create};
use zerok_relay::Config;

const MIB: usize = 1 << 20;

/// A, B in a group on one relay (`tweak` sets it up).
async fn pair(dir: &Path, tweak: impl FnOnce(&mut Config)) -> (zerok_relay::Relay, SyncClient, SyncClient) {
    let relay = start_relay(&dir.join("relay"), 0, tweak).await;
    let mut a = create(home(dir, "a"), &[relay.addr()], "laptop").await.unwrap();
    let b = add_device(&mut a, dir, "b", "phone").await;
    (relay, a, b)
}

fn vault_mode(bucket: &Path) -> impl FnOnce(&mut Config) + '_ {
    move |c: &mut Config| {
        c.storage.mode = zerok_relay::StorageMode::Vault;
        c.storage.object_store = Some(bucket.display().to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_mib_attachment_reaches_another_device_bit_exact_and_the_sender_releases_it() {
    let dir = tempfile::tempdir().unwrap();
    let (relay, mut a, mut b) = pair(dir.path(), |_| {}).await;
    let photo = zerok_testkit::random_bytes(1, 20 * MIB);
    let file = dir.path().join("photo.jpg");
    std::fs::write(&file, &photo).unwrap();

    let pushed = a.push_attached(b"caption", ContentSource::Path(file.clone()), "image/jpeg").await.unwrap();
    assert_eq!(pushed.content.size, photo.len() as u64);
    assert_eq!(pushed.content.name.as_deref(), Some("photo.jpg"));

    let got = b.pull().await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, b"caption");
    let content = got[0].content.clone().expect("the message carries the attachment");
    assert_eq!(content, pushed.content, "the reference arrives whole, sealed in the message");

    let mut progress = b.subscribe();
    let out = dir.path().join("received.jpg");
    let fetched = b.fetch_content(&content, &out).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), photo, "bytes fetched equal bytes attached");
    assert_eq!(fetched.resumed_from, 0);
    assert!(fetched.received >= content.encrypted_size(), "{fetched:?}");
    let mut saw_progress = false;
    while let Ok(e) = progress.try_recv() {
        saw_progress |= matches!(e, SyncEvent::ContentProgress { received, total, .. } if received < total);
    }
    assert!(saw_progress, "progress events while it streamed");
    assert!(a.content_bytes_served() >= content.encrypted_size());

    // A fetch never overwrites a file.
    let err = b.fetch_content(&content, &out).await.unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");

    // B's acknowledgement reaches A with its next pull: every member has it, so A lets
    // its copy go; the app sees no message for it.
    let seen_by_a = a.pull().await.unwrap();
    assert_eq!(seen_by_a.len(), 1, "its own message, and no acknowledgement: those are not app messages");
    assert_eq!(seen_by_a[0].sender, a.device_id());
    let dir_a = dir.path().join("a/sync/content/refs");
    let record = std::fs::read_dir(&dir_a).unwrap().count();
    assert_eq!(record, 1);
    assert!(a.content_released(&content.hash), "sender released its copy after every member acknowledged");

    a.disconnect().await;
    b.disconnect().await;
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_cut_halfway_resumes_without_sending_the_first_half_again() {
    let dir = tempfile::tempdir().unwrap();
    let (relay, mut a, mut b) = pair(dir.path(), |_| {}).await;
    let data = zerok_testkit::random_bytes(2, 20 * MIB);
    a.push_content(data.clone(), "application/pdf").await.unwrap();
    let content = b.pull().await.unwrap()[0].content.clone().unwrap();
    let total = content.encrypted_size();
    let out = dir.path().join("scan.pdf");

    // The fetch is cut (its task dropped, as a killed app) once half has arrived.
    let mut events = b.subscribe();
    tokio::select! {
        r = b.fetch_content(&content, &out) => panic!("the fetch finished before it was cut: {r:?}"),
        _ = async {
            loop {
                if let Ok(SyncEvent::ContentProgress { received, .. }) = events.recv().await
                    && received >= total / 2
                {
                    return;
                }
            }
        } => {}
    }
    assert!(!out.exists(), "nothing written before the whole attachment verified");
    let served_first = settled_served(&a).await;

    let fetched = b.fetch_content(&content, &out).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);
    let served_again = a.content_bytes_served() - served_first;
    assert!(fetched.resumed_from >= total * 45 / 100, "{fetched:?} of {total}");
    assert!(fetched.received <= total * 56 / 100, "only the second half travels again: {fetched:?} of {total}");
    assert!(served_again <= total * 56 / 100, "the sender served {served_again} of {total} the second time");
    a.disconnect().await;
    b.disconnect().await;
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_ciphertext_and_a_forged_reference_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (relay, mut a, mut b) = pair(dir.path(), |_| {}).await;
    let data = zerok_testkit::random_bytes(3, 2 * MIB);
    let sent = a.push_content(data, "application/octet-stream").await.unwrap();
    let content = b.pull().await.unwrap()[0].content.clone().unwrap();

    // The sender's disk flips a byte of the stored ciphertext.
    let file = dir.path().join(format!("a/sync/content/store/data/{}.data", hex::encode(sent.hash.0)));
    let mut bytes = std::fs::read(&file).expect("the ciphertext is a file in the sender's store");
    bytes[MIB + 7] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    let out = dir.path().join("out.bin");
    let err = b.fetch_content(&content, &out).await.unwrap_err();
    assert!(err.to_string().contains(&sent.hash.to_string()), "the error names the attachment: {err}");
    assert!(!out.exists(), "nothing written");

    // A member hands out a reference with the right hash and a wrong key: it verifies,
    // then does not open.
    bytes[MIB + 7] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    let mut forged = content.clone();
    forged.nonce[0] ^= 1;
    let err = b.fetch_content(&forged, &out).await.unwrap_err();
    assert!(err.to_string().contains("does not open"), "{err}");
    assert!(!out.exists(), "nothing written");

    // A reference that claims less than the hash holds: the fetch takes no more than it
    // claimed, and refuses it.
    let big = a.push_content(zerok_testkit::random_bytes(5, 8 * MIB), "video/mp4").await.unwrap();
    let mut small = b.pull().await.unwrap()[0].content.clone().unwrap();
    assert_eq!(small.hash, big.hash);
    small.size = MIB as u64;
    let before = settled_served(&a).await;
    let err = b.fetch_content(&small, &out).await.unwrap_err();
    assert!(err.to_string().contains("larger than its reference"), "{err}");
    let taken = settled_served(&a).await - before;
    assert!(taken > 0 && taken <= 2 * MIB as u64, "took {taken} bytes for a reference of one MiB");
    assert!(!out.exists());

    b.fetch_content(&content, &out).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap().len(), 2 * MIB);

    a.disconnect().await;
    b.disconnect().await;
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_relay_serves_an_attachment_after_its_sender_went_offline() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    let (relay, mut a, mut b) = pair(dir.path(), vault_mode(&bucket)).await;
    let data = zerok_testkit::random_bytes(4, 5 * MIB + 3);
    let sent = a.push_content(data.clone(), "audio/ogg").await.unwrap();
    assert_eq!(a.wait_archived(&sent.hash, Duration::from_secs(30)).await.unwrap(), 1, "the vault relay holds it");
    let archived: Vec<_> = walk(&bucket.join("content"));
    assert_eq!(archived.len(), 1, "{archived:?}");
    assert_eq!(std::fs::metadata(&archived[0]).unwrap().len(), sent.encrypted_size());
    a.disconnect().await;

    let content = b.pull().await.unwrap()[0].content.clone().unwrap();
    let out = dir.path().join("voice.ogg");
    b.fetch_content(&content, &out).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data, "fetched from the vault relay, the sender being offline");

    // A stranger's endpoint (no member of any group there) gets nothing from the relay.
    let stranger = common::raw_endpoint().await;
    let store = iroh_blobs::store::mem::MemStore::new();
    let conn = zerok_wire::blobs::connect(&stranger, relay_addr(&relay)).await.unwrap();
    let got = store.remote().fetch(conn, iroh_blobs::Hash::from_bytes(sent.hash.0)).await;
    assert!(got.is_err(), "a non-member fetched an archived attachment");
    b.disconnect().await;
    relay.shutdown().await;
}

/// What `a` has served, once the ends of its transfers reached it (a cut transfer is
/// counted when the sender notices).
async fn settled_served(a: &SyncClient) -> u64 {
    let mut last = a.content_bytes_served();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = a.content_bytes_served();
        if now == last {
            break;
        }
        last = now;
    }
    last
}

fn relay_addr(relay: &zerok_relay::Relay) -> iroh::EndpointAddr {
    let addr = relay.addr();
    iroh::EndpointAddr::new(iroh::PublicKey::from_bytes(&addr.id).unwrap()).with_ip_addr(addr.addr.unwrap())
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}
