#!/usr/bin/env bash
# The modelgate demo: brings up the local control plane (unless KUBECONFIG
# names a cluster), installs the CRDs, applies the sample ModelApproval and
# ModelDeployment, and shows them.
set -euo pipefail
cd "$(dirname "$0")/.."

NS=${MODELGATE_DEMO_NAMESPACE:-modelgate-demo}
step() { printf '\n==> [%s] %s\n' "$1" "$2"; }

if [ -z "${KUBECONFIG:-}" ]; then
  step 1/4 "local control plane (the first run builds it from source: about 10-15 minutes)"
  hack/cluster.sh up
  eval "$(hack/cluster.sh env)"
else
  step 1/4 "using the cluster in KUBECONFIG=$KUBECONFIG"
  eval "$(hack/cluster.sh env | grep -v '^export KUBECONFIG=')"
fi
kubectl() { "$MODELGATE_KUBECTL" "$@"; }

step 2/4 "installing the CRDs (crds/)"
kubectl apply -f crds/
kubectl wait --for=condition=Established crd/modelapprovals.modelgate.io crd/modeldeployments.modelgate.io --timeout=60s

step 3/4 "applying the sample approval and deployment in namespace $NS"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -n "$NS" -f examples/approval.yaml -f examples/deployment.yaml

step 4/4 "what kubectl shows"
kubectl get modelgate -n "$NS"
echo
echo "The control plane keeps running. Try:"
echo "  eval \"\$(hack/cluster.sh env)\""
echo "  kubectl get modelgate -n $NS"
echo "  kubectl explain modelapproval.spec.model"
echo "Stop it with: hack/cluster.sh down"
