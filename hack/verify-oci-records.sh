#!/usr/bin/env bash
# Checks the signed approval records attached to a model in its registry
# with tools nobody here wrote: oras lists and fetches them, jq and base64
# take each DSSE envelope apart, openssl checks its Ed25519 signature over
# the DSSE pre-authentication encoding, and jq checks that the statement is
# about this very digest (docs/fleet.md, "Checking it from the registry
# alone"). modelgate's own `kubectl modelgate audit verify oci://…` does the
# same; this is the cross-check.
#
#   hack/verify-oci-records.sh REGISTRY/REPOSITORY@sha256:… KEYS_DIR [oras flags…]
#
# KEYS_DIR holds the publisher's public keys as <key id>.pem, as its
# modelgate-public-keys ConfigMap has them. Extra arguments go to every oras
# call (e.g. --ca-file ca.pem). Prints one line per record; exits non-zero
# when any record does not verify.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,16p' "$0" >&2; exit 2; }
subject=$1 keys=$2
shift 2
repository=${subject%@*}
digest=${subject#*@}
oras=${MODELGATE_ORAS:-oras}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
record_type=application/vnd.modelgate.approval-record.v1+json

"$oras" discover "$@" --format json --artifact-type "$record_type" "$subject" >"$work/referrers.json"
referrers=$(jq -r '.referrers[].digest' "$work/referrers.json")
[ -n "$referrers" ] || { echo "no records are attached to $subject" >&2; exit 1; }
failed=0
for referrer in $referrers; do
  "$oras" manifest fetch "$@" "$repository@$referrer" >"$work/manifest.json"
  layer=$(jq -r '.layers[0].digest' "$work/manifest.json")
  "$oras" blob fetch "$@" --output "$work/envelope.json" "$repository@$layer"
  # The DSSE pre-authentication encoding: DSSEv1 SP len(type) SP type SP
  # len(payload) SP payload, lengths in bytes.
  jq -r .payload "$work/envelope.json" | base64 -d >"$work/payload"
  type=$(jq -r .payloadType "$work/envelope.json")
  printf 'DSSEv1 %d %s %d ' "${#type}" "$type" "$(wc -c <"$work/payload")" >"$work/pae"
  cat "$work/payload" >>"$work/pae"
  jq -r '.signatures[0].sig' "$work/envelope.json" | base64 -d >"$work/sig"
  keyid=$(jq -r '.signatures[0].keyid' "$work/envelope.json")
  what=$(jq -r '"\(.predicate.approval.namespace)/\(.predicate.approval.name) \(.predicate.phase) (seq \(.predicate.seq))"' "$work/payload")
  about=$(jq -r '.subject[0].digest.sha256' "$work/payload")
  if [ ! -f "$keys/$keyid.pem" ]; then
    echo "FAIL $referrer $what: signed by key $keyid, which $keys does not hold"; failed=1
  elif ! openssl pkeyutl -verify -pubin -inkey "$keys/$keyid.pem" -rawin -in "$work/pae" -sigfile "$work/sig" >/dev/null 2>&1; then
    echo "FAIL $referrer $what: the signature does not verify"; failed=1
  elif [ "sha256:$about" != "$digest" ]; then
    echo "FAIL $referrer $what: about sha256:$about, not $digest"; failed=1
  else
    echo "ok   $referrer $what"
  fi
done
exit "$failed"
