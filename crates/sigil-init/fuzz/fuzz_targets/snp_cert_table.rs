//! Fuzzes the SEV-SNP certificate table parser (configfs-tsm `auxblob`):
//! no panic, and a returned certificate lies inside the input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cert) = sigil_init::evidence::snp_vcek_from_cert_table(data) {
        assert!(!cert.is_empty() && cert.len() <= data.len());
    }
});
