#!/usr/bin/env bash
# The main job: one command that shows Sigil end to end.
#   bash scripts/demo.sh
# Installs what is missing (podman, runc, ...; see scripts/setup.sh), builds
# the static launcher and the sigil CLI, then runs `sigil demo`: a CAS on a
# temporary store, a sample Python web service converted, attested in
# simulation mode and run with podman, and a tampered copy refused.
set -euo pipefail
cd "$(dirname "$0")/.."
# Idempotent: installs podman, runc, ... only where missing, and makes sure
# podman is configured for this kind of machine (runc, cgroupfs).
echo "demo: checking prerequisites (scripts/setup.sh; needs root or sudo to install)"
bash scripts/setup.sh
echo "demo: building the static launcher (scripts/build-launcher.sh)"
SIGIL_INIT_BINARY="$(bash scripts/build-launcher.sh)"
export SIGIL_INIT_BINARY
echo "demo: building the sigil CLI"
cargo build -q -p sigil --bin sigil
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
exec "$target_dir/debug/sigil" demo "$@"
