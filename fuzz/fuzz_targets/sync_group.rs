//! Feeds sync-group credentials (`sync/<id>`): the input as a sealed object (`open_msgpack`
//! under the fixed metadata key), and as the envelope plaintext (flag ‖ body) sealed with
//! that key; what opens is named (`SyncGroup::id`) and its roster log decoded as
//! `client::vault_sync` decodes it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerok_core::sync::roster::Entry;
use zerok_fuzz::{ID, assert_stable, keys, seal_raw};
use zerok_vault::format::{Kind, aad, open_msgpack, sync_group::SyncGroup};

fuzz_target!(|data: &[u8]| {
    let sealed = seal_raw(keys().metadata(), &aad(Kind::SyncGroup, &ID), data);
    for bytes in [data, &sealed] {
        if let Ok(group) = open_msgpack::<SyncGroup>(keys().metadata(), Kind::SyncGroup, &ID, "sync", bytes) {
            let _ = group.id(keys());
            if let Some(log) = &group.roster {
                let _ = rmp_serde::from_slice::<Vec<Entry>>(log);
            }
            assert_stable(&group);
        }
    }
});
