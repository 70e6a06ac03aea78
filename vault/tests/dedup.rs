//! Only changed data is stored again; devices may back up into one vault at once.

mod common;

use std::{io::Write, os::unix::fs::FileExt};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_rebackup_adds_almost_nothing_and_skips_reading() {
    let dir = tempfile::tempdir().unwrap();
    let vault = new_vault(local_backend(&dir.path().join("vault"))).await;
    let src = dir.path().join("src");
    make_tree(&src);
    let first = backup(&vault, &[&src]).await;
    let second = backup(&vault, &[&src]).await;
    assert_eq!(second.parent, Some(first.snapshot_id));
    assert_eq!(second.files_unmodified, first.files_new);
    assert_eq!(second.bytes_read, 0, "unchanged files are not read again");
    assert_eq!(second.chunks_new, 0);
    assert!(second.bytes_added < 1024, "added {} bytes", second.bytes_added);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_percent_edit_of_a_database_adds_a_small_fraction() {
    let dir = tempfile::tempdir().unwrap();
    let vault = new_vault(local_backend(&dir.path().join("vault"))).await;
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let db_len = 16 << 20;
    std::fs::write(src.join("app.db"), noise(7, db_len)).unwrap();
    let first = backup(&vault, &[&src]).await;
    assert!(first.bytes_added as usize > db_len, "random data is stored whole");

    // Rewrite 5% of the file in place: three page runs, as a database would.
    let f = std::fs::OpenOptions::new().write(true).open(src.join("app.db")).unwrap();
    let edit = db_len / 20 / 3;
    for (i, at) in [db_len / 10, db_len / 2, db_len * 9 / 10].into_iter().enumerate() {
        f.write_all_at(&noise(100 + i as u64, edit), at as u64).unwrap();
    }
    drop(f);
    let second = backup(&vault, &[&src]).await;
    assert_eq!(second.files_changed, 1);
    let fraction = second.bytes_added as f64 / db_len as f64;
    assert!(fraction < 0.15, "a 5% edit stored {:.1}% of the file", fraction * 100.0);

    let out = dir.path().join("out");
    restore_latest(&vault, &out).await.unwrap();
    assert_eq!(std::fs::read(out.join("app.db")).unwrap(), std::fs::read(src.join("app.db")).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appended_log_adds_about_the_appended_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let vault = new_vault(local_backend(&dir.path().join("vault"))).await;
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("wal.log"), noise(3, 4 << 20)).unwrap();
    backup(&vault, &[&src]).await;
    std::fs::OpenOptions::new()
        .append(true)
        .open(src.join("wal.log"))
        .unwrap()
        .write_all(&noise(4, 100 << 10))
        .unwrap();
    let second = backup(&vault, &[&src]).await;
    assert!(second.bytes_added < 600 << 10, "appending 100 KiB stored {}", second.bytes_added);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_back_up_into_one_vault_at_the_same_time() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(dir.path()).await;
    let created = zerok_vault::Vault::init(s3_backend(&server, "shared", ""), small_opts()).await.unwrap();
    let laptop = created.vault;
    let second_key = laptop.add_device("phone").await.unwrap();
    let phone = zerok_vault::Vault::open(s3_backend(&server, "shared", ""), zerok_vault::Secret::Device(&second_key))
        .await
        .unwrap();

    let (a, b) = (dir.path().join("laptop-src"), dir.path().join("phone-src"));
    make_tree(&a);
    std::fs::create_dir(&b).unwrap();
    std::fs::write(b.join("photos.bin"), noise(9, 2 << 20)).unwrap();
    std::fs::write(b.join("shared.bin"), std::fs::read(a.join("large.bin")).unwrap()).unwrap();
    let mut opts_a = zerok_vault::BackupOptions::new(vec![a.clone()]);
    opts_a.hostname = "laptop".into();
    let mut opts_b = zerok_vault::BackupOptions::new(vec![b.clone()]);
    opts_b.hostname = "phone".into();
    let (ra, rb) = tokio::join!(
        zerok_vault::backup(&laptop, opts_a, Default::default()),
        zerok_vault::backup(&phone, opts_b, Default::default())
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());

    for (vault, id, src) in [(&laptop, ra.snapshot_id, &a), (&phone, rb.snapshot_id, &b)] {
        let out = dir.path().join(format!("out-{}", id.short()));
        let snap = vault.load_snapshot(&id).await.unwrap();
        zerok_vault::restore(vault, &snap, &zerok_vault::RestoreOptions::new(out.clone()), Default::default())
            .await
            .unwrap();
        assert_eq!(describe(src), describe(&out));
    }
    let report = zerok_vault::check(&phone, true, &Default::default()).await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}
