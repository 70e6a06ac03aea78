//! `zerok._native`: the Python extension over `zerok-bridge`. Each method starts the
//! bridge's work on the bridge's own runtime and returns an asyncio awaitable at once, so
//! the GIL is held only to take the arguments and build the result; records come back as
//! tuples and failures as `NativeError(kind, message, retryable)`, which the pure-Python
//! `zerok` package turns into its dataclasses and exception classes.

use std::{future::Future, path::PathBuf, sync::Arc};

use pyo3::{exceptions::PyException, prelude::*};
use zerok_bridge::{BackupSettings, Bridge, BridgeError, Config, Event, Message};

pyo3::create_exception!(_native, NativeError, PyException, "A failed call: args are (kind, message, retryable).");

fn native(e: BridgeError) -> PyErr {
    NativeError::new_err((e.kind.as_str(), e.message, e.retryable))
}

/// Awaits `work` for Python.
fn awaitable<'py, T>(
    py: Python<'py>,
    work: impl Future<Output = Result<T, BridgeError>> + Send + 'static,
) -> PyResult<Bound<'py, PyAny>>
where
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    pyo3_async_runtimes::tokio::future_into_py(py, async move { work.await.map_err(native) })
}

/// `(cursor, blob_id, sender, data)`.
type MessageTuple = (u64, String, String, Vec<u8>);

fn message(m: Message) -> MessageTuple {
    (m.cursor, m.blob_id, m.sender, m.data)
}

/// `(kind, relay, cursor, blob_id, device, snapshot_id, status, attempt, message)`.
type EventTuple = (
    String,
    Option<String>,
    Option<u64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<u32>,
    Option<String>,
);

fn event(e: Event) -> EventTuple {
    (e.kind.to_string(), e.relay, e.cursor, e.blob_id, e.device, e.snapshot_id, e.status, e.attempt, e.message)
}

/// One device's handle (see `zerok.Client`).
#[pyclass(frozen)]
struct Handle {
    bridge: Arc<Bridge>,
}

#[pymethods]
impl Handle {
    #[new]
    #[pyo3(signature = (state_dir, device_name=None))]
    fn new(state_dir: PathBuf, device_name: Option<String>) -> PyResult<Self> {
        let bridge = Bridge::open(Config { state_dir, device_name }).map_err(native)?;
        Ok(Self { bridge: Arc::new(bridge) })
    }

    fn create_group<'py>(&self, py: Python<'py>, relays: Vec<String>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.bridge.create_group(relays))
    }

    #[pyo3(signature = (invite, relay=None))]
    fn join_group<'py>(&self, py: Python<'py>, invite: String, relay: Option<String>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.bridge.join_group(invite, relay))
    }

    fn connect<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.bridge.connect())
    }

    fn disconnect<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.bridge.disconnect())
    }

    #[pyo3(signature = (token, platform, app_id=None))]
    fn register_push_token<'py>(
        &self,
        py: Python<'py>,
        token: String,
        platform: String,
        app_id: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.bridge.register_push_token(token, platform, app_id))
    }

    fn on_pause<'py>(&self, py: Python<'py>, budget_ms: u64) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.bridge.on_pause(std::time::Duration::from_millis(budget_ms)))
    }

    fn on_resume<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let work = self.bridge.on_resume();
        awaitable(py, async move { work.await.map(|ms| ms.into_iter().map(message).collect::<Vec<_>>()) })
    }

    fn create_invite<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let work = self.bridge.create_invite();
        awaitable(py, async move { work.await.map(|i| (i.url, i.code, i.expires_in_secs)) })
    }

    fn push<'py>(&self, py: Python<'py>, data: Vec<u8>) -> PyResult<Bound<'py, PyAny>> {
        let work = self.bridge.push(data);
        awaitable(py, async move { work.await.map(|p| (p.blob_id, p.cursor)) })
    }

    fn pull<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let work = self.bridge.pull();
        awaitable(py, async move { work.await.map(|ms| ms.into_iter().map(message).collect::<Vec<_>>()) })
    }

    fn pull_after<'py>(&self, py: Python<'py>, cursor: u64) -> PyResult<Bound<'py, PyAny>> {
        let work = self.bridge.pull_after(cursor);
        awaitable(py, async move { work.await.map(|ms| ms.into_iter().map(message).collect::<Vec<_>>()) })
    }

    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let work = self.bridge.status();
        awaitable(py, async move { work.await.map(|s| (s.in_group, s.status, s.attempt, s.last_cursor, s.device_id)) })
    }

    fn create_vault<'py>(&self, py: Python<'py>, url: String) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.bridge.create_vault(url))
    }

    #[pyo3(signature = (vault, paths, interval_secs=None, after_messages=None))]
    fn enable_backup<'py>(
        &self,
        py: Python<'py>,
        vault: String,
        paths: Vec<PathBuf>,
        interval_secs: Option<u64>,
        after_messages: Option<u64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.bridge.enable_backup(BackupSettings { vault, paths, interval_secs, after_messages }))
    }

    fn backup_now<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let work = self.bridge.backup_now();
        awaitable(py, async move { work.await.map(|r| (r.snapshot_id, r.files, r.bytes_added)) })
    }

    fn backup_status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let work = self.bridge.backup_status();
        awaitable(
            py,
            async move { work.await.map(|s| (s.enabled, s.running, s.last_snapshot, s.last_error, s.snapshots)) },
        )
    }

    fn disable_backup<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.bridge.disable_backup())
    }

    #[pyo3(signature = (vault, recovery_key, target, snapshot=None))]
    fn restore_new_device<'py>(
        &self,
        py: Python<'py>,
        vault: String,
        recovery_key: String,
        target: PathBuf,
        snapshot: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let work = self.bridge.restore_new_device(vault, recovery_key, target, snapshot);
        awaitable(py, async move {
            work.await.map(|r| {
                let messages: Vec<MessageTuple> = r.messages.into_iter().map(message).collect();
                (r.snapshot_id, r.files, r.bytes, r.lost, messages, r.messages_missing)
            })
        })
    }

    fn next_event<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let work = self.bridge.next_event();
        awaitable(py, async move { work.await.map(|e| e.map(event)) })
    }

    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.bridge.close())
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // pyo3's own runtime only awaits the bridges' tasks: one thread is plenty.
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.worker_threads(1).enable_all();
    pyo3_async_runtimes::tokio::init(runtime);
    m.add_class::<Handle>()?;
    m.add("NativeError", m.py().get_type::<NativeError>())?;
    Ok(())
}
