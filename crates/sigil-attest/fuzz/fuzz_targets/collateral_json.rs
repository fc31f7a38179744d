//! Arbitrary bytes as a collateral JSON file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = sigil_attest::collateral::Collateral::from_json(data) {
        let _ = c.next_update();
        let _ = c.to_json();
    }
});
