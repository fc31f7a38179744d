//! Everything a registry or a user hands sigil-registry as text: manifests
//! and indexes (with and without a Content-Type), credentials files, image
//! references and platforms. None may panic; errors are one line.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sigil_registry::{parse_auth_config, parse_manifest, parse_reference, Limits, Platform};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_layers: 8,
        max_index_entries: 8,
        ..Limits::default()
    };
    let (sel, body) = data.split_first().map(|(a, b)| (*a, b)).unwrap_or((0, data));
    let ct = match sel % 5 {
        0 => None,
        1 => Some("application/vnd.oci.image.index.v1+json"),
        2 => Some("application/vnd.docker.distribution.manifest.v2+json"),
        3 => Some("application/json; charset=utf-8"),
        _ => Some("application/vnd.oci.image.manifest.v1+json"),
    };
    if let Err(e) = parse_manifest(body, ct, &limits) {
        assert!(!e.to_string().contains('\n'));
    }
    let host = ["docker.io", "127.0.0.1:5000", "h"][(sel % 3) as usize];
    if let Err(e) = parse_auth_config(body, host, "f") {
        assert!(!e.to_string().contains('\n'));
    }
    if let Ok(s) = std::str::from_utf8(body) {
        if let Err(e) = parse_reference(s) {
            assert!(!e.to_string().contains('\n'));
        }
        let _ = s.parse::<Platform>();
    }
});
