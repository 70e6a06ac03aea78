//! Whole-pipeline throughput: first backup of a 64 MiB folder (one large file and 16 KiB
//! files) into a fresh vault, on random and on compressible data, into memory (the CPU
//! pipeline alone) and into a local folder (fsynced); and restore from the local vault.

use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use zerok_benches::write_corpus;
use zerok_vault::{BackupOptions, InitOptions, Location, Progress, RestoreOptions, Vault};

const TOTAL: usize = 64 << 20;

fn pipeline(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
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
        let mut n = 0;
        g.bench_function("backup-local", |b| {
            b.iter_batched(
                || {
                    n += 1;
                    fresh_vault(dir.path().join(format!("vault{n}")).display().to_string())
                },
                |v| run_backup(&v),
                BatchSize::PerIteration,
            )
        });
        let vault = fresh_vault(dir.path().join("restore-vault").display().to_string());
        run_backup(&vault);
        let snap = rt.block_on(vault.find_snapshot("latest")).unwrap().1;
        let mut m = 0;
        g.bench_function("restore-local", |b| {
            b.iter(|| {
                m += 1;
                let opts = RestoreOptions::new(dir.path().join(format!("out{m}")));
                rt.block_on(zerok_vault::restore(&vault, &snap, &opts, Arc::new(Progress::default()))).unwrap()
            })
        });
        g.finish();
    }
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
