//! Membership under attack, with real relays and clients on loopback: a revoked device
//! under fresh keys, a second key registered before the revoke, a revoked device hitting
//! back, devices offline past the TTL or behind a relay that missed the rotation, two
//! revocations at once, and a relay replaying a message at a new cursor.

use std::time::Duration;

use zerok_client::sync::{ReconnectPolicy, SyncClient, SyncEvent, SyncHome, join};
use zerok_core::sync::{
    DeviceId, ErrorCode, Message,
    message::{Pull, RosterAppend, RosterGet},
    roster::{Op, next_entry},
};

mod common;

use common::{
    add_device, code_of, connect_as, free_udp_port, group_of, hello_as_stranger, home, next_event, raw_request,
    start_relay,
};

use zerok_client::Error;

fn data(items: &[zerok_client::sync::Received]) -> Vec<Vec<u8>> {
    items.iter().map(|m| m.data.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_device_reads_nothing_new_under_any_key() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(&dir.path().join("relay"), 0, |_| {}).await;
    let addr = relay.addr();
    let [mut a, b, mut c] = group_of(dir.path(), std::slice::from_ref(&addr), ["a", "b", "c"]).await;
    a.push(b"before").await.unwrap();
    let stolen = b.device_id();
    drop(b);
    // Before the revoke, the phone copies its state and registers a second key.
    let old_secret = home(dir.path(), "b").load_group().unwrap().secret();
    let (_ep2, conn2, welcome2) = hello_as_stranger(&addr, &old_secret).await;
    let Message::Welcome(w) = welcome2 else { panic!("{welcome2:?}") };
    assert!(!w.member, "a second key is not a member");
    let pulled = raw_request(&conn2, &Message::Pull(Pull { after_cursor: 0, limit: 10 })).await.unwrap();
    assert_eq!(code_of(&pulled), Some(ErrorCode::NotMember as u32), "it reads nothing even before the revoke");

    a.revoke(stolen, true).await.unwrap();
    a.push(b"after").await.unwrap();
    assert_eq!(data(&c.pull().await.unwrap()), [&b"before"[..], b"after"], "the tablet followed by itself");

    // The roster's rotation went to exactly the remaining devices.
    let roster = home(dir.path(), "c").load_group().unwrap();
    let rotation = roster
        .chain()
        .iter()
        .find_map(|e| match e.body().unwrap().op {
            Op::Remove { rotation: Some(r), .. } => Some(r),
            _ => None,
        })
        .unwrap();
    let mut recipients: Vec<DeviceId> = rotation.sealed.iter().map(|s| s.device).collect();
    recipients.sort();
    let mut expected = vec![a.device_id(), c.device_id()];
    expected.sort();
    assert_eq!(recipients, expected);

    // The phone under its own key, under a fresh key, and its second key: nothing.
    let err = SyncClient::connect(home(dir.path(), "b")).await.err().expect("refused");
    assert!(matches!(err, Error::Refused { .. } | Error::Revoked), "{err}");
    std::fs::remove_file(dir.path().join("b/sync/device.key")).unwrap();
    let err = SyncClient::connect(home(dir.path(), "b")).await.err().expect("a fresh key is refused too");
    assert!(matches!(err, Error::Revoked | Error::Refused { .. }), "{err}");
    let (_ep3, _, welcome3) = hello_as_stranger(&addr, &old_secret).await;
    assert_eq!(code_of(&welcome3), Some(ErrorCode::GroupRotated as u32), "nobody new enters a rotated group");
    let pulled = raw_request(&conn2, &Message::Pull(Pull { after_cursor: 0, limit: 10 })).await;
    assert!(pulled.is_err() || code_of(&pulled.unwrap()) == Some(ErrorCode::NotMember as u32));
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_device_cannot_revoke_push_or_undo_anything() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(&dir.path().join("relay"), 0, |_| {}).await;
    let addr = relay.addr();
    let [mut a, mut b, mut c] = group_of(dir.path(), std::slice::from_ref(&addr), ["a", "b", "c"]).await;
    let b_roster = home(dir.path(), "b").load_group().unwrap();
    let b_key = home(dir.path(), "b").signing_key().unwrap();
    a.revoke(b.device_id(), true).await.unwrap();

    // Its client knows it is out and does nothing.
    let err = b.revoke(a.device_id(), true).await.unwrap_err();
    assert!(matches!(err, Error::Revoked | Error::Refused { .. }), "{err}");
    // By hand: a removal of the laptop signed by the phone, on the head it knew, sent
    // through a fresh key holding the old secret: the group rotated, nobody new gets in.
    let (_ep, _, welcome) = hello_as_stranger(&addr, &b_roster.secret()).await;
    assert_eq!(code_of(&welcome), Some(ErrorCode::GroupRotated as u32), "{welcome:?}");
    // Sent as a member instead (the phone's entry by the laptop's session), it is refused.
    let (_ep, conn) = connect_as(&addr, &home(dir.path(), "a")).await;
    let revenge = next_entry(b_roster.roster(), &b_key, Op::Remove { device: a.device_id(), rotation: None });
    let reply = raw_request(&conn, &Message::RosterAppend(RosterAppend { entries: vec![revenge] })).await.unwrap();
    assert!(
        matches!(code_of(&reply), Some(c) if c == ErrorCode::RosterConflict as u32 || c == ErrorCode::RosterRefused as u32),
        "{reply:?}"
    );
    let Message::RosterEntries(log) =
        raw_request(&conn, &Message::RosterGet(RosterGet { after_seq: 0 })).await.unwrap()
    else {
        panic!("roster readable by a member")
    };
    assert_eq!(log.seq, 4, "create, two joins, the removal: nothing of the phone's");

    // The others carry on.
    a.push(b"still fine").await.unwrap();
    assert_eq!(data(&c.pull().await.unwrap()), [&b"still fine"[..]]);
    c.push(b"from the tablet").await.unwrap();
    assert_eq!(data(&a.pull().await.unwrap()).last().unwrap(), b"from the tablet");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_offline_past_the_ttl_follows_the_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(&dir.path().join("relay"), 0, |c| {
        c.storage.default_ttl_secs = 1;
        c.cleanup.interval_secs = 1;
    })
    .await;
    let addr = relay.addr();
    let mut a = zerok_client::sync::create(home(dir.path(), "a"), std::slice::from_ref(&addr), "laptop").await.unwrap();
    let b = add_device(&mut a, dir.path(), "b", "phone").await;
    add_device(&mut a, dir.path(), "c", "tablet").await.disconnect().await;
    a.push(b"expires before the tablet is back").await.unwrap();
    a.revoke(b.device_id(), true).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(relay.state().metrics.expired_total.load(std::sync::atomic::Ordering::Relaxed) >= 1, "past the TTL");
    a.push(b"in the new group").await.unwrap();
    // The tablet was away longer than any message lives; the roster does not expire.
    let mut c = SyncClient::connect(home(dir.path(), "c")).await.unwrap();
    assert_eq!(data(&c.pull().await.unwrap()), [&b"in the new group"[..]]);
    c.push(b"tablet back").await.unwrap();
    assert_eq!(data(&a.pull().await.unwrap()), [&b"in the new group"[..], b"tablet back"], "pulls include own pushes");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_missed_the_rotation_is_caught_up_and_strands_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let port2 = free_udp_port();
    let r1 = start_relay(&dir.path().join("r1"), 0, |_| {}).await;
    let r2 = start_relay(&dir.path().join("r2"), port2, |_| {}).await;
    let relays = [r1.addr(), r2.addr()];
    let mut a = zerok_client::sync::create(home(dir.path(), "a"), &relays, "laptop").await.unwrap();
    a.set_reconnect_policy(ReconnectPolicy { attempts: 0, jitter: false, ..Default::default() });
    let b = add_device(&mut a, dir.path(), "b", "phone").await;
    add_device(&mut a, dir.path(), "c", "tablet").await.disconnect().await;
    let old_secret = home(dir.path(), "b").load_group().unwrap().secret();
    r2.shutdown().await;
    a.revoke(b.device_id(), true).await.unwrap();
    a.push(b"after, on the primary").await.unwrap();
    a.disconnect().await;

    // The second relay comes back knowing nothing of the rotation; the tablet reaches it
    // and the primary, follows the rotation, and sends the second relay what it missed.
    let r2 = start_relay(&dir.path().join("r2"), port2, |_| {}).await;
    let mut c = SyncClient::connect(home(dir.path(), "c")).await.unwrap();
    assert_eq!(data(&c.pull().await.unwrap()), [&b"after, on the primary"[..]]);
    let (_ep, _, welcome) = hello_as_stranger(&r2.addr(), &old_secret).await;
    assert_eq!(code_of(&welcome), Some(ErrorCode::GroupRotated as u32), "the second relay now has the rotation");
    let err = SyncClient::connect(home(dir.path(), "b")).await.err().expect("the phone is out at both");
    assert!(matches!(err, Error::Revoked | Error::Refused { .. }), "{err}");
    let mut a = SyncClient::connect(home(dir.path(), "a")).await.unwrap();
    a.push(b"to both relays").await.unwrap();
    r1.shutdown().await;
    // With the primary gone, the tablet carries on in the new group at the second relay.
    c.set_reconnect_policy(ReconnectPolicy { attempts: 0, jitter: false, ..Default::default() });
    assert_eq!(data(&c.pull().await.unwrap()), [&b"to both relays"[..]]);
    a.disconnect().await;
    r2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_revocations_at_once_converge_on_one_group() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(&dir.path().join("relay"), 0, |_| {}).await;
    let addr = relay.addr();
    let [mut a, b, mut c, d, mut e] =
        group_of(dir.path(), std::slice::from_ref(&addr), ["a", "b", "c", "d", "e"]).await;
    let (rb, rd) = tokio::join!(a.revoke(b.device_id(), true), c.revoke(d.device_id(), true));
    rb.unwrap();
    rd.unwrap();
    a.push(b"from a").await.unwrap();
    c.push(b"from c").await.unwrap();
    let got = data(&e.pull().await.unwrap());
    assert!(got.contains(&b"from a".to_vec()) && got.contains(&b"from c".to_vec()), "{got:?}");
    let group = |name: &str| home(dir.path(), name).load_group().unwrap().secret().derive().id();
    assert_eq!(group("a"), group("c"));
    assert_eq!(group("a"), group("e"));
    let roster = home(dir.path(), "e").load_group().unwrap();
    assert!(roster.roster().is_removed(&b.device_id()) && roster.roster().is_removed(&d.device_id()));
    assert_eq!(roster.roster().members().len(), 3);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_replayed_at_a_new_cursor_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let relay = start_relay(&dir.path().join("relay"), port, |_| {}).await;
    let mut a = zerok_client::sync::create(home(dir.path(), "a"), &[relay.addr()], "laptop").await.unwrap();
    let mut b = add_device(&mut a, dir.path(), "b", "phone").await;
    a.push(b"pay 10").await.unwrap();
    assert_eq!(data(&b.pull().await.unwrap()), [&b"pay 10"[..]]);
    a.disconnect().await;
    b.disconnect().await;
    relay.shutdown().await;

    // A dishonest relay serves the same stored message again at cursor 2.
    let group = home(dir.path(), "a").load_group().unwrap().secret().derive().id();
    {
        use redb::{ReadableDatabase, TableDefinition};
        const BLOBS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blobs");
        const CURSORS: TableDefinition<&[u8], u64> = TableDefinition::new("cursors");
        let db = redb::Database::open(dir.path().join("relay").join(zerok_relay::STORE_FILE)).unwrap();
        let key = |c: u64| [&group.0[..], &c.to_be_bytes()].concat();
        let first = db
            .begin_read()
            .unwrap()
            .open_table(BLOBS)
            .unwrap()
            .get(key(1).as_slice())
            .unwrap()
            .unwrap()
            .value()
            .to_vec();
        let tx = db.begin_write().unwrap();
        tx.open_table(BLOBS).unwrap().insert(key(2).as_slice(), first.as_slice()).unwrap();
        tx.open_table(CURSORS).unwrap().insert(group.0.as_slice(), 3).unwrap();
        tx.commit().unwrap();
    }
    let relay = start_relay(&dir.path().join("relay"), port, |_| {}).await;
    let mut b = SyncClient::connect(home(dir.path(), "b")).await.unwrap();
    let mut events = b.subscribe();
    assert!(b.pull().await.unwrap().is_empty(), "the replay is not delivered twice");
    assert_eq!(
        next_event(&mut events, |e| matches!(e, SyncEvent::Duplicate { .. })).await,
        SyncEvent::Duplicate { cursor: 2 }
    );
    let mut fresh = join(
        SyncHome::new(&dir.path().join("f")),
        &{
            let mut a = SyncClient::connect(home(dir.path(), "a")).await.unwrap();
            a.invite().await.unwrap().0
        },
        None,
        "fresh",
    )
    .await
    .unwrap();
    assert_eq!(data(&fresh.pull().await.unwrap()), [&b"pay 10"[..]], "a new device gets it once too");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_sealed_as_garbage_strands_nobody_and_its_author_is_removed() {
    use zerok_core::sync::roster::{Rotation, SealedSecret};
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(&dir.path().join("relay"), 0, |_| {}).await;
    let addr = relay.addr();
    let [mut a, b, mut c, m] = group_of(dir.path(), std::slice::from_ref(&addr), ["a", "b", "c", "m"]).await;
    let (m_id, mallory) = (m.device_id(), home(dir.path(), "m"));
    drop(m);
    // Mallory removes the phone with a "rotation" whose secrets are garbage.
    let state = mallory.load_group().unwrap();
    let sealed = [a.device_id(), c.device_id(), m_id].map(|device| SealedSecret { device, sealed: vec![7; 80] });
    let rotation = Rotation { next: zerok_core::sync::GroupId([9; 32]), sealed: sealed.to_vec() };
    let entry = next_entry(
        state.roster(),
        &mallory.signing_key().unwrap(),
        Op::Remove { device: b.device_id(), rotation: Some(rotation) },
    );
    let (_ep, conn) = connect_as(&addr, &mallory).await;
    let reply = raw_request(&conn, &Message::RosterAppend(RosterAppend { entries: vec![entry] })).await.unwrap();
    assert!(matches!(reply, Message::RosterAppended(_)), "{reply:?}");

    // The others are not stuck: they report it, and one of them removes Mallory, rotating
    // to a secret that opens; everyone else follows past the garbage.
    let mut events = c.subscribe();
    assert!(c.pull().await.is_ok(), "a rotation that does not open is reported, not fatal");
    assert!(matches!(
        next_event(&mut events, |e| matches!(e, SyncEvent::RosterRefused { .. })).await,
        SyncEvent::RosterRefused { .. }
    ));
    a.revoke(m_id, true).await.unwrap();
    a.push(b"after removing mallory").await.unwrap();
    assert_eq!(data(&c.pull().await.unwrap()), [&b"after removing mallory"[..]]);
    let group = |name: &str| home(dir.path(), name).load_group().unwrap().secret().derive().id();
    assert_eq!(group("a"), group("c"));
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_payload_is_reported_and_passed_not_delivered_and_not_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(&dir.path().join("relay"), 0, |_| {}).await;
    let addr = relay.addr();
    let [mut a, mut b, m] = group_of(dir.path(), std::slice::from_ref(&addr), ["a", "b", "m"]).await;
    drop(m);
    let (_ep, conn) = connect_as(&addr, &home(dir.path(), "m")).await;
    // Junk, and a message of Alice's copied under Mallory's connection (a new blob id).
    let (alice_blob, _) = a.push(b"from alice").await.unwrap();
    let stolen = {
        let reply = raw_request(&conn, &Message::Pull(Pull { after_cursor: 0, limit: 10 })).await.unwrap();
        let Message::PullResponse(r) = reply else { panic!() };
        r.blobs.into_iter().find(|e| e.blob_id == alice_blob).unwrap().payload
    };
    for payload in [vec![0u8; 80], stolen] {
        let push = zerok_core::sync::message::Push { blob_id: zerok_core::sync::BlobId::random(), payload, ttl: 0 };
        assert!(matches!(raw_request(&conn, &Message::Push(push)).await.unwrap(), Message::PushAck(_)));
    }
    a.push(b"after the junk").await.unwrap();
    let mut events = b.subscribe();
    assert_eq!(data(&b.pull().await.unwrap()), [&b"from alice"[..], b"after the junk"]);
    let mut refused = Vec::new();
    while let Ok(e) = events.try_recv() {
        if matches!(e, SyncEvent::DecryptFailed { .. } | SyncEvent::Forged { .. }) {
            refused.push(e);
        }
    }
    assert_eq!(refused, [SyncEvent::DecryptFailed { cursor: 2 }, SyncEvent::DecryptFailed { cursor: 3 }]);
    assert!(b.pull().await.unwrap().is_empty(), "passed, once");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_devices_fork_at_a_lagging_relay_is_not_followed() {
    use zerok_core::sync::roster::{Rotation, SealedSecret};
    let dir = tempfile::tempdir().unwrap();
    let (port1, port2) = (free_udp_port(), free_udp_port());
    let r1 = start_relay(&dir.path().join("r1"), port1, |_| {}).await;
    let r2 = start_relay(&dir.path().join("r2"), port2, |_| {}).await;
    let relays = [r1.addr(), r2.addr()];
    let mut a = zerok_client::sync::create(home(dir.path(), "a"), &relays, "laptop").await.unwrap();
    a.set_reconnect_policy(ReconnectPolicy { attempts: 0, jitter: false, ..Default::default() });
    let mut b = add_device(&mut a, dir.path(), "b", "phone").await;
    let c = add_device(&mut a, dir.path(), "c", "tablet").await;
    b.list_devices().await.unwrap(); // the phone knows the roster up to the tablet's join
    let (a_id, b_id, c_id) = (a.device_id(), b.device_id(), c.device_id());
    drop((b, c));
    r2.shutdown().await;
    a.revoke(b_id, true).await.unwrap();
    a.disconnect().await;
    let r2 = start_relay(&dir.path().join("r2"), port2, |_| {}).await;

    // At the relay that missed it, the phone (still a member there) forks: it removes the
    // laptop and rotates to a secret of its own, sealed properly to itself and the tablet.
    let phone = home(dir.path(), "b");
    let state = phone.load_group().unwrap();
    let secret = zerok_core::sync::GroupSecret::generate();
    let sealed = [b_id, c_id].map(|device| SealedSecret {
        device,
        sealed: zerok_core::sync::seal::seal_to(&device, secret.expose()).unwrap(),
    });
    let rotation = Rotation { next: secret.derive().id(), sealed: sealed.to_vec() };
    let fork = next_entry(
        state.roster(),
        &phone.signing_key().unwrap(),
        Op::Remove { device: a_id, rotation: Some(rotation) },
    );
    let (_ep, conn) = connect_as(&r2.addr(), &phone).await;
    let reply = raw_request(&conn, &Message::RosterAppend(RosterAppend { entries: vec![fork] })).await.unwrap();
    assert!(matches!(reply, Message::RosterAppended(_)), "the lagging relay takes it: {reply:?}");

    // The tablet, with the primary down, reaches only the forked relay: it does not follow.
    r1.shutdown().await;
    let c_home = home(dir.path(), "c");
    let before = c_home.load_group().unwrap().secret().derive().id();
    let mut c = SyncClient::connect(c_home.clone()).await.unwrap();
    c.set_reconnect_policy(ReconnectPolicy { attempts: 0, jitter: false, ..Default::default() });
    let mut events = c.subscribe();
    assert!(c.pull().await.is_ok());
    assert_eq!(c_home.load_group().unwrap().secret().derive().id(), before, "no news taken from a secondary");
    let said = next_event(&mut events, |e| matches!(e, SyncEvent::RosterRefused { .. })).await;
    assert!(matches!(&said, SyncEvent::RosterRefused { reason } if reason.contains("primary")), "{said:?}");
    c.disconnect().await;
    // With the primary back, it follows the laptop's rotation and refuses the forked relay.
    let r1 = start_relay(&dir.path().join("r1"), port1, |_| {}).await;
    let mut c = SyncClient::connect(c_home.clone()).await.unwrap();
    let mut events = c.subscribe();
    c.list_devices().await.unwrap();
    let said = next_event(&mut events, |e| matches!(e, SyncEvent::RosterRefused { .. })).await;
    assert!(matches!(&said, SyncEvent::RosterRefused { reason } if reason.contains("fork")), "{said:?}");
    let mut a = SyncClient::connect(home(dir.path(), "a")).await.unwrap();
    let now = c_home.load_group().unwrap().secret().derive().id();
    assert_eq!(now, home(dir.path(), "a").load_group().unwrap().secret().derive().id());
    assert_ne!(now, secret.derive().id(), "never the phone's group");
    a.push(b"laptop and tablet").await.unwrap();
    assert_eq!(data(&c.pull().await.unwrap()), [&b"laptop and tablet"[..]]);
    r1.shutdown().await;
    r2.shutdown().await;
}
