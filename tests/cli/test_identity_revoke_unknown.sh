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

if [ ! -x "$TV" ] || [ ! -x "$EMU" ]; then
    not_ok "binaries exist ($TV, $EMU)"
    finish
fi
clear_acs_env
mkdir -p "$tmp/data"
db=$tmp/data/tv.db
export TOKENVEND_DB=$db TOKENVEND_LOG_LEVEL=warn

start_emulator_or_finish

"$TV" migrate >/dev/null 2>&1
skey=$(new_api_key ops)
start_serve_or_finish
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
v=$(emu_verdict "$t1")
check "ACS did revoke u1's token meanwhile" $([[ $v == false* ]]; echo $?) "$v"
http PUT "$base/emulator/faults" '{}' >/dev/null 2>&1

t2=$(token_of u1)
v2=$(emu_verdict "$t2")
check "the running service no longer serves the token ACS revoked (as after the API's revoke)" \
    $([ -n "$t2" ] && [[ $v2 == true* ]]; echo $?) \
    "same token as before: $([ "$t1" = "$t2" ] && echo yes || echo no); emulator says: $v2"
finish
