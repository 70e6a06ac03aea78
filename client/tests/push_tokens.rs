//! Push registration against a real relay on loopback whose webhook gateway posts to an
//! HTTP server of this test: a token is woken for an offline device only, never for one
//! online, not after it is unregistered, and never for a device revoked; a guest (proves the
//! group secret, not in the roster) and a revoked device cannot register.

mod common;

use std::time::Duration;

use common::{add_device, code_of, hello_as_stranger, home, raw_request, start_relay};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::mpsc,
};
use zerok_client::sync::{SyncClient, create};
use zerok_core::sync::{
    ErrorCode, Message,
    message::{PushPlatform, RegisterPush},
};
use zerok_relay::{PushGatewayKind, WakeUp};

use zerok_client::Error;

/// An HTTP server on loopback taking POSTs; each JSON body arrives on the channel.
async fn webhook() -> (String, mpsc::UnboundedReceiver<WakeUp>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/wake", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Headers, then Content-Length bytes of body (bounded: a test server).
                let body = loop {
                    let Ok(n) = sock.read(&mut chunk).await else { return };
                    if n == 0 || buf.len() > 1 << 16 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break buf[end + 4..end + 4 + len].to_vec();
                    }
                };
                let _ = sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
                if let Ok(wake) = serde_json::from_slice(&body) {
                    let _ = tx.send(wake);
                }
            });
        }
    });
    (url, rx)
}

/// The wakes that arrive within a short wait.
async fn wakes(rx: &mut mpsc::UnboundedReceiver<WakeUp>) -> Vec<WakeUp> {
    let mut out = Vec::new();
    while let Ok(Some(w)) = tokio::time::timeout(Duration::from_millis(1500), rx.recv()).await {
        out.push(w);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_wakes_only_offline_members_with_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let (url, mut posted) = webhook().await;
    let relay = start_relay(&dir.path().join("relay"), 0, |c| {
        c.push.gateway = PushGatewayKind::Webhook;
        c.push.webhook_url = Some(url);
        c.push.min_interval_secs = 0;
    })
    .await;
    let addr = relay.addr();
    let mut a = create(home(dir.path(), "a"), std::slice::from_ref(&addr), "laptop").await.unwrap();
    let mut b = add_device(&mut a, dir.path(), "b", "tablet").await;
    let mut c = add_device(&mut a, dir.path(), "c", "phone").await;
    b.register_push_token("tablet-token", PushPlatform::Fcm, None).await.unwrap();
    c.register_push_token("a1b2c3d4", PushPlatform::Apns, Some("io.zerok.app")).await.unwrap();
    let phone = c.device_id();
    c.disconnect().await;

    // B is online: a NOTIFY reaches it, no wake. C is offline: one silent wake.
    a.push(b"new photo").await.unwrap();
    let got = wakes(&mut posted).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].token.as_str(), got[0].platform), ("a1b2c3d4", PushPlatform::Apns));
    assert_eq!(got[0].app_id.as_deref(), Some("io.zerok.app"));
    let wire = serde_json::to_string(&got[0]).unwrap();
    for id in [relay.state().relay_id().to_vec(), phone.0.to_vec()] {
        assert!(!wire.contains(&hex::encode(&id)), "a wake names no group, device or relay: {wire}");
    }
    let group = home(dir.path(), "a").load_group().unwrap().secret().derive().id();
    assert!(!wire.contains(&group.to_string()), "{wire}");

    // Unregistered: no more wakes.
    let mut c = SyncClient::connect(home(dir.path(), "c")).await.unwrap();
    c.unregister_push_token("user-disabled").await.unwrap();
    c.register_push_token("", PushPlatform::Fcm, None).await.unwrap_err();
    c.disconnect().await;
    a.push(b"another").await.unwrap();
    assert!(wakes(&mut posted).await.is_empty(), "an unregistered token was woken");

    // A revoked device: its token is never woken, and it cannot register again.
    let mut c = SyncClient::connect(home(dir.path(), "c")).await.unwrap();
    c.register_push_token("a1b2c3d4", PushPlatform::Apns, None).await.unwrap();
    c.disconnect().await;
    a.revoke(phone, false).await.unwrap();
    a.push(b"after the revoke").await.unwrap();
    assert!(wakes(&mut posted).await.is_empty(), "a revoked device was woken");
    assert!(matches!(SyncClient::connect(home(dir.path(), "c")).await, Err(Error::Revoked | Error::Refused { .. })));

    // A guest that proves the secret but is in no roster cannot register.
    let secret = home(dir.path(), "a").load_group().unwrap().secret();
    let (_ep, conn, welcome) = hello_as_stranger(&addr, &secret).await;
    assert!(matches!(welcome, Message::Welcome(w) if !w.member));
    let reply = raw_request(
        &conn,
        &Message::RegisterPush(RegisterPush { token: "stranger".into(), platform: PushPlatform::Fcm, app_id: None }),
    )
    .await
    .unwrap();
    assert_eq!(code_of(&reply), Some(ErrorCode::NotMember as u32), "{reply:?}");

    a.disconnect().await;
    b.disconnect().await;
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_without_a_gateway_refuses_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(&dir.path().join("relay"), 0, |c| c.push.gateway = PushGatewayKind::None).await;
    let mut a = create(home(dir.path(), "a"), &[relay.addr()], "laptop").await.unwrap();
    let err = a.register_push_token("t0k3n", PushPlatform::Fcm, None).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidPushToken), "{err}");
    a.disconnect().await;
    relay.shutdown().await;
}
