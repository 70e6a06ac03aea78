//! Feeds snapshot manifests: the input as a sealed snapshot (`open_msgpack` under the fixed
//! metadata key), and as the envelope plaintext (flag ‖ body) sealed with that key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerok_fuzz::{ID, assert_stable, keys, seal_raw};
use zerok_vault::format::{Kind, aad, open_msgpack, snapshot::Snapshot};

fuzz_target!(|data: &[u8]| {
    let sealed = seal_raw(keys().metadata(), &aad(Kind::Snapshot, &ID), data);
    for bytes in [data, &sealed] {
        if let Ok(snap) = open_msgpack::<Snapshot>(keys().metadata(), Kind::Snapshot, &ID, "snapshot", bytes) {
            assert_stable(&snap);
        }
    }
});
