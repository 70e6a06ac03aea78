//! Resolves the app's capabilities against the plugins' permissions, as `tauri build` does.

fn main() {
    tauri_build::build();
}
