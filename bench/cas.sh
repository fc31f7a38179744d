#!/usr/bin/env bash
# CAS throughput and latency over TLS on loopback: session create (durable
# write), session read, and GET /healthz as the protocol floor measured in
# the same run. Release build. Usage: bench/cas.sh [CLIENTS] [OPS_PER_CLIENT]
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS="${1:-8}"
OPS="${2:-200}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release --locked -q -p sigil-cas --example cas_bench
"$CARGO_TARGET_DIR/release/examples/cas_bench" "$CLIENTS" "$OPS"
