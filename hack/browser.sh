#!/usr/bin/env bash
# Makes sure headless Chromium and its WebDriver (Debian's chromium and
# chromium-driver) are installed, for the tests that open pages in a real
# browser. Installs them with apt-get when missing (as root, or with sudo);
# instant when they are there.
set -euo pipefail

say() { printf '[browser] %s\n' "$*" >&2; }

have() { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }

if have; then
  say "$(chromium --version 2>/dev/null | head -n1), $(chromedriver --version 2>/dev/null | head -n1 | cut -d' ' -f1-2)"
  exit 0
fi

command -v apt-get >/dev/null 2>&1 || { echo "browser: no chromium and no apt-get: install Chromium and chromedriver yourself" >&2; exit 1; }
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
say "installing chromium and chromium-driver from Debian's packages (about a minute)"
$sudo apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
have || { echo "browser: chromium or chromedriver still missing after apt-get install" >&2; exit 1; }
say "installed $(chromium --version 2>/dev/null | head -n1)"
