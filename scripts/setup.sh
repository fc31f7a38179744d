#!/usr/bin/env bash
# Installs everything Sigil's build, tests, demo and benchmarks need on a fresh
# Debian machine. Idempotent: safe to run again. Needs root (or sudo).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# docker-registry + apache2-utils (htpasswd): the real registry the sigil-registry tests run on loopback.
# postgresql: the private clusters the sigil-cas PostgreSQL store tests start (initdb, pg_ctl).
PKGS=(podman runc skopeo age zstd openssl pkg-config jq python3-pip docker-registry apache2-utils postgresql)
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# podman on this kind of machine: runc + cgroupfs, no default ulimits
# (crun fails on hybrid cgroups; the default ulimits cannot be set in a
# nested sandbox).
conf=/etc/containers/containers.conf
if ! grep -q '^default_ulimits = \[\]' "$conf" 2>/dev/null; then
  $SUDO mkdir -p /etc/containers
  $SUDO tee "$conf" >/dev/null <<'CONF'
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[engine.runtimes]
runc = ["/usr/sbin/runc", "/usr/bin/runc"]
CONF
fi

# Python tools for the Helm chart checks (helm embedded, offline schemas).
if ! python3 -c 'import kubernetes_validate, helm_python' >/dev/null 2>&1; then
  echo "setup: installing Python chart-check tools"
  python3 -m pip install -q --disable-pip-version-check helm-python-sdk kubernetes-validate >/dev/null
fi

# Toolchain components used by CI.
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
echo "setup: ok"
