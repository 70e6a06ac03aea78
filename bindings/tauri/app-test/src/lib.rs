//! An app shell for tauri-plugin-zerok's tests: `tauri.conf.json` (with `plugins.zerok`) and
//! `capabilities/` go through tauri-build and `generate_context!` exactly as in an app, so
//! its tests check what an app gets — the `zerok:…` permissions its capabilities name, and
//! the plugin's settings read from its config — on tauri's mock runtime.

use tauri::{Context, Runtime, test::noop_assets};

/// The app's context: its config and the access its capabilities resolve to.
pub fn context<R: Runtime>() -> Context<R> {
    tauri::generate_context!(test = true, assets = noop_assets())
}
