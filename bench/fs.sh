#!/usr/bin/env bash
# Benchmark of sealed volumes (`sigil fs`), with references measured in the
# same run: `openssl speed` AES-256-GCM on one core, and `age` encrypting a
# tar of the same tree. Builds what it needs (release), creates a ~1 GB tree
# (four 200 MB files + 20,000 files of 10 KB) in a temp dir, prints a table.
# Not part of CI. Usage: bench/fs.sh [ROUNDS]   (best of ROUNDS, default 2)
# Files are in the page cache for every contender (warm-cache figures).
# Default TMPDIR (/tmp) is the disk-backed file system a user seals on;
# TMPDIR=/dev/shm measures on tmpfs, where both age and seal are bound by
# the kernel's page copies (see the user/sys split printed at the end).
# Besides best-of-N per contender, the script runs ROUNDS paired rounds
# (age, then seal, back to back, so both see the same state of a noisy
# machine) and prints the median of the per-round ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-2}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
for t in openssl age age-keygen python3 tar; do
  command -v "$t" >/dev/null || { echo "bench/fs.sh: needs $t (scripts/setup.sh installs it)" >&2; exit 1; }
done

echo "building (release)..." >&2
cargo build --release -q -p sigil --bin sigil
cargo bench -q -p sigil-fs --bench codec --no-run 2>/dev/null
SIGIL="$CARGO_TARGET_DIR/release/sigil"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sigil-fs-bench.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

echo "creating the tree in $WORK..." >&2
python3 - "$WORK/tree" <<'PY'
import os, sys
root = sys.argv[1]
os.makedirs(root)
for i in range(4):
    with open(f"{root}/big{i}.bin", "wb") as f:
        for _ in range(200):
            f.write(os.urandom(1_000_000))
for d in range(100):
    os.makedirs(f"{root}/small/{d:03}")
    for j in range(200):
        with open(f"{root}/small/{d:03}/f{j:03}.dat", "wb") as f:
            f.write(os.urandom(10_000))
PY
BYTES=$(( 4 * 200000000 + 20000 * 10000 ))
tar cf "$WORK/tree.tar" -C "$WORK" tree
TAR_BYTES=$(stat -c %s "$WORK/tree.tar")
age-keygen -o "$WORK/age.key" 2>/dev/null
RECIPIENT="$(age-keygen -y "$WORK/age.key")"
sync

# best_of CMD...: runs CMD ROUNDS times (with $WORK/out removed before
# each), prints the best wall time in seconds and, after it, the least CPU
# time (user + sys) of any round: on a busy machine the CPU figure is the
# steadier one.
# once CMD...: one run (after removing $WORK/out), prints "wall user sys".
once() {
  rm -rf "$WORK/out" "$WORK/out.key"
  { TIMEFORMAT='%R %U %S'; time "$@" >/dev/null; } 2>&1 | tail -1
}
best_of() {
  local best="" cpu="" t d c
  for _ in $(seq "$ROUNDS"); do
    t=$(once "$@")
    d=$(echo "$t" | awk '{printf "%.4f", $1}')
    c=$(echo "$t" | awk '{printf "%.4f", $2 + $3}')
    if [ -z "$best" ] || awk -v d="$d" -v b="$best" 'BEGIN {exit !(d < b)}'; then best=$d; fi
    if [ -z "$cpu" ] || awk -v d="$c" -v b="$cpu" 'BEGIN {exit !(d < b)}'; then cpu=$c; fi
  done
  echo "$best $cpu"
}
wall() { echo "${1% *}"; }
cpu() { echo "${1#* }"; }
mbps() { awk -v b="$1" -v t="$2" 'BEGIN {printf "%.0f", b / t / 1e6}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

echo "openssl speed (1 core)..." >&2
OPENSSL_KBPS=$(openssl speed -elapsed -seconds 3 -evp aes-256-gcm -bytes 16384 2>/dev/null | awk '/^(AES-256-GCM|aes-256-gcm)/ {v=$NF} END {sub("k","",v); print v}')
OPENSSL=$(awk -v k="$OPENSSL_KBPS" 'BEGIN {printf "%.0f", k * 1000 / 1e6}')

echo "codec (1 core)..." >&2
CODEC_OUT=$(cargo bench -q -p sigil-fs --bench codec -- 64 2>/dev/null)
CODEC_ENC_SEAL=$(echo "$CODEC_OUT" | awk '/codec encrypted/ {for(i=1;i<=NF;i++) if ($i ~ /^seal_MBps=/) {sub("seal_MBps=","",$i); print $i}}')
CODEC_ENC_OPEN=$(echo "$CODEC_OUT" | awk '/codec encrypted/ {for(i=1;i<=NF;i++) if ($i ~ /^open_MBps=/) {sub("open_MBps=","",$i); print $i}}')
CODEC_AUTH_SEAL=$(echo "$CODEC_OUT" | awk '/codec authenticated/ {for(i=1;i<=NF;i++) if ($i ~ /^seal_MBps=/) {sub("seal_MBps=","",$i); print $i}}')

echo "age..." >&2
R_AGE=$(best_of age -r "$RECIPIENT" -o "$WORK/out" "$WORK/tree.tar")
T_AGE=$(wall "$R_AGE")
AGE=$(mbps "$TAR_BYTES" "$T_AGE")

CORES=$(nproc)
echo "sigil fs seal/open..." >&2
seal_enc() { "$SIGIL" fs seal "$WORK/tree" "$WORK/out" --default-region encrypted --key-out "$WORK/out.key" "$@"; }
R_SEAL_N=$(best_of seal_enc)
R_SEAL_1=$(best_of seal_enc --threads 1)
T_SEAL_N=$(wall "$R_SEAL_N"); T_SEAL_1=$(wall "$R_SEAL_1")
T_SEAL_AUTH=$(wall "$(best_of "$SIGIL" fs seal "$WORK/tree" "$WORK/out" --default-region authenticated --key-out "$WORK/out.key")")
"$SIGIL" fs seal "$WORK/tree" "$WORK/vol" --default-region encrypted --key-out "$WORK/vol.key" > "$WORK/seal.out"
TAG=$(awk '/^tag:/ {print $2}' "$WORK/seal.out")
T_OPEN=$(wall "$(best_of "$SIGIL" fs open "$WORK/vol" "$WORK/out" --key-file "$WORK/vol.key" --tag "$TAG")")
T_VERIFY=$(wall "$(best_of "$SIGIL" fs verify "$WORK/vol" --key-file "$WORK/vol.key" --tag "$TAG")")

echo "paired rounds (age, seal)..." >&2
PAIRS=""; AGE_US=""; SEAL_US=""
for _ in $(seq "$ROUNDS"); do
  A=$(once age -r "$RECIPIENT" -o "$WORK/out" "$WORK/tree.tar")
  B=$(once seal_enc)
  PAIRS="$PAIRS $(ratio "${A%% *}" "${B%% *}")"
  AGE_US="$AGE_US $(echo "$A" | awk '{print $2 "/" $3}')"
  SEAL_US="$SEAL_US $(echo "$B" | awk '{print $2 "/" $3}')"
done
PAIR_MEDIAN=$(echo $PAIRS | tr ' ' '\n' | sort -n | awk '{v[NR]=$1} END {if (NR % 2) print v[(NR+1)/2]; else printf "%.2f", (v[NR/2] + v[NR/2+1]) / 2}')
# What a user without sigil runs on a tree: tar and age in one pipeline
# (information only; the target is against age on a ready tar).
T_TAR_AGE=$(wall "$(best_of sh -c 'tar cf - -C "$1" tree | age -r "$2" -o "$1/out"' sh "$WORK" "$RECIPIENT")")

SEAL_N=$(mbps $BYTES "$T_SEAL_N"); SEAL_1=$(mbps $BYTES "$T_SEAL_1")
SEAL_AUTH=$(mbps $BYTES "$T_SEAL_AUTH"); OPEN=$(mbps $BYTES "$T_OPEN"); VERIFY=$(mbps $BYTES "$T_VERIFY")

printf '\nsigil fs benchmark: tree of %d bytes (4 x 200 MB + 20,000 x 10 KB), %s cores, best of %s, MB = 10^6 bytes\n\n' "$BYTES" "$CORES" "$ROUNDS"
printf '%-46s %10s   %-34s\n' "measurement" "MB/s" "ratio"
printf '%-46s %10s   %-34s\n' "----------------------------------------------" "----------" "----------------------------------"
printf '%-46s %10s   %-34s\n' "openssl speed aes-256-gcm 16 KiB, 1 core" "$OPENSSL" "reference"
printf '%-46s %10s   %-34s\n' "codec encrypt (seal) 64 KiB chunks, 1 core" "$CODEC_ENC_SEAL" "$(ratio "$CODEC_ENC_SEAL" "$OPENSSL") x openssl (target >= 0.80)"
printf '%-46s %10s   %-34s\n' "codec decrypt (open) 64 KiB chunks, 1 core" "$CODEC_ENC_OPEN" "$(ratio "$CODEC_ENC_OPEN" "$OPENSSL") x openssl"
printf '%-46s %10s   %-34s\n' "codec authenticate (GCM tag), 1 core" "$CODEC_AUTH_SEAL" "$(ratio "$CODEC_AUTH_SEAL" "$OPENSSL") x openssl"
printf '%-46s %10s   %-34s\n' "age -r (X25519) on the tar, 1 core" "$AGE" "reference"
printf '%-46s %10s   %-34s\n' "sigil fs seal, encrypted, $CORES threads" "$SEAL_N" "$(ratio "$SEAL_N" "$AGE") x age (target >= 3)"
printf '%-46s %10s   %-34s\n' "tar | age -r (pipeline on the tree), info" "$(mbps "$TAR_BYTES" "$T_TAR_AGE")" "seal = $(ratio "$T_TAR_AGE" "$T_SEAL_N") x faster"
printf '%-46s %10s   %-34s\n' "sigil fs seal, encrypted, 1 thread" "$SEAL_1" "$(ratio "$SEAL_1" "$AGE") x age; $CORES threads = $(ratio "$SEAL_N" "$SEAL_1") x"
printf '%-46s %10s   %-34s\n' "sigil fs seal, authenticated, $CORES threads" "$SEAL_AUTH" "$(ratio "$SEAL_AUTH" "$AGE") x age"
printf '%-46s %10s   %-34s\n' "sigil fs open (verify + write), $CORES threads" "$OPEN" "$(ratio "$OPEN" "$AGE") x age"
printf '%-46s %10s   %-34s\n' "sigil fs verify, $CORES threads" "$VERIFY" "$(ratio "$VERIFY" "$AGE") x age"
printf '\nCPU time (user + sys, least of %s rounds): age %s s, seal %s threads %s s (%s x age), seal 1 thread %s s\n' \
  "$ROUNDS" "$(cpu "$R_AGE")" "$CORES" "$(cpu "$R_SEAL_N")" "$(ratio "$(cpu "$R_AGE")" "$(cpu "$R_SEAL_N")")" "$(cpu "$R_SEAL_1")"
printf 'Paired rounds, seal %s threads / age (wall): %s; median %s x (target >= 3)\n' "$CORES" "$PAIRS" "$PAIR_MEDIAN"
printf 'Paired rounds, user/sys seconds: age%s; seal%s\n' "$AGE_US" "$SEAL_US"
printf 'File system of the run: %s (%s)\n' "$(df --output=fstype "$WORK" | tail -1)" "$WORK"
