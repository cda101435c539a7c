#!/usr/bin/env bash
# Schemathesis against a real `vault serve`: requests generated from docs/openapi.yaml, on both
# listeners, must get answers the document describes (status codes, bodies, headers, auth).
#
#   Tests/OpenAPI/run_schemathesis.sh .build/debug/vault
#
# Bounded: at most SCHEMATHESIS_EXAMPLES cases per operation (default 50) and
# SCHEMATHESIS_SECONDS per listener (default 90), one worker, fixed seed. A throw-away vault in a
# temporary folder; schemathesis in a venv under .build (pinned, from PyPI).
#
# Left out: the positive_data_acceptance check. It expects every schema-valid request to be
# accepted, but some rules cannot be written in JSON Schema and are refused with a documented
# 400/422: the Luhn check (a numeric token must fail it, a pan must pass it), card expiry,
# from_wallet = to_wallet, and an Idempotency-Key reused with another body (schemathesis sends
# the same key with different bodies).
set -euo pipefail

if [[ $# -ne 1 || ! -x "$1" ]]; then
    echo "usage: $0 path/to/vault   (a built vault executable)" >&2
    exit 2
fi
VAULT="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
EXAMPLES="${SCHEMATHESIS_EXAMPLES:-50}"
SECONDS_PER_LISTENER="${SCHEMATHESIS_SECONDS:-90}"
VENV="$ROOT/.build/schemathesis-venv"
VERSION="4.32.5"

if [[ ! -x "$VENV/bin/schemathesis" ]] || [[ "$("$VENV/bin/schemathesis" --version 2>/dev/null)" != *"$VERSION"* ]]; then
    echo "schemathesis: installing $VERSION into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/vault-schemathesis.XXXXXX")"
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

STORAGE=(--data-dir "$WORK/data" --keys-dir "$WORK/keys")
"$VAULT" keys init "${STORAGE[@]}" >/dev/null
secret() { python3 -c 'import json, sys; print(json.load(sys.stdin)["secret"])'; }
PUBLIC_KEY=$("$VAULT" credentials create --name schemathesis --scope tokenize --scope tokens:read \
    --scope tokens:delete --scope wallet --json "${STORAGE[@]}" | secret)
DETOKENIZE_KEY=$("$VAULT" credentials create --name schemathesis-detokenize --scope detokenize \
    --scope audit:read --purpose settlement --json "${STORAGE[@]}" | secret)
NETWORK_KEY=$("$VAULT" credentials create --name schemathesis-network --scope network --json "${STORAGE[@]}" | secret)

"$VAULT" serve --public-port 0 --detokenize-port 0 --network-port 0 --log-level warning "${STORAGE[@]}" \
    >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER_PID=$!
port_of() { sed -n "s|^vault: $1 API listening on http://[^:]*:\([0-9]*\)$|\1|p" "$WORK/serve.out"; }
for _ in $(seq 1 200); do
    [[ -n "$(port_of public)" && -n "$(port_of detokenize)" && -n "$(port_of network)" ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/serve.err" >&2; exit 1; }
    sleep 0.1
done
PUBLIC_PORT="$(port_of public)"
DETOKENIZE_PORT="$(port_of detokenize)"
NETWORK_PORT="$(port_of network)"
[[ -n "$PUBLIC_PORT" && -n "$DETOKENIZE_PORT" ]] || { echo "schemathesis: vault serve did not start" >&2; exit 1; }

run() { # LISTENER PORT KEY PATH-REGEX
    echo "schemathesis: $1 listener" >&2
    # From the temporary folder: schemathesis keeps a cache (.schemathesis/) in its working folder.
    cd "$WORK"
    "$VENV/bin/schemathesis" run "$ROOT/docs/openapi.yaml" --url "http://127.0.0.1:$2" \
        -H "Authorization: Bearer $3" --include-path-regex "$4" \
        --checks all --exclude-checks positive_data_acceptance \
        --max-examples "$EXAMPLES" --max-time "$SECONDS_PER_LISTENER" --workers 1 --seed 1 \
        --generation-database none --no-color
}
run public "$PUBLIC_PORT" "$PUBLIC_KEY" '^/(v1/tokens|v1/wallets|v1/virtual_cards|v1/transfers|healthz)'
run detokenize "$DETOKENIZE_PORT" "$DETOKENIZE_KEY" '^/(v1/detokenize|v1/audit|healthz)$'
run network "$NETWORK_PORT" "$NETWORK_KEY" '^/(v1/network/.*|healthz)$'
