#!/usr/bin/env bash
# Benchmarks modelgate on the local control plane (or the cluster in
# KUBECONFIG) and prints ratios against baselines measured in the same run.
#   hack/bench.sh            the full run of docs/performance.md (about 15 minutes)
#   hack/bench.sh --smoke    a small run (CI runs it so the bench cannot rot)
# Other knobs: hack/bench.sh --help
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release
for arg in "$@"; do [ "$arg" = "--smoke" ] && profile=dev; done

if [ -z "${KUBECONFIG:-}" ]; then
  hack/cluster.sh up
  eval "$(hack/cluster.sh env)"
else
  eval "$(hack/cluster.sh env | grep -v '^export KUBECONFIG=')"
fi
echo "==> installing modelgate (CRDs, RBAC, policies); the bench runs the operator itself"
"$MODELGATE_KUBECTL" apply -f crds/ >/dev/null
"$MODELGATE_KUBECTL" wait --for=condition=Established crd/modelapprovals.modelgate.io crd/modeldeployments.modelgate.io crd/approvalrecords.modelgate.io crd/approvalpolicies.modelgate.io crd/runtimecatalogs.modelgate.io crd/breakglasses.modelgate.io crd/trustedpublishers.modelgate.io --timeout=60s >/dev/null
"$MODELGATE_KUBECTL" apply --server-side --force-conflicts -k deploy/ >/dev/null
"$MODELGATE_KUBECTL" scale deployment/modelgate -n modelgate-system --replicas=0 >/dev/null
echo "==> building ($profile)"
# The bench is a crate of its own (bench/); it starts the operator binary
# that lies beside it, so both land in the workspace's one target directory.
cargo build --profile "$profile" --quiet -p modelgate --bin modelgate
cargo build --profile "$profile" --quiet -p modelgate-bench
dir=${CARGO_TARGET_DIR:-target}/$([ "$profile" = dev ] && echo debug || echo release)
exec "$dir/modelgate-bench" "$@"
