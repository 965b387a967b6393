#!/usr/bin/env bash
# Brings up a single-node oxkube cluster on this machine: installs what it needs, builds the
# release binary and runs `oxkube server` in the foreground (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo build --release -p oxkube
exec ./target/release/oxkube server "$@"
