#!/usr/bin/env bash
# Interop test: records written by the `vault` binary must open with an independent
# implementation of docs/CRYPTO.md (decrypt_record.py, PyNaCl), and the audit chain must verify.
#
#   Tests/Interop/run_interop.sh .build/debug/vault
#
# Uses a throw-away vault in a temporary folder and well-known TEST card numbers only.
# Environment: INTEROP_KEEP=1 keeps the temporary folder; INTEROP_SKIP_LIFECYCLE=1 skips the
# rewrap / retire / rotate-master phase; INTEROP_SKIP_ROOT_ROTATION=1 skips the rotate-root phase.
set -euo pipefail

if [[ $# -ne 1 || ! -x "$1" ]]; then
    echo "usage: $0 path/to/vault   (a built vault executable)" >&2
    exit 2
fi
VAULT="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DECRYPT="$HERE/decrypt_record.py"

# PyNaCl comes from the project's virtual environment (.build/venv), never the system Python.
python3 -c 'import nacl' 2>/dev/null || { source "$HERE/../../Scripts/lib.sh"; ensure_pip nacl pynacl; }
python3 -c 'import nacl' || { echo "interop: PyNaCl is not available" >&2; exit 2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/vault-interop.XXXXXX")"
DATA="$WORK/data"
KEYS="$WORK/keys"
MASTER="$KEYS/master.key"
DB="$DATA/vault.db"
SERVER_PID=""
PASSED=0
FAILED=0

stop_server() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "interop: server $SERVER_PID did not stop on SIGTERM; killing it" >&2
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}

cleanup() {
    stop_server
    if [[ "${INTEROP_KEEP:-0}" == 1 ]]; then
        echo "interop: kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

pass() { PASSED=$((PASSED + 1)); echo "  ok    $1"; }
fail() { FAILED=$((FAILED + 1)); echo "  FAIL  $1" >&2; }
# check NAME COMMAND…: runs the command and counts the outcome.
check() {
    local name="$1"
    shift
    if "$@"; then pass "$name"; else fail "$name"; fi
}
# fatal MESSAGE: a step the rest depends on failed.
fatal() {
    echo "interop: FATAL: $1" >&2
    if [[ -f "$WORK/serve.log" ]]; then
        echo "---- server log (last 30 lines) ----" >&2
        tail -n 30 "$WORK/serve.log" >&2 || true
    fi
    echo "interop: $PASSED passed, $((FAILED + 1)) failed" >&2
    exit 1
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# http METHOD URL [BODY]: prints the status code on the first line and the body after it.
# The bearer secret comes from $BEARER (environment, not argv, so `ps` does not show it).
http() {
    python3 - "$@" <<'PY'
import os, sys, urllib.error, urllib.request
method, url = sys.argv[1], sys.argv[2]
body = sys.argv[3].encode() if len(sys.argv) > 3 else None
request = urllib.request.Request(url, data=body, method=method)
if body is not None:
    request.add_header("Content-Type", "application/json")
if os.environ.get("BEARER"):
    request.add_header("Authorization", "Bearer " + os.environ["BEARER"])
try:
    with urllib.request.urlopen(request, timeout=15) as response:
        print(response.status)
        print(response.read().decode())
except urllib.error.HTTPError as error:
    print(error.code)
    print(error.read().decode())
except Exception as error:  # connection refused while starting up, …
    print(0)
    print(error)
PY
}

# json_get JSON KEY: prints one top-level field ("" if absent; booleans as true/false).
json_get() {
    python3 -c '
import json, sys
value = json.loads(sys.argv[1]).get(sys.argv[2], "")
print(json.dumps(value) if isinstance(value, bool) or value is None else value)' "$1" "$2"
}

# sql QUERY [ARG…]: prints each row of a read-only query, columns separated by "|".
sql() {
    python3 - "$DB" "$@" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=30)
for row in db.execute(sys.argv[2], sys.argv[3:]):
    print("|".join("NULL" if v is None else v.hex() if isinstance(v, bytes) else str(v) for v in row))
PY
}

echo "interop: vault binary $VAULT"
echo "interop: work folder $WORK"

# ---------------------------------------------------------------- 1. initialise
"$VAULT" keys init --data-dir "$DATA" --keys-dir "$KEYS" >"$WORK/init.log" 2>&1 \
    || { cat "$WORK/init.log" >&2; fatal "vault keys init failed"; }
check "keys init created a 32-byte master key with mode 600" \
    test "$(python3 -c 'import os, sys; s = os.stat(sys.argv[1]); print(s.st_size, format(s.st_mode & 0o777, "o"))' "$MASTER" 2>/dev/null)" = "32 600"
check "keys init created vault.db" test -f "$DB"
check "the issued-card CVV vectors of CRYPTO.md §21 check out in Python" \
    bash -c 'python3 "$1" --check-cvv-vectors >/dev/null' _ "$DECRYPT"

# ---------------------------------------------------------------- 2. serve
# start_server: starts `vault serve` on free ports, sets SERVER_PID and BASE, waits for /healthz.
start_server() {
    local port flag health up=0
    port="$(free_port)"
    SERVE_ARGS=(serve --data-dir "$DATA" --keys-dir "$KEYS" --host 127.0.0.1 --public-port "$port" --detokenize-port 0)
    # A separate detokenize listener, if this build has one, must not collide with anything either.
    SERVE_HELP="$("$VAULT" serve --help 2>&1 || true)"
    for flag in --detokenize-port --network-port --private-port; do
        if grep -q -- "$flag" <<<"$SERVE_HELP"; then SERVE_ARGS+=("$flag" "$(free_port)"); fi
    done
    "$VAULT" "${SERVE_ARGS[@]}" >>"$WORK/serve.log" 2>&1 &
    SERVER_PID=$!
    BASE="http://127.0.0.1:$port"
    for _ in $(seq 1 120); do
        kill -0 "$SERVER_PID" 2>/dev/null || fatal "vault serve exited during start-up"
        health="$(http GET "$BASE/healthz")"
        if [[ "${health%%$'\n'*}" == 200 ]]; then up=1; break; fi
        sleep 0.25
    done
    [[ $up == 1 ]] || fatal "vault serve did not answer GET /healthz within 30 s"
    pass "vault serve is up on port $port"
}
start_server

# ---------------------------------------------------------------- 3. credential
CREDENTIAL="$("$VAULT" credentials create --name interop --scope tokenize --json --data-dir "$DATA" --keys-dir "$KEYS")" \
    || fatal "vault credentials create failed"
BEARER="$(json_get "$CREDENTIAL" secret)"
export BEARER
[[ "$BEARER" =~ ^vk_[a-z0-9]{16}_[A-Za-z0-9_-]{43}$ ]] || fatal "credential secret does not have the documented shape"
pass "credential created (secret has the documented vk_<id>_<43> shape)"

# ---------------------------------------------------------------- 4. tokenize
TOKENS=()      # token|pan|month|year|cvv|expected key version|expected fingerprint (root) version
LAST_TOKEN=""
LAST_FINGERPRINT=""
# tokenize PAN MONTH YEAR CVV FORMAT [DEDUPE]: sets LAST_TOKEN and LAST_FINGERPRINT (the API's).
tokenize() {
    local pan="$1" month="$2" year="$3" cvv="$4" format="$5" dedupe="${6:-false}" response status body
    response="$(http POST "$BASE/v1/tokens" \
        "{\"pan\":\"$pan\",\"exp_month\":$month,\"exp_year\":$year,\"cvv\":\"$cvv\",\"format\":\"$format\",\"dedupe\":$dedupe}")"
    status="${response%%$'\n'*}"
    body="$(tail -n +2 <<<"$response")"
    if [[ "$status" != 201 && "$status" != 200 ]]; then
        fatal "POST /v1/tokens ($format, ${pan:0:6}…${pan: -4}) answered $status: $body"
    fi
    if grep -q -- "$pan" <<<"$body" || grep -q -- "\"$cvv\"" <<<"$body"; then
        fail "the tokenize response echoes the PAN or CVV"
    fi
    LAST_TOKEN="$(json_get "$body" token)"
    LAST_FINGERPRINT="$(json_get "$body" fingerprint)"
    [[ -n "$LAST_TOKEN" ]] || fatal "POST /v1/tokens returned no token: $body"
    # The API shows the caller's fingerprint (CRYPTO.md §8.1), never the stored internal one;
    # the independent decoder derives the same value from the master key.
    local decoded how="$format"
    [[ "$dedupe" == true ]] && how="$format with dedupe"
    decoded="$(python3 "$DECRYPT" --master-key "$MASTER" --db "$DB" --token "$LAST_TOKEN" || true)"
    check "tokenized ${pan:0:6}…${pan: -4} as $how: $LAST_TOKEN (API fingerprint is the caller's, not the stored one)" \
        test "$(json_get "$body" fingerprint)" = "$(json_get "$decoded" caller_fingerprint)" \
        -a "$(json_get "$body" fingerprint)" != "$(sql 'SELECT fingerprint FROM cards WHERE token = ?' "$LAST_TOKEN")"
}

tokenize 4111111111111111 12 2031 123 opaque
TOKENS+=("$LAST_TOKEN|4111111111111111|12|2031|123|1|0")
tokenize 5555555555554444 11 2030 321 numeric
TOKENS+=("$LAST_TOKEN|5555555555554444|11|2030|321|1|0")

# ---------------------------------------------------------------- 5. rotate while serving
ROTATED="$("$VAULT" keys rotate --json --data-dir "$DATA" --keys-dir "$KEYS")" || fatal "vault keys rotate failed"
check "keys rotate made v2 active" test "$(json_get "$ROTATED" active_version)" = 2

# The server reloads the key ring every second: the first record under v2 must come within 10 s.
deadline=$((SECONDS + 10))
while :; do
    tokenize 378282246310005 6 2030 1234 opaque
    version="$(sql 'SELECT key_version FROM cards WHERE token = ?' "$LAST_TOKEN")"
    TOKENS+=("$LAST_TOKEN|378282246310005|6|2030|1234|$version|0")
    [[ "$version" == 2 ]] && break
    ((SECONDS < deadline)) || break
    sleep 1
done
check "the running server encrypts under v2 after the rotation" test "$version" = 2

stop_server
pass "server stopped"

# ---------------------------------------------------------------- 6. decrypt independently
# verify_all PHASE [VERSION [ROOT_VERSION]]: every test token decrypts, matches, and is under data key
# VERSION and has its fingerprint under root version ROOT_VERSION (if given; else as in TOKENS).
verify_all() {
    local phase="$1" want_version="${2:-}" want_root="${3:-}" entry token pan month year cvv version root output
    for entry in "${TOKENS[@]}"; do
        IFS='|' read -r token pan month year cvv version root <<<"$entry"
        [[ -n "$want_version" ]] && version="$want_version"
        [[ -n "$want_root" ]] && root="$want_root"
        if ! output="$(python3 "$DECRYPT" --master-key "$MASTER" --db "$DB" --token "$token" --expect-cvv "$cvv")"; then
            fail "$phase: decrypt_record.py $token: ${output:-no output} (see stderr above)"
            continue
        fi
        check "$phase: $token → PAN, expiry, fingerprint (root v$root), metadata, token shape, key v$version; CVV held and opens with no key" python3 -c '
import json, sys
r = json.loads(sys.argv[1])
expected = {"token": sys.argv[2], "pan": sys.argv[3], "exp_month": int(sys.argv[4]), "exp_year": int(sys.argv[5]),
            "key_version": int(sys.argv[6]), "fingerprint_version": int(sys.argv[7]), "fingerprint_ok": True,
            "metadata_ok": True, "token_format_ok": True, "cvv_ok": True}
bad = {k: (r.get(k), v) for k, v in expected.items() if r.get(k) != v}
if bad:
    print("    mismatch (got, expected):", {k: ("<pan>" if k == "pan" else g, "<pan>" if k == "pan" else e)
                                            for k, (g, e) in bad.items()}, file=sys.stderr)
sys.exit(1 if bad else 0)' "$output" "$token" "$pan" "$month" "$year" "$version" "$root"
    done
}

# retag_tokens VERSION [ROOT_VERSION]: every test token is now under data key VERSION (after a
# rewrap), and its fingerprint under root version ROOT_VERSION (if given).
retag_tokens() {
    local entry token pan month year cvv version root retagged=()
    for entry in "${TOKENS[@]}"; do
        IFS='|' read -r token pan month year cvv version root <<<"$entry"
        retagged+=("$token|$pan|$month|$year|$cvv|$1|${2:-$root}")
    done
    TOKENS=("${retagged[@]}")
}

verify_audit() {
    local phase="$1" output
    output="$(python3 "$DECRYPT" --master-key "$MASTER" --db "$DB" --verify-audit)" || true
    check "$phase: audit chain verifies ($output)" test "$(json_get "$output" ok)" = true
}

# verify_rows PHASE: every data_keys, credentials and vault_meta row passes its row MAC under the
# newest root version, and the interop credential's hash is that of its secret under its
# hash_version; prints that version.
verify_rows() {
    local phase="$1" output
    output="$(CREDENTIAL_SECRET="$BEARER" python3 "$DECRYPT" --master-key "$MASTER" --db "$DB" \
        --verify-rows --secret-env CREDENTIAL_SECRET)" || true
    check "$phase: row MACs under the newest root key, credential hash under root v$(json_get "$output" credential_hash_version) ($output)" \
        test "$(json_get "$output" ok)" = true -a "$(json_get "$output" credential_hash_ok)" = true
}

verify_all "after rotate"
verify_audit "after rotate"

# The checks must be able to fail: a ciphertext moved to another token's row, a wrong master
# key and an edited audit record are all refused (on a copy of the database).
COPY="$WORK/tampered.db"
python3 - "$DB" "$COPY" <<'PY'
import sqlite3, sys
source, target = sqlite3.connect(sys.argv[1]), sqlite3.connect(sys.argv[2])
source.backup(target)
source.close()
target.execute("PRAGMA journal_mode = DELETE")
target.close()
PY
# The copy's audit head file sits beside it, so the edit below is the only thing wrong.
cp "$DATA/audit.head" "$WORK/audit.head"
check "an untouched copy of the audit log verifies" \
    bash -c 'python3 "$1" --master-key "$2" --db "$3" --verify-audit >/dev/null' _ "$DECRYPT" "$MASTER" "$COPY"
IFS='|' read -r T1 _ <<<"${TOKENS[0]}"
IFS='|' read -r T2 _ <<<"${TOKENS[1]}"
python3 - "$COPY" "$T1" "$T2" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
(other,) = db.execute("SELECT ciphertext FROM cards WHERE token = ?", (sys.argv[3],)).fetchone()
db.execute("UPDATE cards SET ciphertext = ? WHERE token = ?", (other, sys.argv[2]))
db.execute("UPDATE audit_log SET detail = 'edited' WHERE sequence = (SELECT max(sequence) FROM audit_log)")
db.commit()
PY
check "a ciphertext copied onto another token's row is refused (token binding)" \
    bash -c '! python3 "$1" --master-key "$2" --db "$3" --token "$4" >/dev/null 2>&1' _ "$DECRYPT" "$MASTER" "$COPY" "$T1"
check "an edited audit record is detected" \
    bash -c '! python3 "$1" --master-key "$2" --db "$3" --verify-audit >/dev/null 2>&1' _ "$DECRYPT" "$MASTER" "$COPY"
head -c 32 /dev/urandom >"$WORK/wrong.key"
chmod 600 "$WORK/wrong.key"
check "a wrong master key opens nothing" \
    bash -c '! python3 "$1" --master-key "$2" --db "$3" --token "$4" >/dev/null 2>&1' _ "$DECRYPT" "$WORK/wrong.key" "$DB" "$T1"

# ---------------------------------------------------------------- 7. rewrap, retire, rotate-master
if [[ "${INTEROP_SKIP_LIFECYCLE:-0}" != 1 ]]; then
    "$VAULT" keys rewrap --data-dir "$DATA" --keys-dir "$KEYS" >"$WORK/rewrap.log" 2>&1 \
        || { cat "$WORK/rewrap.log" >&2; fatal "vault keys rewrap failed"; }
    check "keys rewrap left no card record under v1 (CVVs are under in-memory epoch keys, not data keys)" \
        test "$(sql 'SELECT count(*) FROM cards WHERE key_version != 2')" = 0
    verify_all "after rewrap" 2
    retag_tokens 2

    "$VAULT" keys retire --version 1 --data-dir "$DATA" --keys-dir "$KEYS" >"$WORK/retire.log" 2>&1 \
        || { cat "$WORK/retire.log" >&2; fatal "vault keys retire --version 1 failed"; }
    check "keys retire deleted the wrapped v1 key from the data_keys row" \
        test "$(sql "SELECT state, wrapped_key IS NULL FROM data_keys WHERE version = 1")" = "retired|1"
    check "keys retire left no copy of the retired key in vault.db-wal (truncated)" \
        bash -c '[[ ! -s "$1" ]]' _ "$DATA/vault.db-wal"
    verify_all "after retire" 2

    cp "$MASTER" "$WORK/old.key"
    head -c 32 /dev/urandom >"$WORK/new.key"
    chmod 600 "$WORK/new.key"
    "$VAULT" keys rotate-master --new-master-key "$WORK/new.key" --data-dir "$DATA" --keys-dir "$KEYS" \
        >"$WORK/rotate-master.log" 2>&1 \
        || { cat "$WORK/rotate-master.log" >&2; fatal "vault keys rotate-master failed"; }
    check "rotate-master installed the new key as master.key, and left no master.key.next" \
        bash -c 'cmp -s "$1" "$2" && [[ ! -e "$1.next" ]]' _ "$MASTER" "$WORK/new.key"
    verify_all "after rotate-master" 2
    check "the old master key no longer opens this vault.db after rotate-master (older copies it still opens)" \
        bash -c '! python3 "$1" --master-key "$2" --db "$3" --token "$4" >/dev/null 2>&1' _ "$DECRYPT" "$WORK/old.key" "$DB" "$T1"
    verify_audit "after the key life cycle"
fi

# ---------------------------------------------------------------- 8. rotate-root, rewrap
# copy_vault FOLDER: a consistent copy of the data folder (vault.db and audit.head) to tamper with.
copy_vault() {
    mkdir -m 700 "$1"
    python3 - "$DB" "$1/vault.db" <<'PY'
import sqlite3, sys
source, target = sqlite3.connect(sys.argv[1]), sqlite3.connect(sys.argv[2])
source.backup(target)
source.close()
target.execute("PRAGMA journal_mode = DELETE")
target.close()
PY
    cp -p "$DATA/audit.head" "$1/audit.head"
}

# forge MODE FOLDER: what someone holding root keys could write, on a copy. The test tool
# borrows decrypt_record.py's functions for it.
#   relink: the keys.rotate_root record names a wrong previous= commitment, and it and every
#           record after it are re-MAC'd (and both heads resealed) under the new root's audit key,
#           so only the segment commitment is wrong.
#   cut:    the log is cut back to the end of root version 0's segment, both heads resealed under
#           v0's audit key (an older root key cannot write into the newer segment).
forge() {
    python3 - "$HERE" "$MASTER" "$1" "$2/vault.db" "$2/audit.head" <<'PY'
import sqlite3, struct, sys
sys.path.insert(0, sys.argv[1])
import decrypt_record as d
mode, master = sys.argv[3], open(sys.argv[2], "rb").read()
db = sqlite3.connect(sys.argv[4])
db.row_factory = sqlite3.Row
ring = d.KeyRing(db, master)
(start,) = db.execute("SELECT min(sequence) FROM audit_log WHERE type = 'keys.rotate_root'").fetchone()
(previous,) = db.execute("SELECT mac FROM audit_log WHERE sequence = ?", (start - 1,)).fetchone()
if mode == "relink":
    version = 1
    key = ring.subkey(d.CONTEXT_AUDIT, version)
    (detail,) = db.execute("SELECT detail FROM audit_log WHERE sequence = ?", (start,)).fetchone()
    last = detail[-1]
    db.execute("UPDATE audit_log SET detail = ? WHERE sequence = ?", (detail[:-1] + ("0" if last != "0" else "1"), start))
    for row in db.execute("SELECT * FROM audit_log WHERE sequence >= ? ORDER BY sequence", (start,)).fetchall():
        previous = d.keyed_blake2b(key, previous + d.canonical(row), 32)
        db.execute("UPDATE audit_log SET mac = ? WHERE sequence = ?", (previous, row["sequence"]))
    (sequence,) = db.execute("SELECT max(sequence) FROM audit_log").fetchone()
elif mode == "cut":
    version = 0
    key = ring.subkey(d.CONTEXT_AUDIT, version)
    db.execute("DELETE FROM audit_log WHERE sequence >= ?", (start,))
    sequence = start - 1
else:
    sys.exit(f"forge: unknown mode {mode}")
sealed = d.head_mac(key, sequence, previous)
db.execute("UPDATE audit_head SET sequence = ?, mac = ?, head_mac = ?, key_version = ? WHERE id = 1",
           (sequence, previous, sealed, version))
db.commit()
db.close()
with open(sys.argv[5], "wb") as handle:
    handle.write(d.HEAD_FILE_MAGIC + struct.pack(">Q", sequence) + previous + sealed)
PY
}

# audit_refused NAME FOLDER REASON: decrypt_record.py and `vault audit verify` both refuse the
# copy's audit log; the independent verifier's reason contains REASON.
audit_refused() {
    local name="$1" folder="$2" reason="$3" output
    output="$(python3 "$DECRYPT" --master-key "$MASTER" --db "$folder/vault.db" --verify-audit 2>&1)" || true
    check "$name: decrypt_record.py refuses it ($output)" python3 -c '
import json, sys
r = json.loads(sys.argv[1])
sys.exit(0 if r.get("ok") is False and sys.argv[2] in r.get("reason", "") else 1)' "$output" "$reason"
    output="$("$VAULT" audit verify --json --data-dir "$folder" --keys-dir "$KEYS" 2>&1)" \
        && fail "$name: vault audit verify exits 0 ($output)" \
        || pass "$name: vault audit verify exits non-zero ($(tr -d '\n' <<<"$output"))"
}

if [[ "${INTEROP_SKIP_ROOT_ROTATION:-0}" != 1 ]]; then
    DATA_VERSION="$(sql "SELECT max(version) FROM data_keys")"
    ROOTED="$("$VAULT" keys rotate-root --json --data-dir "$DATA" --keys-dir "$KEYS")" \
        || fatal "vault keys rotate-root failed"
    NEW_VERSION=$((DATA_VERSION + 1))
    check "keys rotate-root made root v1 and data key v$NEW_VERSION active ($ROOTED)" \
        test "$(json_get "$ROOTED" root_version)" = 1 -a "$(json_get "$ROOTED" active_version)" = "$NEW_VERSION"
    check "system_keys holds root versions 0 and 1 ('root', 'root.1')" \
        test "$(sql "SELECT group_concat(name, ',') FROM (SELECT name FROM system_keys ORDER BY name)")" = "root,root.1"
    check "the audit log's last record is keys.rotate_root, root_version=1, and audit_head.key_version is 1" \
        test "$(sql "SELECT type, substr(detail, 1, 24) FROM audit_log ORDER BY sequence DESC LIMIT 1")|$(sql 'SELECT key_version FROM audit_head')" \
        = "keys.rotate_root|root_version=1 previous=|1"
    verify_audit "after rotate-root"
    verify_rows "after rotate-root"
    # Nothing re-fingerprinted yet: every record still has its fingerprint under root v0.
    verify_all "after rotate-root"

    start_server
    tokenize 4242424242424242 3 2032 456 opaque
    TOKENS+=("$LAST_TOKEN|4242424242424242|3|2032|456|$NEW_VERSION|1")
    check "a new record after rotate-root is under data key v$NEW_VERSION, fingerprint under root v1" \
        test "$(sql 'SELECT key_version, fingerprint_version FROM cards WHERE token = ?' "$LAST_TOKEN")" = "$NEW_VERSION|1"
    # The credential authenticated under root v1 for the first time: its hash moved to v1.
    check "the credential's hash moved to root v1 on its first use after rotate-root" \
        test "$(sql "SELECT hash_version FROM credentials WHERE name = 'interop'")" = 1
    # Dedupe finds the first card under its root v0 fingerprint, and the API shows the caller
    # fingerprint under v0's caller key (the decoder's, checked by tokenize).
    IFS='|' read -r T1 T1_PAN T1_MONTH T1_YEAR T1_CVV _ <<<"${TOKENS[0]}"
    tokenize "$T1_PAN" "$T1_MONTH" "$T1_YEAR" "$T1_CVV" opaque true
    check "dedupe after rotate-root finds the record whose fingerprint is under root v0" test "$LAST_TOKEN" = "$T1"
    T1_CALLER_V0="$LAST_FINGERPRINT"
    stop_server
    pass "server stopped"
    verify_all "after rotate-root, serving"
    verify_audit "after rotate-root, serving"
    verify_rows "after rotate-root, serving"

    # Tampering with the segment boundary, on copies: an edited detail; a wrong previous=
    # commitment with every MAC after it recomputed under the new key; a log cut back to root v0's
    # segment with both heads resealed under v0; audit_head naming the wrong root version.
    copy_vault "$WORK/root-detail"
    check "an untouched copy of the segmented audit log verifies" \
        bash -c 'python3 "$1" --master-key "$2" --db "$3" --verify-audit >/dev/null' _ "$DECRYPT" "$MASTER" "$WORK/root-detail/vault.db"
    python3 - "$WORK/root-detail/vault.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("UPDATE audit_log SET detail = replace(detail, 'root_version=1 previous=', 'root_version=1 previous=0') "
           "WHERE type = 'keys.rotate_root'")
assert db.total_changes == 1
db.commit()
PY
    audit_refused "an edited keys.rotate_root detail" "$WORK/root-detail" "segment"
    copy_vault "$WORK/root-relink"
    forge relink "$WORK/root-relink"
    audit_refused "a keys.rotate_root record re-MAC'd under root v1 with a wrong previous= commitment" \
        "$WORK/root-relink" "previous= commitment"
    copy_vault "$WORK/root-cut"
    forge cut "$WORK/root-cut"
    audit_refused "a log cut back to root v0's segment, heads resealed under v0" "$WORK/root-cut" "newest root key is v1"
    copy_vault "$WORK/root-head-version"
    python3 - "$WORK/root-head-version/vault.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("UPDATE audit_head SET key_version = 0")
db.commit()
PY
    audit_refused "audit_head.key_version set back to 0" "$WORK/root-head-version" "key_version"

    "$VAULT" keys rewrap --data-dir "$DATA" --keys-dir "$KEYS" >"$WORK/rewrap-root.log" 2>&1 \
        || { cat "$WORK/rewrap-root.log" >&2; fatal "vault keys rewrap (after rotate-root) failed"; }
    check "keys rewrap after rotate-root left every record under data key v$NEW_VERSION, fingerprint under root v1" \
        test "$(sql "SELECT count(*) FROM cards WHERE key_version != $NEW_VERSION OR fingerprint_version != 1")" = 0
    retag_tokens "$NEW_VERSION" 1
    verify_all "after rotate-root and rewrap"
    verify_audit "after rotate-root and rewrap"
    verify_rows "after rotate-root and rewrap"

    # The fingerprint a caller sees moved to root v1's caller key with the record.
    start_server
    tokenize "$T1_PAN" "$T1_MONTH" "$T1_YEAR" "$T1_CVV" opaque true
    check "dedupe after the rewrap finds the same record, now under its root v1 fingerprint (caller fingerprint changed)" \
        test "$LAST_TOKEN" = "$T1" -a "$LAST_FINGERPRINT" != "$T1_CALLER_V0"
    stop_server
    pass "server stopped"
    output="$("$VAULT" audit verify --json --data-dir "$DATA" --keys-dir "$KEYS" 2>&1)" || true
    check "vault audit verify agrees: the segmented log verifies ($output)" test "$(json_get "$output" ok)" = true
    verify_audit "at the end"
fi

echo "interop: $PASSED passed, $FAILED failed"
((FAILED == 0)) || exit 1
