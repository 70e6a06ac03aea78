//! Feeds key slots (`keys/<id>`): the input as a stored slot (`KeySlot::decode`), opened
//! with the fixed secret when its KDF is HKDF (an Argon2id slot costs at least 19 MiB and
//! two passes to open, far too slow per input; its parameters are bounded by
//! `Kdf::derive_kek`); and as the plaintext of an HKDF slot's `sealed` field, so the master
//! key length check after decryption is reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerok_core::{Kdf, SlotId};
use zerok_fuzz::{ID, SLOT_SECRET, assert_stable, seal_raw};
use zerok_vault::{
    SlotKind,
    format::{Kind, aad, keyslot::KeySlot},
};

fuzz_target!(|data: &[u8]| {
    let id = SlotId(ID);
    if let Ok(slot) = KeySlot::decode(&id, data) {
        if slot.kdf == Kdf::HkdfSha256 {
            let _ = slot.open(&id, &SLOT_SECRET);
        }
        assert_stable(&slot);
    }
    let salt = [0; 16];
    let kek = Kdf::HkdfSha256.derive_kek(&SLOT_SECRET, &salt).expect("HKDF never fails");
    let sealed = seal_raw(&kek, &aad(Kind::KeySlot, &id.0), data);
    let slot = KeySlot {
        version: 1,
        kind: SlotKind::Recovery,
        kdf: Kdf::HkdfSha256,
        salt,
        label: String::new(),
        created: 0,
        sealed,
    };
    assert_eq!(slot.open(&id, &SLOT_SECRET).is_ok(), data.len() == 32);
});
