#!/usr/bin/env bash
# DCAP verification throughput: dcap-qvl per quote vs Sigil's cached path on
# the real quotes of the shared test data, same run, plus the ring P-256
# ceiling. Prints a table. Not part of CI.
#   bench/attest.sh            (BENCH_MS=2000 per measurement by default)
set -euo pipefail
cd "$(dirname "$0")/.."
export SIGIL_ATTESTATION_TESTDATA="${SIGIL_ATTESTATION_TESTDATA:-$(cd .. && pwd)/shared/testdata/attestation}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-attest}"
cargo bench -p sigil-attest --bench dcap --quiet
