#!/usr/bin/env bash
# Runs every check and test of modelgate: formatting, clippy, unit tests and
# the integration tests against the local control plane (built and started
# by hack/cluster.sh when KUBECONFIG names no cluster, stopped at the end),
# the chart's policy scans and its monitoring against a real Prometheus (the
# tools installed by hack/tools.sh when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> [%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# `hack/test.sh quick`: the tiers that need no cluster (formatting, unit and
# property tests, reconciles against a mocked API, the console's routes, the
# CRDs' CEL rules and the source's house rules), in under a minute warm.
# Clippy and the cluster tests are left to the full run.
if [ "${1:-}" = quick ]; then
  step "quick 1/2 cargo fmt --check"
  cargo fmt --all -- --check
  step "quick 2/2 tests without a cluster"
  cargo test --workspace --locked --lib --bins
  cargo test -p modelgate-e2e --locked --test crd_rules --test structure
  exit 0
fi

step "1/8 Rust toolchain components"
if command -v rustup >/dev/null 2>&1; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi
command -v cargo >/dev/null 2>&1 || { echo "test: cargo is not on PATH: install Rust (rustup) first"; exit 1; }

step "2/8 cargo fmt --check"
cargo fmt --all -- --check

step "3/8 cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "4/8 headless Chromium for the browser tests (hack/browser.sh)"
hack/browser.sh

step "5/8 policy, monitoring and dependency tools (hack/tools.sh: checkov, kube-score, prometheus, cargo-deny)"
hack/tools.sh install
eval "$(hack/tools.sh env)"
hack/deny.sh

started_cluster=""
if [ -z "${KUBECONFIG:-}" ]; then
  step "6/8 local control plane (hack/cluster.sh up)"
  hack/cluster.sh up
  started_cluster=1
  trap 'hack/cluster.sh down' EXIT
  eval "$(hack/cluster.sh env)"
else
  step "6/8 using the cluster in KUBECONFIG=$KUBECONFIG"
  eval "$(hack/cluster.sh env | grep -v '^export KUBECONFIG=')"
fi

step "7/8 cargo test --workspace (unit and integration)"
# The integration tests run the operator's and the plugin's binaries, which
# belong to other crates: build them first (the harness refuses stale ones).
cargo build --workspace --bins --locked
# Cargo has just found them current; a change to a file only tests compile
# (a `tests.rs` beside the code) relinks nothing, so say so in their time,
# which is what the harness compares with the sources.
touch "${CARGO_TARGET_DIR:-target}/debug/modelgate" "${CARGO_TARGET_DIR:-target}/debug/kubectl-modelgate"
cargo test --workspace --locked --no-fail-fast -- --test-threads=4

step "8/8 benchmark smoke run (hack/bench.sh --smoke; timings reported, not asserted)"
hack/bench.sh --smoke --out target/bench/smoke.json
[ -z "$started_cluster" ] || step "stopping the local control plane"
