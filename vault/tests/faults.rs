//! Backup, prune and restore through a store that fails (`FaultyStore` over the in-process
//! S3 server): transient errors, timeouts, short reads, listings that drop entries, writes
//! and deletes that land but report failure. Operations may fail; nothing stored may be
//! lost: once the faults stop, `check --read-data` finds no damage and every snapshot
//! restores to the state it was taken of.

mod common;

use std::{collections::BTreeMap, path::Path, sync::Arc, time::Duration};

use common::*;
use zerok_testkit::{Faults, FaultyStore};
use zerok_vault::{Backend, BackupOptions, Progress, RestoreOptions, Retention, Vault};

async fn faulty_vault(server: &S3Server, seed: u64) -> (Vault, FaultyStore) {
    let faulty = FaultyStore::new(server.store("faults"), seed);
    let backend = Backend::new(Arc::new(faulty.clone()), "v", "s3://faults/v");
    (new_vault(backend).await, faulty)
}

/// Restores every snapshot (tagged `round-N`) and compares it with what the source held.
async fn assert_all_restore(
    vault: &Vault,
    expected: &BTreeMap<String, BTreeMap<std::path::PathBuf, String>>,
    out: &Path,
) -> usize {
    let snaps = vault.snapshots().await.unwrap();
    for (id, snap) in &snaps {
        let target = out.join(id.to_string());
        zerok_vault::restore(vault, snap, &RestoreOptions::new(target.clone()), Arc::new(Progress::default()))
            .await
            .unwrap_or_else(|e| panic!("snapshot {id} ({:?}) does not restore: {e}", snap.tags));
        let want = &expected[&snap.tags[0]];
        assert!(&describe(&target) == want, "snapshot {id} ({:?}) restored different bytes", snap.tags);
    }
    snaps.len()
}

fn change(src: &Path, round: u64) {
    std::fs::write(src.join(format!("new-{round}.bin")), noise(round, 200 << 10)).unwrap();
    std::fs::write(src.join("changing.bin"), noise(1000 + round, 300 << 10)).unwrap();
    if round.is_multiple_of(3) {
        let _ = std::fs::remove_file(src.join(format!("new-{}.bin", round.saturating_sub(2))));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_prune_restore_through_random_faults_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("s3")).unwrap();
    let server = S3Server::start(&dir.path().join("s3")).await;
    let (vault, faulty) = faulty_vault(&server, 0x5eed).await;
    let src = dir.path().join("src");
    make_tree(&src);
    let faults = Faults {
        error: 0.004,
        timeout: 0.002,
        lost_reply: 0.03,
        short_read: 0.004,
        list_drop: 0.05,
        delay: Duration::from_millis(20),
    };
    let mut expected = BTreeMap::new();
    let (mut failed, mut ops, mut restored_under_faults) = (0, 0, 0);
    for round in 0..40u64 {
        change(&src, round);
        let tag = format!("round-{round}");
        expected.insert(tag.clone(), describe(&src));
        faulty.set(faults);
        let mut opts = BackupOptions::new(vec![src.clone()]);
        opts.tags = vec![tag];
        ops += 1;
        failed += zerok_vault::backup(&vault, opts, Arc::new(Progress::default())).await.is_err() as u32;
        if round % 3 == 2 {
            let policy = Retention { keep_last: 3, ..Default::default() };
            ops += 2;
            failed += zerok_vault::forget(&vault, &policy).await.is_err() as u32;
            failed += zerok_vault::prune(&vault, &Progress::default()).await.is_err() as u32;
        }
        if round % 4 == 3 {
            // A restore under faults fails or restores the right bytes, never wrong ones.
            ops += 1;
            let target = dir.path().join(format!("under-faults-{round}"));
            match vault.find_snapshot("latest").await {
                Ok((_, snap)) => {
                    let opts = RestoreOptions::new(target.clone());
                    match zerok_vault::restore(&vault, &snap, &opts, Arc::new(Progress::default())).await {
                        Ok(_) => {
                            assert!(
                                describe(&target) == expected[&snap.tags[0]],
                                "restore under faults gave wrong bytes"
                            );
                            restored_under_faults += 1;
                        }
                        Err(_) => failed += 1,
                    }
                }
                Err(_) => failed += 1,
            }
        }
        faulty.set(Faults::default());
    }
    let injected = faulty.injected().total();
    let report = zerok_vault::check(&vault, true, &Progress::default()).await.unwrap();
    assert!(report.errors.is_empty(), "damage after faults: {:?}", report.errors);
    let snapshots = assert_all_restore(&vault, &expected, &dir.path().join("final")).await;
    // A prune on a faithful store afterwards loses nothing either.
    match zerok_vault::prune(&vault, &Progress::default()).await {
        Ok(_) | Err(zerok_vault::Error::Locked(_)) => {}
        Err(e) => panic!("prune after the faults: {e}"),
    }
    let report = zerok_vault::check(&vault, true, &Progress::default()).await.unwrap();
    assert!(report.errors.is_empty(), "damage after the last prune: {:?}", report.errors);
    assert_eq!(assert_all_restore(&vault, &expected, &dir.path().join("after-prune")).await, snapshots);
    assert!(injected >= 50, "only {injected} faults were injected");
    println!(
        "faults: {injected} injected ({:?}); {failed} of {ops} operations failed; {snapshots} snapshots and \
         {restored_under_faults} restores under faults verified; bytes lost: 0",
        faulty.injected()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_the_collection_listings_missed_survives_the_deletion_step() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("s3")).unwrap();
    let server = S3Server::start(&dir.path().join("s3")).await;
    let (vault, faulty) = faulty_vault(&server, 7).await;
    let src = dir.path().join("src");
    make_tree(&src);
    backup(&vault, &[&src]).await;
    std::fs::write(src.join("only-in-second.bin"), noise(99, 2 << 20)).unwrap();
    let second = backup(&vault, &[&src]).await;
    let want = describe(&src);
    // Both listings of snapshots/ in the collection's view leave the second snapshot out:
    // its packs look unneeded and are collected. The deletion step lists again.
    faulty.hide("snapshots", &second.snapshot_id.to_string(), 2);
    let report = zerok_vault::prune(&vault, &Progress::default()).await.unwrap();
    assert!(report.packs_kept >= 1, "the fossils the second snapshot uses are kept: {report:?}");
    let check = zerok_vault::check(&vault, true, &Progress::default()).await.unwrap();
    assert!(check.errors.is_empty(), "{:?}", check.errors);
    let out = dir.path().join("out");
    restore_latest(&vault, &out).await.unwrap();
    assert!(describe(&out) == want, "the second snapshot restores whole");
}

/// Sets every lock's last write back by `secs` on the S3 server's clock (s3s-fs reports
/// file mtimes as `LastModified`).
fn age_locks(server: &S3Server, bucket_prefix: &str, secs: u64) {
    let then = std::time::SystemTime::now() - Duration::from_secs(secs);
    for entry in std::fs::read_dir(server.root.join(bucket_prefix).join("locks")).unwrap() {
        let file = std::fs::File::options().write(true).open(entry.unwrap().path()).unwrap();
        file.set_modified(then).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_a_paused_backup_is_waited_for_then_revoked_and_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("s3")).unwrap();
    let server = S3Server::start(&dir.path().join("s3")).await;
    let faulty = FaultyStore::new(server.store("paused"), 1);
    let created = zerok_vault::Vault::init(Backend::new(Arc::new(faulty.clone()), "v", "s3://paused/v"), small_opts())
        .await
        .unwrap();
    let laptop = created.vault;
    // The other device reaches the same bucket directly, with the recovery key.
    let desktop = Vault::open(
        Backend::new(server.store("paused"), "v", "s3://paused/v"),
        zerok_vault::Secret::Recovery(&created.recovery_key),
    )
    .await
    .unwrap();
    let src = dir.path().join("src");
    make_tree(&src);
    backup(&laptop, &[&src]).await;
    std::fs::write(src.join("big.bin"), noise(5, 12 << 20)).unwrap();
    let want = describe(&src);

    let indexed = desktop.backend().list("index").await.unwrap().len();
    let task = tokio::spawn({
        let laptop = laptop.clone();
        let src = src.clone();
        async move { zerok_vault::backup(&laptop, BackupOptions::new(vec![src]), Arc::new(Progress::default())).await }
    });
    for _ in 0..2000 {
        if desktop.backend().list("index").await.unwrap().len() > indexed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    faulty.hold_writes();
    assert!(!task.is_finished(), "the backup finished before it could be paused");

    let first = zerok_vault::prune(&desktop, &Progress::default()).await.unwrap();
    assert!(first.packs_pending >= 1 && first.packs_deleted == 0, "{first:?}");
    assert_eq!(first.waiting_for.len(), 1, "{first:?}");
    age_locks(&server, "paused/v", 31 * 60);
    let second = zerok_vault::prune(&desktop, &Progress::default()).await.unwrap();
    assert!(second.locks_revoked == 1 && second.packs_deleted >= 1, "{second:?}");

    faulty.release();
    let summary = task.await.unwrap().expect("the backup starts over and completes");
    let report = zerok_vault::check(&desktop, true, &Progress::default()).await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let (_, snap) = desktop.find_snapshot(&summary.snapshot_id.to_string()).await.unwrap();
    let out = dir.path().join("out");
    zerok_vault::restore(&desktop, &snap, &RestoreOptions::new(out.clone()), Arc::new(Progress::default()))
        .await
        .unwrap();
    assert!(describe(&out) == want, "the new snapshot restores whole");
}
