//! Feeds index files: the input as a sealed index (`open_msgpack` under the fixed metadata
//! key), and as the envelope plaintext (flag ‖ body) sealed with that key, so the zstd and
//! MessagePack decoders and their size bounds are reached; then each pack's entries are
//! checked as `MasterIndex::load` does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerok_fuzz::{ID, assert_stable, keys, seal_raw};
use zerok_vault::format::{Kind, aad, index::IndexFile, open_msgpack};

fuzz_target!(|data: &[u8]| {
    let sealed = seal_raw(keys().metadata(), &aad(Kind::Index, &ID), data);
    for bytes in [data, &sealed] {
        if let Ok(file) = open_msgpack::<IndexFile>(keys().metadata(), Kind::Index, &ID, "index", bytes) {
            for pack in &file.packs {
                let _ = pack.entries();
            }
            assert_stable(&file);
        }
    }
});
