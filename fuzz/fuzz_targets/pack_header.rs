//! Feeds pack files. Raw layer: the input is a whole pack, read as `check` and
//! `Vault::read_pack_header` do (trailer → `pack::header_len` → `pack::decode_header` under
//! the fixed metadata key), then each blob it lists is opened as `Vault::open_chunk` would.
//! Plaintext layer: the input is a header's plaintext, sealed with the fixed key, so the
//! entry parsing and bounds after decryption are reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerok_fuzz::{keys, seal_raw};
use zerok_vault::format::{
    Kind, aad, envelope,
    pack::{self, MAX_BLOB_BYTES},
};

/// Where the blobs end in the plaintext layer's imaginary pack.
const BLOBS_END: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    read_pack(data);
    let sealed = seal_raw(keys().metadata(), &aad(Kind::PackHeader, &[0; 32]), data);
    if let Ok(entries) = pack::decode_header(keys().metadata(), &sealed, BLOBS_END) {
        assert!(entries.iter().all(|e| e.offset as u64 + e.length as u64 <= BLOBS_END));
    }
});

fn read_pack(pack: &[u8]) {
    let n = pack.len();
    let Ok(header_len) = pack::header_len(n as u64, &pack[n.saturating_sub(4)..]) else { return };
    let start = n - 4 - header_len as usize;
    let Ok(entries) = pack::decode_header(keys().metadata(), &pack[start..n - 4], start as u64) else { return };
    for e in entries {
        let blob = &pack[e.offset as usize..e.offset as usize + e.length as usize];
        let key = if e.kind == Kind::Data { keys().data() } else { keys().metadata() };
        let _ = envelope::open(key, e.kind, &e.id.0, blob, e.raw_len.min(MAX_BLOB_BYTES) as usize);
    }
}
