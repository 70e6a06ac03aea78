//! Per-stage throughput: chunking, hashing, compression, encryption, and the packer (one
//! core each).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use zerok_benches::{random_bytes, text_bytes};
use zerok_core::{Key32, MasterKey, aead};
use zerok_vault::{
    chunker::Chunker,
    format::{Kind, config::ChunkerParams, pack::PackWriter},
};

const LEN: usize = 32 << 20;

fn stages(c: &mut Criterion) {
    let keys = MasterKey::generate().derive();
    let p = ChunkerParams::default();
    for (name, data) in [("random", random_bytes(1, LEN)), ("text", text_bytes(1, LEN))] {
        let mut g = c.benchmark_group(format!("stage/{name}"));
        g.throughput(Throughput::Bytes(LEN as u64)).sample_size(10);
        g.bench_function("fastcdc", |b| {
            let mut chunker = Chunker::new(p, keys.chunker_seed());
            b.iter(|| {
                chunker.reset();
                let mut source = data.as_slice();
                std::iter::from_fn(|| chunker.next_chunk(&mut source).unwrap()).map(|c| c.len()).sum::<usize>()
            })
        });
        g.bench_function("keyed-blake3", |b| {
            b.iter(|| data.chunks(512 << 10).map(|c| keys.chunk_id(c).0[0]).fold(0u8, |a, b| a ^ b))
        });
        g.bench_function("zstd-3", |b| {
            let mut z = zstd::bulk::Compressor::new(3).unwrap();
            b.iter(|| data.chunks(512 << 10).map(|c| z.compress(c).unwrap().len()).sum::<usize>())
        });
        let key = Key32::generate();
        g.bench_function("xchacha20poly1305", |b| {
            b.iter(|| data.chunks(512 << 10).map(|c| aead::seal(&key, b"aad", c).len()).sum::<usize>())
        });
        // Sealed 512 KiB chunks gathered into 8 MiB packs: copy in, seal the header, name
        // the pack (unkeyed BLAKE3 over the whole pack).
        let sealed: Vec<Vec<u8>> = data.chunks(512 << 10).map(|c| aead::seal(&key, b"aad", c)).collect();
        let metadata = MasterKey::generate().derive();
        g.bench_function("packer", |b| {
            b.iter(|| {
                let mut packs = 0;
                let mut w = PackWriter::with_capacity(9 << 20);
                for (i, blob) in sealed.iter().enumerate() {
                    w.add(Kind::Data, keys.chunk_id(&(i as u64).to_le_bytes()), blob, blob.len() as u32);
                    if w.len() >= 8 << 20 {
                        packs += std::mem::replace(&mut w, PackWriter::with_capacity(9 << 20))
                            .finish(metadata.metadata())
                            .1
                            .len();
                    }
                }
                packs + w.finish(metadata.metadata()).1.len()
            })
        });
        g.finish();
    }
}

criterion_group!(benches, stages);
criterion_main!(benches);
