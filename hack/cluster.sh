#!/usr/bin/env bash
# The local control plane for modelgate's tests and demo.
#
#   hack/cluster.sh build   build etcd, kube-apiserver, kube-controller-manager,
#                           kube-scheduler, kubectl, kwok, helm and oras from
#                           their upstream Go modules, and the OpenID Connect
#                           provider of hack/oidc and the OCI registry of
#                           hack/registry (cached; instant when built)
#   hack/cluster.sh up      build if needed, then start everything on loopback
#                           and write a kubeconfig (a control plane already
#                           running only gets a registry it lacks)
#   hack/cluster.sh down    stop every process `up` started and remove its state
#   hack/cluster.sh env     print `export KUBECONFIG=… PATH=…` for eval
#   hack/cluster.sh status  say whether the control plane is running
#   hack/cluster.sh restart-apiserver   stop and start kube-apiserver (tests)
#   hack/cluster.sh admission   copy hack/static-admission/ (the static
#                           admission manifests) to the running API server's
#                           directory; it loads them within a minute
#   hack/cluster.sh token USER [CLIENT]  sign USER in at the OpenID Connect
#                           provider and print an ID token (hack/oidc/token.sh)
#
# Besides the admin's client certificate (the kubeconfig), kube-apiserver
# trusts ID tokens of a real OpenID Connect provider on loopback, as the web
# console's users sign in: hack/oidc, zitadel's example provider with the
# users of hack/oidc/users.json, on https://127.0.0.1:$MODELGATE_OIDC_PORT
# (default: the API port + 100). Its tokens become the user `oidc:<username>`
# with the groups of the token's `groups` claim. MODELGATE_OIDC=0 leaves it out.
#
# Models are OCI artifacts: hack/registry, go-containerregistry's registry
# with the OCI 1.1 referrers API, serves https://127.0.0.1:$MODELGATE_REGISTRY_PORT
# (default: the API port + 200) with a certificate of the cluster's CA, and
# holds what is pushed in memory for as long as it runs; oras pushes to it.
#
# Ports: etcd on $MODELGATE_PORT_BASE + 379 (and + 380 for its peers), the
# API server on + 443 (default base 16000). MODELGATE_PORT_BASE and
# MODELGATE_CLUSTER_DIR put a second cluster beside the first.
#
# Everything lives in $MODELGATE_CACHE (default ~/.cache/modelgate), outside
# the repository: binaries under bin/<component>-<version>/ (the provider's
# and the registry's as bin/oidc-provider-<hash of its sources> and
# bin/registry-<hash of its sources>), the running cluster's certificates,
# data, logs and pids under cluster/.
set -euo pipefail

K8S_VERSION=v1.37.2
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.8.0
HELM_VERSION=v3.22.0
ORAS_VERSION=v1.3.6

CACHE=${MODELGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelgate}
STATE=${MODELGATE_CLUSTER_DIR:-$CACHE/cluster}
PORT_BASE=${MODELGATE_PORT_BASE:-16000}
API_PORT=${MODELGATE_API_PORT:-$((PORT_BASE + 443))}
ETCD_PORT=${MODELGATE_ETCD_PORT:-$((PORT_BASE + 379))}
KWOK_NODES=${MODELGATE_KWOK_NODES:-2}
OIDC=${MODELGATE_OIDC:-1}
OIDC_PORT=${MODELGATE_OIDC_PORT:-$((API_PORT + 100))}
OIDC_ISSUER=https://127.0.0.1:$OIDC_PORT
OIDC_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/oidc" && pwd)
REGISTRY_PORT=${MODELGATE_REGISTRY_PORT:-$((API_PORT + 200))}
REGISTRY_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/registry" && pwd)

K8S_BIN=$CACHE/bin/kubernetes-$K8S_VERSION
ETCD_BIN=$CACHE/bin/etcd-$ETCD_VERSION
KWOK_BIN=$CACHE/bin/kwok-$KWOK_VERSION
HELM_BIN=$CACHE/bin/helm-$HELM_VERSION
ORAS_BIN=$CACHE/bin/oras-$ORAS_VERSION
KUBECONFIG_FILE=$STATE/kubeconfig

oidc_on() { [ "$OIDC" != 0 ]; }
# Our own modules' binaries are named after their sources, so an edit rebuilds them.
source_bin() {
  local name=$1 src=$2 hash
  hash=$(cd "$src" && cat go.mod go.sum ./*.go | sha256sum | cut -c1-12)
  echo "$CACHE/bin/$name-$hash"
}
oidc_bin() { source_bin oidc-provider "$OIDC_SRC"; }
registry_bin() { source_bin registry "$REGISTRY_SRC"; }

START=$SECONDS
say() { printf '[cluster %3ds] %s\n' "$((SECONDS - START))" "$*" >&2; }
die() { printf 'cluster: %s\n' "$*" >&2; exit 1; }

# Runs a long command while printing a heartbeat every 30 s, so a cold build
# never leaves a silent terminal. Output goes to a log that is shown on failure.
with_heartbeat() {
  local what=$1 log=$2; shift 2
  "$@" >"$log" 2>&1 &
  local pid=$! t0=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && say "  … still $what ($((SECONDS - t0))s so far)"
  done
  if ! wait "$pid"; then
    tail -n 40 "$log" >&2
    die "$what failed; full log: $log"
  fi
}

need_go() {
  # A fresh login shell may not have Go's default install directory on PATH.
  command -v go >/dev/null 2>&1 || [ ! -x /usr/local/go/bin/go ] || PATH=$PATH:/usr/local/go/bin
  command -v go >/dev/null 2>&1 || die "no Go toolchain on PATH: install Go 1.26 or newer to build the local control plane"
  export GOFLAGS=-buildvcs=false CGO_ENABLED=0
}

# A throwaway module in the cache that requires one upstream module; used for
# every component so that upstream replace lines never get in the way.
build_module_dir() {
  local dir=$CACHE/build/$1
  rm -rf "$dir" && mkdir -p "$dir"
  (cd "$dir" && go mod init "modelgate.local/build/$1" >/dev/null 2>&1)
  echo "$dir"
}

build_kubernetes() {
  [ -x "$K8S_BIN/kube-apiserver" ] && [ -x "$K8S_BIN/kubectl" ] && return 0
  need_go
  local dir; dir=$(build_module_dir "kubernetes-$K8S_VERSION")
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local staging_version=v0.${K8S_VERSION#v1.}
  say "[1/7] kubernetes $K8S_VERSION: resolving modules (a cold build takes about 10-15 minutes on 2 cores)"
  (
    cd "$dir"
    go mod edit -require="k8s.io/kubernetes@$K8S_VERSION"
    # The staging modules are the `=> ./staging/...` replace lines of the
    # upstream go.mod; point each at its published version instead.
    local gomod
    gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
    [ -f "$gomod" ] || die "could not download k8s.io/kubernetes@$K8S_VERSION"
    local n=0
    for m in $(awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "$gomod"); do
      go mod edit -replace="$m=$m@$staging_version"
      n=$((n + 1))
    done
    say "      $n staging modules pinned at $staging_version"
    with_heartbeat "resolving kubernetes dependencies" "$dir/get.log" \
      go get k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
        k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
    local date=2026-01-01T00:00:00Z ld="-s -w"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld="$ld -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
      ld="$ld -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
    done
    mkdir -p "$dir/out"
    say "      compiling kube-apiserver, kube-controller-manager, kube-scheduler, kubectl"
    with_heartbeat "compiling kubernetes" "$dir/build.log" \
      go build -trimpath -ldflags "$ld" -o "$dir/out/" \
        k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
        k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
  )
  rm -rf "$K8S_BIN" && mkdir -p "$(dirname "$K8S_BIN")" && mv "$dir/out" "$K8S_BIN"
}

build_etcd() {
  [ -x "$ETCD_BIN/etcd" ] && return 0
  need_go
  # etcd gets its own module: built together with kubernetes, minimum version
  # selection would move the etcd client libraries inside kube-apiserver.
  local dir; dir=$(build_module_dir "etcd-$ETCD_VERSION")
  say "[2/7] etcd $ETCD_VERSION"
  (
    cd "$dir"
    with_heartbeat "resolving etcd" "$dir/get.log" go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    mkdir -p out
    with_heartbeat "compiling etcd" "$dir/build.log" \
      go build -trimpath -ldflags "-s -w" -o out/etcd go.etcd.io/etcd/server/v3
  )
  rm -rf "$ETCD_BIN" && mkdir -p "$(dirname "$ETCD_BIN")" && mv "$dir/out" "$ETCD_BIN"
}

build_kwok() {
  [ -x "$KWOK_BIN/kwok" ] && [ -f "$KWOK_BIN/stages.yaml" ] && return 0
  need_go
  local dir; dir=$(build_module_dir "kwok-$KWOK_VERSION")
  say "[3/7] kwok $KWOK_VERSION"
  (
    cd "$dir"
    with_heartbeat "resolving kwok" "$dir/get.log" go get "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
    mkdir -p out
    with_heartbeat "compiling kwok" "$dir/build.log" \
      go build -trimpath -ldflags "-s -w" -o out/kwok sigs.k8s.io/kwok/cmd/kwok
    # kwok needs stage definitions; its module ships them. We take node
    # initialisation, the lease heartbeat, and the pod lifecycle, joined into
    # one multi-document file (a directory would need a kustomization).
    local src f
    src=$(go list -m -f '{{.Dir}}' "sigs.k8s.io/kwok")/kustomize/stage
    for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
      pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
      echo "---"; cat "$src/$f"
    done >out/stages.yaml
  )
  rm -rf "$KWOK_BIN" && mkdir -p "$(dirname "$KWOK_BIN")" && mv "$dir/out" "$KWOK_BIN"
}

build_helm() {
  [ -x "$HELM_BIN/helm" ] && return 0
  need_go
  local dir; dir=$(build_module_dir "helm-$HELM_VERSION")
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  say "[4/7] helm $HELM_VERSION"
  (
    cd "$dir"
    with_heartbeat "resolving helm" "$dir/get.log" go get "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
    mkdir -p out
    # Without these, helm assumes Kubernetes 1.20 for `template` and `lint`.
    local ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
    ld="$ld -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
    ld="$ld -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
    with_heartbeat "compiling helm" "$dir/build.log" \
      go build -trimpath -ldflags "$ld" -o out/helm helm.sh/helm/v3/cmd/helm
  )
  rm -rf "$HELM_BIN" && mkdir -p "$(dirname "$HELM_BIN")" && mv "$dir/out" "$HELM_BIN"
}

build_oras() {
  [ -x "$ORAS_BIN/oras" ] && return 0
  need_go
  local dir; dir=$(build_module_dir "oras-$ORAS_VERSION")
  say "[5/7] oras $ORAS_VERSION"
  (
    cd "$dir"
    with_heartbeat "resolving oras" "$dir/get.log" go get "oras.land/oras/cmd/oras@$ORAS_VERSION"
    mkdir -p out
    with_heartbeat "compiling oras" "$dir/build.log" \
      go build -trimpath -ldflags "-s -w" -o out/oras oras.land/oras/cmd/oras
  )
  rm -rf "$ORAS_BIN" && mkdir -p "$(dirname "$ORAS_BIN")" && mv "$dir/out" "$ORAS_BIN"
}

# Our own small modules, built from the repository (their go.sum pins them):
# build_source STEP NAME SRC.
build_source() {
  local step=$1 name=$2 src=$3 bin
  bin=$(source_bin "$name" "$src")
  [ -x "$bin" ] && return 0
  need_go
  say "$step $name from hack/$(basename "$src")"
  mkdir -p "$CACHE/build" "$CACHE/bin"
  with_heartbeat "compiling $name" "$CACHE/build/$name.log" \
    env GOWORK=off go -C "$src" build -trimpath -ldflags "-s -w" -o "$CACHE/build/$name" .
  rm -f "$CACHE/bin/$name"-* # builds of older sources
  mv "$CACHE/build/$name" "$bin"
}

cmd_build() {
  build_kubernetes
  build_etcd
  build_kwok
  build_helm
  build_oras
  if oidc_on; then build_source "[6/7]" oidc-provider "$OIDC_SRC"; fi
  build_source "[7/7]" registry "$REGISTRY_SRC"
  say "binaries ready in $CACHE/bin"
}

# ---------------------------------------------------------------- running

pidfile() { echo "$STATE/pids/$1"; }

running() {
  local f; f=$(pidfile "$1")
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

start() {
  local name=$1; shift
  mkdir -p "$STATE/pids" "$STATE/logs"
  # 9>&-: the daemon must not keep the lock of the run that started it.
  setsid "$@" >"$STATE/logs/$name.log" 2>&1 </dev/null 9>&- &
  echo $! >"$(pidfile "$name")"
}

# wait_for WHAT PROCESS TRIES CMD…: polls CMD every half second; gives up
# at once, with the end of its log, when PROCESS has exited.
wait_for() {
  local what=$1 proc=$2 tries=$3; shift 3
  for _ in $(seq "$tries"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if ! running "$proc"; then
      tail -n 5 "$STATE/logs/$proc.log" >&2
      die "$proc exited while waiting for $what; full log: $STATE/logs/$proc.log"
    fi
    sleep 0.5
  done
  die "$what did not come up in $((tries / 2))s; logs in $STATE/logs"
}

# serving_cert NAME CN SAN: NAME.crt and NAME.key for SAN, signed by the
# cluster's CA (run in the pki directory).
serving_cert() {
  local name=$1 cn=$2 san=$3
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san" >"$name.ext"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn" -keyout "$name.key" -out "$name.csr" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
    -extfile "$name.ext" -out "$name.crt" 2>/dev/null
}

make_certs() {
  local pki=$STATE/pki
  [ -f "$pki/admin.crt" ] && return 0
  mkdir -p "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=modelgate-local-ca" \
      -keyout ca.key -out ca.crt 2>/dev/null
    serving_cert server kube-apiserver \
      IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc
    # The admin identity may impersonate any user and group, which is how the
    # tests act as reviewers and as the operator's service account.
    echo "extendedKeyUsage=clientAuth" >client.ext
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=modelgate-admin" \
      -keyout admin.key -out admin.csr 2>/dev/null
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile client.ext -out admin.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

# The provider's serving certificate, signed by the cluster's CA; also added
# to a pki directory made before there was a provider.
make_oidc_cert() {
  local pki=$STATE/pki
  [ -f "$pki/oidc.crt" ] && [ -f "$pki/oidc.key" ] && return 0
  (cd "$pki" && serving_cert oidc modelgate-oidc-provider IP:127.0.0.1)
}

# runs_build NAME BIN: whether process NAME runs BIN, the build of the
# current sources (compared as the kernel names it: symlinks resolved).
runs_build() {
  running "$1" && [ "$(readlink "/proc/$(cat "$(pidfile "$1")")/exe")" = "$(readlink -f "$2")" ]
}
oidc_current() { runs_build oidc-provider "$(oidc_bin)"; }

start_oidc() {
  local pki=$STATE/pki
  say "starting oidc-provider on $OIDC_ISSUER"
  start oidc-provider "$(oidc_bin)" --issuer "$OIDC_ISSUER" --listen "127.0.0.1:$OIDC_PORT" \
    --tls-cert "$pki/oidc.crt" --tls-key "$pki/oidc.key" --users "$OIDC_SRC/users.json" \
    --short-lifetime 15s
  wait_for "the OIDC provider" oidc-provider 60 \
    curl -sf --cacert "$pki/ca.crt" "$OIDC_ISSUER/.well-known/openid-configuration"
}

# The registry's serving certificate, signed by the cluster's CA, so that
# oras, the operator and the tests trust it through the same CA as the API
# server; also added to a pki directory made before there was a registry.
make_registry_cert() {
  local pki=$STATE/pki
  [ -f "$pki/registry.crt" ] && [ -f "$pki/registry.key" ] && return 0
  (cd "$pki" && serving_cert registry modelgate-registry IP:127.0.0.1,DNS:localhost)
}

start_registry() {
  local pki=$STATE/pki
  say "starting the OCI registry on https://127.0.0.1:$REGISTRY_PORT"
  start registry "$(registry_bin)" --listen "127.0.0.1:$REGISTRY_PORT" \
    --tls-cert "$pki/registry.crt" --tls-key "$pki/registry.key"
  wait_for "the registry" registry 60 curl -sf --cacert "$pki/ca.crt" "https://127.0.0.1:$REGISTRY_PORT/v2/"
}

# The registry stands beside the control plane and starts and stops on its
# own: a control plane that runs without it, or with an older build of it,
# gets the current one and keeps running.
ensure_registry() {
  runs_build registry "$(registry_bin)" && return 0
  stop_process registry
  make_registry_cert
  start_registry
}

# kube-apiserver's structured authentication configuration: ID tokens of
# the provider for either console client, mapped to `oidc:<username>` and
# the token's groups. Client certificates keep working beside it.
write_authentication_config() {
  cat >"$STATE/authentication.yaml" <<EOF
apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
  - issuer:
      url: $OIDC_ISSUER
      audiences: [modelgate-console, modelgate-console-short]
      audienceMatchPolicy: MatchAny
      certificateAuthority: |
$(sed 's/^/        /' "$STATE/pki/ca.crt")
    claimMappings:
      username: {claim: preferred_username, prefix: "oidc:"}
      groups: {claim: groups, prefix: ""}
EOF
}

write_kubeconfig() {
  local pki=$STATE/pki
  cat >"$KUBECONFIG_FILE" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: modelgate-local
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: modelgate-admin
  user:
    client-certificate-data: $(base64 -w0 "$pki/admin.crt")
    client-key-data: $(base64 -w0 "$pki/admin.key")
contexts:
- name: modelgate-local
  context: {cluster: modelgate-local, user: modelgate-admin, namespace: default}
current-context: modelgate-local
EOF
  chmod 0600 "$KUBECONFIG_FILE"
}

kubectl_local() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

# The API server's audit log: admission exceptions (governed namespaces)
# are marked there by audit annotations, and the tests read them back.
write_audit_policy() {
  cat >"$STATE/audit-policy.yaml" <<'EOF2'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    verbs: [get, list, watch]
  - level: None
    resources:
      - {group: "", resources: [events]}
      - {group: coordination.k8s.io, resources: [leases]}
  - level: Metadata
EOF2
}

# Static admission manifests (Kubernetes manifest-based admission control,
# KEP-5793): the governed-namespace and managed-Deployment rules, rendered
# from the chart into hack/static-admission/ by hack/render.sh, loaded by
# the API server from a directory of its own. Nobody can delete or change
# them through the API. The API server reads the directory again every
# minute, so `hack/cluster.sh admission` after a re-render updates a running
# cluster; a file it cannot load keeps the rules it had (and, at start,
# stops the API server with the reason in its log).
ADMISSION_DIR=$STATE/admission/validating-policies
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

copy_static_admission() {
  local src=$REPO/hack/static-admission tmp f
  ls "$src"/*.static.k8s.io.yaml >/dev/null 2>&1 || die "no static admission manifests in $src: run hack/render.sh"
  mkdir -p "$ADMISSION_DIR"
  # Each file is replaced whole (a rename), so a reload never reads half a file.
  tmp=$(mktemp -d "$STATE/admission/.new.XXXXXX")
  cp "$src"/*.static.k8s.io.yaml "$tmp/"
  # The directory holds only what hack/static-admission/ holds now.
  for f in "$ADMISSION_DIR"/*; do
    if [ -e "$f" ] && [ ! -e "$tmp/$(basename "$f")" ]; then rm -f "$f"; fi
  done
  mv -f "$tmp"/*.yaml "$ADMISSION_DIR/"
  rmdir "$tmp"
}

write_admission_config() {
  copy_static_admission
  cat >"$STATE/admission/admission-configuration.yaml" <<EOF
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
  - name: ValidatingAdmissionPolicy
    configuration:
      apiVersion: apiserver.config.k8s.io/v1
      kind: ValidatingAdmissionPolicyConfiguration
      staticManifestsDir: $ADMISSION_DIR
EOF
}

cmd_admission() {
  running kube-apiserver || die "kube-apiserver is not running"
  copy_static_admission
  say "copied $(ls "$ADMISSION_DIR" | wc -l) static admission manifests to $ADMISSION_DIR; the API server loads them within a minute"
}

start_apiserver() {
  local pki=$STATE/pki authn=()
  write_audit_policy
  write_admission_config
  if oidc_on; then
    write_authentication_config
    authn=(--authentication-config "$STATE/authentication.yaml")
  fi
  say "starting kube-apiserver on https://127.0.0.1:$API_PORT"
  start kube-apiserver "$K8S_BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
    --tls-cert-file "$pki/server.crt" --tls-private-key-file "$pki/server.key" \
    --client-ca-file "$pki/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --endpoint-reconciler-type none \
    --authorization-mode Node,RBAC \
    --allow-privileged=true \
    --enable-priority-and-fairness=false \
    --event-ttl 1h \
    --audit-policy-file "$STATE/audit-policy.yaml" --audit-log-path "$STATE/audit.log" \
    --audit-log-maxsize 100 --audit-log-maxbackup 1 \
    --feature-gates ManifestBasedAdmissionControlConfig=true \
    --admission-control-config-file "$STATE/admission/admission-configuration.yaml" \
    "${authn[@]}"
}

# Stops kube-apiserver and starts it again with the same flags, for tests of
# how the operator rides out an API server restart.
cmd_restart_apiserver() {
  running kube-apiserver || die "kube-apiserver is not running"
  local pid; pid=$(cat "$(pidfile kube-apiserver)")
  kill "$pid"
  for _ in $(seq 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null || true
  start_apiserver
  wait_for "the API server" kube-apiserver 240 kubectl_local get --raw /readyz
  say "kube-apiserver restarted"
}

cmd_up() {
  cmd_build
  if control_plane_running && kubectl_local get --raw /readyz >/dev/null 2>&1; then
    if ! oidc_on || oidc_current; then
      ensure_registry
      say "already running; KUBECONFIG=$KUBECONFIG_FILE"
      return 0
    fi
    say "oidc-provider is not the build of the current hack/oidc: restarting everything"
  elif [ -d "$STATE/pids" ]; then
    say "not all of the control plane is running: restarting everything"
  fi
  cmd_down quiet
  mkdir -p "$STATE"
  make_certs
  local pki=$STATE/pki
  # Before the API server, which fetches the provider's keys when it starts.
  if oidc_on; then
    make_oidc_cert
    start_oidc
  fi
  make_registry_cert
  start_registry
  say "starting etcd on 127.0.0.1:$ETCD_PORT"
  start etcd "$ETCD_BIN/etcd" --data-dir "$STATE/etcd" --unsafe-no-fsync \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-cluster "default=http://127.0.0.1:$((ETCD_PORT + 1))" \
    --listen-metrics-urls "" --log-level warn
  wait_for etcd etcd 60 curl -sf "http://127.0.0.1:$ETCD_PORT/health"

  start_apiserver
  write_kubeconfig
  wait_for "the API server" kube-apiserver 240 kubectl_local get --raw /readyz

  say "starting kube-controller-manager and kube-scheduler"
  start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig "$KUBECONFIG_FILE" --authentication-kubeconfig "$KUBECONFIG_FILE" \
    --authorization-kubeconfig "$KUBECONFIG_FILE" \
    --bind-address 127.0.0.1 --secure-port 0 --leader-elect=false \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --use-service-account-credentials=true \
    --node-monitor-grace-period 2m \
    --controllers '*,-nodeipam'
  start kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig "$KUBECONFIG_FILE" --authentication-kubeconfig "$KUBECONFIG_FILE" \
    --authorization-kubeconfig "$KUBECONFIG_FILE" \
    --bind-address 127.0.0.1 --secure-port 0 --leader-elect=false

  say "starting kwok with $KWOK_NODES fake nodes"
  start kwok "$KWOK_BIN/kwok" --kubeconfig "$KUBECONFIG_FILE" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --cidr 10.244.0.0/16 --node-ip 10.0.0.10 --config "$KWOK_BIN/stages.yaml" \
    --node-lease-duration-seconds 40 \
    --server-address 127.0.0.1:0
  local i
  # The resources a kubelet reports, ephemeral-storage included: without it
  # a pod that requests some (the chart's operator does) never schedules.
  for i in $(seq 0 $((KWOK_NODES - 1))); do
    kubectl_local apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations: {kwok.x-k8s.io/node: fake}
  labels: {type: kwok, kubernetes.io/hostname: kwok-node-$i, kubernetes.io/os: linux}
status:
  allocatable: {cpu: "32", memory: 256Gi, ephemeral-storage: 100Gi, pods: "1000"}
  capacity: {cpu: "32", memory: 256Gi, ephemeral-storage: 100Gi, pods: "1000"}
EOF
  done
  wait_for "kwok nodes" kwok 120 kubectl_local wait --for=condition=Ready nodes --all --timeout=1s
  wait_for "the default service account" kube-controller-manager 120 kubectl_local get serviceaccount default -n default
  say "control plane ready: export KUBECONFIG=$KUBECONFIG_FILE"
}

# Stops process NAME by the pid `start` recorded (SIGTERM, then SIGKILL after 10 s).
stop_process() {
  local name=$1 pid
  [ -f "$(pidfile "$name")" ] || return 0
  pid=$(cat "$(pidfile "$name")")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$(pidfile "$name")"
}

cmd_down() {
  local quiet=${1:-}
  [ -d "$STATE/pids" ] || { [ -n "$quiet" ] || say "not running"; return 0; }
  local name
  for name in registry kwok kube-scheduler kube-controller-manager kube-apiserver oidc-provider etcd; do
    stop_process "$name"
  done
  # Certificates are kept so that a restarted cluster trusts old kubeconfigs;
  # the data is not, so every `up` starts from an empty cluster.
  rm -rf "$STATE/etcd" "$STATE/pids"
  [ -n "$quiet" ] || say "stopped"
}

cmd_env() {
  echo "export KUBECONFIG=$KUBECONFIG_FILE"
  echo "export MODELGATE_KUBECTL=$K8S_BIN/kubectl"
  echo "export MODELGATE_HELM=$HELM_BIN/helm"
  echo "export MODELGATE_AUDIT_LOG=$STATE/audit.log"
  echo "export MODELGATE_STATIC_ADMISSION=$ADMISSION_DIR"
  echo "export MODELGATE_REGISTRY=127.0.0.1:$REGISTRY_PORT"
  echo "export MODELGATE_REGISTRY_CA=$STATE/pki/ca.crt"
  echo "export MODELGATE_ORAS=$ORAS_BIN/oras"
  echo "export MODELGATE_ETCD=http://127.0.0.1:$ETCD_PORT"
  echo "export PATH=$K8S_BIN:$HELM_BIN:$ORAS_BIN:\$PATH"
  if oidc_on; then
    echo "export MODELGATE_OIDC_ISSUER=$OIDC_ISSUER"
    echo "export MODELGATE_OIDC_CA=$STATE/pki/ca.crt"
    echo "export MODELGATE_OIDC_CLIENT_ID=modelgate-console"
    echo "export MODELGATE_OIDC_CLIENT_SECRET=modelgate-console-secret"
    echo "export MODELGATE_OIDC_USERS=$OIDC_SRC/users.json"
  fi
}

# The processes of the control plane proper; the registry stands beside it.
control_plane() {
  echo etcd kube-apiserver kube-controller-manager kube-scheduler kwok
  if oidc_on; then echo oidc-provider; fi
}

control_plane_running() {
  local name
  for name in $(control_plane); do running "$name" || return 1; done
}

cmd_status() {
  local name where ok=0
  for name in $(control_plane) registry; do
    where=""
    if [ "$name" = registry ]; then where=", https://127.0.0.1:$REGISTRY_PORT"; fi
    if running "$name"; then echo "$name: running (pid $(cat "$(pidfile "$name")")$where)"; else echo "$name: stopped"; ok=1; fi
  done
  return $ok
}

# Two runs at once (the demo in one terminal, the tests in another) would
# build into the same directory and stop each other's processes: the
# commands that build, start or stop wait for each other.
exclusive() {
  mkdir -p "$CACHE"
  exec 9>"$CACHE/cluster.lock"
  if ! flock -n 9; then
    say "another hack/cluster.sh is building, starting or stopping the control plane: waiting for it"
    flock 9
  fi
}

case "${1:-}" in
  build) exclusive; cmd_build ;;
  up) exclusive; cmd_up ;;
  down) exclusive; cmd_down ;;
  env) cmd_env ;;
  status) cmd_status ;;
  restart-apiserver) cmd_restart_apiserver ;;
  admission) cmd_admission ;;
  token)
    oidc_on || die "the OpenID Connect provider is off (MODELGATE_OIDC=0)"
    eval "$(cmd_env)"
    exec "$OIDC_SRC/token.sh" "${@:2}"
    ;;
  *) echo "usage: $0 build|up|down|env|status|restart-apiserver|admission|token USER [CLIENT]" >&2; exit 2 ;;
esac
