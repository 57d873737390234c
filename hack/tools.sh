#!/usr/bin/env bash
# The tools the chart's policy and monitoring tests run, installed from
# package registries into the project's cache (nothing by hand):
#
#   checkov     PyPI, in a venv of its own under $MODELGATE_CACHE/venv/
#   kube-score  the Go module proxy, `go install`ed under $MODELGATE_CACHE/bin/
#   prometheus  Debian's package (prometheus and promtool); the package's
#               service is never started: the tests run the binary themselves
#   cargo-deny  crates.io, `cargo install --locked`ed under $MODELGATE_CACHE/cargo-deny-*/
#
#   hack/tools.sh install   install what is missing (default; instant when all is there)
#   hack/tools.sh env       print `export MODELGATE_CHECKOV=… …` for eval
set -euo pipefail

CHECKOV_VERSION=3.3.30
KUBE_SCORE_VERSION=v1.20.0
CARGO_DENY_VERSION=0.20.2

CACHE=${MODELGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelgate}
CHECKOV_VENV=$CACHE/venv/checkov-$CHECKOV_VERSION
KUBE_SCORE_BIN=$CACHE/bin/kube-score-$KUBE_SCORE_VERSION
CARGO_DENY_ROOT=$CACHE/cargo-deny-$CARGO_DENY_VERSION

START=$SECONDS
say() { printf '[tools %3ds] %s\n' "$((SECONDS - START))" "$*" >&2; }
die() { printf 'tools: %s\n' "$*" >&2; exit 1; }

# Runs as root directly, or through sudo where there is one.
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root (or sudo) to run: $*"
  fi
}

install_checkov() {
  [ -x "$CHECKOV_VENV/bin/checkov" ] && return 0
  say "checkov $CHECKOV_VERSION: a venv under $CACHE/venv (about a minute)"
  command -v python3 >/dev/null 2>&1 || die "python3 is not on PATH; checkov needs Python 3.9 or newer"
  rm -rf "$CHECKOV_VENV"
  if ! python3 -m venv "$CHECKOV_VENV" 2>/dev/null; then
    # Debian's python3 leaves venv out; its python3-venv package adds it.
    say "  python3 has no venv module: installing Debian's python3-venv"
    apt_install python3-venv
    rm -rf "$CHECKOV_VENV"
    python3 -m venv "$CHECKOV_VENV"
  fi
  local log=$CACHE/venv/checkov-install.log
  if ! "$CHECKOV_VENV/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -rf "$CHECKOV_VENV"
    die "pip install checkov==$CHECKOV_VERSION failed; full log: $log"
  fi
}

install_kube_score() {
  [ -x "$KUBE_SCORE_BIN/kube-score" ] && return 0
  command -v go >/dev/null 2>&1 || [ ! -x /usr/local/go/bin/go ] || PATH=$PATH:/usr/local/go/bin
  command -v go >/dev/null 2>&1 || die "no Go toolchain on PATH: kube-score is built from its Go module"
  say "kube-score $KUBE_SCORE_VERSION: go install from its module"
  mkdir -p "$KUBE_SCORE_BIN"
  local log=$CACHE/bin/kube-score-install.log
  if ! GOBIN=$KUBE_SCORE_BIN GOFLAGS=-buildvcs=false CGO_ENABLED=0 \
    go install -trimpath -ldflags "-s -w -X main.version=$KUBE_SCORE_VERSION" \
    "github.com/zegl/kube-score/cmd/kube-score@$KUBE_SCORE_VERSION" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "go install kube-score@$KUBE_SCORE_VERSION failed; full log: $log"
  fi
}

install_cargo_deny() {
  [ -x "$CARGO_DENY_ROOT/bin/cargo-deny" ] && return 0
  say "cargo-deny $CARGO_DENY_VERSION: cargo install from crates.io (about 4 minutes on 2 cores)"
  mkdir -p "$CACHE"
  local log=$CACHE/cargo-deny-install.log
  if ! CARGO_TARGET_DIR=$CACHE/cargo-deny-build cargo install --locked --quiet \
    --version "$CARGO_DENY_VERSION" --root "$CARGO_DENY_ROOT" cargo-deny >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "cargo install cargo-deny@$CARGO_DENY_VERSION failed; full log: $log"
  fi
  rm -rf "$CACHE/cargo-deny-build"
}

apt_updated=""
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "no apt-get: install $* with this system's package manager"
  if [ -z "$apt_updated" ]; then
    say "  apt-get update"
    mkdir -p "$CACHE"
    as_root apt-get update -q >"$CACHE/apt-update.log" 2>&1 || { tail -n 20 "$CACHE/apt-update.log" >&2; die "apt-get update failed"; }
    apt_updated=1
  fi
  # The packages' services must not start: tests run the binaries on ports
  # of their own. A policy-rc.d that says 101 refuses every start.
  local policy=/usr/sbin/policy-rc.d added=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 0755 "$policy"
    added=1
  fi
  local rc=0 log=$CACHE/apt-install.log
  mkdir -p "$CACHE"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >"$log" 2>&1 || rc=$?
  [ -z "$added" ] || as_root rm -f "$policy"
  if [ "$rc" != 0 ]; then
    tail -n 20 "$log" >&2
    die "apt-get install $* failed; full log: $log"
  fi
}

install_prometheus() {
  [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ] && return 0
  say "prometheus: Debian's package (binaries only; its service stays stopped)"
  apt_install prometheus
}

# The fleet's cross-check of signed records (hack/verify-oci-records.sh)
# takes them apart with jq and checks signatures with openssl.
install_jq_openssl() {
  command -v jq >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1 && return 0
  say "jq and openssl: Debian's packages"
  apt_install jq openssl
}

cmd_install() {
  install_jq_openssl
  install_checkov
  install_kube_score
  install_prometheus
  install_cargo_deny
  say "tools ready: checkov $CHECKOV_VERSION, kube-score $KUBE_SCORE_VERSION, cargo-deny $CARGO_DENY_VERSION, $(/usr/bin/prometheus --version 2>&1 | head -n1)"
}

cmd_env() {
  echo "export MODELGATE_CHECKOV=$CHECKOV_VENV/bin/checkov"
  echo "export MODELGATE_KUBE_SCORE=$KUBE_SCORE_BIN/kube-score"
  echo "export MODELGATE_PROMETHEUS=/usr/bin/prometheus"
  echo "export MODELGATE_PROMTOOL=/usr/bin/promtool"
  echo "export MODELGATE_CARGO_DENY=$CARGO_DENY_ROOT/bin/cargo-deny"
}

case "${1:-install}" in
  install) cmd_install ;;
  env) cmd_env ;;
  *) die "usage: hack/tools.sh [install|env]" ;;
esac
