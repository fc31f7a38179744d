#!/usr/bin/env bash
# Runs every test of the project: unit, property, integration and end-to-end
# (real TLS on loopback, real redb files, real attestation evidence, real
# podman, real Helm rendering). Builds once; the test binaries reuse it.
set -euo pipefail
cd "$(dirname "$0")/.."
# Real attestation evidence lives beside the project (see README).
export SIGIL_ATTESTATION_TESTDATA="${SIGIL_ATTESTATION_TESTDATA:-$(cd .. && pwd)/shared/testdata/attestation}"
# The static launcher that `sigil convert` installs into images.
SIGIL_INIT_BINARY="$(CARGO_LOCKED=1 bash scripts/build-launcher.sh)"
export SIGIL_INIT_BINARY
# The static sigil for the CAS image test (crates/sigil/tests/cas_chart.rs);
# shares the launcher's target directory, so its dependencies are reused.
SIGIL_BINARY_STATIC="$(CARGO_LOCKED=1 bash scripts/build-cas-image.sh --binary-only)"
export SIGIL_BINARY_STATIC
cargo build --workspace --all-targets --locked
cargo test --workspace --locked -- --test-threads=2
