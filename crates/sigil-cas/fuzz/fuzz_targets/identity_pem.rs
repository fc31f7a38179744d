//! Client identity files (key and certificate PEM) and DER certificates.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sigil_client::Fingerprint::of_cert_der(data);
    if let Ok(s) = std::str::from_utf8(data) {
        if s.is_char_boundary(s.len() / 2) {
            let (a, b) = s.split_at(s.len() / 2);
            let _ = sigil_client::Identity::from_pem(a, b);
        }
    }
});
