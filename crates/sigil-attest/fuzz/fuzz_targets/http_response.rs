//! Arbitrary bytes as an HTTP response from a collateral service.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sigil_attest::http::parse_response(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = sigil_attest::http::percent_decode(s);
    }
});
