//! Feeds pack files. Raw layer: the input is a whole pack, read as `check` and
//! `Vault::read_pack_header` do (trailer → `pack::header_len` → `pack::decode_header` under
//! the fixed metadata key), then each chunk it lists is opened as `Vault::open_with` would:
//! a lone chunk alone, a bundle once (a version-2 one sliced by `within`, a version-3 one
//! named from its layout by `Layout::name`).
//! Plaintext layer: the input is a header's plaintext, sealed with the fixed key, so the
//! entry parsing and bounds after decryption are reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerok_fuzz::{keys, seal_raw};
use zerok_vault::format::{
    Kind, aad, envelope,
    pack::{self, MAX_BLOB_BYTES, MAX_BUNDLE_BYTES},
};

/// Where the blobs end in the plaintext layer's imaginary pack.
const BLOBS_END: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    read_pack(data);
    let sealed = seal_raw(keys().metadata(), &aad(Kind::PackHeader, &[0; 32]), data);
    if let Ok(header) = pack::decode_header(keys().metadata(), &sealed, BLOBS_END) {
        assert!(header.entries.iter().all(|e| e.offset as u64 + e.length as u64 <= BLOBS_END));
        let bundle_ends = header.bundles.iter().map(|b| (b.offset as u64 + b.length as u64, b.lens.iter().sum::<u32>()));
        assert!(bundle_ends.clone().all(|(end, body)| end <= BLOBS_END && body <= MAX_BUNDLE_BYTES));
    }
});

fn read_pack(pack: &[u8]) {
    let n = pack.len();
    let Ok(header_len) = pack::header_len(n as u64, &pack[n.saturating_sub(4)..]) else { return };
    let start = n - 4 - header_len as usize;
    let Ok(header) = pack::decode_header(keys().metadata(), &pack[start..n - 4], start as u64) else { return };
    for e in &header.entries {
        let blob = &pack[e.offset as usize..e.offset as usize + e.length as usize];
        match e.within {
            None => {
                let key = if e.kind == Kind::Data { keys().data() } else { keys().metadata() };
                let _ = envelope::open(key, e.kind, &e.id.0, blob, e.raw_len.min(MAX_BLOB_BYTES) as usize);
            }
            Some(within) => {
                if let Ok(body) = open_bundle(blob) {
                    let _ = body.get(within as usize..within as usize + e.raw_len as usize);
                }
            }
        }
    }
    for layout in &header.bundles {
        let blob = &pack[layout.offset as usize..layout.offset as usize + layout.length as usize];
        if let Ok(body) = open_bundle(blob) {
            let _ = layout.name(&body, |piece| keys().chunk_id(piece));
        }
    }
}

fn open_bundle(blob: &[u8]) -> Result<Vec<u8>, envelope::OpenError> {
    envelope::open(keys().data(), Kind::Bundle, &[0; 32], blob, MAX_BUNDLE_BYTES as usize)
}
