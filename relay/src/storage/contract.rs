//! The storage contract: one suite, run against both modes, of what a client relies on —
//! membership, push and pull, acknowledged and forced deletion, revocation, invites,
//! expiry, and a restart (in vault mode also with the local metadata lost).

use zerok_core::sync::{
    BlobId, DeviceId, GroupId, SigningKey,
    roster::{Entry, InviteKey, Op, Roster, Ticket, create_entry, join_entry, next_entry},
};

use super::Storage;
use crate::{Config, Error, StorageMode, store::NewBlob};

const G: GroupId = GroupId([1; 32]);
const NOW: u64 = 1_000;

struct Fixture {
    dir: tempfile::TempDir,
    mode: StorageMode,
    a: SigningKey,
    b: SigningKey,
}

fn id(k: &SigningKey) -> DeviceId {
    DeviceId(k.verifying_key().to_bytes())
}

impl Fixture {
    fn new(mode: StorageMode) -> Self {
        let (a, b) = (SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 32]));
        Self { dir: tempfile::tempdir().unwrap(), mode, a, b }
    }

    fn config(&self) -> Config {
        let mut c = Config::default();
        c.storage.data_dir = self.dir.path().join("relay");
        std::fs::create_dir_all(&c.storage.data_dir).unwrap();
        c.storage.mode = self.mode;
        if self.mode == StorageMode::Vault {
            c.storage.object_store = Some(self.dir.path().join("bucket").display().to_string());
            std::fs::create_dir_all(self.dir.path().join("bucket")).unwrap();
        }
        c
    }

    async fn open(&self) -> Storage {
        Storage::open(&self.config(), None).await.unwrap()
    }

    /// A's genesis, B's join, and the roster after them.
    fn roster(&self) -> (Vec<Entry>, Roster) {
        let genesis = create_entry(G, &self.a, "a");
        let r0 = Roster::genesis(&genesis).unwrap().0;
        let join = join_entry(&r0, &self.b, "b", Ticket::new(G, &self.a, &[9; 32], NOW + 600), &[9; 32]);
        let r1 = r0.apply(&join, None).unwrap().0;
        (vec![genesis, join], r1)
    }
}

async fn push(s: &Storage, from: &SigningKey, n: u8) -> crate::Result<u64> {
    let blob = NewBlob {
        group: &G,
        sender: &id(from),
        blob_id: &BlobId([n; 16]),
        payload: &[n; 40],
        ttl_secs: 3600,
        now: NOW,
    };
    s.push(&blob).await.map(|p| p.cursor)
}

async fn cursors(s: &Storage, who: &SigningKey, after: u64) -> crate::Result<Vec<u64>> {
    let (blobs, _) = s.pull(G, id(who), (after, 100, 1 << 20), NOW).await?;
    Ok(blobs.iter().map(|b| b.cursor).collect())
}

async fn contract(mode: StorageMode) {
    let f = Fixture::new(mode);
    let s = f.open().await;
    let (entries, roster) = f.roster();
    let stranger = SigningKey::from_bytes(&[7; 32]);

    // Membership: the roster decides; a proven stranger is a guest.
    assert!(matches!(push(&s, &f.a, 1).await, Err(Error::NotMember)), "{mode:?}: no roster, no members");
    s.roster_append(G, entries, NOW).await.unwrap();
    for k in [&f.a, &f.b] {
        assert!(s.hello(G, id(k), "x".into(), NOW).await.unwrap().standing.member);
    }
    assert!(!s.hello(G, id(&stranger), "s".into(), NOW).await.unwrap().standing.member);
    assert!(matches!(push(&s, &stranger, 1).await, Err(Error::NotMember)));
    assert!(matches!(cursors(&s, &stranger, 0).await, Err(Error::NotMember)));
    assert!(matches!(s.devices(G, id(&stranger), NOW, 10).await, Err(Error::NotMember)));

    // Push and pull; a retried push keeps its cursor.
    assert_eq!(push(&s, &f.a, 1).await.unwrap(), 1);
    assert_eq!(push(&s, &f.a, 2).await.unwrap(), 2);
    assert_eq!(push(&s, &f.a, 1).await.unwrap(), 1, "{mode:?}: a retry");
    let (blobs, more) = s.pull(G, id(&f.b), (0, 100, 1 << 20), NOW).await.unwrap();
    assert_eq!((blobs.len(), blobs[1].payload.as_slice(), more), (2, &[2u8; 40][..], false));

    // A plain DELETE waits for every current member: B has pulled past it, A has not.
    assert!(!s.delete(G, id(&f.a), BlobId([1; 16]), false).await.unwrap(), "{mode:?}: marked, not gone");
    assert_eq!(cursors(&s, &f.b, 2).await.unwrap(), Vec::<u64>::new());
    assert_eq!(cursors(&s, &f.a, 0).await.unwrap(), [1, 2], "A has not acknowledged it yet");
    assert_eq!(cursors(&s, &f.a, 2).await.unwrap(), Vec::<u64>::new());
    assert_eq!(cursors(&s, &f.b, 0).await.unwrap(), [2], "{mode:?}: gone once everyone had it");

    // DELETE is the sender's only (no member erases another's history); force is at once.
    assert!(matches!(s.delete(G, id(&f.b), BlobId([2; 16]), true).await, Err(Error::NotOwner)));
    assert!(matches!(s.delete(G, id(&f.b), BlobId([2; 16]), false).await, Err(Error::NotOwner)));
    assert!(s.delete(G, id(&f.a), BlobId([2; 16]), true).await.unwrap());
    assert!(cursors(&s, &f.b, 0).await.unwrap().is_empty());
    assert!(!s.delete(G, id(&f.a), BlobId([2; 16]), true).await.unwrap(), "unknown now");

    // Invites: members file and cancel; anyone with the code reads.
    let key = InviteKey([5; 32]);
    assert!(matches!(
        s.put_invite((G, id(&stranger)), "abcd".into(), key, vec![1], (NOW + 60, NOW)).await,
        Err(Error::NotMember)
    ));
    s.put_invite((G, id(&f.a)), "abcd".into(), key, vec![1, 2], (NOW + 60, NOW)).await.unwrap();
    assert_eq!(s.invites("abcd".into(), NOW).await.unwrap(), [vec![1, 2]]);
    s.cancel_invite((G, id(&f.a)), "abcd".into(), key).await.unwrap();
    assert!(matches!(s.invites("abcd".into(), NOW).await, Err(Error::InviteNotFound)));

    // Revocation: a removed device may do nothing, under its own key.
    assert_eq!(push(&s, &f.b, 3).await.unwrap(), 3);
    let remove = next_entry(&roster, &f.a, Op::Remove { device: id(&f.b), rotation: None });
    s.roster_append(G, vec![remove], NOW).await.unwrap();
    assert!(matches!(push(&s, &f.b, 4).await, Err(Error::Revoked)), "{mode:?}");
    assert!(matches!(cursors(&s, &f.b, 0).await, Err(Error::Revoked)));
    assert!(matches!(s.hello(G, id(&f.b), "b".into(), NOW).await, Err(Error::Revoked)));
    let devices = s.devices(G, id(&f.a), NOW, 10).await.unwrap();
    assert!(devices.iter().any(|d| d.device_id == id(&f.b) && d.revoked), "{devices:?}");

    // Expiry: transit forgets after the TTL; vault keeps everything.
    let removed = s.cleanup(NOW + 3601).await.unwrap();
    let kept = cursors(&s, &f.a, 0).await.unwrap();
    match mode {
        StorageMode::Transit => assert_eq!((removed, kept), (1, vec![])),
        StorageMode::Vault => assert_eq!((removed, kept), (0, vec![3])),
    }

    // Restart: everything above holds; cursors go on.
    s.stop().await;
    drop(s);
    let s = f.open().await;
    assert!(matches!(s.hello(G, id(&f.b), "b".into(), NOW).await, Err(Error::Revoked)), "{mode:?}: after restart");
    assert_eq!(push(&s, &f.a, 5).await.unwrap(), 4, "{mode:?}: cursors never go back");
    if mode == StorageMode::Vault {
        // The metadata lost: the bucket has the history, the revocation, and the used cursors.
        s.stop().await;
        drop(s);
        std::fs::remove_file(f.config().storage.data_dir.join(super::STORE_FILE)).unwrap();
        let s = f.open().await;
        let (entries, _) = f.roster();
        let remove = next_entry(&roster, &f.a, Op::Remove { device: id(&f.b), rotation: None });
        s.roster_append(G, [entries, vec![remove]].concat(), NOW).await.unwrap();
        assert_eq!(cursors(&s, &f.a, 0).await.unwrap(), [3, 4], "deleted messages stay deleted");
        assert!(matches!(s.hello(G, id(&f.b), "b".into(), NOW).await, Err(Error::Revoked)));
        assert_eq!(push(&s, &f.a, 6).await.unwrap(), 5);
    }
}

#[tokio::test]
async fn transit_mode_keeps_the_contract() {
    contract(StorageMode::Transit).await;
}

#[tokio::test]
async fn vault_mode_keeps_the_contract() {
    contract(StorageMode::Vault).await;
}

#[tokio::test]
async fn a_push_is_refused_before_the_disk_fills() {
    let f = Fixture::new(StorageMode::Transit);
    let s = f.open().await;
    let (entries, roster) = f.roster();
    s.roster_append(G, entries, NOW).await.unwrap();
    s.stop().await;
    drop(s);
    let mut config = f.config();
    config.storage.min_free_bytes = u64::MAX;
    let s = Storage::open(&config, None).await.unwrap();
    assert!(matches!(push(&s, &f.a, 1).await, Err(Error::Full)));
    let more = next_entry(&roster, &f.a, Op::Remove { device: id(&f.b), rotation: None });
    assert!(matches!(s.roster_append(G, vec![more], NOW).await, Err(Error::Full)), "roster entries take room too");
    let invite = s.put_invite((G, id(&f.a)), "abcd".into(), InviteKey([1; 32]), vec![1], (NOW + 60, NOW)).await;
    assert!(matches!(invite, Err(Error::Full)), "and invites");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_store_outage_is_storage_unavailable_retryable_and_costs_no_cursor() {
    let f = Fixture::new(StorageMode::Vault);
    let server = zerok_testkit::S3Server::start(f.dir.path()).await;
    let faulty = zerok_testkit::FaultyStore::new(server.store("relay"), 7);
    let backend = zerok_vault::Backend::new(std::sync::Arc::new(faulty.clone()), "relay", "s3://relay/relay");
    let s = Storage::open(&f.config(), Some(backend)).await.unwrap();
    s.roster_append(G, f.roster().0, NOW).await.unwrap();
    assert_eq!(push(&s, &f.a, 1).await.unwrap(), 1);
    faulty.set(zerok_testkit::Faults { error: 1.0, ..Default::default() });
    let outage = push(&s, &f.a, 2).await.unwrap_err();
    assert!(matches!(outage, Error::ObjectStore(_)), "{outage:?}");
    assert!(outage.is_retryable());
    assert_eq!(outage.code(), zerok_core::sync::ErrorCode::StorageUnavailable, "not RELAY_OVERLOADED");
    faulty.set(zerok_testkit::Faults::default());
    assert_eq!(push(&s, &f.a, 2).await.unwrap(), 2, "the retry takes the cursor the outage did not use");
    s.stop().await;
}
