//! Everything the CAS and its clients parse from the other side of a
//! connection, apart from session YAML (fuzzed in sigil-session): URL path
//! escapes, fingerprints, JSON answers, audit pages and chain verification.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = sigil_cas::api::percent_decode(s);
        let _ = s.parse::<sigil_client::Fingerprint>();
        let _ = sigil_client::client::parse_address(s);
    }
    let _ = serde_json::from_slice::<sigil_client::ErrorBody>(data);
    let _ = serde_json::from_slice::<sigil_client::SessionInfo>(data);
    let _ = serde_json::from_slice::<sigil_client::ResolvedService>(data);
    if let Ok(page) = serde_json::from_slice::<sigil_client::AuditPage>(data) {
        let _ = sigil_client::audit::verify_chain(&page.entries, 0, [0; 32]);
    }
});
