//! Damage is repairable: with any one index file flipped or deleted, restore still brings
//! back every byte (from pack headers) and `repair index` makes `check` clean again; with a
//! pack gone, restore brings back everything else and names what is lost, and `repair
//! snapshots` leaves snapshots that restore without loss.

mod common;

use std::{path::Path, sync::Arc};

use common::*;
use zerok_vault::{Progress, RestoreOptions, Secret, Vault, format::names};

fn files_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    out.sort();
    out
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let dest = to.join(path.file_name().unwrap());
        match path.is_dir() {
            true => copy_tree(&path, &dest),
            false => drop(std::fs::copy(&path, &dest).unwrap()),
        }
    }
}

/// A vault of three backups of a changing tree (so several index files), its source and
/// its recovery key.
async fn setup(dir: &Path) -> (zerok_core::RecoveryKey, std::path::PathBuf) {
    let created = Vault::init(local_backend(&dir.join("vault")), small_opts()).await.unwrap();
    let src = dir.join("src");
    make_tree(&src);
    for round in 0..3u64 {
        std::fs::write(src.join(format!("round{round}.bin")), noise(100 + round, 1500 << 10)).unwrap();
        backup(&created.vault, &[&src]).await;
    }
    (created.recovery_key, src)
}

async fn open(path: &Path, key: &zerok_core::RecoveryKey) -> Vault {
    Vault::open(local_backend(path), Secret::Recovery(key)).await.unwrap()
}

async fn errors(vault: &Vault) -> Vec<String> {
    zerok_vault::check(vault, true, &Progress::default()).await.unwrap().errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_index_file_flipped_or_deleted_restores_and_repairs_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (key, src) = setup(dir.path()).await;
    let want = describe(&src);
    let index_files = files_in(&dir.path().join("vault/index"));
    assert!(index_files.len() >= 3, "{} index files", index_files.len());
    for (n, victim) in index_files.iter().enumerate() {
        let copy = dir.path().join(format!("copy{n}"));
        copy_tree(&dir.path().join("vault"), &copy);
        let victim = copy.join("index").join(victim.file_name().unwrap());
        let deleted = n % 2 == 1;
        match deleted {
            true => std::fs::remove_file(&victim).unwrap(),
            false => {
                let mut bytes = std::fs::read(&victim).unwrap();
                let at = bytes.len() / 2;
                bytes[at] ^= 0x20;
                std::fs::write(&victim, bytes).unwrap();
            }
        }
        let vault = open(&copy, &key).await;
        let errs = errors(&vault).await;
        assert!(!errs.is_empty(), "check must notice the damaged index file {}", victim.display());

        // Restore reads around the damage, from the pack headers.
        let out = dir.path().join(format!("out{n}"));
        let summary = restore_latest(&vault, &out).await.unwrap();
        assert!(summary.lost.is_empty(), "{:?}", summary.lost);
        assert_eq!(describe(&out), want, "restore around index file {n}");
        let name = victim.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(summary.index_damage.iter().any(|d| d.contains(&name)), !deleted, "{:?}", summary.index_damage);

        let report = zerok_vault::repair_index(&vault, false, &Progress::default()).await.unwrap();
        assert!(report.packs_read >= 1 && report.damaged.len() == usize::from(!deleted), "{report:?}");
        assert_eq!(errors(&vault).await, Vec::<String>::new(), "check after repair index");
        let again = dir.path().join(format!("again{n}"));
        let summary = restore_latest(&vault, &again).await.unwrap();
        assert!(summary.lost.is_empty() && summary.index_damage.is_empty(), "{summary:?}");
        assert_eq!(describe(&again), want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_pack_costs_only_its_files_and_repair_snapshots_drops_them() {
    let dir = tempfile::tempdir().unwrap();
    let (key, src) = setup(dir.path()).await;
    let vault = open(&dir.path().join("vault"), &key).await;
    // A pack of round2.bin (written by the last backup only) that holds no tree: the
    // trees, sealed last, land in its last pack.
    let index = zerok_vault::MasterIndex::load(&vault).await.unwrap();
    let (_, snap) = vault.find_snapshot("latest").await.unwrap();
    let root = vault.load_tree(&index, &snap.tree).await.unwrap();
    let top = vault.load_tree(&index, &root.nodes[0].subtree.unwrap()).await.unwrap();
    let node = top.nodes.iter().find(|n| n.name == b"round2.bin").unwrap();
    let pack = node
        .content
        .iter()
        .map(|c| index.get(c).unwrap().pack)
        .find(|p| index.packs[p].iter().all(|e| e.kind == zerok_vault::format::Kind::Data))
        .expect("a pack of file data only");
    let lost_chunks: Vec<_> = index.packs[&pack].iter().map(|e| e.id).collect();
    std::fs::remove_file(dir.path().join("vault").join(names::pack(&pack))).unwrap();

    // The target already holds a copy of its own of the file whose data is lost.
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("round2.bin"), b"the user's own copy").unwrap();
    let summary = restore_latest(&vault, &out).await.unwrap();
    assert!(!summary.lost.is_empty(), "restore must name what is lost");
    assert!(summary.lost.iter().any(|l| l.starts_with("round2.bin: ")), "{:?}", summary.lost);
    assert_eq!(std::fs::read(out.join("round2.bin")).unwrap(), b"the user's own copy", "left as it was");
    std::fs::remove_file(out.join("round2.bin")).unwrap();
    let mut want = describe(&src);
    let restored = describe(&out);
    // Everything not named as lost is restored bit-exact.
    for lost in &summary.lost {
        let path = lost.split(": ").next().unwrap();
        assert!(want.remove(Path::new(path)).is_some(), "{lost}");
    }
    assert_eq!(restored, want);

    let dry = zerok_vault::repair_snapshots(&vault, true, true, &Progress::default()).await.unwrap();
    assert_eq!(dry.repaired.len(), 1, "only the last snapshot used the pack: {dry:?}");
    assert_eq!(vault.snapshots().await.unwrap().len(), 3, "a dry run changes nothing");
    let report = zerok_vault::repair_snapshots(&vault, false, true, &Progress::default()).await.unwrap();
    assert_eq!(report.repaired.len(), 1);
    assert!(report.lost.iter().any(|l| l.contains("round2.bin")), "{report:?}");
    let (id, repaired) = vault.find_snapshot("latest").await.unwrap();
    assert_eq!(id, report.repaired[0].1);
    assert!(repaired.tags.iter().any(|t| t == zerok_vault::REPAIRED_TAG));
    // check still names the missing pack's index entry until the index is repaired.
    zerok_vault::repair_index(&vault, false, &Progress::default()).await.unwrap();
    assert_eq!(errors(&vault).await, Vec::<String>::new());
    let index = zerok_vault::MasterIndex::load(&vault).await.unwrap();
    assert!(lost_chunks.iter().all(|c| !index.contains(c)));
    let again = dir.path().join("again");
    let opts = RestoreOptions::new(again.clone());
    let summary = zerok_vault::restore(&vault, &repaired, &opts, Arc::new(Progress::default())).await.unwrap();
    assert!(summary.lost.is_empty(), "{:?}", summary.lost);
    assert_eq!(describe(&again), want);
}
