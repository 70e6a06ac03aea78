//! The bridge's events, emitted to the app as `zerok://<kind>` (`zerok://connected`,
//! `zerok://disconnected`, `zerok://blob-available`, `zerok://backup-saved`,
//! `zerok://error`, …) with the event as payload, until the handle closes.

use tauri::{AppHandle, Emitter, Manager, Runtime};
use zerok_bridge::Event;

use crate::Zerok;

/// Emits `event` as `zerok://<kind>`.
pub(crate) fn emit<R: Runtime>(app: &AppHandle<R>, event: &Event) {
    if let Err(e) = app.emit(&format!("zerok://{}", event.kind), event) {
        tracing::warn!(kind = event.kind, error = %e, "a zerok event could not be emitted");
    }
}

/// Copies the bridge's events to the app until the handle closes.
pub(crate) fn pump<R: Runtime>(app: AppHandle<R>) {
    tauri::async_runtime::spawn(async move {
        loop {
            let Some(next) = app.try_state::<Zerok>().map(|z| z.bridge().next_event()) else { return };
            match next.await {
                Ok(Some(event)) => emit(&app, &event),
                Ok(None) | Err(_) => return,
            }
        }
    });
}
