# Shared harness of the CLI shell suites (sourced, not run): the build's binaries, a temporary
# directory removed at exit together with the emulator and service the suite started, and
# TAP-like result lines ending in "N passed, N failed". JSON is read with node (no jq/python).
# Below those, the set-up the suites share: tokenvend runs, HTTP calls, free ports, and a private
# acs-emulator and `tokenvend serve` started, waited for and stopped.
# shellcheck shell=bash

cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2
BUILD=${BUILD:-build}
TV=$BUILD/bin/tokenvend
EMU=$BUILD/bin/acs-emulator
pass=0
fail=0
emu_pid=
serve_pid=
tmp=$(mktemp -d)

cleanup() {
    for p in "$serve_pid" "$emu_pid"; do
        if [ -n "$p" ]; then
            kill -TERM "$p" 2>/dev/null
            wait "$p" 2>/dev/null
        fi
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

ok() {
    pass=$((pass + 1))
    echo "ok - $1"
}
not_ok() {
    fail=$((fail + 1))
    echo "not ok - $1"
    if [ -n "${2:-}" ]; then
        printf '%s\n' "$2" | head -n 20 | sed 's/^/#   /'
    fi
}
finish() {
    echo "$pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    exit $?
}
# check NAME CONDITION-EXIT-STATUS [DETAIL]
check() {
    if [ "$2" -eq 0 ]; then ok "$1"; else not_ok "$1" "${3:-}"; fi
}
# json_ok FILE 'JS boolean expression over o' : the last JSON object line of FILE that is not a
# log line satisfies it.
json_ok() {
    node -e '
        const fs = require("fs");
        const lines = fs.readFileSync(process.argv[1], "utf8").split("\n").filter(l => l.trim());
        const mine = lines.filter(l => /^\{/.test(l) && !/^\{"ts":/.test(l));
        const o = JSON.parse(mine[mine.length - 1]);
        const f = new Function("o", "return (" + process.argv[2] + ");");
        process.exit(f(o) ? 0 : 1);
    ' "$1" "$2" 2>/dev/null
}
# json_get FILE EXPR : prints EXPR over the same line json_ok reads.
json_get() {
    node -e '
        const fs = require("fs");
        const lines = fs.readFileSync(process.argv[1], "utf8").split("\n").filter(l => l.trim());
        const mine = lines.filter(l => /^\{/.test(l) && !/^\{"ts":/.test(l));
        const o = JSON.parse(mine[mine.length - 1]);
        process.stdout.write(String(new Function("o", "return (" + process.argv[2] + ");")(o)));
    ' "$1" "$2" 2>/dev/null
}

# --- tokenvend runs and HTTP calls ---------------------------------------------------------------
# A suite needing more (a log every run appends to, another http) defines its own after sourcing.

# run OUTNAME ARGS... : runs tokenvend; stdout to $tmp/OUTNAME.out, stderr to .err; sets $rc.
run() {
    local name=$1
    shift
    "$TV" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
    rc=$?
}
# run_in OUTNAME INPUT ARGS... : the same with INPUT on stdin.
run_in() {
    local name=$1 input=$2
    shift 2
    printf '%s' "$input" | "$TV" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
    rc=$?
}
# detail OUTNAME : the exit status and both outputs of the last run OUTNAME, for a failure's detail.
detail() {
    echo "exit $rc"
    echo "stdout:"
    cat "$tmp/$1.out"
    echo "stderr:"
    cat "$tmp/$1.err"
}
# http METHOD URL [BODY] [AUTH] : prints "STATUS BODY"; BODY is sent as JSON, AUTH as a bearer.
http() {
    node -e '
        const [m, url, body, auth] = process.argv.slice(1);
        const headers = {};
        if (body) headers["content-type"] = "application/json";
        if (auth) headers["authorization"] = "Bearer " + auth;
        fetch(url, {method: m, body: body || undefined, headers})
            .then(async r => process.stdout.write(r.status + " " + await r.text()))
            .catch(e => { console.error(String(e)); process.exit(1); });
    ' "$1" "$2" "${3:-}" "${4:-}"
}
# free_port : prints a loopback TCP port that was free a moment ago.
free_port() {
    node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => {
        process.stdout.write(String(s.address().port)); s.close(); });'
}

# --- the emulator and the service ----------------------------------------------------------------
# Both run in the background and are stopped by cleanup at exit (emu_pid, serve_pid).

# clear_acs_env : forgets any ACS connection string of the caller's environment, so that a suite
# reaches only its own emulator (or none).
clear_acs_env() {
    unset COMMUNICATION_SERVICES_CONNECTION_STRING TOKENVEND_ACS_CONNECTION_STRING \
        COMMUNICATION_SERVICES_CONNECTION_STRING_FILE TOKENVEND_ACS_CONNECTION_STRING_FILE
}
# start_emulator : starts acs-emulator on a free loopback port and waits (bounded) for the
# connection string it prints as its first line. Sets emu_pid, cs (that string), base (its
# http://host:port) and exports COMMUNICATION_SERVICES_CONNECTION_STRING. Returns 1 when the
# emulator printed nothing or died; its stderr is then in $tmp/emu.err.
start_emulator() {
    "$EMU" --listen 127.0.0.1:0 --log-level warn >"$tmp/emu.out" 2>"$tmp/emu.err" &
    emu_pid=$!
    cs=
    for _ in $(seq 1 100); do
        # The whole line, not a part of it: the file ends with its newline.
        if [ -s "$tmp/emu.out" ] && [ "$(tail -c 1 "$tmp/emu.out" | od -An -c | tr -d ' ')" = '\n' ]; then
            cs=$(head -n 1 "$tmp/emu.out")
            break
        fi
        kill -0 "$emu_pid" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$cs" ] || return 1
    base=$(printf '%s' "$cs" | sed -n 's/^endpoint=\(http:\/\/[^/;]*\).*/\1/p')
    export COMMUNICATION_SERVICES_CONNECTION_STRING=$cs
}
# start_serve [NAME=VALUE...] : starts `tokenvend serve` with its public listener on 127.0.0.1:$pp
# and its internal one on 127.0.0.1:$pi (each a free port picked here when unset), an OIDC issuer
# that is never reached (the internal API needs none), and the NAME=VALUE settings given; waits
# (bounded) for the internal /healthz to answer 200. Sets serve_pid; output is appended to
# $tmp/serve.out and .err. Returns 1 when the service did not come up.
# shellcheck disable=SC2120 # the settings are optional
start_serve() {
    pp=${pp:-$(free_port)}
    pi=${pi:-$(free_port)}
    env TOKENVEND_PUBLIC_ADDR="127.0.0.1:$pp" TOKENVEND_INTERNAL_ADDR="127.0.0.1:$pi" \
        TOKENVEND_OIDC_ISSUER=http://127.0.0.1:9 TOKENVEND_OIDC_AUDIENCE=api://tokenvend \
        TOKENVEND_OIDC_JWKS_URL=http://127.0.0.1:9/jwks "$@" \
        "$TV" serve >>"$tmp/serve.out" 2>>"$tmp/serve.err" &
    serve_pid=$!
    for _ in $(seq 1 100); do
        if [ "$(http GET "http://127.0.0.1:$pi/healthz" 2>/dev/null | cut -d' ' -f1)" = 200 ]; then
            return 0
        fi
        kill -0 "$serve_pid" 2>/dev/null || break
        sleep 0.1
    done
    return 1
}
# stop_serve : stops the service start_serve started (SIGTERM, its drain) and waits for it.
stop_serve() {
    kill -TERM "$serve_pid" 2>/dev/null
    wait "$serve_pid" 2>/dev/null
    serve_pid=
}
# start_emulator_or_finish, start_serve_or_finish [NAME=VALUE...] : the same, but a failure to
# start is the suite's last result ("acs-emulator started" / "tokenvend serve started" not ok,
# with the program's stderr) and ends the suite with finish.
start_emulator_or_finish() {
    if ! start_emulator; then
        not_ok "acs-emulator started" "$(cat "$tmp/emu.err")"
        finish
    fi
}
# shellcheck disable=SC2120 # the settings are optional
start_serve_or_finish() {
    if ! start_serve "$@"; then
        not_ok "tokenvend serve started" "$(tail -n 20 "$tmp/serve.err")"
        finish
    fi
}
# new_api_key NAME : creates an API key NAME in $TOKENVEND_DB and prints the key ("" on failure).
new_api_key() {
    "$TV" apikey create "$1" 2>/dev/null | tail -n 1
}
# token_of USER : the token the running service gives USER on its internal API (API key $skey),
# or "".
# shellcheck disable=SC2154 # skey is the suite's API key, set before the first call
token_of() {
    http POST "http://127.0.0.1:$pi/internal/users/$1/token" '{}' "$skey" 2>/dev/null |
        sed -n 's/^200 //p' | node -e '
            let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
                try { process.stdout.write(JSON.parse(s).token || ""); } catch (e) {} });'
}
# emu_verdict TOKEN : prints the emulator's verdict on TOKEN ("true ok", "false revoked", ...).
emu_verdict() {
    http POST "$base/emulator/validate" "{\"token\":\"$1\"}" 2>/dev/null | sed 's/^[0-9]* //' |
        node -e '
            let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
                try { const o = JSON.parse(s); process.stdout.write(o.valid + " " + o.reason); }
                catch (e) { process.stdout.write("unreadable " + s); } });'
}
