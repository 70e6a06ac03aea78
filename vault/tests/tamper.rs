//! A flipped byte in any pack, index, tree or snapshot is detected and named.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use zerok_vault::Vault;

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in walk(dir) {
        if entry.is_file() {
            out.push(entry);
        }
    }
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

async fn setup() -> (tempfile::TempDir, Vault) {
    let dir = tempfile::tempdir().unwrap();
    let vault = new_vault(local_backend(&dir.path().join("vault"))).await;
    let src = dir.path().join("src");
    make_tree(&src);
    backup(&vault, &[&src]).await;
    (dir, vault)
}

async fn errors(vault: &Vault, read_data: bool) -> Vec<String> {
    zerok_vault::check(vault, read_data, &Default::default()).await.unwrap().errors
}

fn name_of(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_in_a_pack_is_named_by_check_and_restore() {
    let (dir, vault) = setup().await;
    assert!(errors(&vault, true).await.is_empty());
    let packs = files_under(&dir.path().join("vault/data"));
    let victim = &packs[0];
    flip(victim, 100);
    let errs = errors(&vault, true).await;
    assert!(errs.iter().any(|e| e.contains(&name_of(victim))), "{errs:?}");
    // The flipped chunk may be the root tree (restore fails) or a file's or folder's
    // (restore names it as lost); either way the pack is named.
    let msg = match restore_latest(&vault, &dir.path().join("out")).await {
        Err(e) => e.to_string(),
        Ok(summary) => summary.lost.join("\n"),
    };
    assert!(msg.contains(&name_of(victim)), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_in_an_index_file_is_named() {
    let (dir, vault) = setup().await;
    let idx = &files_under(&dir.path().join("vault/index"))[0];
    flip(idx, 50);
    let errs = errors(&vault, false).await;
    assert!(errs.iter().any(|e| e.contains(&format!("index/{}", name_of(idx)))), "{errs:?}");
    // Restore reads the pack headers instead, and says which index file it read around.
    let summary = restore_latest(&vault, &dir.path().join("out")).await.unwrap();
    assert!(summary.lost.is_empty(), "{:?}", summary.lost);
    assert!(summary.index_damage.iter().any(|d| d.contains(&name_of(idx))), "{:?}", summary.index_damage);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_in_a_snapshot_is_named() {
    let (dir, vault) = setup().await;
    let snap = &files_under(&dir.path().join("vault/snapshots"))[0];
    flip(snap, 30);
    let errs = errors(&vault, false).await;
    assert!(errs.iter().any(|e| e.contains(&format!("snapshots/{}", name_of(snap)))), "{errs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_in_a_tree_is_named_without_reading_data() {
    let (dir, vault) = setup().await;
    let index = zerok_vault::MasterIndex::load(&vault).await.unwrap();
    let (_, snap) = vault.find_snapshot("latest").await.unwrap();
    let loc = index.get(&snap.tree).unwrap();
    let pack = dir.path().join("vault").join(zerok_vault::format::names::pack(&loc.pack));
    flip(&pack, loc.entry.offset as usize + 30);
    let errs = errors(&vault, false).await;
    assert!(errs.iter().any(|e| e.contains("tree") && e.contains(&name_of(&pack))), "{errs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_pack_is_named() {
    let (dir, vault) = setup().await;
    let packs = files_under(&dir.path().join("vault/data"));
    std::fs::remove_file(&packs[0]).unwrap();
    let errs = errors(&vault, false).await;
    assert!(errs.iter().any(|e| e.contains("missing pack") && e.contains(&name_of(&packs[0]))), "{errs:?}");
}
