#!/usr/bin/env bash
# Shell tests of the operator commands of issue 11 against a private acs-emulator and a running
# `tokenvend serve` on a temporary SQLite database: outbox list / retry (a row made due is sent
# by the running service's worker; a leased row is left alone; unknown ids), identity revoke (the
# running service hands the user a NEW token afterwards), account add/passwd minimum length,
# and apikey rotate (old key valid during the grace period only, new key valid, revoke ends
# both). Each command's --help and audit rows are checked. No assertion on timing: waits are
# bounded polls. Ends with "N passed, N failed"; exits non-zero on any failure.
set -u

# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/lib.sh"

# audit_has ACTION : exit 0 when the audit table has a row of ACTION by the CLI.
audit_has() {
    [ "$(sqlite3 "$db" "SELECT count(*) FROM audit WHERE caller = 'cli' AND action = '$1'")" -gt 0 ]
}

if [ ! -x "$TV" ] || [ ! -x "$EMU" ] || ! command -v sqlite3 >/dev/null; then
    not_ok "binaries exist ($TV, $EMU) and the sqlite3 shell"
    finish
fi

clear_acs_env
db=$tmp/data/tv.db
export TOKENVEND_DB=$db
export TOKENVEND_LOG_LEVEL=warn
export TOKENVEND_ARGON2=t=1,m=1024

# --- help --------------------------------------------------------------------------------------
missing=
for c in "outbox:list retry --all --limit leased" "identity:revoke" "apikey:rotate --grace" \
    "account:passwd password_min_length"; do
    run h "${c%%:*}" --help
    for w in ${c#*:}; do
        grep -q -- "$w" "$tmp/h.out" || missing="$missing ${c%%:*}:$w"
    done
    [ $rc -eq 0 ] || missing="$missing ${c%%:*}:exit$rc"
done
run h help
for w in "outbox list" "revoke ID" "rotate NAME"; do
    grep -q -- "$w" "$tmp/h.out" || missing="$missing help:[$w]"
done
check "--help describes outbox, identity revoke, apikey rotate, account passwd" \
    $([ -z "$missing" ]; echo $?) "missing:$missing"
run u1 outbox retry
check "outbox retry without ID or --all -> exit 2" $([ $rc -eq 2 ]; echo $?) "$(detail u1)"
run u2 outbox retry 3 --all
check "outbox retry with both ID and --all -> exit 2" $([ $rc -eq 2 ]; echo $?) "$(detail u2)"
run u3 outbox retry abc
check "outbox retry with a non-numeric ID -> exit 2" $([ $rc -eq 2 ]; echo $?) "$(detail u3)"
run u4 outbox list --limit 0
check "outbox list --limit 0 -> exit 2" $([ $rc -eq 2 ]; echo $?) "$(detail u4)"
run u5 outbox retry --all=yes
check "outbox retry --all=yes (a switch given a value) -> exit 2" $([ $rc -eq 2 ]; echo $?) "$(detail u5)"

# --- account passwords: the minimum length (issue 11: a one-character password was taken) -----
run_in a1 "x
" account add shorty
check "account add with a one-character password -> exit 2 naming password_min_length" \
    $([ $rc -eq 2 ] && grep -q password_min_length "$tmp/a1.err" && [ "$(sqlite3 "$db" "SELECT count(*) FROM accounts WHERE name = 'shorty'" 2>/dev/null || echo 0)" = 0 ]; echo $?) "$(detail a1)"
run_in a2 "a-good-long-password-1
" account add carol
check "account add with a long password -> exit 0" $([ $rc -eq 0 ]; echo $?) "$(detail a2)"
hash_before=$(sqlite3 "$db" "SELECT password_hash FROM accounts WHERE name = 'carol'")
run_in a3 "x
" account passwd carol
check "account passwd with a one-character password -> exit 2, hash unchanged" \
    $([ $rc -eq 2 ] && grep -q password_min_length "$tmp/a3.err" && [ "$(sqlite3 "$db" "SELECT password_hash FROM accounts WHERE name = 'carol'")" = "$hash_before" ]; echo $?) "$(detail a3)"
run_in a4 "another-long-password-2
" account passwd carol
check "account passwd with a long password -> exit 0, new hash, audit row" \
    $([ $rc -eq 0 ] && [ "$(sqlite3 "$db" "SELECT password_hash FROM accounts WHERE name = 'carol'")" != "$hash_before" ] && audit_has account_passwd; echo $?) "$(detail a4)"
run_in a5 "x
" account passwd carol --set password_min_length=1
check "password_min_length=1 (settable) accepts one character" $([ $rc -eq 0 ]; echo $?) "$(detail a5)"

# --- emulator and service ----------------------------------------------------------------------
start_emulator_or_finish
run k0 apikey create ops
skey=$(tail -n 1 "$tmp/k0.out")
start_serve_or_finish TOKENVEND_OUTBOX_INTERVAL_MS=200
n=0
for u in u1 u2 u3 u4; do
    case "$(http PUT "http://127.0.0.1:$pi/internal/users/$u" "" "$skey" 2>/dev/null)" in
    201*) n=$((n + 1)) ;;
    esac
done
check "four mappings created through the running service" $([ $n -eq 4 ]; echo $?)

# --- identity revoke: the running service stops serving the cached token --------------------
t1=$(token_of u1)
t2=$(token_of u1)
check "the service serves u1 the same (cached) token twice" \
    $([ -n "$t1" ] && [ "$t1" = "$t2" ]; echo $?) "t1=${t1:0:20} t2=${t2:0:20}"
run r1 identity revoke u1
check "identity revoke u1 -> exit 0, {appUserId, acsUserIdentity, revokedAt}, audit row" \
    $([ $rc -eq 0 ] && json_ok "$tmp/r1.out" "o.appUserId === 'u1' && o.acsUserIdentity.startsWith('8:acs:') && typeof o.revokedAt === 'string'" && audit_has revoke; echo $?) "$(detail r1)"
check "the store records the revoke time" \
    $([ "$(sqlite3 "$db" "SELECT revoked_ms > 0 FROM mappings WHERE app_user_id = 'u1'")" = 1 ]; echo $?)
t3=$(token_of u1)
check "after the CLI revoke the running service gives u1 a NEW token" \
    $([ -n "$t3" ] && [ "$t3" != "$t1" ]; echo $?) "t1=${t1:0:20} t3=${t3:0:20}"
t4=$(token_of u2)
t5=$(token_of u2)
check "another user's cached token is untouched" $([ -n "$t4" ] && [ "$t4" = "$t5" ]; echo $?)
run r2 identity revoke nobody
check "identity revoke of an unknown user -> exit 1 not_found" \
    $([ $rc -eq 1 ] && json_ok "$tmp/r2.err" 'o.error.code === "not_found"'; echo $?) "$(detail r2)"
COMMUNICATION_SERVICES_CONNECTION_STRING= run r3 identity revoke u2
check "identity revoke without a connection string -> exit 2, nothing recorded" \
    $([ $rc -eq 2 ] && [ "$(sqlite3 "$db" "SELECT revoked_ms FROM mappings WHERE app_user_id = 'u2'")" = 0 ]; echo $?) "$(detail r3)"
http PUT "$base/emulator/faults" '{"error_rate":1,"error_status":503,"ops":["revoke"]}' >/dev/null
run r4 identity revoke u2 --set acs_max_retries=0
http DELETE "$base/emulator/faults" >/dev/null
check "identity revoke while ACS fails -> exit 1 with ACS's status, no revoke time recorded" \
    $([ $rc -eq 1 ] && json_ok "$tmp/r4.err" 'o.error.status === 503' && [ "$(sqlite3 "$db" "SELECT revoked_ms FROM mappings WHERE app_user_id = 'u2'")" = 0 ]; echo $?) "$(detail r4)"

# --- outbox ------------------------------------------------------------------------------------
run o0 outbox list
check "outbox list on an empty outbox -> [] and total 0" \
    $([ $rc -eq 0 ] && json_ok "$tmp/o0.out" "o.outbox.length === 0 && o.total === 0"; echo $?) "$(detail o0)"
# A delete while ACS fails leaves a row due 30 s later (the CLI's own delete, RETRY_AFTER_MS).
http PUT "$base/emulator/faults" '{"error_rate":1,"error_status":503,"ops":["delete"]}' >/dev/null
run d3 identity delete u3 --set acs_max_retries=0
run d4 identity delete u4 --set acs_max_retries=0
http DELETE "$base/emulator/faults" >/dev/null
run o1 outbox list
check "outbox list shows the two queued deletes with attempts, next try and last error" \
    $([ $rc -eq 0 ] && json_ok "$tmp/o1.out" "o.total === 2 && o.outbox.length === 2 && o.outbox.every(r => r.op === 'delete' && r.attempts === 1 && r.lastError && Date.parse(r.nextAttemptAt) > Date.now() && r.acsUserIdentity.startsWith('8:acs:') && r.leased === false && r.leasedBy === null) && o.outbox.map(r => r.appUserId).sort().join() === 'u3,u4'"; echo $?) "$(detail o1)"
run o2 outbox list --limit 1
check "outbox list --limit 1 -> one row, total 2" \
    $([ $rc -eq 0 ] && json_ok "$tmp/o2.out" "o.outbox.length === 1 && o.total === 2"; echo $?) "$(detail o2)"
id3=$(sqlite3 "$db" "SELECT id FROM outbox WHERE app_user_id = 'u3'")
id4=$(sqlite3 "$db" "SELECT id FROM outbox WHERE app_user_id = 'u4'")
# u3's row: not due for ten minutes (only a retry makes the worker send it within the poll
# below); u4's row: leased by another (made-up) instance for ten minutes.
sqlite3 "$db" "UPDATE outbox SET next_attempt_ms = $(date +%s)000 + 600000 WHERE id = $id3"
sqlite3 "$db" "UPDATE outbox SET leased_by = 'other-instance', next_attempt_ms = $(date +%s)000 + 600000 WHERE id = $id4"
sleep 1
check "before the retry, u3's row is still pending (due in ten minutes)" \
    $([ "$(sqlite3 "$db" "SELECT count(*) FROM outbox WHERE id = $id3")" = 1 ]; echo $?)
run o3 outbox retry "$id3"
check "outbox retry ID -> exit 0, result made_due, audit row" \
    $([ $rc -eq 0 ] && json_ok "$tmp/o3.out" "o.id === $id3 && o.result === 'made_due'" && audit_has outbox_retry; echo $?) "$(detail o3)"
gone=
for _ in $(seq 1 150); do
    if [ "$(sqlite3 "$db" "SELECT count(*) FROM outbox WHERE id = $id3")" = 0 ]; then
        gone=1
        break
    fi
    sleep 0.1
done
run acsdel acs delete "$(json_get "$tmp/d3.out" o.acsUserIdentity)"
check "the running service's outbox worker finished the retried delete (row gone, ACS 404)" \
    $([ -n "$gone" ] && [ $rc -eq 1 ] && json_ok "$tmp/acsdel.err" 'o.error.status === 404'; echo $?) "$(detail acsdel)"
next4=$(sqlite3 "$db" "SELECT next_attempt_ms FROM outbox WHERE id = $id4")
run o4 outbox retry "$id4"
check "outbox retry of a leased row -> exit 0, result leased, said so, lease untouched" \
    $([ $rc -eq 0 ] && json_ok "$tmp/o4.out" "o.result === 'leased' && o.leased === true && o.leasedBy === 'other-instance'" && grep -q "leased by other-instance" "$tmp/o4.err" && [ "$(sqlite3 "$db" "SELECT next_attempt_ms || leased_by FROM outbox WHERE id = $id4")" = "${next4}other-instance" ]; echo $?) "$(detail o4)"
run o5 outbox retry --all
check "outbox retry --all -> counts: 1 matched, 1 leased, 0 made due" \
    $([ $rc -eq 0 ] && json_ok "$tmp/o5.out" "o.matched === 1 && o.leased === 1 && o.madeDue === 0 && o.alreadyDue === 0"; echo $?) "$(detail o5)"
run o6 outbox retry 999999
check "outbox retry of an unknown ID -> exit 1, not_found naming the id" \
    $([ $rc -eq 1 ] && json_ok "$tmp/o6.err" "o.error.code === 'not_found' && o.error.message.includes('999999')"; echo $?) "$(detail o6)"
# The lease ends (its holder gave it back): --all makes it due and the worker finishes it.
sqlite3 "$db" "UPDATE outbox SET leased_by = '' WHERE id = $id4"
run o7 outbox retry --all
gone=
for _ in $(seq 1 150); do
    if [ "$(sqlite3 "$db" "SELECT count(*) FROM outbox")" = 0 ]; then
        gone=1
        break
    fi
    sleep 0.1
done
check "outbox retry --all on an unleased row -> madeDue 1, and the worker finishes it" \
    $([ $rc -eq 0 ] && json_ok "$tmp/o7.out" "o.matched === 1 && o.madeDue === 1 && o.leased === 0" && [ -n "$gone" ]; echo $?) "$(detail o7)"

# --- apikey rotate -----------------------------------------------------------------------------
# status_with KEY : the HTTP status of an internal request authenticated with KEY.
status_with() {
    http GET "http://127.0.0.1:$pi/internal/users?limit=1" "" "$1" 2>/dev/null | cut -d' ' -f1
}
# wait_status KEY STATUS : polls (bounded, 20 s) until a request with KEY gets STATUS.
wait_status() {
    for _ in $(seq 1 200); do
        [ "$(status_with "$1")" = "$2" ] && return 0
        sleep 0.1
    done
    return 1
}
run k1 apikey create rot
k1=$(tail -n 1 "$tmp/k1.out")
kid1=$(printf '%s' "$k1" | cut -c5-20)
check "a new key works" $([ "$(status_with "$k1")" = 200 ]; echo $?)
run k2 apikey rotate rot --grace 1h
k2=$(tail -n 1 "$tmp/k2.out")
kid2=$(printf '%s' "$k2" | cut -c5-20)
check "apikey rotate -> exit 0, new key on the last line only, names both keys, audit row" \
    $([ $rc -eq 0 ] && printf '%s' "$k2" | grep -Eq '^tvk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$' && [ "$k2" != "$k1" ] && [ "$(grep -cF -- "$k2" "$tmp/k2.out")" = 1 ] && ! grep -qF -- "$k2" "$tmp/k2.err" && head -n 1 "$tmp/k2.out" >"$tmp/k2.json" && json_ok "$tmp/k2.json" "o.name === 'rot' && o.keyId === '$kid2' && o.previousKeyId === '$kid1' && Date.parse(o.previousExpiresAt) > Date.now() + 3000000" && audit_has apikey_rotate; echo $?) "$(detail k2)"
check "after rotate: the new key works and the old one still does (1 h grace)" \
    $([ "$(status_with "$k2")" = 200 ] && [ "$(status_with "$k1")" = 200 ]; echo $?)
run kl apikey list
check "apikey list shows both keys of the name, the old one with its expiry" \
    $([ $rc -eq 0 ] && json_ok "$tmp/kl.out" "o.apikeys.some(k => k.name === 'rot' && k.keyId === '$kid2' && k.current === true && k.expiresAt === null) && o.apikeys.some(k => k.name === 'rot' && k.keyId === '$kid1' && k.current === false && Date.parse(k.expiresAt) > Date.now() && k.lastUsedAt !== null)"; echo $?) "$(detail kl)"
run k3 apikey rotate rot --grace 1s
k3=$(tail -n 1 "$tmp/k3.out")
check "a second rotation: the oldest key is refused at once, the newest works" \
    $([ $rc -eq 0 ] && [ "$(status_with "$k1")" = 401 ] && [ "$(status_with "$k3")" = 200 ]; echo $?) "$(detail k3)"
check "the key rotated out with a 1 s grace is refused once the grace has passed (401)" \
    $(wait_status "$k2" 401; echo $?)
check "... and the new key still works" $([ "$(status_with "$k3")" = 200 ]; echo $?)
run k4 apikey rotate rot --grace 0
k4=$(tail -n 1 "$tmp/k4.out")
check "apikey rotate --grace 0: the old key is refused at once" \
    $([ $rc -eq 0 ] && [ "$(status_with "$k3")" = 401 ] && [ "$(status_with "$k4")" = 200 ]; echo $?) "$(detail k4)"
run k5 apikey rotate rot
k5=$(tail -n 1 "$tmp/k5.out")
check "apikey rotate without --grace keeps the old key a day" \
    $([ $rc -eq 0 ] && head -n 1 "$tmp/k5.out" >"$tmp/k5.json" && json_ok "$tmp/k5.json" "Math.abs(Date.parse(o.previousExpiresAt) - Date.parse(o.createdAt) - 86400000) < 1000" && [ "$(status_with "$k4")" = 200 ]; echo $?) "$(detail k5)"
run k6 apikey revoke rot
check "apikey revoke of a rotated name refuses both its keys" \
    $([ $rc -eq 0 ] && [ "$(status_with "$k4")" = 401 ] && [ "$(status_with "$k5")" = 401 ]; echo $?) "$(detail k6)"
run k7 apikey rotate rot
check "apikey rotate of a revoked name -> exit 1 conflict, no key printed" \
    $([ $rc -eq 1 ] && json_ok "$tmp/k7.err" "o.error.code === 'conflict'" && ! grep -q tvk_ "$tmp/k7.out"; echo $?) "$(detail k7)"
run k8 apikey rotate nosuch
check "apikey rotate of an unknown name -> exit 1 not_found" \
    $([ $rc -eq 1 ] && json_ok "$tmp/k8.err" "o.error.code === 'not_found'"; echo $?) "$(detail k8)"
bad=0
for g in 5x -1s 31d 1.5h "" 99999999999999999999s "1$(printf '\001')h" "$(printf '1\377h')" \
    "$(head -c 5000 /dev/zero | tr '\0' 9)s" " 1h" "1h "; do
    run k9 apikey rotate ops --grace "$g"
    [ $rc -eq 2 ] && ! grep -q tvk_ "$tmp/k9.out" || bad=1
done
run k10 apikey create other --grace 1h
check "bad --grace values, and --grace outside rotate -> exit 2, nothing rotated" \
    $([ $bad -eq 0 ] && [ $rc -eq 2 ] && [ "$(status_with "$skey")" = 200 ]; echo $?) "$(detail k9)"
leaked=
for k in "$k1" "$k2" "$k3" "$k4" "$k5"; do
    [ -n "$k" ] && cat "$db" "$db-wal" "$tmp/serve.err" 2>/dev/null | grep -aqF -- "$k" && leaked="$leaked ${k:0:20}"
done
check "no API key in the database or the service's log" $([ -z "$leaked" ]; echo $?) "leaked:$leaked"

finish
