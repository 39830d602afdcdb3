#!/usr/bin/env bash
# review11a reproducer: a restore done as the README's "Backup and restore" says must not make the
# service serve tokens that ACS revoked after the backup was taken. With the token cache kept in
# the store (TOKENVEND_CACHE_KEY) `tokenvend backup` copies the token_cache rows together with the
# mappings as they were (revoked_ms from before the revoke), so after the restore the service
# hands out the cached token that ACS has revoked since. (`tokenvend store copy` skips these rows
# for this reason: "the rows are a cache"; the backup does not.) No assertion on timing: waits
# are bounded polls. Ends with "N passed, N failed"; exits non-zero on any failure.
set -u

# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/lib.sh"

if [ ! -x "$TV" ] || [ ! -x "$EMU" ] || ! command -v sqlite3 >/dev/null ||
    ! command -v openssl >/dev/null; then
    not_ok "binaries exist ($TV, $EMU), the sqlite3 shell and openssl"
    finish
fi

clear_acs_env
mkdir -p "$tmp/data" "$tmp/backups"
db=$tmp/data/tv.db
export TOKENVEND_DB=$db
export TOKENVEND_LOG_LEVEL=warn
TOKENVEND_CACHE_KEY=$(openssl rand -base64 32)
export TOKENVEND_CACHE_KEY

start_emulator_or_finish

"$TV" migrate >/dev/null 2>&1
skey=$(new_api_key ops)
start_serve_or_finish
r=$(http PUT "http://127.0.0.1:$pi/internal/users/u1" "" "$skey" 2>&1)
check "u1 created through the service" $([[ $r == 201* ]]; echo $?) "$r"
r=$(http PUT "http://127.0.0.1:$pi/internal/users/u2" "" "$skey" 2>&1)
check "u2 created through the service" $([[ $r == 201* ]]; echo $?) "$r"
u2_acs=$(sqlite3 "$db" "SELECT acs_id FROM mappings WHERE app_user_id = 'u2'")
t1=$(token_of u1)
kept=0
for _ in $(seq 1 100); do
    kept=$(sqlite3 "$db" "SELECT count(*) FROM token_cache" 2>/dev/null || echo 0)
    [ "${kept:-0}" -gt 0 ] && break
    sleep 0.1
done
check "u1's token is kept in the store (token_cache)" $([ -n "$t1" ] && [ "${kept:-0}" -gt 0 ]; echo $?) \
    "t1=${t1:0:20} kept=$kept"

# A live session refresh token (issue 12), as a login stores it.
sqlite3 "$db" "INSERT INTO session_refresh VALUES ('rid', 'fam', 'alice', 0, zeroblob(32), 1,
    9999999999999, 9999999999999, NULL)"

# The nightly backup, while serving.
"$TV" backup "$tmp/backups/nightly.db" >"$tmp/b.out" 2>"$tmp/b.err"
check "backup while serving -> exit 0" $?
check "the backup leaves the session refresh tokens out (the live store keeps them)" \
    $([ "$(sqlite3 "$tmp/backups/nightly.db" "SELECT count(*) FROM session_refresh")" = 0 ] &&
        [ "$(sqlite3 "$db" "SELECT count(*) FROM session_refresh")" = 1 ]; echo $?)

# After the backup: u1's tokens are revoked (a stolen device, say).
r=$(http POST "http://127.0.0.1:$pi/internal/users/u1/revoke" "" "$skey" 2>&1)
check "u1 revoked through the service" $([[ $r == 20* ]]; echo $?) "$r"
v=$(emu_verdict "$t1")
check "ACS (the emulator) now refuses u1's old token" $([[ $v == false* ]]; echo $?) "$v"
# ... and u2 is deleted, its ACS identity too.
r=$(http DELETE "http://127.0.0.1:$pi/internal/users/u2" "" "$skey" 2>&1)
check "u2 deleted through the service (ACS identity deleted)" $([[ $r == 204* ]]; echo $?) "$r"

# The restore, step by step as the README says.
stop_serve
cp "$tmp/backups/nightly.db" "$db"
rm -f "$db-wal" "$db-shm"
"$TV" migrate >/dev/null 2>"$tmp/migrate.err"
check "restore: migrate -> exit 0" $? "$(cat "$tmp/migrate.err")"
if ! start_serve; then
    not_ok "tokenvend serve started after the restore" "$(tail -n 20 "$tmp/serve.err")"
    finish
fi

t2=$(token_of u1)
v=$(emu_verdict "$t2")
check "after the restore the service gives u1 a token ACS accepts (not the one revoked after the backup)" \
    $([ -n "$t2" ] && [[ $v == true* ]]; echo $?) \
    "same token as before the revoke: $([ "$t1" = "$t2" ] && echo yes || echo no); emulator says: $v"

# u2 is back as a mapping whose ACS identity is gone (README "Backup and restore"): its token
# requests are a 409 conflict saying so; `identity delete` removes the mapping (ACS's 404 counts
# as done) and the next request creates a new identity.
r=$(http POST "http://127.0.0.1:$pi/internal/users/u2/token" '{}' "$skey" 2>&1)
check "after the restore u2 (deleted at ACS since the backup) -> 409 conflict naming the cause" \
    $([[ $r == 409* ]] && [[ $r == *"ACS no longer knows this identity"* ]]; echo $?) "$r"
"$TV" identity delete u2 >"$tmp/d.out" 2>"$tmp/d.err"
rc=$?
check "identity delete u2 -> exit 0 (ACS's 404 counts as done)" $([ $rc -eq 0 ]; echo $?) \
    "exit $rc $(cat "$tmp/d.out" "$tmp/d.err")"
r=$(http POST "http://127.0.0.1:$pi/internal/users/u2/token" '{}' "$skey" 2>&1)
u2_new=$(sqlite3 "$db" "SELECT acs_id FROM mappings WHERE app_user_id = 'u2'")
check "then u2's next token request creates a new identity" \
    $([[ $r == 200* ]] && [ -n "$u2_new" ] && [ "$u2_new" != "$u2_acs" ]; echo $?) "$r; $u2_acs -> $u2_new"
stop_serve

finish
