//! Bad input gets a clear, specific error and changes nothing stored.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use zerok_core::RecoveryKey;
use zerok_vault::{
    Error, Secret, Vault,
    format::{
        Kind,
        index::{IndexFile, IndexPack},
        names,
        pack::PackWriter,
        seal_msgpack,
        snapshot::{Snapshot, SnapshotSummary},
        tree::{Node, NodeKind, Tree},
    },
};

#[tokio::test]
async fn wrong_recovery_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let created = Vault::init(local_backend(dir.path()), small_opts()).await.unwrap();
    let wrong = RecoveryKey::generate();
    let err = Vault::open(local_backend(dir.path()), Secret::Recovery(&wrong)).await.unwrap_err();
    assert!(matches!(err, Error::WrongKey), "{err}");
    assert!(Vault::open(local_backend(dir.path()), Secret::Recovery(&created.recovery_key)).await.is_ok());
}

#[tokio::test]
async fn second_init_is_refused_and_leaves_the_vault_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let created = Vault::init(local_backend(dir.path()), small_opts()).await.unwrap();
    let before = std::fs::read(dir.path().join("config")).unwrap();
    let keys_before = std::fs::read_dir(dir.path().join("keys")).unwrap().count();
    let err = Vault::init(local_backend(dir.path()), small_opts()).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err}");
    assert_eq!(std::fs::read(dir.path().join("config")).unwrap(), before);
    assert_eq!(std::fs::read_dir(dir.path().join("keys")).unwrap().count(), keys_before);
    assert!(Vault::open(local_backend(dir.path()), Secret::Recovery(&created.recovery_key)).await.is_ok());
}

#[tokio::test]
async fn newer_format_version_is_refused_with_its_number() {
    let dir = tempfile::tempdir().unwrap();
    let created = Vault::init(local_backend(dir.path()), small_opts()).await.unwrap();
    let mut config = std::fs::read(dir.path().join("config")).unwrap();
    config[8..12].copy_from_slice(&7u32.to_le_bytes());
    std::fs::write(dir.path().join("config"), config).unwrap();
    let err = Vault::open(local_backend(dir.path()), Secret::Recovery(&created.recovery_key)).await.unwrap_err();
    assert!(matches!(err, Error::Unsupported { version: 7, .. }), "{err}");
    assert!(err.to_string().contains("version 7"));
}

#[tokio::test]
async fn an_index_file_of_a_newer_version_is_refused_with_its_number() {
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::init(local_backend(dir.path()), small_opts()).await.unwrap().vault;
    let index_id = zerok_core::IndexId::random();
    let index = IndexFile { version: 3, packs: vec![] };
    let sealed = seal_msgpack(vault.keys().metadata(), Kind::Index, &index_id.0, &index);
    vault.backend().put(&names::index(&index_id), Bytes::from(sealed)).await.unwrap();
    let (_, errors) = zerok_vault::MasterIndex::load_reporting(&vault).await.unwrap();
    assert!(matches!(errors[..], [Error::Unsupported { version: 3, supported: 2 }]), "{errors:?}");
}

#[tokio::test]
async fn no_vault_and_malformed_urls_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let err = Vault::peek(&local_backend(dir.path())).await.unwrap_err();
    assert!(matches!(err, Error::NoVault(_)), "{err}");
    assert!(matches!(zerok_vault::Location::parse("gopher://x"), Err(Error::InvalidUrl { .. })));
}

#[tokio::test]
async fn unreachable_store_fails_after_bounded_retries() {
    let dir = tempfile::tempdir().unwrap();
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = S3Server::start(dir.path()).await;
    server.endpoint = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let err = Vault::peek(&s3_backend(&server, "b", "")).await.unwrap_err();
    assert!(matches!(err, Error::Store { .. }), "{err}");
    assert!(err.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(90));
}

/// A snapshot whose tree names `..`: restore must refuse before writing anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_paths_that_escape_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let vault = new_vault(local_backend(&dir.path().join("vault"))).await;
    let keys = vault.keys();
    let file_body = b"owned".to_vec();
    let file_id = keys.chunk_id(&file_body);
    let evil = |name: &[u8]| Node {
        name: name.to_vec(),
        kind: NodeKind::File,
        mode: 0o644,
        mtime_ns: 0,
        ctime_ns: 0,
        inode: 0,
        uid: 0,
        gid: 0,
        size: 5,
        content: vec![file_id],
        subtree: None,
        target: None,
        links: None,
        xattrs: Vec::new(),
        sparse: false,
    };
    for bad_name in [&b".."[..], b"../escape", b"a/../../b", b""] {
        let tree = Tree { version: 1, nodes: vec![evil(bad_name), evil(b"fine")] };
        let tree_body = tree.encode();
        let tree_id = keys.chunk_id(&tree_body);
        let mut w = PackWriter::default();
        w.add(
            Kind::Data,
            file_id,
            &zerok_vault::format::envelope::seal(keys.data(), Kind::Data, &file_id.0, &file_body, 3),
            5,
        );
        let sealed_tree = zerok_vault::format::envelope::seal(keys.metadata(), Kind::Tree, &tree_id.0, &tree_body, 3);
        w.add(Kind::Tree, tree_id, &sealed_tree, tree_body.len() as u32);
        let (pack_id, bytes, entries) = w.finish(keys.metadata());
        vault.backend().put(&names::pack(&pack_id), Bytes::from(bytes)).await.unwrap();
        let index_id = zerok_core::IndexId::random();
        let index = IndexFile::new(vec![IndexPack::new(pack_id, &entries)]);
        let sealed = seal_msgpack(keys.metadata(), Kind::Index, &index_id.0, &index);
        vault.backend().put(&names::index(&index_id), Bytes::from(sealed)).await.unwrap();
        let snap = Snapshot {
            version: 1,
            time_ns: 1,
            hostname: "attacker".into(),
            tags: vec![],
            paths: vec!["/a".into(), "/b".into()],
            tree: tree_id,
            parent: None,
            sync_cursors: Default::default(),
            sync_group: None,
            summary: SnapshotSummary::default(),
            program: "test".into(),
        };
        let target = dir.path().join("target");
        let err =
            zerok_vault::restore(&vault, &snap, &zerok_vault::RestoreOptions::new(target.clone()), Default::default())
                .await
                .unwrap_err();
        assert!(matches!(err, Error::UnsafePath(_)), "{err}");
        assert!(!target.exists(), "nothing may be written when a path is unsafe");
        assert!(!dir.path().join("escape").exists() && !dir.path().join("b").exists());
    }
}
