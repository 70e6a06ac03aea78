//! The commands the webview invokes (`plugin:zerok|…`): the spec's sync commands, cloud
//! backup and new-device restore over the app's settings, and the lifecycle calls for a
//! page's `visibilitychange`. Each awaits the bridge, whose work runs on its own runtime.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use tauri::{
    State,
    ipc::{InvokeBody, Request},
};
use zerok_bridge::{BackupReport, BackupSettings, BackupStatus, Message, Pushed, SyncStatus};

use crate::{
    Error, Zerok,
    models::{BackupSchedule, Invite, PullResult, Restored},
};

/// Connects this device's sync group, or creates one at `relays` (or the app's relays)
/// when it has none.
#[tauri::command]
pub(crate) async fn sync_enable(state: State<'_, Zerok>, relays: Option<Vec<String>>) -> Result<SyncStatus, Error> {
    let bridge = state.bridge();
    if bridge.status().await?.in_group {
        bridge.connect().await?;
    } else {
        let relays = relays.filter(|r| !r.is_empty()).unwrap_or_else(|| state.settings.relays.clone());
        if relays.is_empty() {
            return Err(Error::invalid(
                "this device is in no sync group: give relays (or set plugins.zerok.relays) to create one, or join an invite",
            ));
        }
        bridge.create_group(relays).await?;
    }
    Ok(bridge.status().await?)
}

/// Disconnects (pushes under way finish); the group and the outbox stay.
#[tauri::command]
pub(crate) async fn sync_disable(state: State<'_, Zerok>) -> Result<SyncStatus, Error> {
    state.bridge().disconnect().await?;
    Ok(state.bridge().status().await?)
}

/// An invite for one more device (once, for ten minutes).
#[tauri::command]
pub(crate) async fn sync_create_invite(state: State<'_, Zerok>) -> Result<Invite, Error> {
    let info = state.bridge().create_invite().await?;
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    Ok(Invite::new(info, now_ms))
}

/// Joins the group of `invite` (its URL, or its short code looked up at `relay`).
#[tauri::command]
pub(crate) async fn sync_join_invite(
    state: State<'_, Zerok>,
    invite: String,
    relay: Option<String>,
) -> Result<SyncStatus, Error> {
    state.bridge().join_group(invite, relay).await?;
    Ok(state.bridge().status().await?)
}

/// `sync_push`'s JSON form.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushArgs {
    data: Vec<u8>,
}

/// Encrypts, signs and pushes the bytes: the request's raw body (a `Uint8Array` given as
/// the whole payload), or `{ data: number[] }`.
#[tauri::command]
pub(crate) async fn sync_push(state: State<'_, Zerok>, request: Request<'_>) -> Result<Pushed, Error> {
    let data = match request.body() {
        InvokeBody::Raw(bytes) => bytes.clone(),
        InvokeBody::Json(args) => {
            PushArgs::deserialize(args)
                .map_err(|e| Error::invalid(format!("sync_push: give {{ data: number[] }} or raw bytes: {e}")))?
                .data
        }
    };
    Ok(state.bridge().push(data).await?)
}

/// What is new since the last pull, or (with `afterCursor`) the group's messages after that
/// cursor read again, the saved cursor left as it is.
#[tauri::command]
pub(crate) async fn sync_pull(state: State<'_, Zerok>, after_cursor: Option<u64>) -> Result<PullResult, Error> {
    let page = match after_cursor {
        Some(after) => state.bridge().pull_after_page(after).await?,
        None => state.bridge().pull_page().await?,
    };
    Ok(PullResult { blobs: page.messages, has_more: page.has_more, max_cursor: page.last_cursor })
}

/// Where sync stands.
#[tauri::command]
pub(crate) async fn sync_status(state: State<'_, Zerok>) -> Result<SyncStatus, Error> {
    Ok(state.bridge().status().await?)
}

/// The primary relay's last pulled cursor.
#[tauri::command]
pub(crate) async fn sync_last_cursor(state: State<'_, Zerok>) -> Result<u64, Error> {
    Ok(state.bridge().status().await?.last_cursor)
}

/// Creates the app's vault and keeps this device's key to it; returns the recovery key for
/// the user to write down (the only time it is shown).
#[tauri::command]
pub(crate) async fn vault_create(state: State<'_, Zerok>) -> Result<String, Error> {
    Ok(state.bridge().create_vault(state.vault()?).await?)
}

/// Turns cloud backup of the app's folders on, on `schedule` (or the library's).
#[tauri::command]
pub(crate) async fn backup_enable(
    state: State<'_, Zerok>,
    schedule: Option<BackupSchedule>,
) -> Result<BackupStatus, Error> {
    let paths = state.settings.backup_paths.clone();
    if paths.is_empty() {
        return Err(Error::invalid("no folders to back up: set plugins.zerok.backupPaths (or Builder::backup_paths)"));
    }
    let schedule = schedule.unwrap_or_default();
    let settings = BackupSettings {
        vault: state.vault()?,
        paths,
        interval_secs: schedule.interval_secs,
        after_messages: schedule.after_messages,
    };
    state.bridge().enable_backup(settings).await?;
    Ok(state.bridge().backup_status().await?)
}

/// Turns cloud backup off (a snapshot under way finishes).
#[tauri::command]
pub(crate) async fn backup_disable(state: State<'_, Zerok>) -> Result<BackupStatus, Error> {
    state.bridge().disable_backup().await?;
    Ok(state.bridge().backup_status().await?)
}

/// Takes a snapshot now.
#[tauri::command]
pub(crate) async fn backup_now(state: State<'_, Zerok>) -> Result<BackupReport, Error> {
    Ok(state.bridge().backup_now().await?)
}

/// Where cloud backup stands.
#[tauri::command]
pub(crate) async fn backup_status(state: State<'_, Zerok>) -> Result<BackupStatus, Error> {
    Ok(state.bridge().backup_status().await?)
}

/// Makes this device the one backed up to the app's vault: restores its latest snapshot
/// (or `snapshot`) into the app's restore folder, rejoins the sync group and returns the
/// messages after the snapshot for the app to apply. Then `sync_enable` connects.
#[tauri::command]
pub(crate) async fn restore_new_device(
    state: State<'_, Zerok>,
    recovery_key: String,
    snapshot: Option<String>,
) -> Result<Restored, Error> {
    let target = state.settings.restore_target.clone();
    let restored = state.bridge().restore_new_device(state.vault()?, recovery_key, target.clone(), snapshot).await?;
    Ok(Restored { target: target.display().to_string(), restored })
}

/// The app leaves the foreground: the outbox is sent within `budgetMs` (or the app's
/// pause budget), then sync disconnects.
#[tauri::command]
pub(crate) async fn on_pause(state: State<'_, Zerok>, budget_ms: Option<u64>) -> Result<(), Error> {
    let budget = budget_ms.map_or(state.settings.pause_budget, Duration::from_millis);
    Ok(state.bridge().on_pause(budget).await?)
}

/// The app is back (or a push woke it): reconnects if it was connected, and pulls.
#[tauri::command]
pub(crate) async fn on_resume(state: State<'_, Zerok>) -> Result<Vec<Message>, Error> {
    Ok(state.bridge().on_resume().await?)
}

/// Registers the app's push token (`apns` or `fcm`) at the group's relays.
#[tauri::command]
pub(crate) async fn register_push_token(
    state: State<'_, Zerok>,
    token: String,
    platform: String,
    app_id: Option<String>,
) -> Result<(), Error> {
    Ok(state.bridge().register_push_token(token, platform, app_id).await?)
}
