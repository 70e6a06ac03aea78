//! The plugin at its command layer, through tauri's mock runtime (no window, no webview
//! engine): each device is an app with the plugin, a webview that invokes
//! `plugin:zerok|…` as a page would, and listeners on `zerok://…` events. The scenarios
//! every binding passes: two devices pair through a relay the test starts and exchange
//! messages both ways with events, pause and resume, one backs its folder up to a vault, a
//! third restores the folder and the messages after it from the recovery key; a wrong
//! key, bad input, a stopped relay and a closed handle fail by name.

use std::{
    path::Path,
    sync::mpsc::{self, Receiver},
    time::Duration,
};

use serde_json::{Value, json};
use tauri::{
    App, Listener, WebviewUrl, WebviewWindow, WebviewWindowBuilder,
    ipc::{CallbackFn, InvokeBody},
    test::{INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder, mock_context, noop_assets},
    utils::acl::ExecutionContext,
    webview::InvokeRequest,
};
use tauri_plugin_zerok::{Builder, Lifecycle};
use zerok_relay::{Config as RelayConfig, Relay};

/// The commands the app's capability grants (the plugin's default permission set).
fn default_commands() -> Vec<String> {
    let toml = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("permissions/default.toml")).unwrap();
    toml.lines()
        .filter_map(|l| l.trim().strip_prefix("\"allow-")?.strip_suffix("\",").map(|c| c.replace('-', "_")))
        .collect()
}

/// One device: the app, its page, and the events it heard.
struct Device {
    app: App<MockRuntime>,
    page: WebviewWindow<MockRuntime>,
}

impl Device {
    /// An app with the plugin set up by `plugin`, granted `commands`.
    fn with(plugin: Builder, commands: &[String]) -> Self {
        let mut ctx = mock_context(noop_assets());
        for c in commands {
            ctx.runtime_authority_mut().__allow_command(format!("plugin:zerok|{c}"), ExecutionContext::Local);
        }
        let app = mock_builder().plugin(plugin.build()).build(ctx).unwrap();
        let page = WebviewWindowBuilder::new(&app, "main", WebviewUrl::default()).build().unwrap();
        Self { app, page }
    }

    fn new(root: &Path, name: &str, plugin: Builder) -> Self {
        Self::with(plugin.state_dir(root.join(name)).device_name(name), &default_commands())
    }

    /// Invokes `cmd` with `body`, as the page's `invoke` does.
    fn invoke(&self, cmd: &str, body: InvokeBody) -> Result<Value, Value> {
        let request = InvokeRequest {
            cmd: format!("plugin:zerok|{cmd}"),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body,
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        };
        get_ipc_response(&self.page, request).map(|b| b.deserialize::<Value>().unwrap())
    }

    fn call(&self, cmd: &str, args: Value) -> Value {
        self.invoke(cmd, InvokeBody::Json(args)).unwrap_or_else(|e| panic!("{cmd}: {e}"))
    }

    /// The error `cmd` rejects with: `{ kind, message, retryable }`.
    fn refused(&self, cmd: &str, args: Value) -> Value {
        match self.invoke(cmd, InvokeBody::Json(args)) {
            Ok(v) => panic!("{cmd} should fail, gave {v}"),
            Err(e) => e,
        }
    }

    /// The payloads of `zerok://<kind>` from now on.
    fn events(&self, kind: &str) -> Receiver<Value> {
        let (tx, rx) = mpsc::channel();
        self.app.listen_any(format!("zerok://{kind}"), move |e| {
            let _ = tx.send(serde_json::from_str(e.payload()).unwrap());
        });
        rx
    }
}

fn next(rx: &Receiver<Value>, what: &str) -> Value {
    rx.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("no {what} event within 10 s"))
}

fn texts(blobs: &Value) -> Vec<String> {
    blobs
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let bytes: Vec<u8> = serde_json::from_value(b["data"].clone()).unwrap();
            String::from_utf8(bytes).unwrap()
        })
        .collect()
}

fn relay(rt: &tokio::runtime::Runtime, root: &Path) -> Relay {
    let mut c = RelayConfig::default();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.http.enabled = false;
    c.storage.data_dir = root.join("relay");
    rt.block_on(Relay::start(c)).unwrap()
}

#[test]
fn pair_exchange_pause_back_up_restore_and_fail_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let relay = relay(&rt, root);
    let vault = root.join("vault").display().to_string();
    let state = root.join("a-state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("notes.db"), b"the state on monday").unwrap();

    let a = Device::new(root, "a", Builder::new().vault(&vault).backup_paths([&state]));
    let b = Device::new(root, "b", Builder::new());
    let c = Device::new(root, "c", Builder::new().vault(&vault).restore_target(root.join("restored")));

    // A creates the group at the relay it is given; B joins from the invite's QR payload.
    let a_connected = a.events("connected");
    let no_relay = a.refused("sync_enable", json!({}));
    assert_eq!(no_relay["kind"], "InvalidInput", "{no_relay}");
    let status = a.call("sync_enable", json!({ "relays": [relay.addr().to_string()] }));
    assert_eq!((&status["inGroup"], &status["status"]), (&json!(true), &json!("connected")), "{status}");
    assert_eq!(next(&a_connected, "connected")["relay"], json!(relay.addr().to_string()));
    let invite = a.call("sync_create_invite", json!({}));
    assert!(invite["qrCode"].as_str().unwrap().starts_with("zerok://"), "{invite}");
    assert!(!invite["shortCode"].as_str().unwrap().is_empty());
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(invite["expiresAt"].as_u64().unwrap() > now_ms, "{invite}");
    let joined = b.call("sync_join_invite", json!({ "invite": invite["qrCode"] }));
    assert_eq!(joined["status"], "connected", "{joined}");

    // A pushes raw bytes (a Uint8Array as the whole payload); B hears of it and pulls it.
    let b_heard = b.events("blob-available");
    let pushed = a.invoke("sync_push", InvokeBody::Raw(b"hello from a".to_vec())).unwrap();
    assert_eq!(next(&b_heard, "blob-available")["cursor"], pushed["cursor"]);
    let pulled = b.call("sync_pull", json!({}));
    assert_eq!(texts(&pulled["blobs"]), ["hello from a"]);
    assert_eq!(pulled["blobs"][0]["blobId"], pushed["blobId"]);
    assert_eq!((&pulled["maxCursor"], &pulled["hasMore"]), (&pushed["cursor"], &json!(false)));
    assert_eq!(b.call("sync_last_cursor", json!({})), pushed["cursor"]);

    // B pushes `{ data: number[] }`; A hears and pulls (its first pull: its own message
    // too, then B's, sent by B); re-reading from 0 gives both again.
    let a_heard = a.events("blob-available");
    let reply = b.call("sync_push", json!({ "data": b"hello from b".to_vec() }));
    next(&a_heard, "blob-available");
    let first = a.call("sync_pull", json!({}));
    assert_eq!(texts(&first["blobs"]), ["hello from a", "hello from b"]);
    assert_eq!(first["blobs"][1]["sender"], joined["deviceId"]);
    assert_eq!(texts(&a.call("sync_pull", json!({}))["blobs"]), Vec::<String>::new());
    let again = a.call("sync_pull", json!({ "afterCursor": 0 }));
    assert_eq!(texts(&again["blobs"]), ["hello from a", "hello from b"]);
    assert_eq!(again["maxCursor"], reply["cursor"]);

    // Pause from the page (visibilitychange), resume from the OS's lifecycle event: the
    // message pushed meanwhile waits at the relay and A's pull after `resumed` brings it.
    let resumed = a.events("resumed");
    a.call("on_pause", json!({ "budgetMs": 500 }));
    assert_eq!(a.call("sync_status", json!({}))["status"], "disconnected");
    b.call("sync_push", json!({ "data": b"while a slept".to_vec() }));
    tauri::async_runtime::block_on(tauri_plugin_zerok::lifecycle(a.app.handle(), Lifecycle::Resume)).unwrap();
    assert_eq!(next(&resumed, "resumed")["status"], "connected");
    assert_eq!(texts(&a.call("sync_pull", json!({}))["blobs"]), ["while a slept"]);
    // And the other way round: the OS pauses, the page's on_resume reconnects and pulls.
    tauri::async_runtime::block_on(tauri_plugin_zerok::lifecycle(a.app.handle(), Lifecycle::Pause)).unwrap();
    assert_eq!(a.call("sync_status", json!({}))["status"], "disconnected");
    b.call("sync_push", json!({ "data": b"while a slept again".to_vec() }));
    assert_eq!(texts(&a.call("on_resume", json!({}))), ["while a slept again"]);
    // Changes the OS sends back to back apply in their order: paused, then resumed.
    let handle = a.app.handle();
    let (paused, back) = (
        tauri_plugin_zerok::lifecycle(handle, Lifecycle::Pause),
        tauri_plugin_zerok::lifecycle(handle, Lifecycle::Resume),
    );
    tauri::async_runtime::block_on(back).unwrap();
    assert_eq!(next(&resumed, "resumed")["status"], "connected");
    assert_eq!(a.call("sync_status", json!({}))["status"], "connected");
    tauri::async_runtime::block_on(paused).unwrap();
    // Sync turned off stays off when the app comes back.
    a.call("sync_disable", json!({}));
    tauri::async_runtime::block_on(tauri_plugin_zerok::lifecycle(handle, Lifecycle::Resume)).unwrap();
    assert_eq!(next(&resumed, "resumed")["status"], "disconnected");
    assert_eq!(a.call("sync_status", json!({}))["status"], "disconnected");
    a.call("sync_enable", json!({}));

    // A backs up the app's folder to the app's vault.
    let saved_event = a.events("backup-saved");
    let recovery = a.call("vault_create", json!({}));
    let enabled = a.call("backup_enable", json!({ "schedule": { "intervalSecs": 3600 } }));
    assert_eq!(enabled["enabled"], true, "{enabled}");
    let saved = a.call("backup_now", json!({}));
    assert_eq!(next(&saved_event, "backup-saved")["snapshotId"], saved["snapshotId"]);
    assert_eq!(a.call("backup_status", json!({}))["lastSnapshot"], saved["snapshotId"]);
    b.call("sync_push", json!({ "data": b"after the snapshot".to_vec() }));

    // C: a wrong key is named and writes nothing; the right one brings the folder and the
    // message after the snapshot, and C connects as a member.
    let target = root.join("restored");
    let other = zerok_core_key();
    let wrong = c.refused("restore_new_device", json!({ "recoveryKey": other }));
    assert_eq!((&wrong["kind"], &wrong["retryable"]), (&json!("WrongKey"), &json!(false)), "{wrong}");
    assert!(!target.exists());
    let restored = c.call("restore_new_device", json!({ "recoveryKey": recovery }));
    assert_eq!(restored["snapshotId"], saved["snapshotId"]);
    assert_eq!(restored["target"], json!(target.display().to_string()));
    assert_eq!(std::fs::read(target.join("notes.db")).unwrap(), b"the state on monday");
    assert_eq!(texts(&restored["messages"]), ["after the snapshot"]);
    assert_eq!(c.call("sync_enable", json!({}))["status"], "connected");

    // Bad input: by name, nothing done.
    let typed = b.refused("sync_pull", json!({ "afterCursor": "soon" }));
    assert!(typed.as_str().is_some_and(|t| t.contains("afterCursor")), "tauri names the argument: {typed}");
    let not_bytes = b.refused("sync_push", json!({ "data": "text" }));
    assert_eq!(not_bytes["kind"], "InvalidInput", "{not_bytes}");
    let no_paths = b.refused("backup_enable", json!({}));
    assert_eq!(no_paths["kind"], "InvalidInput", "{no_paths}");
    let platform = b.refused("register_push_token", json!({ "token": "t", "platform": "sms" }));
    assert_eq!(platform["kind"], "InvalidInput", "{platform}");

    // The relay stops: a push is unreachable and worth retrying.
    c.call("sync_disable", json!({}));
    rt.block_on(relay.shutdown());
    let down = b.refused("sync_push", json!({ "data": [1, 2, 3] }));
    assert_eq!((&down["kind"], &down["retryable"]), (&json!("Unreachable"), &json!(true)), "{down}");
    let cold = c.refused("sync_enable", json!({}));
    assert_eq!(cold["kind"], "Unreachable", "{cold}");

    // The app exits: the handle closes in order, and later calls are refused as Closed.
    for d in [&a, &b, &c] {
        tauri_plugin_zerok::close(d.app.handle());
        assert_eq!(d.refused("sync_status", json!({}))["kind"], "Closed");
    }
}

/// A recovery key of no vault here.
fn zerok_core_key() -> String {
    let dir = tempfile::tempdir().unwrap();
    let other = Device::new(dir.path(), "x", Builder::new().vault(dir.path().join("v").display().to_string()));
    other.call("vault_create", json!({})).as_str().unwrap().to_string()
}

#[test]
fn a_command_the_capability_does_not_grant_is_refused_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let granted: Vec<String> = default_commands().into_iter().filter(|c| c != "vault_create").collect();
    let vault = dir.path().join("vault");
    let d = Device::with(Builder::new().state_dir(dir.path().join("d")).vault(vault.display().to_string()), &granted);
    let refused = d.invoke("vault_create", InvokeBody::Json(json!({}))).unwrap_err();
    assert!(refused.as_str().is_some_and(|m| m.contains("zerok.vault_create not allowed")), "{refused}");
    assert!(!vault.exists(), "a refused command created the vault");
    assert_eq!(d.call("sync_status", json!({}))["inGroup"], false);
}

#[test]
fn the_default_permission_set_grants_every_command_and_nothing_else() {
    let generated = Path::new(env!("CARGO_MANIFEST_DIR")).join("permissions/autogenerated/commands");
    let mut commands: Vec<String> = std::fs::read_dir(generated)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(".toml").to_string())
        .collect();
    commands.sort();
    let mut granted = default_commands();
    granted.sort();
    assert_eq!(granted, commands);
    // The narrower sets share the commands out, each to one set.
    let sets = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("permissions/sets.toml")).unwrap();
    let mut in_sets: Vec<String> =
        sets.split('"').filter_map(|t| t.strip_prefix("allow-")).map(|c| c.replace('-', "_")).collect();
    in_sets.sort();
    assert_eq!(in_sets, commands);
}
