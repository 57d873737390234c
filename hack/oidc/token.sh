#!/usr/bin/env bash
# Signs USER in at the local OpenID Connect provider the way a browser does,
# through the authorization code flow with PKCE and the provider's own login
# form, and prints the ID token:
#
#   kubectl --token "$(hack/oidc/token.sh lena)" auth whoami
#
#   hack/oidc/token.sh USER [CLIENT]   CLIENT: modelgate-console (default) or
#                                      modelgate-console-short (15 s tokens)
#
# The provider is the one of `hack/cluster.sh up`; its address and CA come
# from MODELGATE_OIDC_ISSUER and MODELGATE_OIDC_CA, else from
# `hack/cluster.sh env`. MODELGATE_OIDC_PASSWORD overrides the password of
# hack/oidc/users.json (modelgate-test).
set -euo pipefail

die() { printf 'token: %s\n' "$*" >&2; exit 1; }

if [ $# -lt 1 ] || [ $# -gt 2 ]; then echo "usage: $0 USER [CLIENT]" >&2; exit 2; fi
user=$1
client=${2:-modelgate-console}
if [ -z "${MODELGATE_OIDC_ISSUER:-}" ]; then
  eval "$("$(dirname "${BASH_SOURCE[0]}")/../cluster.sh" env)"
  [ -n "${MODELGATE_OIDC_ISSUER:-}" ] || die "the cluster has no OpenID Connect provider (MODELGATE_OIDC=0)"
fi
issuer=$MODELGATE_OIDC_ISSUER
secret=${MODELGATE_OIDC_CLIENT_SECRET:-modelgate-console-secret}
password=${MODELGATE_OIDC_PASSWORD:-modelgate-test}
# Nothing listens there: the flow stops at the redirect, as a browser would
# arrive at the console's callback.
redirect_uri=http://127.0.0.1:8000/callback

# Requests never follow redirects: each step reads the Location it is sent to.
req() { curl -sS --cacert "$MODELGATE_OIDC_CA" "$@"; }
location() { req -o /dev/null -w '%{redirect_url}' "$@"; }
# json_string FIELD: the string FIELD of the JSON object on stdin.
json_string() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
# query_param NAME URL
query_param() { sed -n "s/.*[?&]$1=\([^&]*\).*/\1/p" <<<"$2"; }
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

discovery=$(req -f "$issuer/.well-known/openid-configuration") ||
  die "no discovery document at $issuer (is the cluster up?)"
authorize=$(json_string authorization_endpoint <<<"$discovery")
token_endpoint=$(json_string token_endpoint <<<"$discovery")

verifier=$(openssl rand 48 | b64url)
challenge=$(printf %s "$verifier" | openssl dgst -sha256 -binary | b64url)
state=$(openssl rand -hex 12)
nonce=$(openssl rand -hex 12)

login=$(location -G "$authorize" --data-urlencode "client_id=$client" \
  --data-urlencode "redirect_uri=$redirect_uri" --data-urlencode "response_type=code" \
  --data-urlencode "scope=openid profile email" --data-urlencode "state=$state" \
  --data-urlencode "nonce=$nonce" --data-urlencode "code_challenge=$challenge" \
  --data-urlencode "code_challenge_method=S256")
[[ $login == "$issuer/login/"* ]] || die "the provider refused to sign in with client '$client' (see its log)"

# The login page's form: action, the auth request's hidden id, and the
# username and password inputs.
page=$(req -f "$login")
action=$(sed -n 's/.*<form method="POST" action="\([^"]*\)".*/\1/p' <<<"$page")
id=$(sed -n 's/.*<input type="hidden" name="id" value="\([^"]*\)".*/\1/p' <<<"$page")
if [ -z "$action" ] || [ -z "$id" ]; then die "unexpected login page at $login"; fi

callback=$(location "$issuer$action" --data-urlencode "id=$id" \
  --data-urlencode "username=$user" --data-urlencode "password=$password")
[ -n "$callback" ] || die "sign-in of '$user' refused (wrong user or password?)"
back=$(location "$callback")
[[ $back == "$redirect_uri?"* ]] || die "no redirect to the callback (got '$back')"
[ "$(query_param state "$back")" = "$state" ] || die "state mismatch in '$back'"
code=$(query_param code "$back")
[ -n "$code" ] || die "no code in '$back'"

tokens=$(req -u "$client:$secret" "$token_endpoint" --data-urlencode "grant_type=authorization_code" \
  --data-urlencode "code=$code" --data-urlencode "redirect_uri=$redirect_uri" \
  --data-urlencode "code_verifier=$verifier")
id_token=$(json_string id_token <<<"$tokens")
[ -n "$id_token" ] || die "no ID token from $token_endpoint: $tokens"
echo "$id_token"
