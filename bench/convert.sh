#!/usr/bin/env bash
# Benchmark of `sigil convert` against `skopeo copy oci-archive:A oci-archive:B`
# of the same image, measured in the same run (median and best of RUNS runs
# each, interleaved). Target: sigil convert within 1.5x of skopeo.
#
# The image: the host's /usr/bin, /usr/lib/x86_64-linux-gnu and
# /usr/lib/python3.11 in one gzip layer (>= 1 GB unpacked), built once with
# sigil-image's builder. Converted with /usr/lib/python3.11 encrypted and
# python3.11's libraries authenticated. Work files live in $BENCH_DIR
# (default /tmp/sigil-bench-convert), outside the repository.
#
# Not part of CI. Usage: bench/convert.sh [RUNS]; MODES="none zstd gzip"
# picks the root-layer compressions measured (default: none zstd).
set -euo pipefail
unset RUST_BACKTRACE RUST_LIB_BACKTRACE
cd "$(dirname "$0")/.."
RUNS="${1:-3}"
W="${BENCH_DIR:-/tmp/sigil-bench-convert}"
mkdir -p "$W"
# Staging of the uncompressed layers: memory if available (as recommended).
WORK="${SIGIL_WORK_DIR:-$( [ -d /dev/shm ] && echo /dev/shm || echo "$W")}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build -q --release -p sigil
cargo build -q --release -p sigil-image --example build_image
SIGIL="$CARGO_TARGET_DIR/release/sigil"
LAUNCHER="${SIGIL_INIT_BINARY:-}"
if [ -z "$LAUNCHER" ]; then
  # Stand-in static ELF; the launcher's size hardly matters for the timing.
  LAUNCHER=$(command -v ldconfig || echo /sbin/ldconfig)
fi
IMG="$W/input.tar"
if [ ! -s "$IMG" ]; then
  echo "building the input image (once) ..." >&2
  "$CARGO_TARGET_DIR/release/examples/build_image" "$IMG" /usr/bin /usr/lib/x86_64-linux-gnu /usr/lib/python3.11 /usr/lib64
fi
unpacked=$(du -sb --apparent-size /usr/bin /usr/lib/x86_64-linux-gnu /usr/lib/python3.11 | awk '{s+=$1} END {print s}')

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
best() { sort -n | head -1; }
timeit() { # prints seconds
  local s e
  s=$(date +%s.%N); "$@" >/dev/null 2>"$W/err.log" || { cat "$W/err.log" >&2; exit 1; }; e=$(date +%s.%N)
  echo "$e - $s" | bc -l
}

# Interleaved, so a change in the machine's load hits every column alike.
declare -A T
MODES="${MODES:-none zstd}"
for i in $(seq "$RUNS"); do
  rm -f "$W/skopeo.tar"
  T[skopeo]+="$(timeit skopeo copy -q "oci-archive:$IMG" "oci-archive:$W/skopeo.tar") "
  for c in $MODES; do
    rm -rf "$W/out-$c.tar" "$W/out-$c.session.yaml"
    T[$c]+="$(timeit "$SIGIL" convert --from "$IMG" --to "$W/out-$c.tar" --compression "$c" \
      --binary /usr/bin/python3.11 --dir /usr/lib/python3.11 --launcher "$LAUNCHER" \
      --cas-pin "sha256:$(printf '0%.0s' {1..64})" --name bench --work-dir "$WORK") "
  done
done

ref=$(echo ${T[skopeo]} | tr ' ' '\n' | median)
refb=$(echo ${T[skopeo]} | tr ' ' '\n' | best)
printf '\ninput: %s (%.2f GB unpacked, %.0f MB archive), %s runs, %s cores, load %s\n' \
  "$IMG" "$(echo "$unpacked/1000000000" | bc -l)" "$(echo "$(stat -c %s "$IMG")/1000000" | bc -l)" "$RUNS" "$(nproc)" \
  "$(cut -d' ' -f1-3 /proc/loadavg)"
echo "sigil staging dir: $WORK; target: sigil convert within 1.5x of skopeo"
printf '%-58s %8s %8s %8s %8s %10s\n' "operation" "median s" "ratio" "best s" "ratio" "output MB"
printf '%-58s %8.2f %8s %8.2f %8s %10.0f\n' "skopeo copy oci-archive:A oci-archive:B (reference)" "$ref" "1.00" "$refb" "1.00" \
  "$(echo "$(stat -c %s "$W/skopeo.tar")/1000000" | bc -l)"
for c in $MODES; do
  m=$(echo ${T[$c]} | tr ' ' '\n' | median)
  b=$(echo ${T[$c]} | tr ' ' '\n' | best)
  printf '%-58s %8.2f %8.2f %8.2f %8.2f %10.0f\n' "sigil convert (root layer $c, python3.11 encrypted)" "$m" \
    "$(echo "$m / $ref" | bc -l)" "$b" "$(echo "$b / $refb" | bc -l)" "$(echo "$(stat -c %s "$W/out-$c.tar")/1000000" | bc -l)"
done
echo "raw times: skopeo ${T[skopeo]}"
for c in $MODES; do echo "raw times: $c ${T[$c]}"; done
