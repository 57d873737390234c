#!/usr/bin/env bash
# What a signed-in session costs the console in the cluster: starts the
# console in sign-in mode against the local control plane's provider, signs
# N people in through the real authorization code flow (curl, as a browser
# would), and prints the console's resident memory before and after, per
# session, and the time a sign-in takes against the time the provider alone
# takes for the same login (its token from hack/oidc/token.sh), measured in
# the same run. Figures are printed, never asserted.
#
#   hack/console-bench.sh [N]     (default 200; the local control plane must be up)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200}
eval "$(hack/cluster.sh env)"
[ -n "${MODELGATE_OIDC_ISSUER:-}" ] || { echo "console-bench: the local control plane's provider is off (MODELGATE_OIDC=0?)" >&2; exit 1; }
cargo build --quiet --release --bin kubectl-modelgate
api=$("$MODELGATE_KUBECTL" config view --minify -o jsonpath='{.clusters[0].cluster.server}')
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port
work=$(mktemp -d); trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
printf %s "$MODELGATE_OIDC_CLIENT_SECRET" >"$work/secret"
env -u KUBECONFIG target/release/kubectl-modelgate console -n default --listen "127.0.0.1:$port" \
  --external-url "$url" --oidc-issuer "$MODELGATE_OIDC_ISSUER" --oidc-ca-file "$MODELGATE_OIDC_CA" \
  --oidc-client-secret-file "$work/secret" --api-server "$api" --api-ca-file "$MODELGATE_OIDC_CA" \
  >"$work/console.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf -o /dev/null "$url/healthz" && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }

# One sign-in through the console: start, the provider's login form, the
# callback; the session cookie is what comes back.
sign_in() {
  local jar=$work/jar-$1 auth login id cb
  auth=$(curl -s -c "$jar" -o /dev/null -w '%{redirect_url}' "$url/signin/start?next=/")
  login=$(curl -s --cacert "$MODELGATE_OIDC_CA" -o /dev/null -w '%{redirect_url}' "$auth")
  id=${login##*authRequestID=}
  cb=$(curl -s --cacert "$MODELGATE_OIDC_CA" -o /dev/null -w '%{redirect_url}' \
    -d "id=$id&username=lena&password=modelgate-test" "$MODELGATE_OIDC_ISSUER/login/username")
  cb=$(curl -s --cacert "$MODELGATE_OIDC_CA" -o /dev/null -w '%{redirect_url}' "$cb")
  curl -s -b "$jar" -c "$jar" -o /dev/null -w '%{http_code}' "$cb" | grep -q 303
  grep -q modelgate-session "$jar"
}

sign_in warm
before=$(rss)
echo "[console-bench] signing $N people in through $url"
t0=$(date +%s.%N)
for i in $(seq "$N"); do
  sign_in "$i" || { echo "sign-in $i failed; console log: $work/console.log" >&2; exit 1; }
  [ $((i % 50)) -ne 0 ] || echo "[console-bench]   $i of $N"
done
t1=$(date +%s.%N)
after=$(rss)
t2=$(date +%s.%N)
for _ in $(seq "$N"); do hack/oidc/token.sh lena >/dev/null; done
t3=$(date +%s.%N)
python3 - "$N" "$before" "$after" "$t0" "$t1" "$t2" "$t3" <<'PY'
import sys
n, before, after = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
t0, t1, t2, t3 = map(float, sys.argv[4:8])
console, provider = (t1 - t0) / n * 1000, (t3 - t2) / n * 1000
print(f"resident memory: {before/1024:.1f} MiB after one sign-in, {after/1024:.1f} MiB with {n} more sessions: {(after-before)/n:.1f} KiB per session")
print(f"a sign-in through the console: {console:.1f} ms; the provider's own login flow (token.sh): {provider:.1f} ms; ratio {console/provider:.2f}")
PY
