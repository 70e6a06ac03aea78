//! The app's lifecycle, wired to sync (spec §10): on a mobile OS, `Suspended` sends the
//! outbox within the pause budget and disconnects, `Resumed` (and, on iOS, where
//! `Suspended` also comes with a mere glance at Control Center, the window taking focus
//! again) reconnects and emits `zerok://resumed` (the page pulls then: no message is taken
//! where no script reads it); on exit the handle closes in order. Changes apply one at a
//! time, in the order they came. Desktop windows keep their connection; a page that wants
//! the same there calls `on_pause` / `on_resume` from `visibilitychange`.

use std::time::Duration;

use tauri::{AppHandle, Manager, RunEvent, Runtime};
use tokio::sync::{mpsc, oneshot};
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

/// The changes waiting to be applied, in order, by one task.
pub(crate) struct Changes(mpsc::UnboundedSender<(Lifecycle, oneshot::Sender<()>)>);

impl Changes {
    /// Starts the task that applies them; it ends when the plugin's state is dropped.
    pub(crate) fn start<R: Runtime>(app: AppHandle<R>) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Lifecycle, oneshot::Sender<()>)>();
        tauri::async_runtime::spawn(async move {
            while let Some((change, done)) = rx.recv().await {
                apply(&app, change).await;
                let _ = done.send(());
            }
        });
        Self(tx)
    }
}

/// Applies `change` after those before it; the returned task ends when it is done (its
/// failure is emitted as `zerok://error`).
pub fn lifecycle<R: Runtime>(app: &AppHandle<R>, change: Lifecycle) -> tauri::async_runtime::JoinHandle<()> {
    let (done, applied) = oneshot::channel();
    if let Some(z) = app.try_state::<Zerok>() {
        let _ = z.changes.0.send((change, done));
    }
    tauri::async_runtime::spawn(async move {
        let _ = applied.await;
    })
}

async fn apply<R: Runtime>(app: &AppHandle<R>, change: Lifecycle) {
    let Some(z) = app.try_state::<Zerok>() else { return };
    let done = match change {
        Lifecycle::Pause => z.bridge().on_pause(z.settings.pause_budget).await.map(|()| None),
        Lifecycle::Resume => z.bridge().resume_connection().await.map(Some),
    };
    match done {
        Ok(Some(connected)) => {
            let status = if connected { "connected" } else { "disconnected" };
            emit(app, &Event { kind: "resumed", status: Some(status.into()), ..Event::default() });
        }
        Ok(None) => {}
        Err(e) => emit(app, &Event { kind: "error", message: Some(e.to_string()), ..Event::default() }),
    }
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
            tauri::WindowEvent::Resumed | tauri::WindowEvent::Focused(true) => {
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
