//! Cloud backup mode, as an app turns it on: a vault in a temporary folder, an app that
//! writes its state under a write guard, snapshots after bursts of activity and on
//! request, events and status, a retention policy, then a restore to show the bytes.
//!
//! `cargo run --example cloud_backup -p zerok-client`

use std::{sync::Arc, time::Duration};

use zerok_client::{
    Home,
    cloud::{CloudBackup, CloudBackupConfig, CloudEvent},
};
use zerok_vault::{InitOptions, Location, Progress, RestoreOptions, Retention, Vault};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let vault_url = dir.path().join("vault").display().to_string();
    let state = dir.path().join("app-state");
    std::fs::create_dir_all(&state)?;

    // Once, at setup: create the vault and keep this device's key (what `zerok init` does).
    let home = Home::at(dir.path().join("home"));
    let created = Vault::init(Location::parse(&vault_url)?.open(&vault_url)?, InitOptions::default()).await?;
    home.save_device_key(&created.vault.config().vault_id, &vault_url, &created.device_key)?;
    println!("vault created; the user writes down the recovery key (not printed here)");

    // The app turns cloud backup on.
    let mut config = CloudBackupConfig::new(&vault_url, vec![state.clone()]);
    config.interval = Some(Duration::from_secs(3600));
    config.after_messages = Some(5);
    config.retention = Some(Retention { keep_last: 2, ..Default::default() });
    let backup = CloudBackup::enable(&home, config).await?;
    let mut events = backup.subscribe();

    // The app works: each change is written under a guard, and counted as a message.
    for i in 0..12u32 {
        {
            let _writing = backup.write_guard().await;
            std::fs::write(state.join("notes.txt"), format!("{} notes\n", i + 1).repeat(1000))?;
            std::fs::write(state.join("counter"), (i + 1).to_string())?;
        }
        backup.note_messages(1);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let last = backup.snapshot_now().await?;
    println!("snapshot on request: {} ({} bytes added)", last.snapshot_id.short(), last.bytes_added);

    while let Ok(event) = events.try_recv() {
        match event {
            CloudEvent::Saved { snapshot, bytes_added } => {
                println!("event: saved {} (+{bytes_added} B)", snapshot.short())
            }
            CloudEvent::Forgot { removed } => println!("event: retention forgot {removed} snapshot(s)"),
            CloudEvent::Failed { error } => println!("event: failed: {error}"),
            CloudEvent::Started | CloudEvent::Progress { .. } => {}
        }
    }
    let status = backup.status();
    println!(
        "status: {} snapshots taken, {} messages since the last, last error: {:?}",
        status.snapshots, status.messages_since, status.last_error
    );
    backup.disable().await;

    // What a restore of the latest snapshot gives back.
    let (_, snap) = created.vault.find_snapshot("latest").await?;
    let target = dir.path().join("restored");
    zerok_vault::restore(&created.vault, &snap, &RestoreOptions::new(target.clone()), Arc::new(Progress::default()))
        .await?;
    assert_eq!(std::fs::read(target.join("counter"))?, b"12");
    println!("restored: counter = {}", std::fs::read_to_string(target.join("counter"))?);
    Ok(())
}
