//! `zerok-restore` as a real process: a new device with only the recovery key rebuilds the
//! latest snapshot and becomes a member of the vault; a wrong key writes nothing.

use std::{path::Path, process::Command, sync::Arc};

use serde_json::Value;
use zerok_client::{Home, KeySource, unlock};
use zerok_vault::{BackupOptions, InitOptions, Location, Progress, Vault};

mod common;

use common::tree;

const RESTORE: &str = env!("CARGO_BIN_EXE_zerok-restore");

async fn vault_with_backup(dir: &Path) -> (String, String, std::path::PathBuf) {
    let url = dir.join("vault").display().to_string();
    let created =
        Vault::init(Location::parse(&url).unwrap().open(&url).unwrap(), InitOptions::default()).await.unwrap();
    let src = dir.join("app-state");
    std::fs::create_dir_all(src.join("db")).unwrap();
    std::fs::write(src.join("db/app.sqlite"), vec![42u8; 300_000]).unwrap();
    std::fs::write(src.join("prefs.json"), "{\"theme\":\"dark\"}").unwrap();
    std::os::unix::fs::symlink("prefs.json", src.join("current")).unwrap();
    zerok_vault::backup(&created.vault, BackupOptions::new(vec![src.clone()]), Arc::new(Progress::default()))
        .await
        .unwrap();
    (url, created.recovery_key.display(), src)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_device_rebuilds_state_and_is_registered() {
    let dir = tempfile::tempdir().unwrap();
    let (url, recovery, src) = vault_with_backup(dir.path()).await;
    let home = dir.path().join("new-device-home");
    let target = dir.path().join("restored");
    let out = Command::new(RESTORE)
        .args(["--vault", &url, "--target", target.to_str().unwrap(), "--json"])
        .env("ZEROK_HOME", &home)
        .env("ZEROK_RECOVERY_KEY", &recovery)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["files_restored"], 2);
    assert_eq!(tree(&src), tree(&target));

    // The new device now opens the vault with its own key, no secret needed.
    let unlocked = unlock(&url, None, &Home::at(&home)).await.unwrap();
    assert_eq!(unlocked.via, KeySource::Device);
    assert_eq!(Home::at(&home).default_vault().as_deref(), Some(url.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_is_refused_in_one_line_and_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _, _) = vault_with_backup(dir.path()).await;
    let target = dir.path().join("restored");
    let out = Command::new(RESTORE)
        .args(["--vault", &url, "--target", target.to_str().unwrap()])
        .env("ZEROK_HOME", dir.path().join("home"))
        .env("ZEROK_RECOVERY_KEY", zerok_core::RecoveryKey::generate().display())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("wrong key"), "{err}");
    assert!(!target.exists());
}
