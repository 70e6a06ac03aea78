//! Small files share bundles (FORMAT.md §4.3.1) and keep their own chunk ids: they restore
//! bit for bit, deduplicate, survive prune while any of them is kept, and a bundle that was
//! damaged or moved by the store is named, never restored as someone else's bytes.

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use common::*;
use zerok_core::PackId;
use zerok_vault::{MasterIndex, Progress, Retention, Vault, format::pack::BlobEntry};

/// `count` files of `size` incompressible bytes each in `root/small`.
fn small_files(root: &Path, count: u64, size: usize) {
    std::fs::create_dir_all(root.join("small")).unwrap();
    for i in 0..count {
        std::fs::write(root.join(format!("small/{i:04}.bin")), noise(1000 + i, size)).unwrap();
    }
}

/// A vault holding one backup of `count` small files of `size` bytes.
async fn backed_up_small_files(count: u64, size: usize) -> (tempfile::TempDir, Vault, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let vault = new_vault(local_backend(&dir.path().join("vault"))).await;
    let src = dir.path().join("src");
    small_files(&src, count, size);
    backup(&vault, &[&src]).await;
    (dir, vault, src)
}

/// Every bundle in the vault: (pack, offset) → its members.
async fn bundles(vault: &Vault) -> BTreeMap<(PackId, u32), Vec<BlobEntry>> {
    let index = MasterIndex::load(vault).await.unwrap();
    let mut out: BTreeMap<(PackId, u32), Vec<BlobEntry>> = BTreeMap::new();
    for (pack, entries) in &index.packs {
        for e in entries.iter().filter(|e| e.within.is_some()) {
            out.entry((*pack, e.offset)).or_default().push(*e);
        }
    }
    out
}

fn pack_path(dir: &Path, pack: &PackId) -> PathBuf {
    dir.join("vault").join(zerok_vault::format::names::pack(pack))
}

async fn check_errors(vault: &Vault) -> Vec<String> {
    zerok_vault::check(vault, true, &Progress::default()).await.unwrap().errors
}

/// Every source file restored is bit-exact, and every one that is not is named as lost.
fn no_wrong_bytes(src: &Path, out: &Path, lost: &[String]) -> usize {
    let (want, got) = (describe(src), describe(out));
    let mut wrong = 0;
    for (path, desc) in &want {
        if got.get(path) != Some(desc) {
            wrong += 1;
            let name = path.to_string_lossy();
            assert!(lost.iter().any(|l| l.contains(&*name)), "{name} restored wrong and not named: {lost:?}");
        }
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_files_share_bundles_restore_bit_exact_and_dedup() {
    let dir = tempfile::tempdir().unwrap();
    let vault = new_vault(local_backend(&dir.path().join("vault"))).await;
    let src = dir.path().join("src");
    small_files(&src, 400, 3000);
    for i in 0..20 {
        std::fs::write(src.join(format!("text-{i}.txt")), format!("line {i} of a small text file\n").repeat(40))
            .unwrap();
    }
    std::fs::write(src.join("big.bin"), noise(7, 1 << 20)).unwrap();
    backup(&vault, &[&src]).await;

    let found = bundles(&vault).await;
    let members: usize = found.values().map(Vec::len).sum();
    assert!(members >= 420, "every small file lies in a bundle: {members}");
    assert!(found.len() >= 3 && found.len() <= 10, "~87 files a bundle, got {} bundles", found.len());
    assert!(check_errors(&vault).await.is_empty());
    let out = dir.path().join("out");
    let summary = restore_latest(&vault, &out).await.unwrap();
    assert!(summary.lost.is_empty(), "{:?}", summary.lost);
    assert!(describe(&out) == describe(&src), "restored tree differs");

    // A copy of a bundled file under another name, and a file whose bytes another file
    // already had: no new data chunk, per-file dedup kept.
    std::fs::copy(src.join("small/0007.bin"), src.join("copy-of-7.bin")).unwrap();
    std::fs::write(src.join("also-text-3.txt"), std::fs::read(src.join("text-3.txt")).unwrap()).unwrap();
    let before = MasterIndex::load(&vault).await.unwrap().len();
    let second = backup(&vault, &[&src]).await;
    let after = MasterIndex::load(&vault).await.unwrap().len();
    assert_eq!(second.files_new, 2);
    assert!(after - before <= second.dirs as usize, "only trees are new: {before} → {after}");
    assert!(second.bytes_added < 8 << 10, "added {} bytes for two known files", second.bytes_added);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_a_bundle_is_named_and_its_files_reported_lost() {
    let (dir, vault, src) = backed_up_small_files(200, 3000).await;
    let found = bundles(&vault).await;
    let ((pack, offset), members) = found.iter().nth(1).unwrap();
    let path = pack_path(dir.path(), pack);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[*offset as usize + members[0].length as usize / 2] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();

    let errs = check_errors(&vault).await;
    let pack_name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(errs.iter().any(|e| e.contains(&pack_name)), "{errs:?}");
    // Restore reads the bundle alone and names each of its chunks.
    let out = dir.path().join("out");
    let summary = restore_latest(&vault, &out).await.unwrap();
    assert_eq!(summary.lost.len(), members.len(), "{:?}", summary.lost);
    for m in members {
        let named = summary.lost.iter().any(|l| l.contains(&pack_name) && l.contains(&m.id.short()));
        assert!(named, "chunk {} of the damaged bundle not named: {:?}", m.id.short(), summary.lost);
    }
    assert_eq!(no_wrong_bytes(&src, &out, &summary.lost), members.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_swapped_by_the_store_are_refused() {
    // Equal files make equal bundles, which a store can swap without changing any length.
    let (dir, vault, src) = backed_up_small_files(200, 4000).await;
    let found = bundles(&vault).await;
    let mut by_pack: BTreeMap<PackId, Vec<(u32, u32, usize)>> = BTreeMap::new();
    for ((pack, offset), members) in &found {
        by_pack.entry(*pack).or_default().push((*offset, members[0].length, members.len()));
    }
    let (pack, pair) = by_pack
        .iter()
        .find_map(|(pack, b)| b.windows(2).find(|w| w[0].1 == w[1].1).map(|w| (*pack, [w[0], w[1]])))
        .expect("two bundles of one length in one pack");
    let path = pack_path(dir.path(), &pack);
    let mut bytes = std::fs::read(&path).unwrap();
    let (a, b, len) = (pair[0].0 as usize, pair[1].0 as usize, pair[0].1 as usize);
    let first = bytes[a..a + len].to_vec();
    bytes.copy_within(b..b + len, a);
    bytes[b..b + len].copy_from_slice(&first);
    std::fs::write(&path, bytes).unwrap();

    let errs = check_errors(&vault).await;
    assert!(errs.iter().any(|e| e.contains(&pack.to_string())), "{errs:?}");
    // Each bundle still opens (its associated data names no chunk), but its members' ids
    // do not match what the header says lies there: restore names them all.
    let out = dir.path().join("out");
    let summary = restore_latest(&vault, &out).await.unwrap();
    let moved = pair[0].2 + pair[1].2;
    assert_eq!(summary.lost.len(), moved, "{:?}", summary.lost);
    assert!(summary.lost.iter().all(|l| l.contains("does not match its chunk id")), "{:?}", summary.lost);
    assert_eq!(no_wrong_bytes(&src, &out, &summary.lost), moved);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_keeps_a_bundle_while_any_of_its_files_is_kept() {
    let (dir, vault, src) = backed_up_small_files(300, 4000).await;
    let first = bundles(&vault).await;
    // The first 70 files go (the first bundle and some), then all but every fifth.
    for i in (0..300).filter(|i| *i < 70 || i % 5 != 0) {
        std::fs::remove_file(src.join(format!("small/{i:04}.bin"))).unwrap();
    }
    backup(&vault, &[&src]).await;
    let kept: BTreeSet<_> = (70..300).filter(|i| i % 5 == 0).collect();
    zerok_vault::forget(&vault, &Retention { keep_last: 1, ..Default::default() }).await.unwrap();
    let report = zerok_vault::prune(&vault, &Progress::default()).await.unwrap();
    assert!(report.packs_repacked >= 1, "{report:?}");

    assert!(check_errors(&vault).await.is_empty());
    let out = dir.path().join("out");
    let summary = restore_latest(&vault, &out).await.unwrap();
    assert!(summary.lost.is_empty(), "{:?}", summary.lost);
    assert!(describe(&out) == describe(&src), "the kept files restore whole");
    assert_eq!(std::fs::read_dir(out.join("small")).unwrap().count(), kept.len());
    // Bundles with a kept file survive whole; the wholly unneeded ones are gone.
    let after = bundles(&vault).await;
    let members: usize = after.values().map(Vec::len).sum();
    assert!(members >= kept.len(), "{members}");
    assert!(after.len() < first.len(), "{} bundles before, {} after", first.len(), after.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_index_file_gone_repair_names_bundle_members_from_their_bytes() {
    // Pack headers list a bundle by its members' lengths only (FORMAT.md §4.3, version 3):
    // rebuilding the index opens each bundle and names its pieces by hashing them.
    let (dir, vault, src) = backed_up_small_files(300, 3000).await;
    let before = bundles(&vault).await;
    assert!(before.len() >= 2, "{} bundles", before.len());
    let index_dir = dir.path().join("vault/index");
    for file in std::fs::read_dir(&index_dir).unwrap() {
        std::fs::remove_file(file.unwrap().path()).unwrap();
    }
    // A flipped byte in one bundle: its members cannot be named, the others still are.
    let ((pack, offset), damaged) = before.iter().next().unwrap();
    let path = pack_path(dir.path(), pack);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[*offset as usize + damaged[0].length as usize / 2] ^= 0x08;
    std::fs::write(&path, bytes).unwrap();

    let report = zerok_vault::repair_index(&vault, false, &Progress::default()).await.unwrap();
    // The damage is named: the pack no longer matches its name, its bundle does not open.
    let pack_name = path.file_name().unwrap().to_string_lossy().into_owned();
    let bundle = format!("bundle at byte {offset}");
    assert!(report.damaged.iter().any(|d| d.contains(&pack_name) && d.contains(&bundle)), "{:?}", report.damaged);
    assert!(report.damaged.iter().any(|d| d.contains("does not match its name")), "{:?}", report.damaged);
    let after = bundles(&vault).await;
    let mut expected = before.clone();
    expected.remove(&(*pack, *offset));
    assert_eq!(after, expected, "every sound bundle's members named as the backup listed them");
    let out = dir.path().join("out");
    let summary = restore_latest(&vault, &out).await.unwrap();
    assert_eq!(summary.lost.len(), damaged.len(), "{:?}", summary.lost);
    assert_eq!(no_wrong_bytes(&src, &out, &summary.lost), damaged.len());
}
