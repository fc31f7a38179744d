//! Fuzzes what the launcher reads from the CAS: the HTTP/1.1 response
//! framing (Content-Length and chunked) and the JSON answers. Nothing may
//! panic; accepted bodies stay within the limit.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sigil_client::attest::{AttestAccepted, AttestRefused};
use sigil_init::http::parse_complete;

fuzz_target!(|data: &[u8]| {
    let limit = 4096;
    if let Ok(Some(resp)) = parse_complete(data, limit) {
        assert!(resp.body.len() <= limit);
        let _ = serde_json::from_slice::<AttestAccepted>(&resp.body);
        let _ = serde_json::from_slice::<AttestRefused>(&resp.body);
    }
    let _ = serde_json::from_slice::<AttestAccepted>(data);
});
