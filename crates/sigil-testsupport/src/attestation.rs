//! The real attestation evidence of the shared test data
//! (`SIGIL_ATTESTATION_TESTDATA`, else `../shared/testdata/attestation`
//! beside the repository).

use std::path::PathBuf;

/// The test-data folder. Fails the test with a clear message when it is
/// missing: the tests that use it must not skip silently.
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

/// The path of `rel` inside the test data.
pub fn path(rel: &str) -> PathBuf {
    testdata().join(rel)
}

/// The bytes of `rel` inside the test data.
pub fn read(rel: &str) -> Vec<u8> {
    let p = path(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A quote or report: `*.hex` / `*_hex.txt` files are hex text (white
/// space and a `0x` prefix allowed), others raw bytes.
pub fn read_evidence(rel: &str) -> Vec<u8> {
    let b = read(rel);
    if rel.ends_with(".hex") || rel.ends_with("_hex.txt") {
        let s: String = String::from_utf8(b)
            .unwrap_or_else(|e| panic!("{rel}: not text: {e}"))
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        hex::decode(s.strip_prefix("0x").unwrap_or(&s))
            .unwrap_or_else(|e| panic!("{rel}: not hex: {e}"))
    } else {
        b
    }
}

/// The rows of a TSV file of the test data (header line skipped, blank
/// lines ignored), split at tabs.
pub fn tsv(name: &str) -> Vec<Vec<String>> {
    let b = read(name);
    let text = String::from_utf8(b).unwrap_or_else(|e| panic!("{name}: not text: {e}"));
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}
