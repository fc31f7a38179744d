//! Shared helpers for tests that use the real attestation test data.
#![allow(dead_code)]

use std::path::PathBuf;

/// The shared test-data folder. Panics (fails the test) with a clear
/// message when it is missing: these tests must not skip silently.
pub fn testdata() -> PathBuf {
    let p = std::env::var_os("SIGIL_ATTESTATION_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/attestation")
        });
    assert!(
        p.join("EXPECTED_DCAP.tsv").is_file(),
        "real attestation test data not found at {} (set SIGIL_ATTESTATION_TESTDATA to the \
         shared/testdata/attestation folder)",
        p.display()
    );
    p
}

/// Reads a quote or report: `*.hex` / `*_hex.txt` are hex text, others raw.
pub fn read_evidence(rel: &str) -> Vec<u8> {
    let p = testdata().join(rel);
    let b = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    if rel.ends_with(".hex") || rel.ends_with("_hex.txt") {
        let s: String = String::from_utf8(b)
            .unwrap()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let s = s.strip_prefix("0x").unwrap_or(&s).to_string();
        hex::decode(s).unwrap()
    } else {
        b
    }
}

/// Rows of a TSV file (header skipped).
pub fn tsv(name: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(testdata().join(name)).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}
