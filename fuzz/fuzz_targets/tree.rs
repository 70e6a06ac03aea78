//! Feeds tree chunks: the input as a sealed chunk (`envelope::open` under the fixed
//! metadata key, bounded as `Vault::open_chunk` bounds it), and as the envelope plaintext
//! (flag ‖ body) sealed with that key; whatever opens is decoded as `Vault::load_tree` does
//! and its node names are checked as restore checks them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerok_fuzz::{ID, assert_stable, keys, seal_raw};
use zerok_vault::format::{Kind, aad, envelope, pack::MAX_BLOB_BYTES, tree::Tree};

fuzz_target!(|data: &[u8]| {
    let sealed = seal_raw(keys().metadata(), &aad(Kind::Tree, &ID), data);
    for bytes in [data, &sealed] {
        let Ok(body) = envelope::open(keys().metadata(), Kind::Tree, &ID, bytes, MAX_BLOB_BYTES as usize) else {
            continue;
        };
        if let Ok(tree) = rmp_serde::from_slice::<Tree>(&body) {
            for node in &tree.nodes {
                let _ = node.has_safe_name();
            }
            assert_stable(&tree);
        }
    }
});
