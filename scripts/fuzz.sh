#!/usr/bin/env bash
# Nightly-style fuzzing: runs every cargo-fuzz target of every crate for
# SECONDS (default 60) each. Not part of CI (too long); run it by hand or
# from a scheduled job. Needs the nightly toolchain and cargo-fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# Real quotes and reports seed the attestation targets when the shared test
# data is beside the project; they are read in place, never copied into it.
TESTDATA="${SIGIL_ATTESTATION_TESTDATA:-$PWD/../shared/testdata/attestation}"
status=0
for dir in crates/*/fuzz; do
  [ -d "$dir" ] || continue
  for target in $(cargo +nightly fuzz list --fuzz-dir "$dir"); do
    echo "== fuzz $dir $target (${SECONDS_EACH}s)"
    corpus=("$dir/corpus/$target")
    mkdir -p "${corpus[0]}"
    if [ "$dir" = crates/sigil-attest/fuzz ] && [ -d "$TESTDATA" ]; then corpus+=("$TESTDATA"); fi
    if ! cargo +nightly fuzz run --fuzz-dir "$dir" "$target" "${corpus[@]}" -- -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048; then
      status=1
    fi
  done
done
exit $status
