#!/usr/bin/env bash
# Launcher benchmark (not run in CI):
#  1. start-to-exec overhead of sigil-init (simulation mode, CAS on loopback,
#     one sealed volume and one injected file) against a plain start of the
#     same program, p50/p99 over STARTS starts, interleaved in the same run;
#  2. CAS attestation throughput with CONCURRENCY concurrent launchers.
#   bash bench/init.sh [STARTS=200] [CONCURRENCY=8] [ATTESTATIONS=400]
set -euo pipefail
cd "$(dirname "$0")/.."
launcher="$(bash scripts/build-launcher.sh --release)"
cargo build -q --release -p sigil-init --example bench_launch >&2
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
echo "# sigil-init benchmark ($(date -u +%FT%TZ), $(nproc) cores, launcher $(stat -c %s "$launcher") bytes, static)"
echo
"$target_dir/release/examples/bench_launch" "$launcher" "${1:-200}" "${2:-8}" "${3:-400}"
