//! Helpers the sync tests share: a real relay on loopback, device homes, pairing, and a
//! bare endpoint for speaking the protocol by hand.

#![allow(dead_code)]

use std::{path::Path, time::Duration};

use zerok_client::sync::{SyncClient, SyncEvent, SyncHome, join};
use zerok_core::sync::{
    DeviceId, Message,
    group::verify_hello,
    message::{Hello, PROTOCOL_VERSION},
};
use zerok_relay::{Config, Relay};
use zerok_wire::{ALPN, NetOptions, RelayAddr, read_frame, write_frame};

pub const WAIT: Duration = Duration::from_secs(10);

pub async fn start_relay(dir: &Path, port: u16, tweak: impl FnOnce(&mut Config)) -> Relay {
    let mut c = Config::default();
    c.server.listen = format!("127.0.0.1:{port}").parse().unwrap();
    c.http.listen = "127.0.0.1:0".parse().unwrap();
    c.storage.data_dir = dir.to_path_buf();
    tweak(&mut c);
    // A fixed port may still be held for a moment by the relay just shut down (or taken by
    // a parallel test between probe and bind): retry briefly.
    for _ in 0..50 {
        match Relay::start(c.clone()).await {
            Ok(relay) => return relay,
            Err(zerok_relay::Error::Wire(_)) if port != 0 => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("relay start: {e}"),
        }
    }
    panic!("port {port} stayed busy");
}

pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn home(root: &Path, name: &str) -> SyncHome {
    SyncHome::new(&root.join(name))
}

/// Invites a new device named `name` (folder `dir/folder`) into `a`'s group by URL.
pub async fn add_device(a: &mut SyncClient, dir: &Path, folder: &str, name: &str) -> SyncClient {
    let (url, _) = a.invite().await.unwrap();
    join(home(dir, folder), &url, None, name).await.unwrap()
}

/// A bare iroh endpoint speaking the protocol by hand, for hostile tests.
pub async fn raw_endpoint() -> iroh::Endpoint {
    zerok_wire::bind(iroh::SecretKey::generate(), "127.0.0.1:0".parse().unwrap(), vec![], NetOptions::default())
        .await
        .unwrap()
}

pub async fn raw_request(conn: &iroh::endpoint::Connection, msg: &Message) -> Result<Message, String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    write_frame(&mut send, msg).await.map_err(|e| e.to_string())?;
    read_frame(&mut recv, 1 << 20).await.map_err(|e| e.to_string())
}

pub fn code_of(msg: &Message) -> Option<u32> {
    match msg {
        Message::Error(e) => Some(e.code),
        _ => None,
    }
}

pub async fn next_event(
    rx: &mut tokio::sync::broadcast::Receiver<SyncEvent>,
    want: impl Fn(&SyncEvent) -> bool,
) -> SyncEvent {
    tokio::time::timeout(WAIT, async {
        loop {
            let e = rx.recv().await.expect("event channel open");
            if want(&e) {
                return e;
            }
        }
    })
    .await
    .expect("event within the wait")
}

/// A group on `relays`: the device in folder `folders[0]` creates it and invites each of
/// the others in turn (every device is named after its folder).
pub async fn group_of<const N: usize>(dir: &Path, relays: &[RelayAddr], folders: [&str; N]) -> [SyncClient; N] {
    let mut first = zerok_client::sync::create(home(dir, folders[0]), relays, folders[0]).await.unwrap();
    let mut others = Vec::new();
    for folder in &folders[1..] {
        others.push(add_device(&mut first, dir, folder, folder).await);
    }
    let mut all = vec![first];
    all.extend(others);
    all.try_into().unwrap_or_else(|_| unreachable!("N devices"))
}

/// A bare connection that says HELLO with `secret`'s group proof under a fresh key.
pub async fn hello_as_stranger(
    addr: &zerok_wire::RelayAddr,
    secret: &zerok_core::sync::GroupSecret,
) -> (iroh::Endpoint, iroh::endpoint::Connection, Message) {
    hello_on(raw_endpoint().await, addr, secret).await
}

/// A bare connection as the device of `home` (its own key and group), past HELLO as a member.
pub async fn connect_as(addr: &zerok_wire::RelayAddr, home: &SyncHome) -> (iroh::Endpoint, iroh::endpoint::Connection) {
    let ep = zerok_wire::bind(home.device_key().unwrap(), "127.0.0.1:0".parse().unwrap(), vec![], Default::default())
        .await
        .unwrap();
    let (ep, conn, welcome) = hello_on(ep, addr, &home.load_group().unwrap().secret()).await;
    assert!(matches!(welcome, Message::Welcome(w) if w.member));
    (ep, conn)
}

/// HELLO with `secret`'s group proof from `ep`; the relay's answer.
pub async fn hello_on(
    ep: iroh::Endpoint,
    addr: &zerok_wire::RelayAddr,
    secret: &zerok_core::sync::GroupSecret,
) -> (iroh::Endpoint, iroh::endpoint::Connection, Message) {
    let keys = secret.derive();
    let me = DeviceId(*ep.id().as_bytes());
    let conn = ep.connect(addr.endpoint_addr(), ALPN).await.unwrap();
    let proof = keys.hello_proof(&me, &addr.id);
    assert!(verify_hello(&keys.id(), &keys.auth_public(), &proof, &me, &addr.id).is_ok());
    let hello = Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        device_name: "x".into(),
        group_id: keys.id(),
        last_cursor: 0,
        auth_key: keys.auth_public(),
        proof,
    });
    let welcome = raw_request(&conn, &hello).await.unwrap();
    (ep, conn, welcome)
}
