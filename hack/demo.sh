#!/usr/bin/env bash
# The modelgate demo, start to finish:
#   1. a control plane (the local one, built and started, when KUBECONFIG
#      names no cluster)
#   2. the operator and plugin built from this checkout
#   3. CRDs, RBAC, admission policies installed (crds/, deploy/)
#   4. the operator started as its own service account
#   5. a governed namespace: the model pushed to the registry as an OCI
#      artifact (with the local control plane), the platform's runtime
#      catalog, a sample ModelApproval and ModelDeployment applied, the
#      rollout held
#   6. five reviewers pass their gates through `kubectl modelgate`
#   7. the rollout (each pod mounting the approved model by digest), the
#      audit trail and its signed record verified offline, and a developer's
#      shortcut refused
# Run it again at will: it starts from a fresh demo namespace each time.
set -euo pipefail
cd "$(dirname "$0")/.."

NS=${MODELGATE_DEMO_NAMESPACE:-modelgate-demo}
STEPS=7
T0=$SECONDS
step() { printf '\n\033[1m==> [%s/%s] %s\033[0m (%ss)\n' "$1" "$STEPS" "$2" "$((SECONDS - T0))"; }
show() { printf '$'; printf ' %q' "$@"; printf '\n'; "$@"; }

if [ -z "${KUBECONFIG:-}" ]; then
  step 1 "local control plane (the first run builds it from source: about 10-15 minutes; later runs take seconds)"
  hack/cluster.sh up
  eval "$(hack/cluster.sh env)"
  local_cluster=1
else
  step 1 "using the cluster in KUBECONFIG"
  eval "$(hack/cluster.sh env | grep -v '^export KUBECONFIG=' | grep -v '_OIDC_')"
fi
kubectl() { "$MODELGATE_KUBECTL" "$@"; }

step 2 "building modelgate and kubectl-modelgate (cargo build; a few minutes the first time)"
cargo build --bins --quiet
BIN=$PWD/target/debug
export PATH=$BIN:$PATH

step 3 "installing the CRDs, RBAC and admission policies"
kubectl apply -f crds/ >/dev/null
kubectl wait --for=condition=Established crd/modelapprovals.modelgate.io crd/modeldeployments.modelgate.io crd/approvalrecords.modelgate.io crd/approvalpolicies.modelgate.io crd/runtimecatalogs.modelgate.io crd/breakglasses.modelgate.io --timeout=60s >/dev/null
kubectl apply --server-side --force-conflicts -k deploy/ >/dev/null
# The chart's operator Deployment would run a published image; the demo runs
# the operator from this checkout instead.
kubectl scale deployment/modelgate -n modelgate-system --replicas=0 >/dev/null
kubectl get validatingadmissionpolicies

step 4 "starting the operator as system:serviceaccount:modelgate-system:modelgate"
STATE=$(mktemp -d)
OPERATOR_PID=""
cleanup() {
  [ -z "$OPERATOR_PID" ] || kill "$OPERATOR_PID" 2>/dev/null || true
  rm -rf "$STATE"
}
trap cleanup EXIT
TOKEN=$(kubectl create token modelgate -n modelgate-system --duration 2h)
SERVER=$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.server}')
CA=$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
cat >"$STATE/operator.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: demo, cluster: {server: "$SERVER", certificate-authority-data: "$CA"}}]
users: [{name: modelgate, user: {token: "$TOKEN"}}]
contexts: [{name: demo, context: {cluster: demo, user: modelgate}}]
current-context: demo
EOF
PORT=${MODELGATE_DEMO_PORT:-18080}
KUBECONFIG="$STATE/operator.kubeconfig" "$BIN/modelgate" --instance demo --listen "127.0.0.1:$PORT" \
  --lease-duration 10 >"$STATE/operator.log" 2>&1 &
OPERATOR_PID=$!
for _ in $(seq 120); do
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
  kill -0 "$OPERATOR_PID" 2>/dev/null || { cat "$STATE/operator.log"; echo "demo: the operator exited"; exit 1; }
  sleep 0.5
done
echo "operator ready: http://127.0.0.1:$PORT/metrics"

oras_() { "$MODELGATE_ORAS" "$@" --ca-file "$MODELGATE_REGISTRY_CA"; }
# A small model in the ModelPack layout: weights, their config and a README.
push_demo_model() {
  local dir=$1 target=$2
  mkdir -p "$dir"
  head -c 4096 /dev/zero | tr '\0' 'w' >"$dir/model.safetensors"
  printf '{"model_type":"fraud-detector","hidden_size":64}\n' >"$dir/config.json"
  printf '# fraud-detector 2.4.0\n' >"$dir/README.md"
  printf '{"descriptor":{"name":"fraud-detector","version":"2.4.0"},"modelfs":{"type":"layers"}}\n' >"$dir/model-config.json"
  (cd "$dir" && show "$MODELGATE_ORAS" push --ca-file "$MODELGATE_REGISTRY_CA" \
    --artifact-type application/vnd.cncf.model.manifest.v1+json \
    --config model-config.json:application/vnd.cncf.model.config.v1+json "$target" \
    model.safetensors:application/vnd.cncf.model.weight.v1.raw \
    config.json:application/vnd.cncf.model.weight.config.v1.raw README.md:application/vnd.cncf.model.doc.v1.raw)
}

step 5 "a governed namespace, a model version and its deployment: the rollout is held until the five gates pass"
if kubectl get namespace "$NS" >/dev/null 2>&1; then
  kubectl delete namespace "$NS" --wait=true --timeout=120s >/dev/null
fi
kubectl create namespace "$NS" >/dev/null
# Governed: nothing runs here that modelgate did not release.
kubectl label namespace "$NS" modelgate.io/governed=true >/dev/null
approval=examples/approval.yaml
if [ -n "${MODELGATE_REGISTRY:-}" ] && [ -n "${MODELGATE_ORAS:-}" ]; then
  echo "# the model itself, pushed to the registry as an OCI artifact (ModelPack layout: its files are the layers):"
  push_demo_model "$STATE/model" "$MODELGATE_REGISTRY/models/fraud-detector:2.4.0"
  digest=$(oras_ resolve "$MODELGATE_REGISTRY/models/fraud-detector:2.4.0")
  sed -e "s#^    uri: .*#    uri: oci://$MODELGATE_REGISTRY/models/fraud-detector:2.4.0#" \
    -e "s#^    digest: .*#    digest: $digest#" examples/approval.yaml >"$STATE/approval.yaml"
  approval=$STATE/approval.yaml
  grep -E 'uri: oci|digest:' "$approval"
fi
echo "# the platform team's approved serving runtimes:"
show kubectl apply -f examples/runtimes.yaml
show kubectl apply -n "$NS" -f "$approval" -f examples/deployment.yaml
sleep 2
show kubectl get modelgate -n "$NS"
show kubectl get deployments -n "$NS"
show kubectl modelgate why fraud-detector -n "$NS"

step 6 "five reviewers pass their gates through kubectl modelgate (each as themselves)"
approve() {
  local gate=$1 user=$2 reason=$3 message=$4
  show kubectl modelgate approve fraud-detector-2-4-0 -n "$NS" --gate "$gate" --reason "$reason" -m "$message" \
    --as "$user" --as-group "modelgate:$gate-reviewers" --as-group system:authenticated
}
approve technical bob@example.com BenchmarksMet "AUC 0.94 on holdout-2026Q3, above the 0.92 bar"
approve fairness fay@example.com DisparityWithinBounds "max disparity ratio 1.04 across protected groups"
approve security sam@example.com PenTestPassed "no findings above low"
echo "# the same person may not pass a second gate (separation of duties):"
kubectl modelgate approve fraud-detector-2-4-0 -n "$NS" --gate legal --as sam@example.com \
  --as-group modelgate:security-reviewers --as-group modelgate:legal-reviewers --as-group system:authenticated || true
approve legal lee@example.com LicencesCleared "training data licences confirmed"
show kubectl modelgate status fraud-detector-2-4-0 -n "$NS"
approve business bea@example.com BusinessCaseApproved "expected fraud loss reduction 12%"
kubectl wait -n "$NS" --for=condition=Approved modelapproval/fraud-detector-2-4-0 --timeout=60s

step 7 "the rollout, and the audit trail"
kubectl wait -n "$NS" --for=condition=Available modeldeployment/fraud-detector --timeout=120s
show kubectl get modelgate -n "$NS"
show kubectl get pods -n "$NS" -o wide
echo "# every pod carries the approved identity:"
kubectl get pods -n "$NS" -o jsonpath='{range .items[*]}{.metadata.name}{": "}{range .spec.containers[0].env[*]}{.name}={.value}{" "}{end}{"\n"}{end}'
echo "# and mounts the approved model by its digest, read-only (an image volume):"
kubectl get pods -n "$NS" -o jsonpath='{range .items[*]}{.metadata.name}{": "}{range .spec.volumes[?(@.image)]}{.image.reference}{end}{" at "}{range .spec.containers[0].volumeMounts[?(@.name=="modelgate-model")]}{.mountPath}{" readOnly="}{.readOnly}{end}{"\n"}{end}'
echo "# sealed: only that model, through an approved runtime, egress limited by the operator's NetworkPolicy:"
kubectl get modeldeployment fraud-detector -n "$NS" -o jsonpath='{.status.conditions[?(@.type=="Sealed")].message}{"\n"}'
show kubectl get networkpolicy -n "$NS"
show kubectl modelgate history fraud-detector-2-4-0 -n "$NS"
echo "# the approval's signed record, exported and verified offline:"
show kubectl get approvalrecords -n "$NS"
audit_dir=$(mktemp -d)
show kubectl modelgate audit export -n "$NS" -o "$audit_dir/demo-audit.jsonl"
show kubectl modelgate audit verify "$audit_dir/demo-audit.jsonl"
show kubectl modelgate audit report "$audit_dir/demo-audit.jsonl" -o "$audit_dir/demo-audit.html"
echo "# a shortcut around the gates is refused, even for a cluster admin:"
show kubectl run shortcut -n "$NS" --image=registry.example.com/model-server:1.8 || true
show kubectl set image deployment/fraud-detector -n "$NS" server=registry.example.com/other:1 || true
if [ -n "${local_cluster:-}" ] && [ -n "${MODELGATE_OIDC_ISSUER:-}" ]; then
  echo "# the API server trusts the local OpenID provider too: a token from its sign-in is lena herself"
  api=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  echo '$ kubectl --kubeconfig /dev/null --server "$api" --certificate-authority "$MODELGATE_OIDC_CA" --token "$(hack/cluster.sh token lena)" auth whoami'
  kubectl --kubeconfig /dev/null --server "$api" --certificate-authority "$MODELGATE_OIDC_CA" \
    --token "$(hack/cluster.sh token lena)" auth whoami
fi

printf '\n\033[1mDone in %ss.\033[0m The control plane keeps running; the operator stops with this script.\n' "$((SECONDS - T0))"
echo "  eval \"\$(hack/cluster.sh env)\"; kubectl get modelgate -A     # look around"
printf '\nThe reviewers'"'"' console (docs/console.md), here as the legal reviewer of this demo:\n'
echo "  target/debug/kubectl-modelgate console -n $NS --as lee@example.com --as-group modelgate:legal-reviewers --as-group system:authenticated --open"
echo "  # then open http://127.0.0.1:8437/ in your browser; Ctrl-C stops it"
if [ -n "${local_cluster:-}" ] && [ -n "${MODELGATE_OIDC_ISSUER:-}" ]; then
  printf '\nThe console as it runs in the cluster: people sign in (lena, bo, ada, sam, fatima; password modelgate-test):\n'
  echo "  target/debug/kubectl-modelgate console -n $NS --listen 127.0.0.1:8080 --external-url http://127.0.0.1:8080 \\"
  echo "    --oidc-issuer $MODELGATE_OIDC_ISSUER --oidc-ca-file $MODELGATE_OIDC_CA \\"
  echo "    --oidc-client-secret-file <(printf %s $MODELGATE_OIDC_CLIENT_SECRET) --api-server $api --api-ca-file $MODELGATE_OIDC_CA"
fi
echo
echo "  hack/demo.sh                                                 # run it again"
echo "  hack/cluster.sh down                                         # stop the control plane"
