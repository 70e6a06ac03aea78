//! Feeds recovery-key text to `RecoveryKey::parse`, as a person types it at `restore` or
//! `unlock`; a key that parses must display as text that parses to the same key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerok_core::RecoveryKey;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(key) = RecoveryKey::parse(text) {
        let again = RecoveryKey::parse(&key.display()).expect("a displayed key parses");
        assert_eq!(again.secret(), key.secret());
    }
});
