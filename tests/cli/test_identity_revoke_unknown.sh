#!/usr/bin/env bash
# review11a reproducer: `tokenvend identity revoke` promises the consistency rules of
# POST .../revoke. When ACS's answer does not come in time (the outcome is unknown: the revoke may
# well have happened at ACS), the API drops the running service's cached tokens of the identity
# (revoke_done: reqflow_cache_invalidate, whatever ACS said). The CLI, on a SQLite store, can only
# record a revoke time, and records none in this case (store_user_invalidate sends nothing on
# SQLite), so the running service keeps serving from memory a token that ACS has revoked. Ends with "N passed, N failed".
set -u

# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/lib.sh"

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
free_port() {
    node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => {
        process.stdout.write(String(s.address().port)); s.close(); });'
}
token_of() {
    http POST "http://127.0.0.1:$pi/internal/users/$1/token" '{}' "$skey" 2>/dev/null |
        sed -n 's/^200 //p' | node -e '
            let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
                try { process.stdout.write(JSON.parse(s).token || ""); } catch (e) {} });'
}
valid() {
    http POST "$base/emulator/validate" "{\"token\":\"$1\"}" 2>/dev/null | sed 's/^[0-9]* //' |
        node -e '
            let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
                try { const o = JSON.parse(s); process.stdout.write(o.valid + " " + o.reason); }
                catch (e) { process.stdout.write("unreadable " + s); } });'
}

if [ ! -x "$TV" ] || [ ! -x "$EMU" ]; then
    not_ok "binaries exist ($TV, $EMU)"
    finish
fi
unset COMMUNICATION_SERVICES_CONNECTION_STRING TOKENVEND_ACS_CONNECTION_STRING \
    COMMUNICATION_SERVICES_CONNECTION_STRING_FILE TOKENVEND_ACS_CONNECTION_STRING_FILE
mkdir -p "$tmp/data"
db=$tmp/data/tv.db
export TOKENVEND_DB=$db TOKENVEND_LOG_LEVEL=warn

"$EMU" --listen 127.0.0.1:0 --log-level warn >"$tmp/emu.out" 2>"$tmp/emu.err" &
emu_pid=$!
cs=
for _ in $(seq 1 100); do
    if [ -s "$tmp/emu.out" ] && [ "$(tail -c 1 "$tmp/emu.out" | od -An -c | tr -d ' ')" = '\n' ]; then
        cs=$(head -n 1 "$tmp/emu.out")
        break
    fi
    kill -0 "$emu_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$cs" ]; then
    not_ok "acs-emulator started" "$(cat "$tmp/emu.err")"
    finish
fi
base=$(printf '%s' "$cs" | sed -n 's/^endpoint=\(http:\/\/[^/;]*\).*/\1/p')
export COMMUNICATION_SERVICES_CONNECTION_STRING=$cs

"$TV" migrate >/dev/null 2>&1
skey=$("$TV" apikey create ops 2>/dev/null | tail -n 1)
pp=$(free_port)
pi=$(free_port)
TOKENVEND_PUBLIC_ADDR=127.0.0.1:$pp TOKENVEND_INTERNAL_ADDR=127.0.0.1:$pi \
    TOKENVEND_OIDC_ISSUER=http://127.0.0.1:9 TOKENVEND_OIDC_AUDIENCE=api://tokenvend \
    TOKENVEND_OIDC_JWKS_URL=http://127.0.0.1:9/jwks \
    "$TV" serve >"$tmp/serve.out" 2>"$tmp/serve.err" &
serve_pid=$!
up=
for _ in $(seq 1 100); do
    if [ "$(http GET "http://127.0.0.1:$pi/healthz" 2>/dev/null | cut -d' ' -f1)" = 200 ]; then
        up=1
        break
    fi
    kill -0 "$serve_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$up" ]; then
    not_ok "tokenvend serve started" "$(tail -n 20 "$tmp/serve.err")"
    finish
fi
r=$(http PUT "http://127.0.0.1:$pi/internal/users/u1" "" "$skey" 2>&1)
check "u1 created through the service" $([[ $r == 201* ]]; echo $?) "$r"
t1=$(token_of u1)
t1b=$(token_of u1)
check "the service serves u1's token from its cache" $([ -n "$t1" ] && [ "$t1" = "$t1b" ]; echo $?)

# The network loses ACS's answer to revokes (the emulator's drop fault: the operation takes
# effect, the connection is closed before the answer), so the CLI cannot know that ACS revoked.
r=$(http PUT "$base/emulator/faults" '{"drop_rate":1,"ops":["revoke"]}' 2>&1)
check "emulator: the answers to revokes are lost" $([[ $r == 2* ]]; echo $?) "$r"
TOKENVEND_ACS_MAX_RETRIES=0 "$TV" identity revoke u1 >"$tmp/r.out" 2>"$tmp/r.err"
rc=$?
check "identity revoke with no answer from ACS -> exit 1 (outcome unknown)" $([ $rc -eq 1 ]; echo $?) \
    "exit $rc $(cat "$tmp/r.out" "$tmp/r.err")"
check "its message says the outcome is unknown and the revoke time was recorded anyway" \
    $(grep -q 'outcome is unknown' "$tmp/r.err" && grep -q 'revoke time is recorded' "$tmp/r.err"; echo $?) \
    "$(cat "$tmp/r.err")"
v=$(valid "$t1")
check "ACS did revoke u1's token meanwhile" $([[ $v == false* ]]; echo $?) "$v"
http PUT "$base/emulator/faults" '{}' >/dev/null 2>&1

t2=$(token_of u1)
v2=$(valid "$t2")
check "the running service no longer serves the token ACS revoked (as after the API's revoke)" \
    $([ -n "$t2" ] && [[ $v2 == true* ]]; echo $?) \
    "same token as before: $([ "$t1" = "$t2" ] && echo yes || echo no); emulator says: $v2"
finish
