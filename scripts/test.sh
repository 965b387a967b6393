#!/usr/bin/env bash
# Runs the whole oxkube test suite: installs what it needs, builds, then runs unit, integration
# and end-to-end tests (as root; the OS-level tests need it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh --test
export CARGO_TERM_COLOR=never
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast -- --test-threads="${OXKUBE_TEST_THREADS:-2}"
