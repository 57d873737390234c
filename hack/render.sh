#!/usr/bin/env bash
# Regenerates every generated manifest: the CRDs (from the Rust types) into
# crds/ and the chart, and deploy/modelgate.yaml (from the Helm chart).
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
echo "rendered crds/, charts/modelgate/crds/ and deploy/modelgate.yaml"
