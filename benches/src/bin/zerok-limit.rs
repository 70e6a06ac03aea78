//! zerok-limit: this machine's limit for a first backup of one folder, the figure a backup's
//! speed is judged against. It is the lower of
//! - the CPU limit: every stage of the pipeline (chunk, hash, seal — zstd then XChaCha20-
//!   Poly1305, as the backup's sealers do it — and pack) timed
//!   on one core over the folder's own bytes (best of three passes), the sum divided by the
//!   cores; reading the files is left out;
//! - the disk limit: the disk's synced write speed (256 MiB written and `fdatasync`ed, median
//!   of three) divided by the share of the input that is stored after compression.
//!
//! Prints one JSON object. Used by `benches/compare.sh`; run it alone as
//! `zerok-limit CORPUS [--disk-dir DIR] [--cores N]`.

use std::{
    collections::HashSet,
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use clap::Parser;
use zerok_core::{ChunkId, MasterKey};
use zerok_vault::{
    InitOptions,
    chunker::Chunker,
    format::{Kind, envelope::Sealer, pack::PackWriter},
};

/// Bytes written by each pass of the disk test.
const DISK_TEST_BYTES: usize = 256 << 20;

#[derive(Parser)]
struct Args {
    /// The folder whose first backup is measured.
    corpus: PathBuf,
    /// Where to run the disk test (the folder the vault would live in); default: the corpus's parent.
    #[arg(long)]
    disk_dir: Option<PathBuf>,
    /// Cores the pipeline may use (default: all).
    #[arg(long)]
    cores: Option<usize>,
}

/// Time spent in each stage over the whole corpus, and what it stored.
#[derive(Clone, Copy, Default)]
struct Pass {
    chunk: Duration,
    hash: Duration,
    seal: Duration,
    pack: Duration,
    input: u64,
    stored: u64,
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let kind = entry.file_type()?;
        if kind.is_dir() {
            files(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// One pass of every stage over `paths`, one core, chunks deduplicated as a backup does.
fn pass(paths: &[PathBuf]) -> std::io::Result<Pass> {
    let options = InitOptions::default();
    let keys = MasterKey::generate().derive();
    let mut chunker = Chunker::new(options.chunker, keys.chunker_seed());
    let mut sealer = Sealer::new(options.compression_level);
    let pack_bytes = options.pack_bytes as usize;
    let new_pack = || PackWriter::with_capacity(pack_bytes + options.chunker.max_bytes as usize);
    let mut pack = new_pack();
    let mut seen = HashSet::new();
    let mut p = Pass::default();
    let timed = |total: &mut Duration, start: Instant| *total += start.elapsed();
    for path in paths {
        let data = std::fs::read(path)?;
        p.input += data.len() as u64;
        let start = Instant::now();
        chunker.reset();
        let mut source = data.as_slice();
        let chunks: Vec<Vec<u8>> = std::iter::from_fn(|| chunker_next(&mut chunker, &mut source)).collect();
        timed(&mut p.chunk, start);
        let start = Instant::now();
        let ids: Vec<ChunkId> = chunks.iter().map(|c| keys.chunk_id(c)).collect();
        timed(&mut p.hash, start);
        for (chunk, id) in chunks.iter().zip(ids) {
            if !seen.insert(id) {
                continue;
            }
            let start = Instant::now();
            let sealed = sealer.seal(keys.data(), Kind::Data, &id.0, chunk);
            timed(&mut p.seal, start);
            let start = Instant::now();
            pack.add(Kind::Data, id, &sealed, chunk.len() as u32);
            if pack.len() >= pack_bytes {
                p.stored += std::mem::replace(&mut pack, new_pack()).finish(keys.metadata()).1.len() as u64;
            }
            timed(&mut p.pack, start);
        }
    }
    if !pack.is_empty() {
        p.stored += pack.finish(keys.metadata()).1.len() as u64;
    }
    Ok(p)
}

fn chunker_next(chunker: &mut Chunker, source: &mut &[u8]) -> Option<Vec<u8>> {
    chunker.next_chunk(source).expect("reading from memory cannot fail")
}

/// Synced write speed of the disk holding `dir`, in MB/s: the median of three passes, each
/// into a new file while the earlier ones are kept (fresh space, as a first backup writes).
fn disk_write_mb_s(dir: &Path) -> std::io::Result<(f64, Vec<f64>)> {
    let block: Vec<u8> = (0..8u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let paths: Vec<PathBuf> = (0..3).map(|i| dir.join(format!(".zerok-limit-disk-test-{i}"))).collect();
    let mut speeds = Vec::new();
    for path in &paths {
        let start = Instant::now();
        let mut file = std::fs::File::create(path)?;
        for _ in 0..DISK_TEST_BYTES / block.len() {
            file.write_all(&block)?;
        }
        file.sync_data()?;
        speeds.push(DISK_TEST_BYTES as f64 / 1e6 / start.elapsed().as_secs_f64());
    }
    for path in &paths {
        std::fs::remove_file(path)?;
    }
    let mut sorted = speeds.clone();
    sorted.sort_by(f64::total_cmp);
    Ok((sorted[1], speeds))
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let cores = args.cores.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let mut paths = Vec::new();
    files(&args.corpus, &mut paths)?;
    let passes = (0..3).map(|_| pass(&paths)).collect::<std::io::Result<Vec<_>>>()?;
    let best = |f: fn(&Pass) -> Duration| passes.iter().map(f).min().unwrap_or_default().as_secs_f64();
    let stages = [
        ("chunk", best(|p| p.chunk)),
        ("hash", best(|p| p.hash)),
        ("seal", best(|p| p.seal)),
        ("pack", best(|p| p.pack)),
    ];
    let (input, stored) = (passes[0].input as f64, passes[0].stored as f64);
    let cpu_seconds: f64 = stages.iter().map(|(_, s)| s).sum();
    let cpu_limit = input / 1e6 / (cpu_seconds / cores as f64);
    let disk_dir = args.disk_dir.unwrap_or_else(|| args.corpus.parent().unwrap_or(Path::new(".")).to_path_buf());
    let (disk_write, disk_passes) = disk_write_mb_s(&disk_dir)?;
    let ratio = stored / input.max(1.0);
    let disk_limit = disk_write / ratio;
    let stage_seconds: serde_json::Map<_, _> =
        stages.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v))).collect();
    let report = serde_json::json!({
        "corpus_mb": input / 1e6,
        "stored_mb": stored / 1e6,
        "stored_ratio": ratio,
        "cores": cores,
        "stage_seconds_one_core": stage_seconds,
        "cpu_limit_mb_s": cpu_limit,
        "disk_write_mb_s": disk_write,
        "disk_write_passes_mb_s": disk_passes,
        "disk_limit_mb_s": disk_limit,
        "limit_mb_s": cpu_limit.min(disk_limit),
        "bound": if cpu_limit <= disk_limit { "cpu" } else { "disk" },
    });
    println!("{report}");
    Ok(())
}
