//! The app's lifecycle, wired to sync (spec §10): on a mobile OS, `Suspended` sends the
//! outbox within the pause budget and disconnects, `Resumed` reconnects and emits
//! `zerok://resumed` (the page pulls then: no message is taken where no script reads it);
//! on exit the handle closes in order. Desktop windows keep their connection; a page that
//! wants the same there calls `on_pause` / `on_resume` from `visibilitychange`.

use std::time::Duration;

use tauri::{AppHandle, Manager, RunEvent, Runtime};
use zerok_bridge::Event;

use crate::{Zerok, events::emit};

/// Longest an exiting app waits for the handle to close (a snapshot under way, pushes
/// under way); what did not finish is taken up on the next start.
const EXIT_WAIT: Duration = Duration::from_secs(10);

/// A change the app goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lifecycle {
    /// Leaving the foreground: the OS suspends the app soon.
    Pause,
    /// Back in the foreground, or woken by a push.
    Resume,
}

/// Applies `change` in the background; the returned task ends when it is done (its failure
/// is emitted as `zerok://error`).
pub fn lifecycle<R: Runtime>(app: &AppHandle<R>, change: Lifecycle) -> tauri::async_runtime::JoinHandle<()> {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let Some(z) = app.try_state::<Zerok>() else { return };
        let done = match change {
            Lifecycle::Pause => z.bridge().on_pause(z.settings.pause_budget).await.map(|()| None),
            Lifecycle::Resume => z.bridge().resume_connection().await.map(Some),
        };
        match done {
            Ok(Some(connected)) => {
                let status = if connected { "connected" } else { "disconnected" };
                emit(&app, &Event { kind: "resumed", status: Some(status.into()), ..Event::default() });
            }
            Ok(None) => {}
            Err(e) => emit(&app, &Event { kind: "error", message: Some(e.to_string()), ..Event::default() }),
        }
    })
}

/// Maps the app's run events onto [`lifecycle`], and closes the handle on exit.
pub(crate) fn on_run_event<R: Runtime>(app: &AppHandle<R>, event: &RunEvent) {
    if let RunEvent::Exit = event {
        close(app);
    }
    #[cfg(mobile)]
    if let RunEvent::WindowEvent { event, .. } = event {
        match event {
            tauri::WindowEvent::Suspended => {
                lifecycle(app, Lifecycle::Pause);
            }
            tauri::WindowEvent::Resumed => {
                lifecycle(app, Lifecycle::Resume);
            }
            _ => {}
        }
    }
}

/// Closes the handle in order (backup, then sync), waiting at most [`EXIT_WAIT`].
pub fn close<R: Runtime>(app: &AppHandle<R>) {
    let Some(z) = app.try_state::<Zerok>() else { return };
    let close = z.bridge().close();
    tauri::async_runtime::block_on(async move {
        if tokio::time::timeout(EXIT_WAIT, close).await.is_err() {
            tracing::warn!("zerok did not close within {EXIT_WAIT:?}; the rest resumes on the next start");
        }
    });
}
