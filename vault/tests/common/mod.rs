//! Shared test fixtures: an in-process S3 server (s3s + s3s-fs) on loopback, vault
//! constructors for every backend, a source-tree builder and a tree comparer.
#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::Arc,
};

use zerok_vault::{Backend, InitOptions, Location, Progress, RestoreOptions, Vault, format::config::ChunkerParams};

pub use zerok_testkit::S3Server;

/// A vault backend on `bucket/prefix` of a test S3 server.
pub fn s3_backend(server: &S3Server, bucket: &str, prefix: &str) -> Backend {
    Backend::new(server.store(bucket), prefix, &format!("s3://{bucket}/{prefix}"))
}

/// Small packs and chunks so tests exercise many of each.
pub fn small_opts() -> InitOptions {
    InitOptions {
        chunker: ChunkerParams { min_bytes: 16 << 10, avg_bytes: 64 << 10, max_bytes: 256 << 10 },
        pack_bytes: 512 << 10,
        ..InitOptions::default()
    }
}

pub fn local_backend(dir: &Path) -> Backend {
    let url = dir.to_str().unwrap();
    Location::parse(url).unwrap().open(url).unwrap()
}

pub async fn new_vault(backend: Backend) -> Vault {
    Vault::init(backend, small_opts()).await.unwrap().vault
}

/// Deterministic pseudo-random bytes (xorshift), incompressible.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// A source tree with odd names, empty files and folders, symlinks (one dangling),
/// modes, old mtimes, a large file and many small files.
pub fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("docs/nested/deeper")).unwrap();
    std::fs::create_dir_all(root.join("empty dir")).unwrap();
    std::fs::create_dir_all(root.join("many")).unwrap();
    std::fs::write(root.join("docs/readme.txt"), "hello zerok\n".repeat(500)).unwrap();
    std::fs::write(root.join("docs/nested/deeper/ünïcødé 名前.txt"), "unicode").unwrap();
    std::fs::write(root.join("with space.txt"), "space").unwrap();
    std::fs::write(root.join("empty.bin"), b"").unwrap();
    std::fs::write(root.join("large.bin"), noise(1, 3 << 20)).unwrap();
    for i in 0..300 {
        std::fs::write(root.join(format!("many/f{i:03}.txt")), format!("small file {i}\n").repeat(i % 7)).unwrap();
    }
    std::fs::write(root.join("script.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(root.join("script.sh"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::fs::set_permissions(root.join("docs/readme.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("docs/readme.txt", root.join("link")).unwrap();
    std::os::unix::fs::symlink("/nowhere/at/all", root.join("dangling")).unwrap();
    let old = filetime::FileTime::from_unix_time(1_500_000_000, 123_456_789);
    filetime::set_file_mtime(root.join("with space.txt"), old).unwrap();
    filetime::set_symlink_file_times(root.join("dangling"), old, old).unwrap();
    std::fs::set_permissions(root.join("empty dir"), std::fs::Permissions::from_mode(0o700)).unwrap();
    filetime::set_file_mtime(root.join("empty dir"), old).unwrap();
}

/// Everything a user would notice about a tree: kind, bytes, mode, mtime, link target.
pub fn describe(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let desc = if meta.file_type().is_symlink() {
                format!("link -> {} mtime {}", std::fs::read_link(&path).unwrap().display(), meta.mtime())
            } else if meta.is_dir() {
                stack.push(path.clone());
                format!("dir mode {:o} mtime {}.{}", meta.mode() & 0o7777, meta.mtime(), meta.mtime_nsec())
            } else {
                let hash = blake3::hash(&std::fs::read(&path).unwrap());
                format!("file {} mode {:o} mtime {}.{}", hash, meta.mode() & 0o7777, meta.mtime(), meta.mtime_nsec())
            };
            out.insert(rel, desc);
        }
    }
    out
}

pub async fn backup(vault: &Vault, paths: &[&Path]) -> zerok_vault::BackupSummary {
    let opts = zerok_vault::BackupOptions::new(paths.iter().map(|p| p.to_path_buf()).collect());
    zerok_vault::backup(vault, opts, Arc::new(Progress::default())).await.unwrap()
}

pub async fn restore_latest(vault: &Vault, target: &Path) -> zerok_vault::Result<zerok_vault::RestoreSummary> {
    let (_, snap) = vault.find_snapshot("latest").await?;
    zerok_vault::restore(vault, &snap, &RestoreOptions::new(target.to_path_buf()), Arc::new(Progress::default())).await
}
