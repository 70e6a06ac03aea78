//! The metadata cache of a remote vault, against a real S3 server: what it spares the store,
//! what it must never hide (tampered copies, objects the store lost, a removed device), and
//! a restore with many reads in flight across a delayed link.

mod common;

use std::{sync::Arc, time::Duration};

use common::*;
use zerok_testkit::{FaultyStore, TcpDelay};
use zerok_vault::{Backend, Cache, Error, Secret, Vault, format::names};

/// A vault on the test server seen through a read-recording store, and its backend.
fn recorded(server: &S3Server, bucket: &str) -> (FaultyStore, Backend) {
    let store = FaultyStore::new(server.store(bucket), 1);
    let backend = Backend::new(Arc::new(store.clone()), "v", &format!("s3://{bucket}/v"));
    (store, backend)
}

fn folders(reads: &[String]) -> Vec<&str> {
    let mut out: Vec<&str> = reads.iter().map(|r| r.split('/').nth(1).unwrap_or("")).collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_comes_from_the_cache_and_a_tampered_copy_is_read_again_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("s3")).unwrap();
    let server = S3Server::start(&dir.path().join("s3")).await;
    let (store, backend) = recorded(&server, "cache-test");
    let created = Vault::init(backend.clone(), small_opts()).await.unwrap();
    let cache_root = dir.path().join("cache");
    let vault =
        created.vault.with_cache(Cache::open(&cache_root, &Vault::peek(&backend).await.unwrap(), 1 << 30).unwrap());
    let src = dir.path().join("src");
    make_tree(&src);
    for i in 0..40 {
        std::fs::create_dir_all(src.join(format!("deep/d{i}"))).unwrap();
        std::fs::write(src.join(format!("deep/d{i}/f.txt")), format!("folder {i}")).unwrap();
    }
    backup(&vault, &[&src]).await;
    store.take_reads();

    // With the cache, an unchanged re-backup reads nothing: index, snapshots, trees are here.
    let summary = backup(&vault, &[&src]).await;
    assert_eq!(summary.files_new + summary.files_changed, 0);
    assert_eq!(store.take_reads(), Vec::<String>::new(), "an unchanged re-backup reads nothing from the store");

    // A restore reads file data from the store, and no metadata.
    let out = dir.path().join("out");
    restore_latest(&vault, &out).await.unwrap();
    assert_eq!(describe(&src), describe(&out));
    let reads = store.take_reads();
    let tree_packs: Vec<_> = walk(&cache_root).into_iter().filter(|p| p.contains("/data/")).collect();
    assert!(!tree_packs.is_empty(), "tree packs are cached");
    assert!(reads.iter().all(|r| r.contains("/data/")), "only packs are read: {reads:?}");
    assert!(
        !reads.iter().any(|r| tree_packs.iter().any(|t| t.ends_with(r.trim_start_matches("v/")))),
        "no tree pack is read from the store: {reads:?}"
    );

    // A cache tampered with (every copy altered) is caught, and the store's bytes used.
    for file in walk(&cache_root) {
        let mut bytes = std::fs::read(&file).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x40;
        std::fs::write(&file, bytes).unwrap();
    }
    let again = dir.path().join("again");
    restore_latest(&vault, &again).await.unwrap();
    assert_eq!(describe(&src), describe(&again), "restored bit-exact from the store's copies");
    let reads = store.take_reads();
    assert!(reads.iter().any(|r| r.contains("/index/")) && reads.iter().any(|r| r.contains("/snapshots/")));
    // The damaged copies were replaced (tree packs by the next load): then nothing is read.
    backup(&vault, &[&src]).await;
    store.take_reads();
    backup(&vault, &[&src]).await;
    assert_eq!(store.take_reads(), Vec::<String>::new(), "the cache holds good copies again");

    // The attack the cache spares: without it, the same re-backup reads every index file,
    // snapshot and tree pack.
    let uncached = Vault::open(backend.clone(), Secret::Device(&created.device_key)).await.unwrap();
    store.take_reads();
    backup(&uncached, &[&src]).await;
    let read = folders(&store.take_reads()).into_iter().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(read, ["data", "index", "snapshots"], "read without a cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_never_shows_what_the_store_no_longer_holds() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("s3")).unwrap();
    let server = S3Server::start(&dir.path().join("s3")).await;
    let (_store, backend) = recorded(&server, "cache-gone");
    let created = Vault::init(backend.clone(), small_opts()).await.unwrap();
    let vault_id = Vault::peek(&backend).await.unwrap();
    let cache_root = dir.path().join("cache");
    let vault = created.vault.with_cache(Cache::open(&cache_root, &vault_id, 1 << 30).unwrap());
    let src = dir.path().join("src");
    make_tree(&src);
    let first = backup(&vault, &[&src]).await.snapshot_id;
    let second = backup(&vault, &[&src]).await.snapshot_id;

    // A snapshot deleted from the store is gone from the listing, and from the cache.
    backend.delete(&names::snapshot(&first)).await.unwrap();
    let ids: Vec<_> = vault.snapshots().await.unwrap().into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, [second]);
    assert!(!cache_root.join(vault_id.to_string()).join(names::snapshot(&first)).exists());

    // A device whose slot was removed opens from its cached copies, and is refused at once.
    let device = created.device_key;
    let extra = vault.add_device("other").await.unwrap();
    let by_other = Vault::open(backend.clone(), Secret::Device(&extra)).await.unwrap();
    by_other.remove_slot(&device.slot).await.unwrap();
    let reopened = Vault::open_cached(backend.clone(), &device, Cache::open(&cache_root, &vault_id, 1 << 30).unwrap())
        .unwrap()
        .expect("config and slot are cached");
    assert!(matches!(reopened.snapshots().await, Err(Error::WrongKey)), "a removed device reads no snapshot");
    let fresh = Cache::open(&cache_root, &vault_id, 1 << 30).unwrap();
    assert!(Vault::open_cached(backend.clone(), &device, fresh).unwrap().is_none(), "its cached slot is dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_across_a_delayed_link_lands_every_read_where_it_belongs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("s3")).unwrap();
    let server = S3Server::start(&dir.path().join("s3")).await;
    let link = TcpDelay::start(server.addr, Duration::from_millis(5)).await.unwrap();
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(format!("http://{}", link.addr))
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_bucket_name("cache-wan")
        .with_access_key_id(zerok_testkit::ACCESS_KEY)
        .with_secret_access_key(zerok_testkit::SECRET_KEY)
        .with_region("us-east-1")
        .build()
        .unwrap();
    std::fs::create_dir_all(dir.path().join("s3/cache-wan")).unwrap();
    let backend = Backend::new(Arc::new(store), "v", "s3://cache-wan/v");
    let vault = Vault::init(backend, small_opts()).await.unwrap().vault;
    let src = dir.path().join("src");
    make_tree(&src);
    for i in 0..6 {
        std::fs::write(src.join(format!("big{i}.bin")), noise(100 + i, 2 << 20)).unwrap();
    }
    backup(&vault, &[&src]).await;
    let out = dir.path().join("out");
    let summary = restore_latest(&vault, &out).await.unwrap();
    assert!(summary.lost.is_empty());
    assert_eq!(describe(&src), describe(&out), "many reads in flight, landing in any order, restore bit-exact");
}

/// Every file below `root`.
fn walk(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                out.push(entry.path().display().to_string());
            }
        }
    }
    out
}
