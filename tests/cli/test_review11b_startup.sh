#!/usr/bin/env bash
# review11b reproducers: `tokenvend config check` must refuse what `tokenvend serve` refuses on
# the same settings (issue 11 point 5: "it must run every check serve runs"), and a start that
# serve refuses for its settings leaves no database file behind. Each case is a configuration
# that is wrong whatever the machine: config check passes it (exit 0) today, serve refuses it.
# Ends with "N passed, N failed".
set -u

# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/lib.sh"

if [ ! -x "$TV" ]; then
    echo "build $TV first"
    exit 2
fi
TVABS=$(pwd)/$TV
cd "$tmp" || exit 2

# base_env VAR=VALUE... CMD... : a clean environment with a connection string nobody is asked for, local
# accounts (so nothing warns about logging in) and no configuration file.
base_env() {
    env -i PATH="$PATH" HOME="$tmp" TOKENVEND_CONFIG_DIR="$tmp/noetc" \
        COMMUNICATION_SERVICES_CONNECTION_STRING='endpoint=http://127.0.0.1:9/;accesskey=c2VjcmV0' \
        TOKENVEND_LOCAL_ACCOUNTS=on "$@"
}

# both_agree NAME DBDIR VAR=VALUE... : config check's verdict and serve's agree, and a refused
# serve leaves no database file.
both_agree() {
    local name=$1 dbdir=$2
    shift 2
    mkdir -p "$dbdir"
    base_env TOKENVEND_DB="$dbdir/tv.db" "$@" "$TVABS" config check \
        >"$tmp/$name.check.out" 2>"$tmp/$name.check.err"
    local crc=$?
    # exec: $! is then timeout itself, which passes the TERM below on to serve and ends with it
    # (a function run in the background is a subshell whose death leaves serve running, still
    # holding its ports when the next case starts).
    (exec env -i PATH="$PATH" HOME="$tmp" TOKENVEND_CONFIG_DIR="$tmp/noetc" \
        COMMUNICATION_SERVICES_CONNECTION_STRING='endpoint=http://127.0.0.1:9/;accesskey=c2VjcmV0' \
        TOKENVEND_LOCAL_ACCOUNTS=on TOKENVEND_DB="$dbdir/tv.db" "$@" timeout 20 "$TVABS" serve \
        >"$tmp/$name.serve.out" 2>"$tmp/$name.serve.err") &
    local spid=$!
    local started=0
    for _ in $(seq 100); do
        if grep -q '"msg":"listening"' "$tmp/$name.serve.err" 2>/dev/null; then
            started=1
            break
        fi
        kill -0 "$spid" 2>/dev/null || break
        sleep 0.1
    done
    if [ "$started" -eq 1 ]; then
        kill -TERM "$spid" 2>/dev/null
    fi
    wait "$spid"
    local src=$?
    if [ "$crc" -eq 0 ] && [ "$started" -eq 0 ]; then
        not_ok "$name: config check exit 0 but serve refused (exit $src)" \
            "$(tail -n 3 "$tmp/$name.serve.err")"
    else
        ok "$name: config check (exit $crc) and serve (started=$started) agree"
    fi
    if [ -n "${KEEP_DB:-}" ]; then
        return 0
    fi
    if [ "$started" -eq 0 ] && ls "$dbdir"/tv.db* >/dev/null 2>&1; then
        not_ok "$name: the refused start left database files" "$(ls -l "$dbdir")"
    else
        ok "$name: a refused start leaves no database file"
    fi
}

# 0. Control: two free ports. config check passes and serve starts (the harness sees a start).
p1=$(free_port)
p2=$(free_port)
both_agree control "$tmp/db0" TOKENVEND_PUBLIC_ADDR="127.0.0.1:$p1" TOKENVEND_INTERNAL_ADDR="127.0.0.1:$p2"
if grep -q '"msg":"listening"' "$tmp/control.serve.err"; then ok "control: serve started"; else not_ok "control: serve started" "$(tail -n 3 "$tmp/control.serve.err")"; fi

# 1. Both listeners on one address: serve's second bind fails with 'Address already in use',
#    whatever else runs on the machine.
p=$(free_port)
both_agree same-addr "$tmp/db1" TOKENVEND_PUBLIC_ADDR="127.0.0.1:$p" TOKENVEND_INTERNAL_ADDR="127.0.0.1:$p"

# 2. The internal listener on a specific address under the public wildcard on the same port.
p=$(free_port)
both_agree wildcard-overlap "$tmp/db2" TOKENVEND_PUBLIC_ADDR="0.0.0.0:$p" TOKENVEND_INTERNAL_ADDR="127.0.0.1:$p"

# 3. An OIDC issuer URL longer than the key set accepts (2,048 bytes): config_load takes it
#    (values up to 8 KiB), serve's jwks_new refuses it after the database was created.
long=$(head -c 2100 /dev/zero | tr '\0' a)
p1=$(free_port)
p2=$(free_port)
both_agree long-issuer "$tmp/db3" TOKENVEND_PUBLIC_ADDR="127.0.0.1:$p1" TOKENVEND_INTERNAL_ADDR="127.0.0.1:$p2" \
    TOKENVEND_OIDC_ISSUER="https://idp.example.com/$long" TOKENVEND_OIDC_AUDIENCE=api

# 4. A public address that resolves but is no address of this machine (TEST-NET-1, RFC 5737):
#    app_check_listeners only resolves it (its message says "not an address of this machine"
#    when it does not resolve), serve's bind fails with "Cannot assign requested address".
p2=$(free_port)
both_agree foreign-addr "$tmp/db4" TOKENVEND_PUBLIC_ADDR="192.0.2.1:8080" TOKENVEND_INTERNAL_ADDR="127.0.0.1:$p2"

# 5. TOKENVEND_SECRET_KEY that does not open the session signing key the database holds (a
#    rotated secret file, replicas given different keys): serve refuses it as a configuration
#    error (exit 2, "does not decrypt the session signing key"); config check never looks.
k1=$(openssl rand -base64 32)
k2=$(openssl rand -base64 32)
p1=$(free_port)
p2=$(free_port)
KEEP_DB=1 both_agree secret-key-first "$tmp/db5" TOKENVEND_PUBLIC_ADDR="127.0.0.1:$p1" TOKENVEND_INTERNAL_ADDR="127.0.0.1:$p2" TOKENVEND_SECRET_KEY="$k1"
if grep -q '"msg":"listening"' "$tmp/secret-key-first.serve.err"; then ok "secret-key: the first start made the sealed key"; else not_ok "secret-key: the first start made the sealed key" "$(tail -n 3 "$tmp/secret-key-first.serve.err")"; fi
KEEP_DB=1 both_agree secret-key-other "$tmp/db5" TOKENVEND_PUBLIC_ADDR="127.0.0.1:$p1" TOKENVEND_INTERNAL_ADDR="127.0.0.1:$p2" TOKENVEND_SECRET_KEY="$k2"
# Both refused it for the key, not for a port the first start still held.
if grep -q "does not decrypt the session signing key" "$tmp/secret-key-other.serve.err" &&
    grep -q "does not decrypt the session signing key" "$tmp/secret-key-other.check.err"; then
    ok "secret-key-other: serve and config check both name the key"
else
    not_ok "secret-key-other: serve and config check both name the key" \
        "$(tail -n 2 "$tmp/secret-key-other.serve.err") $(tail -n 1 "$tmp/secret-key-other.check.err")"
fi

finish
