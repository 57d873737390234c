#!/usr/bin/env bash
# What the workspace depends on, checked by cargo-deny against deny.toml:
# licences, bans (wildcards, duplicate versions), sources, and the RustSec
# advisories when their database (a git repository on github.com) can be
# fetched; a machine that reaches only package registries says so instead.
set -euo pipefail
cd "$(dirname "$0")/.."
deny=${MODELGATE_CARGO_DENY:-cargo-deny}
command -v "$deny" >/dev/null 2>&1 || { echo "deny: cargo-deny not found: run hack/tools.sh install"; exit 1; }

"$deny" --log-level error check licenses bans sources
echo "deny: licences, bans and sources ok"

out=$(mktemp)
trap 'rm -f "$out"' EXIT
if "$deny" --log-level error check advisories >"$out" 2>&1; then
  echo "deny: advisories ok"
elif grep -q "failed to fetch advisory database" "$out"; then
  echo "deny: advisories NOT checked: the RustSec database cannot be fetched from this machine"
else
  cat "$out"
  exit 1
fi
