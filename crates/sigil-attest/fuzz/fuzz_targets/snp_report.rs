//! Arbitrary bytes as an SNP report and as its certificates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_attest::snp::{parse_report, SnpVerifier};
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static V: OnceLock<SnpVerifier> = OnceLock::new();
    let v = V.get_or_init(|| SnpVerifier::new().expect("built-in certificates"));
    let _ = parse_report(data);
    let (report, certs) = if data.len() > sigil_attest::snp::REPORT_LEN {
        data.split_at(sigil_attest::snp::REPORT_LEN)
    } else {
        (data, data)
    };
    let _ = v.verify_report(report, Some(certs), 1_750_000_000);
});
