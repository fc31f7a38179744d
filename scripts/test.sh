#!/usr/bin/env bash
# Runs every test of the project: unit, property, integration and end-to-end
# (real TLS on loopback, real redb files, real podman, real Helm rendering).
# Builds once; the test binaries reuse that build.
set -euo pipefail
cd "$(dirname "$0")/.."
# Real attestation evidence lives beside the project (see README).
export SIGIL_ATTESTATION_TESTDATA="${SIGIL_ATTESTATION_TESTDATA:-$(cd .. && pwd)/shared/testdata/attestation}"
cargo build --workspace --all-targets --locked
cargo test --workspace --locked -- --test-threads=2
