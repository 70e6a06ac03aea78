//! A backup dropped midway leaves a sound vault, and the next run reuses its uploads.

mod common;

use std::{sync::Arc, time::Duration};

use common::*;
use zerok_vault::Progress;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_backup_checks_clean_and_next_run_reuses_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let vault = new_vault(local_backend(&dir.path().join("vault"))).await;
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..24 {
        std::fs::write(src.join(format!("part{i:02}.bin")), noise(i, 1 << 20)).unwrap();
    }
    let total = 24u64 << 20;

    let progress = Arc::new(Progress::default());
    let task = zerok_vault::backup(&vault, zerok_vault::BackupOptions::new(vec![src.clone()]), progress.clone());
    let watch = async {
        for _ in 0..10_000 {
            if Progress::get(&progress.bytes_added) > total / 2 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("backup never got halfway");
    };
    tokio::select! {
        _ = task => panic!("backup finished before it could be interrupted"),
        _ = watch => {}
    }
    // The backup future is dropped here, mid-flight. Give its threads time to notice.
    tokio::time::sleep(Duration::from_millis(200)).await;

    assert!(vault.snapshots().await.unwrap().is_empty(), "no snapshot from an interrupted run");
    let report = zerok_vault::check(&vault, true, &Default::default()).await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);

    let resumed = backup(&vault, &[&src]).await;
    assert!(
        resumed.bytes_added < total * 3 / 4,
        "second run stored {} of {} bytes: uploads of the first were not reused",
        resumed.bytes_added,
        total
    );
    let out = dir.path().join("out");
    restore_latest(&vault, &out).await.unwrap();
    assert_eq!(describe(&src), describe(&out));

    // Prune removes what the interrupted run left unreferenced; the vault stays sound.
    zerok_vault::prune(&vault, &Default::default()).await.unwrap();
    let report = zerok_vault::check(&vault, true, &Default::default()).await.unwrap();
    assert!(report.errors.is_empty() && report.warnings.is_empty(), "{report:?}");
}
