//! Fuzzes the init.toml parser: it must never panic, and whatever it accepts
//! must survive a serialise/parse round trip unchanged.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sigil_init::config::InitConfig;

fuzz_target!(|data: &[u8]| {
    if let Ok(cfg) = InitConfig::parse(data) {
        let text = cfg.to_toml().expect("accepted config serialises");
        let again = InitConfig::parse(text.as_bytes()).expect("serialised config parses");
        assert_eq!(cfg, again);
        let _ = cfg.effective(|_| None);
    }
});
