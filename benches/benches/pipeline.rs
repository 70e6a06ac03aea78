//! Whole-pipeline throughput: first backup of a 64 MiB folder (one large file and 16 KiB
//! files) into a fresh vault, on random and on compressible data, into memory (the CPU
//! pipeline alone) and into a local folder (synced); and restore from the local vault. The
//! runtime is shaped as the programs shape theirs (4 blocking threads), and each restore's
//! output is deleted before the next one, so restores do not queue behind the writeback of
//! the ones before them.

use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use zerok_benches::write_corpus;
use zerok_vault::{BackupOptions, InitOptions, Location, Progress, RestoreOptions, Vault};

const TOTAL: usize = 64 << 20;

fn pipeline(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().max_blocking_threads(4).enable_all().build().unwrap();
    for (name, compressible) in [("random", false), ("text", true)] {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        write_corpus(&src, TOTAL, compressible);
        let mut g = c.benchmark_group(format!("pipeline/{name}"));
        g.throughput(Throughput::Bytes(TOTAL as u64)).sample_size(10);
        let fresh_vault = |url: String| {
            rt.block_on(async {
                let backend = Location::parse(&url).unwrap().open(&url).unwrap();
                Vault::init(backend, InitOptions::default()).await.unwrap().vault
            })
        };
        let run_backup = |vault: &Vault| {
            rt.block_on(zerok_vault::backup(
                vault,
                BackupOptions::new(vec![src.clone()]),
                Arc::new(Progress::default()),
            ))
            .unwrap()
        };
        g.bench_function("backup-memory", |b| {
            b.iter_batched(|| fresh_vault("memory://".into()), |v| run_backup(&v), BatchSize::PerIteration)
        });
        let local = dir.path().join("vault");
        g.bench_function("backup-local", |b| {
            b.iter_batched(
                || {
                    let _ = std::fs::remove_dir_all(&local);
                    fresh_vault(local.display().to_string())
                },
                |v| run_backup(&v),
                BatchSize::PerIteration,
            )
        });
        let vault = fresh_vault(dir.path().join("restore-vault").display().to_string());
        run_backup(&vault);
        let snap = rt.block_on(vault.find_snapshot("latest")).unwrap().1;
        let out = dir.path().join("out");
        g.bench_function("restore-local", |b| {
            b.iter_batched(
                || {
                    let _ = std::fs::remove_dir_all(&out);
                    RestoreOptions::new(out.clone())
                },
                |opts| rt.block_on(zerok_vault::restore(&vault, &snap, &opts, Arc::new(Progress::default()))).unwrap(),
                BatchSize::PerIteration,
            )
        });
        g.finish();
    }
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
