//! Feeds the plaintext `config`: the input as a whole config (`check_version`,
//! `peek_vault_id`, `Config::decode` under the fixed keys), and as a config body wrapped in
//! a valid header and MAC, so `Config::decode` reaches its MessagePack decoder; a config
//! that decodes must encode back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerok_fuzz::keys;
use zerok_vault::format::{
    FORMAT_VERSION,
    config::{self, Config},
};

fuzz_target!(|data: &[u8]| {
    let _ = config::check_version(data);
    let _ = config::peek_vault_id(data);
    let _ = Config::decode(data, keys());
    let mut signed =
        [&b"ZEROKCFG"[..], &FORMAT_VERSION.to_le_bytes(), &(data.len() as u32).to_le_bytes(), data].concat();
    signed.extend_from_slice(&keys().config_mac(&signed));
    if let Ok(cfg) = Config::decode(&signed, keys()) {
        assert_eq!(config::peek_vault_id(&signed).ok(), Some(cfg.vault_id));
        assert_eq!(Config::decode(&cfg.encode(keys()), keys()).ok(), Some(cfg));
    }
});
