#!/usr/bin/env bash
# Builds the static sigil-init launcher (glibc, +crt-static: no dynamic
# libraries, no PT_INTERP; no extra Rust target needed) and prints its path.
#   scripts/build-launcher.sh [--release]
# Uses its own target directory so the static RUSTFLAGS do not invalidate
# the workspace build. Progress goes to stderr; stdout is only the path.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=debug
args=()
if [ "${1:-}" = "--release" ]; then
  profile=release
  args+=(--release)
fi
host="$(rustc -vV | sed -n 's/^host: //p')"
target_dir="${SIGIL_LAUNCHER_TARGET_DIR:-$PWD/target/launcher}"
RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$target_dir" \
  cargo build -p sigil-init --bin sigil-init --target "$host" "${args[@]}" ${CARGO_LOCKED:+--locked} >&2
bin="$target_dir/$host/$profile/sigil-init"
# A static executable has no program interpreter.
if command -v readelf >/dev/null && readelf -l "$bin" | grep -q 'INTERP'; then
  echo "build-launcher: $bin is dynamically linked (has PT_INTERP)" >&2
  exit 1
fi
# Debug information makes the debug build ~100 MiB; the launcher hashes
# itself at every start, so hand out a stripped copy.
out="$target_dir/sigil-init-$profile"
if command -v strip >/dev/null; then
  strip -o "$out.tmp" "$bin"
else
  cp "$bin" "$out.tmp"
fi
mv -f "$out.tmp" "$out"
echo "$out"
