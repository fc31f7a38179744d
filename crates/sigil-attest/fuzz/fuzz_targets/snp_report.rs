//! Arbitrary bytes as an SNP report and as its certificates. The input is
//! cut or zero-padded to the report size so that parsing goes past the
//! length check; the rest is offered as certificates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_attest::snp::{parse_report, SnpVerifier, REPORT_LEN};
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static V: OnceLock<SnpVerifier> = OnceLock::new();
    let v = V.get_or_init(|| SnpVerifier::new().expect("built-in certificates"));
    let _ = parse_report(data);
    let mut report = data[..data.len().min(REPORT_LEN)].to_vec();
    report.resize(REPORT_LEN, 0);
    let certs = data.get(REPORT_LEN..).unwrap_or(&[]);
    let _ = v.verify_report(&report, Some(certs), 1_750_000_000);
    let _ = v.verify_report(&report, None, 1_750_000_000);
});
