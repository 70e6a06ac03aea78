//! Bytes and metadata restored equal the source, on every backend.

mod common;

use common::*;

async fn round_trip(vault: &zerok_vault::Vault) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("app-state");
    make_tree(&src);
    let first = backup(vault, &[&src]).await;
    assert_eq!(first.files_new, 306);
    assert!(first.unreadable.is_empty());
    let out = dir.path().join("restored");
    let summary = restore_latest(vault, &out).await.unwrap();
    assert_eq!(summary.files, 306);
    assert_eq!(describe(&src), describe(&out), "restored tree differs from the source");

    let report = zerok_vault::check(vault, true, &Default::default()).await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.chunks_read > 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_folder_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    round_trip(&new_vault(local_backend(&dir.path().join("vault"))).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_round_trip_through_object_store_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(dir.path()).await;
    let vault = new_vault(s3_backend(&server, "zerok-test", "vaults/one")).await;
    round_trip(&vault).await;
    // Objects really went through the S3 server into the bucket folder, under the prefix.
    assert!(dir.path().join("zerok-test/vaults/one/config").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_round_trip() {
    let backend = zerok_vault::Location::Memory.open("memory://").unwrap();
    round_trip(&new_vault(backend).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_paths_restore_under_their_names_and_include_filters() {
    let dir = tempfile::tempdir().unwrap();
    let vault = new_vault(local_backend(&dir.path().join("vault"))).await;
    let a = dir.path().join("alpha");
    let b = dir.path().join("beta.txt");
    make_tree(&a);
    std::fs::write(&b, "beta").unwrap();
    backup(&vault, &[&a, &b]).await;
    let out = dir.path().join("out");
    restore_latest(&vault, &out).await.unwrap();
    assert_eq!(describe(&a), describe(&out.join("alpha")));
    assert_eq!(std::fs::read(out.join("beta.txt")).unwrap(), b"beta");

    let (_, snap) = vault.find_snapshot("latest").await.unwrap();
    let mut opts = zerok_vault::RestoreOptions::new(dir.path().join("partial"));
    opts.includes = vec!["alpha/docs".into(), "*.sh".into()];
    zerok_vault::restore(&vault, &snap, &opts, Default::default()).await.unwrap();
    let got = describe(&dir.path().join("partial"));
    assert!(got.contains_key(std::path::Path::new("alpha/docs/nested/deeper/ünïcødé 名前.txt")));
    assert!(got.contains_key(std::path::Path::new("alpha/script.sh")));
    assert!(!got.keys().any(|k| k.starts_with("alpha/many") || k.ends_with("beta.txt")), "{got:?}");
}
