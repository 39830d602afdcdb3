#!/usr/bin/env bash
# `make run`: starts acs-emulator and tokenvend on loopback with a demo local account and an
# internal API key, runs the ACS quickstart against the emulator through the CLI, and prints how
# to fetch a token with curl. They keep running until Ctrl-C. Everything lives under data/
# (RUN_DATA=dir elsewhere).
#
# KEYLESS (make run KEYLESS=...) shows the keyless mode of SPEC section 11 instead of the access
# key: it also starts acs-emulator's stand-in Microsoft Entra ID (ENTRA_PORT, default 8091), makes
# the emulator accept only its bearer tokens (--entra-jwks --entra-only), and runs tokenvend with
# COMMUNICATION_SERVICES_ENDPOINT and no connection string, with the credential
#   KEYLESS=1 or client-secret   AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET + AZURE_AUTHORITY_HOST
#   KEYLESS=managed-identity     IDENTITY_ENDPOINT + IDENTITY_HEADER (as Container Apps sets them)
# Unset, empty or 0: the access key (connection string), as before.
#
# The browser example (examples/web) is built with npm (its output in data/example-build.log; when
# npm fails the run says so and goes on without it) and served by examples/web/serve.mjs on
# 127.0.0.1:EXAMPLE_PORT (default 8082); tokenvend then runs with TOKENVEND_CORS_ORIGINS set to
# that origin, so the page may call it.
#
# RUN_BUILD=1 (as `make run` sets it) first builds the two binaries with make, its output kept in
# data/build.log and shown only when the build fails, so the screen shows the demo, not the
# compiler. A lock on data/run.lock, held by this script and the programs it starts, keeps a
# second run on the same data directory from touching the first one's files: it stops at once
# with the first one's pid. The demo API key is kept in data/demo-api-key (0600) and reused by
# the next run as long as the database still accepts it.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
emu_port=${ACS_EMULATOR_PORT:-8090}
entra_port=${ENTRA_PORT:-8091}
public=${TOKENVEND_PUBLIC_ADDR:-127.0.0.1:8080}
internal=${TOKENVEND_INTERNAL_ADDR:-127.0.0.1:8081}
example_port=${EXAMPLE_PORT:-8082}
data=${RUN_DATA:-data}
demo_user=demo
demo_password=${DEMO_PASSWORD:-demo-password}
case "${KEYLESS:-}" in
"" | 0) mode=access-key ;;
1 | client-secret) mode=client-secret ;;
managed-identity) mode=managed-identity ;;
*)
    echo "KEYLESS must be empty, 0, 1, client-secret or managed-identity (got '$KEYLESS')" >&2
    exit 2
    ;;
esac
# Only what this script sets picks the credential: not an Azure login of the caller's shell.
unset AZURE_TENANT_ID AZURE_CLIENT_ID AZURE_CLIENT_SECRET AZURE_FEDERATED_TOKEN_FILE \
    AZURE_AUTHORITY_HOST IDENTITY_ENDPOINT IDENTITY_HEADER COMMUNICATION_SERVICES_ENDPOINT \
    COMMUNICATION_SERVICES_CONNECTION_STRING TOKENVEND_ACS_ENDPOINT TOKENVEND_ACS_CONNECTION_STRING
# Everything under data/ is for this user alone: the emulator's first line is a working access
# key, the logs name the demo account, the database holds the session key.
umask 077
mkdir -p "$data"

# One run per data directory. The lock is taken on a descriptor the programs started below
# inherit, so it is held as long as any of them runs, even if this shell was killed; the kernel
# drops it when the last one exits (no stale pid file to clean up). Opened for appending, so a
# refused run does not empty the first one's pid.
exec 9>>"$data/run.lock"
if ! flock -n 9; then
    other=$(head -c 32 "$data/run.lock" | tr -cd '0-9')
    echo "make run: another run (pid ${other:-unknown}) is using $data; stop it first (Ctrl-C in its" >&2
    echo "terminal, or kill ${other:-its pid}), or start this one with another RUN_DATA and other ports" >&2
    echo "(ACS_EMULATOR_PORT, ENTRA_PORT, TOKENVEND_PUBLIC_ADDR, TOKENVEND_INTERNAL_ADDR, EXAMPLE_PORT). Nothing was changed." >&2
    exit 1
fi
printf '%s\n' "$$" >"$data/run.lock"

if [ "${RUN_BUILD:-}" = 1 ]; then
    # MAKEFLAGS (WERROR=1, -j...) comes from the make that started this script.
    if ! ${MAKE:-make} --no-print-directory TV_DEPS_DONE=1 BUILD="$BUILD" \
        "$BUILD/bin/tokenvend" "$BUILD/bin/acs-emulator" >"$data/build.log" 2>&1; then
        echo "the build failed; its log ($data/build.log):" >&2
        cat "$data/build.log" >&2
        exit 1
    fi
    echo "== built $BUILD/bin/tokenvend and $BUILD/bin/acs-emulator (log: $data/build.log)"
fi

# The example page's bundle: npm ci only when the lock is newer than the installed tree (as
# scripts/run-tests.sh does for tests/e2e), then esbuild. Quiet, like the build above.
example=
if ! command -v npm >/dev/null 2>&1; then
    echo "== the browser example is not available: npm is not installed" >&2
elif (cd examples/web &&
    { { [ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ]; } ||
        npm ci --no-audit --no-fund --loglevel=error; } && npm run build) >"$data/example-build.log" 2>&1; then
    example=built
else
    echo "== the browser example is not available: npm failed (log: $data/example-build.log); going on without it" >&2
fi

pids=()
stop() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap stop EXIT
trap 'exit 130' INT TERM

# Waits until file $1 is non-empty or process $2 died.
wait_for() {
    for _ in $(seq 100); do
        [ -s "$1" ] && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# A random secret for the stand-in and the service to share (hex, from the kernel's generator).
random_secret() {
    od -An -N24 -tx1 /dev/urandom | tr -d ' \n'
}

emu_flags=()
if [ "$mode" != access-key ]; then
    # The stand-in Entra ID first: the emulator fetches its keys at start.
    tenant=00000000-0000-0000-0000-00000000de00
    client_id=00000000-0000-0000-0000-00000000c11e
    client_secret=$(random_secret)
    identity_header=$(random_secret)
    : >"$data/entra.out"
    # The secrets through the environment (owner-only in /proc), never on a command line.
    ACS_EMULATOR_ENTRA_CLIENT_SECRET=$client_secret ACS_EMULATOR_ENTRA_IDENTITY_HEADER=$identity_header \
        "$BUILD/bin/acs-emulator" entra --listen "127.0.0.1:$entra_port" --tenant "$tenant" \
        --client-id "$client_id" >"$data/entra.out" 2>"$data/entra.log" &
    pids+=($!)
    if ! wait_for "$data/entra.out" $!; then
        echo "the stand-in Entra ID failed to start; its log ($data/entra.log):" >&2
        cat "$data/entra.log" >&2
        exit 1
    fi
    authority=$(sed -n '1s/^authority=\(.*\)\/$/\1/p' "$data/entra.out")
    # --entra-only: the emulator refuses the access key's signature, so the demo shows the
    # service really runs without it.
    emu_flags=(--entra-jwks "$authority/$tenant/discovery/v2.0/keys" --entra-issuer "$authority/$tenant/v2.0" --entra-only)
    echo "== stand-in Microsoft Entra ID listens on $authority (log: $data/entra.log; requests seen: GET $authority/entra/requests)"
fi

: >"$data/emulator.out"
"$BUILD/bin/acs-emulator" --listen "127.0.0.1:$emu_port" --db "$data/emulator.db" "${emu_flags[@]}" \
    >"$data/emulator.out" 2>"$data/emulator.log" &
pids+=($!)
if ! wait_for "$data/emulator.out" $!; then
    echo "acs-emulator failed to start; its log ($data/emulator.log):" >&2
    cat "$data/emulator.log" >&2
    exit 1
fi
case $mode in
access-key)
    COMMUNICATION_SERVICES_CONNECTION_STRING=$(head -n 1 "$data/emulator.out")
    export COMMUNICATION_SERVICES_CONNECTION_STRING
    ;;
client-secret)
    export COMMUNICATION_SERVICES_ENDPOINT=http://127.0.0.1:$emu_port
    export AZURE_TENANT_ID=$tenant AZURE_CLIENT_ID=$client_id AZURE_CLIENT_SECRET=$client_secret
    export AZURE_AUTHORITY_HOST=$authority
    ;;
managed-identity)
    export COMMUNICATION_SERVICES_ENDPOINT=http://127.0.0.1:$emu_port
    export IDENTITY_ENDPOINT=$authority/msi/token IDENTITY_HEADER=$identity_header
    ;;
esac
export TOKENVEND_DB=$data/tokenvend.db TOKENVEND_LOCAL_ACCOUNTS=on

# The example page on its own loopback port; it learns the service's address from --api (a
# wildcard listen address is reached through loopback).
example_origin=http://127.0.0.1:$example_port
if [ -n "$example" ]; then
    : >"$data/example.out"
    node examples/web/serve.mjs --api "http://${public/#0.0.0.0:/127.0.0.1:}" --port "$example_port" \
        >"$data/example.out" 2>"$data/example.log" &
    pids+=($!)
    if wait_for "$data/example.out" $!; then
        export TOKENVEND_CORS_ORIGINS=${TOKENVEND_CORS_ORIGINS:+$TOKENVEND_CORS_ORIGINS,}$example_origin
    else
        echo "== the browser example is not available: serve.mjs failed to start (log: $data/example.log)" >&2
        example=
    fi
fi
export TOKENVEND_PUBLIC_ADDR=$public TOKENVEND_INTERNAL_ADDR=$internal

echo "== acs-emulator listens on 127.0.0.1:$emu_port (log: $data/emulator.log)"
if [ "$mode" = access-key ]; then
    echo "== mode: access key (COMMUNICATION_SERVICES_CONNECTION_STRING); make run KEYLESS=1 shows the keyless mode"
else
    echo "== mode: keyless, Microsoft Entra ID ($mode): COMMUNICATION_SERVICES_ENDPOINT, no connection string;"
    echo "   the emulator accepts only the stand-in's bearer tokens. tokenvend config check says:"
    "$BUILD/bin/tokenvend" config check 2>/dev/null | sed -n 's/^# keyless mode/   keyless mode/p'
fi
# At warn: in the keyless mode the Entra token's info lines would interleave with the steps.
# The quickstart's tokens are shortened to their first characters: whole bearer tokens on a
# screen end up in scrollback, screenshots and pasted logs.
TOKENVEND_LOG_LEVEL=${TOKENVEND_LOG_LEVEL:-warn} "$BUILD/bin/tokenvend" quickstart |
    sed 's/\(eyJ[A-Za-z0-9_-]\{13\}\)[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*/\1…/g'
echo

"$BUILD/bin/tokenvend" migrate >/dev/null 2>>"$data/admin.log"
printf '%s\n' "$demo_password" | "$BUILD/bin/tokenvend" account add "$demo_user" >/dev/null 2>>"$data/admin.log"

"$BUILD/bin/tokenvend" serve >"$data/tokenvend.log" 2>&1 &
serve_pid=$!
pids+=("$serve_pid")
for _ in $(seq 100); do
    curl -sS --fail-with-body "http://$public/healthz" >/dev/null 2>&1 && break
    if ! kill -0 "$serve_pid" 2>/dev/null; then
        echo "tokenvend failed to start; its log ($data/tokenvend.log):" >&2
        cat "$data/tokenvend.log" >&2
        exit 1
    fi
    sleep 0.1
done

# The demo API key: the one kept from an earlier run when the service still accepts it (the
# database may have been removed, or the key revoked), else a new one. curl reads the header from
# a file (-H @FILE), so the key is neither on the screen nor on a command line.
adata=$(cd "$data" && pwd)
key_file=$adata/demo-api-key
header_file=$adata/demo-api-key.header
key_state=reused
if [ ! -s "$header_file" ] ||
    [ "$(curl -sS -o /dev/null -w '%{http_code}' -H "@$header_file" \
        "http://$internal/internal/users?limit=1" 2>>"$data/admin.log")" != 200 ]; then
    "$BUILD/bin/tokenvend" apikey create "demo-backend-$(date +%s)" 2>>"$data/admin.log" |
        tail -n 1 >"$key_file.new"
    printf 'Authorization: Bearer %s\n' "$(cat "$key_file.new")" >"$header_file.new"
    mv "$key_file.new" "$key_file"
    mv "$header_file.new" "$header_file"
    key_state=new
fi
key_id=$(sed -n 's/^tvk_\([0-9a-f]*\)_.*/\1/p' "$key_file")

cat <<EOT
== tokenvend serves the public API on http://$public and the internal API on http://$internal
   (log: $data/tokenvend.log, database: $data/tokenvend.db)
EOT
if [ -n "$example" ]; then
    cat <<EOT
== the browser example: open $example_origin/ and sign in as $demo_user / $demo_password
   (examples/web; TOKENVEND_CORS_ORIGINS=$TOKENVEND_CORS_ORIGINS; log: $data/example.log)
EOT
fi
cat <<EOT
== demo API key $key_id ($key_state; kept in $key_file, reused by the next run)

Fetch an ACS token as the demo user ($demo_user / $demo_password), then ask the emulator whether
it is valid (signature, expiry, revocation, deletion):

  jwt=\$(curl -sS --fail-with-body http://$public/api/login -d '{"username":"$demo_user","password":"$demo_password"}' | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
  token=\$(curl -sS --fail-with-body http://$public/api/token -H "Authorization: Bearer \$jwt" | sed 's/.*"token":"\([^"]*\)".*/\1/')
  curl -sS --fail-with-body -X POST http://127.0.0.1:$emu_port/emulator/validate -d "{\"token\":\"\$token\"}"
  curl -sS --fail-with-body http://$public/api/token -H "Authorization: Bearer \$jwt" -d '{"scopes":["voip"],"expiresInMinutes":60}'

Call the internal API with the demo API key (curl reads the header from the file):

  curl -sS --fail-with-body -X PUT http://$internal/internal/users/alice -H @$header_file
  curl -sS --fail-with-body http://$internal/internal/users/alice/token -H @$header_file -d '{}'
  curl -sS --fail-with-body "http://$internal/internal/users?limit=10" -H @$header_file

Press Ctrl-C to stop them.
EOT
wait
