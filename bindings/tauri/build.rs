//! Generates the plugin's permissions (`zerok:allow-<command>`, `zerok:default`) for the
//! app's capabilities.

/// The commands, as `generate_handler!` names them.
const COMMANDS: &[&str] = &[
    "sync_enable",
    "sync_disable",
    "sync_create_invite",
    "sync_join_invite",
    "sync_push",
    "sync_pull",
    "sync_status",
    "sync_last_cursor",
    "vault_create",
    "backup_enable",
    "backup_disable",
    "backup_now",
    "backup_status",
    "restore_new_device",
    "on_pause",
    "on_resume",
    "register_push_token",
];

fn main() {
    tauri_plugin::Builder::new(COMMANDS).build();
}
