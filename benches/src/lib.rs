//! zerok-benches: inputs shared by the criterion benches in `benches/` (deterministic
//! random and compressible data, and source folders made of them). Run with
//! `cargo bench -p zerok-benches`.

use std::path::Path;

pub use zerok_testkit::random_bytes;

/// Deterministic compressible text (log-like lines; zstd-3 ratio about 0.2).
pub fn text_bytes(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "sync", "vault", "device", "cursor", "relay", "snapshot", "chunk", "pack", "error", "ok", "user", "session",
        "push", "pull", "index", "tree",
    ];
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 128);
    let mut line = 0u64;
    while out.len() < len {
        line += 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let w = |i: u64| WORDS[((x >> (i * 4)) & 15) as usize];
        out.extend_from_slice(
            format!(
                "2026-11-24T10:{:02}:{:02}Z {} {} {}={} {}\n",
                line % 60,
                x % 60,
                w(1),
                w(2),
                w(3),
                x % 10_000,
                w(4)
            )
            .as_bytes(),
        );
    }
    out.truncate(len);
    out
}

/// Writes a source folder of `total` bytes: one large file and many small ones.
pub fn write_corpus(root: &Path, total: usize, compressible: bool) {
    std::fs::create_dir_all(root.join("small")).expect("create corpus");
    let data = |seed, len| if compressible { text_bytes(seed, len) } else { random_bytes(seed, len) };
    let small = total / 4;
    std::fs::write(root.join("large.bin"), data(1, total - small)).expect("write corpus");
    for i in 0..small / (16 << 10) {
        std::fs::write(root.join(format!("small/{i:05}")), data(100 + i as u64, 16 << 10)).expect("write corpus");
    }
}
