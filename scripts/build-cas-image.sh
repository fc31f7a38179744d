#!/usr/bin/env bash
# Builds the CAS container image (`sigil cas serve`) without any registry and
# prints the path of its OCI archive (load it with `podman load -i PATH`).
#   scripts/build-cas-image.sh [--release] [--binary-only] [--out FILE] [--tag TAG]
#
# The image is FROM scratch: the static `sigil` binary (glibc, +crt-static,
# no PT_INTERP, as scripts/build-launcher.sh builds sigil-init), an empty
# data directory owned by UID 65532, /tmp, nothing else; it runs as
# 65532:65532 with the entrypoint `sigil cas serve`. The Helm chart in
# charts/sigil-cas uses it (docs/kubernetes.md).
#
#   --binary-only   build (or check) the static binary, print its path, stop
#   --out FILE      archive path (default TARGET_DIR/sigil-cas-VERSION.oci.tar)
#   --tag TAG       image tag (default: the workspace version, which is the
#                   chart's appVersion); the image is localhost/sigil-cas:TAG
#   SIGIL_BINARY_STATIC=PATH   use this static sigil binary instead of building
#
# The static build shares scripts/build-launcher.sh's target directory (same
# RUSTFLAGS and target), so the dependencies the launcher already built are
# reused. Progress goes to stderr; stdout is only the path.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=debug
args=()
binary_only=0
out=""
tag="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)"
while [ $# -gt 0 ]; do
  case "$1" in
    --release) profile=release; args+=(--release) ;;
    --binary-only) binary_only=1 ;;
    --out) out="$2"; shift ;;
    --tag) tag="$2"; shift ;;
    *) echo "build-cas-image: unknown argument $1 (see the comment at the top of $0)" >&2; exit 2 ;;
  esac
  shift
done
host="$(rustc -vV | sed -n 's/^host: //p')"
target_dir="${SIGIL_LAUNCHER_TARGET_DIR:-$PWD/target/launcher}"

if [ -n "${SIGIL_BINARY_STATIC:-}" ]; then
  bin="$SIGIL_BINARY_STATIC"
  [ -f "$bin" ] || { echo "build-cas-image: SIGIL_BINARY_STATIC=$bin does not exist" >&2; exit 1; }
else
  RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$target_dir" \
    cargo build -p sigil --bin sigil --target "$host" "${args[@]}" ${CARGO_LOCKED:+--locked} >&2
  bin="$target_dir/$host/$profile/sigil"
fi
# A static executable has no program interpreter: it runs in an image with
# no libc at all.
if command -v readelf >/dev/null && readelf -l "$bin" | grep -q 'INTERP'; then
  echo "build-cas-image: $bin is dynamically linked (has PT_INTERP)" >&2
  exit 1
fi
if [ -z "${SIGIL_BINARY_STATIC:-}" ]; then
  # Debug information makes the debug build hundreds of MiB.
  stripped="$target_dir/sigil-static-$profile"
  if command -v strip >/dev/null; then strip -o "$stripped.tmp" "$bin"; else cp "$bin" "$stripped.tmp"; fi
  mv -f "$stripped.tmp" "$stripped"
  bin="$stripped"
fi
if [ "$binary_only" = 1 ]; then
  echo "$bin"
  exit 0
fi

podman() { command podman --runtime /usr/sbin/runc --cgroup-manager=cgroupfs "$@"; }
image="localhost/sigil-cas:$tag"
out="${out:-$target_dir/sigil-cas-$tag.oci.tar}"
ctx="$(mktemp -d "${TMPDIR:-/tmp}/sigil-cas-image.XXXXXX")"
trap 'rm -rf "$ctx"' EXIT
# rootfs/ is copied as root with its modes; owned/ holds the one
# directory the CAS user owns (its data directory, 0700), copied into
# /var/lib, which the first copy made root's.
mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/var/lib" "$ctx/rootfs/tmp" "$ctx/owned/sigil-cas"
install -m 0755 "$bin" "$ctx/rootfs/usr/local/bin/sigil"
chmod 1777 "$ctx/rootfs/tmp"
chmod 0700 "$ctx/owned/sigil-cas"
cat >"$ctx/Containerfile" <<EOF
FROM scratch
COPY rootfs/ /
COPY --chown=65532:65532 owned/ /var/lib/
USER 65532:65532
WORKDIR /var/lib/sigil-cas
EXPOSE 8443
ENTRYPOINT ["/usr/local/bin/sigil", "cas", "serve"]
CMD ["--data-dir", "/var/lib/sigil-cas/data", "--listen", "0.0.0.0:8443"]
LABEL org.opencontainers.image.title="sigil-cas" \\
      org.opencontainers.image.description="Sigil Configuration and Attestation Service (sigil cas serve)" \\
      org.opencontainers.image.version="$tag" \\
      org.opencontainers.image.licenses="Apache-2.0"
EOF
# --timestamp 0: the same binary gives the same image digest.
podman build -q --format oci --timestamp 0 -t "$image" -f "$ctx/Containerfile" "$ctx" >&2
mkdir -p "$(dirname "$out")"
rm -f "$out.tmp"
podman save -q --format oci-archive -o "$out.tmp" "$image" >&2
mv -f "$out.tmp" "$out"
echo "build-cas-image: $image written to $out" >&2
echo "$out"
