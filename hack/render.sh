#!/usr/bin/env bash
# Regenerates every generated manifest: the CRDs (from the Rust types) into
# crds/ and the chart, deploy/modelgate.yaml (from the Helm chart), and the
# local control plane's static admission manifests in hack/static-admission/
# (from the chart with hack/static-admission-values.yaml).
# Tests fail when any of them is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
hack/cluster.sh build >/dev/null
eval "$(hack/cluster.sh env)"
cargo run -q --bin modelgate -- crd --dir crds
cp crds/*.yaml charts/modelgate/crds/
{
  echo "# Rendered from charts/modelgate by hack/render.sh; do not edit."
  echo "# kubectl apply -f crds/ && kubectl apply -k deploy/"
  # The chart's `helm test` pod is Helm's alone: plain manifests leave it out.
  "$MODELGATE_HELM" template modelgate charts/modelgate --namespace modelgate-system --skip-tests
} >deploy/modelgate.yaml
rm -f hack/static-admission/*.yaml
"$MODELGATE_HELM" template modelgate charts/modelgate --namespace modelgate-system --skip-tests \
  -f hack/static-admission-values.yaml |
  cargo run -q --bin modelgate -- static-admission --dir hack/static-admission 2>/dev/null
echo "rendered crds/, charts/modelgate/crds/, deploy/modelgate.yaml and hack/static-admission/"
