//! What an app's capabilities grant, resolved by tauri-build from `capabilities/` and the
//! plugin's permissions as in a real app: the `main` window (`zerok:default`) runs every
//! command; the `viewer` window (`zerok:allow-sync-status`) reads the status and is refused
//! the rest, with nothing done; the `notes` window (`zerok:sync`) syncs but neither pairs
//! nor touches the vault. The plugin's settings come from `plugins.zerok`, its
//! relative paths under the app's data folder.

use serde_json::{Value, json};
use tauri::{
    Manager, WebviewUrl, WebviewWindow, WebviewWindowBuilder,
    ipc::{CallbackFn, InvokeBody},
    test::{INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder},
    webview::InvokeRequest,
};

fn invoke(page: &WebviewWindow<MockRuntime>, cmd: &str) -> Result<Value, Value> {
    let request = InvokeRequest {
        cmd: format!("plugin:zerok|{cmd}"),
        callback: CallbackFn(0),
        error: CallbackFn(1),
        url: "tauri://localhost".parse().unwrap(),
        body: InvokeBody::Json(json!({})),
        headers: Default::default(),
        invoke_key: INVOKE_KEY.to_string(),
    };
    get_ipc_response(page, request).map(|b| b.deserialize::<Value>().unwrap())
}

#[test]
fn each_window_runs_what_its_capability_grants_and_nothing_more() {
    let home = tempfile::tempdir().unwrap();
    // The app's data folder is under XDG_DATA_HOME; this test is the only one in its binary.
    unsafe { std::env::set_var("XDG_DATA_HOME", home.path()) };
    let app = mock_builder().plugin(tauri_plugin_zerok::init()).build(zerok_tauri_app_test::context()).unwrap();
    let data = app.path().app_data_dir().unwrap();
    assert!(data.starts_with(home.path()), "app data folder {} outside the test's", data.display());
    let vault = data.join("vault");
    let main = WebviewWindowBuilder::new(&app, "main", WebviewUrl::default()).build().unwrap();
    let viewer = WebviewWindowBuilder::new(&app, "viewer", WebviewUrl::default()).build().unwrap();
    let notes = WebviewWindowBuilder::new(&app, "notes", WebviewUrl::default()).build().unwrap();

    assert_eq!(invoke(&viewer, "sync_status").unwrap()["inGroup"], false);
    let refused = |page: &WebviewWindow<MockRuntime>, cmd: &str| {
        let refused = invoke(page, cmd).expect_err(cmd);
        // Tauri's own refusal (a string naming the command), not zerok's `{ kind, … }`.
        let said = refused.as_str().unwrap_or_default();
        assert!(said.contains(&format!("zerok.{cmd} not allowed")), "{cmd}: {refused}");
    };
    for cmd in ["vault_create", "backup_now", "sync_create_invite", "sync_push"] {
        refused(&viewer, cmd);
    }
    // `zerok:sync`: sync, but no pairing and no vault.
    assert_eq!(invoke(&notes, "sync_last_cursor").unwrap(), 0);
    for cmd in ["sync_create_invite", "sync_join_invite", "vault_create", "backup_now", "restore_new_device"] {
        refused(&notes, cmd);
    }
    assert!(!vault.exists(), "a refused command created the vault");

    assert_eq!(invoke(&main, "sync_status").unwrap()["inGroup"], false);
    let key = invoke(&main, "vault_create").unwrap();
    assert!(key.as_str().is_some_and(|k| !k.is_empty()), "no recovery key: {key}");
    let made = std::fs::read_dir(&vault).map(|mut d| d.next().is_some()).unwrap_or(false);
    assert!(made, "no vault under the app's data folder at {}", vault.display());
    assert!(data.join("device").exists(), "state not under the app's data folder");
}
