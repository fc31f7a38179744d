//! What Sigil's tests, benches and examples share: finding the tools they
//! drive (podman, Helm, kubernetes-validate) and the attestation test data,
//! running real programs and checking what they printed, free loopback
//! ports, a tiny HTTP server on loopback, temporary directories.
//!
//! This crate is a dev-dependency only (`publish = false`). Its functions
//! are test helpers: they panic with a message that names what is wrong
//! instead of returning errors, because a panic is how a test fails.
//!
//! Missing tools follow one rule ([`tools::require`]): under CI
//! (`CI=true`, set by the CI runner) a missing tool fails the test; on a
//! developer machine the test says it is skipping and returns.

pub mod attestation;
pub mod cli;
pub mod net;
pub mod podman;
pub mod tools;

use std::path::Path;

/// A fresh temporary directory, removed when dropped.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("create a temporary directory")
}

/// The names of the entries of `dir`, sorted (to compare what a command
/// left behind).
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| {
            e.unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}
