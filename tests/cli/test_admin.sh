#!/usr/bin/env bash
# Shell tests of the tokenvend admin commands on a temporary database: migrate (twice: the second
# run applies nothing), apikey create/list/revoke, account add/list/remove and identity
# list/show/delete against a private acs-emulator. Canary checks: no API key or password in any
# output but the one intended line, in the logs (debug level), or in the raw database and -wal
# bytes. Mappings for the identity commands come from `tokenvend serve` (PUT /internal/users/ID)
# when this build has it, else they are inserted with the sqlite3 shell as a stop-gap.
# Argon2 runs with light parameters (TOKENVEND_ARGON2=t=1,m=1024) except in one case.
# Ends with "N passed, N failed"; exits non-zero on any failure.
set -u

# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/lib.sh"

# run OUTNAME ARGS... : runs tokenvend; stdout to $tmp/OUTNAME.out, stderr to .err (and appended
# to $tmp/all.log, the log every canary check reads); sets $rc.
run() {
    local name=$1
    shift
    "$TV" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
    rc=$?
    cat "$tmp/$name.err" >>"$tmp/all.log"
}
# run_in OUTNAME INPUT ARGS... : the same with INPUT on stdin.
run_in() {
    local name=$1 input=$2
    shift 2
    printf '%s' "$input" | "$TV" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
    rc=$?
    cat "$tmp/$name.err" >>"$tmp/all.log"
}
# in_db TEXT : exit 0 when TEXT occurs in the raw bytes of the database or its -wal/-shm files.
in_db() {
    cat "$db" "$db-wal" "$db-shm" 2>/dev/null | grep -aqF -- "$1"
}
# no_leak TEXT : exit 0 when TEXT is in none of the database files and no log line.
no_leak() {
    ! in_db "$1" && ! grep -aqF -- "$1" "$tmp/all.log"
}

if [ ! -x "$TV" ] || [ ! -x "$EMU" ]; then
    not_ok "binaries exist ($TV, $EMU)"
    finish
fi

clear_acs_env
db=$tmp/data/tv.db
export TOKENVEND_DB=$db
export TOKENVEND_LOG_LEVEL=debug
export TOKENVEND_ARGON2=t=1,m=1024
: >"$tmp/all.log"

# --- help --------------------------------------------------------------------------------------
run help help
missing=
for w in migrate "apikey create" "account add" "identity list" "store copy"; do
    grep -q -- "$w" "$tmp/help.out" || missing="$missing [$w]"
done
check "help lists the admin commands" $([ $rc -eq 0 ] && [ -z "$missing" ]; echo $?) "missing:$missing"
missing=
for c in "apikey:create list revoke" "account:add list remove --password-file" \
    "identity:list show delete --limit --after" "migrate:applied" \
    "store:copy check --from-file --to-file up_to_date"; do
    run subhelp help "${c%%:*}"
    for w in ${c#*:}; do
        grep -q -- "$w" "$tmp/subhelp.out" || missing="$missing ${c%%:*}:$w"
    done
    run subhelp2 "${c%%:*}" --help
    [ $rc -eq 0 ] && cmp -s "$tmp/subhelp.out" "$tmp/subhelp2.out" || missing="$missing ${c%%:*}:--help"
done
check "help CMD and CMD --help describe each admin command" $([ -z "$missing" ]; echo $?) "missing:$missing"
run noargs apikey
check "apikey without a subcommand -> usage, exit 2" $([ $rc -eq 2 ] && grep -q Usage "$tmp/noargs.err"; echo $?) "$(detail noargs)"
run badsub account frob
check "unknown account subcommand -> exit 2" $([ $rc -eq 2 ] && json_ok "$tmp/badsub.err" 'o.error.code === "usage_error"'; echo $?) "$(detail badsub)"

# --- migrate -----------------------------------------------------------------------------------
run mig1 migrate
# The last one applied names version `to`.
check "migrate on a new file applies 0001_init" \
    $([ $rc -eq 0 ] && json_ok "$tmp/mig1.out" 'o.from === 0 && o.to >= 1 && o.to === o.latest && o.applied[0] === "0001_init" && o.applied.at(-1).startsWith(String(o.to).padStart(4, "0") + "_")'; echo $?) "$(detail mig1)"
check "the database file is created with mode 600" $([ "$(stat -c %a "$db" 2>/dev/null)" = 600 ]; echo $?) "$(ls -la "$tmp/data")"
run mig2 migrate
check "migrate again applies nothing" \
    $([ $rc -eq 0 ] && json_ok "$tmp/mig2.out" 'o.applied.length === 0 && o.from === o.to && o.to === o.latest'; echo $?) "$(detail mig2)"
# A database lacking a version below its highest (restored by hand, or migrated by a branch's
# binary) gets that version, and the output names exactly it (the empty database makes removing
# 0003's record harmless; the sqlite3 shell stands in for the other binary).
if command -v sqlite3 >/dev/null; then
    sqlite3 "$db" "DELETE FROM schema_migrations WHERE version = 3"
    run miggap migrate
    check "migrate fills a missing version below the highest and names only it" \
        $([ $rc -eq 0 ] && json_ok "$tmp/miggap.out" 'o.from === 2 && o.to === o.latest && o.applied.length === 1 && o.applied[0] === "0003_user_namespace"' && [ "$(sqlite3 "$db" "SELECT count(*) FROM schema_migrations WHERE version = 3")" = 1 ]; echo $?) "$(detail miggap)"
fi
run migx migrate extra
check "migrate with an argument -> exit 2" $([ $rc -eq 2 ]; echo $?) "$(detail migx)"

# --- apikey ------------------------------------------------------------------------------------
run ak1 apikey create backend1
key1=$(tail -n 1 "$tmp/ak1.out")
check "apikey create: exit 0, the key is the last line of stdout" \
    $([ $rc -eq 0 ] && printf '%s' "$key1" | grep -Eq '^tvk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$'; echo $?) "$(detail ak1)"
check "apikey create: the key appears exactly once in stdout and never on stderr" \
    $([ "$(grep -cF -- "$key1" "$tmp/ak1.out")" = 1 ] && ! grep -qF -- "$key1" "$tmp/ak1.err"; echo $?) "$(detail ak1)"
kid1=$(printf '%s' "$key1" | cut -c5-20)
check "apikey create: the JSON line names the key and its id" \
    $(head -n 1 "$tmp/ak1.out" >"$tmp/ak1.json" && json_ok "$tmp/ak1.json" "o.name === 'backend1' && o.keyId === '$kid1' && !JSON.stringify(o).includes('tvk_')"; echo $?) "$(detail ak1)"
run ak2 apikey create backend-2.prod
key2=$(tail -n 1 "$tmp/ak2.out")
check "a second key differs" $([ $rc -eq 0 ] && [ -n "$key2" ] && [ "$key1" != "$key2" ]; echo $?) "$(detail ak2)"
run akdup apikey create backend1
check "apikey create of an existing name -> exit 1 conflict, no key printed" \
    $([ $rc -eq 1 ] && json_ok "$tmp/akdup.err" 'o.error.code === "conflict" && o.error.status === 409' && ! grep -q tvk_ "$tmp/akdup.out"; echo $?) "$(detail akdup)"
bad=0
for n in "bad name" "a/b" "" "$(printf 'x%.0s' $(seq 1 65))" "a@b"; do
    run akbad apikey create "$n"
    [ $rc -eq 2 ] && ! grep -q tvk_ "$tmp/akbad.out" || bad=1
done
check "apikey create rejects bad names with exit 2" $([ $bad -eq 0 ]; echo $?) "$(detail akbad)"
run aklist apikey list
check "apikey list shows both keys with ids and times, never a key" \
    $([ $rc -eq 0 ] && json_ok "$tmp/aklist.out" "o.apikeys.length === 2 && o.apikeys[0].name === 'backend-2.prod' && o.apikeys[1].name === 'backend1' && o.apikeys[1].keyId === '$kid1' && typeof o.apikeys[1].createdAt === 'string' && o.apikeys[1].lastUsedAt === null && o.apikeys[1].revokedAt === null" && ! grep -q tvk_ "$tmp/aklist.out"; echo $?) "$(detail aklist)"
run akrev apikey revoke backend1
check "apikey revoke -> exit 0, revokedAt set" \
    $([ $rc -eq 0 ] && json_ok "$tmp/akrev.out" "o.name === 'backend1' && typeof o.revokedAt === 'string'"; echo $?) "$(detail akrev)"
run aklist2 apikey list
check "apikey list shows the revocation of one key only" \
    $([ $rc -eq 0 ] && json_ok "$tmp/aklist2.out" "o.apikeys[1].revokedAt !== null && o.apikeys[0].revokedAt === null"; echo $?) "$(detail aklist2)"
run akrev2 apikey revoke nobody
check "apikey revoke of an unknown name -> exit 1 not_found" \
    $([ $rc -eq 1 ] && json_ok "$tmp/akrev2.err" 'o.error.code === "not_found" && o.error.status === 404'; echo $?) "$(detail akrev2)"
run akdup2 apikey create backend1
check "a revoked key's name stays taken" $([ $rc -eq 1 ]; echo $?) "$(detail akdup2)"
secret1=${key1:21}
check "no key (nor its secret part) in the database files or any log line" \
    $([ -s "$db" ] && no_leak "$key1" && no_leak "$secret1" && no_leak "$key2" && no_leak "${key2:21}"; echo $?)
check "the key ids are in the database (the check above reads the right bytes)" $(in_db "$kid1"; echo $?)

# --- account -----------------------------------------------------------------------------------
pw1='Canary-Pw-5d1e8b9f'
pw2='Canary-Pw2-a7c3e011'
run_in acc1 "$pw1
" account add alice
check "account add (password on stdin) -> created" \
    $([ $rc -eq 0 ] && json_ok "$tmp/acc1.out" "o.name === 'alice' && o.created === true"; echo $?) "$(detail acc1)"
printf '%s\n' "$pw2" >"$tmp/pwfile"
run acc2 account add alice --password-file "$tmp/pwfile"
check "account add --password-file on an existing account -> replaced (created false)" \
    $([ $rc -eq 0 ] && json_ok "$tmp/acc2.out" "o.name === 'alice' && o.created === false"; echo $?) "$(detail acc2)"
run_in acc3 "$pw1" account add bob@example.com
check "account add without a trailing newline, name with @" \
    $([ $rc -eq 0 ] && json_ok "$tmp/acc3.out" "o.created === true"; echo $?) "$(detail acc3)"
run_in accempty "" account add carol
check "account add with empty stdin -> exit 2, nothing stored" \
    $([ $rc -eq 2 ] && json_ok "$tmp/accempty.err" 'o.error.code === "usage_error"'; echo $?) "$(detail accempty)"
run_in acclong "$(printf 'p%.0s' $(seq 1 1025))
" account add carol
check "account add with a 1025-byte password -> exit 2" $([ $rc -eq 2 ]; echo $?) "$(detail acclong)"
run_in accmax "$(printf 'p%.0s' $(seq 1 1024))
" account add dave
check "account add with a 1024-byte password -> exit 0" $([ $rc -eq 0 ]; echo $?) "$(detail accmax)"
run accnofile account add carol --password-file "$tmp/missing"
check "account add --password-file with a missing file -> exit 2" $([ $rc -eq 2 ]; echo $?) "$(detail accnofile)"
run_in accbad "$pw1
" account add "no spaces"
check "account add with a bad name -> exit 2" $([ $rc -eq 2 ]; echo $?) "$(detail accbad)"
run acclist account list
check "account list shows the accounts, no hashes" \
    $([ $rc -eq 0 ] && json_ok "$tmp/acclist.out" "o.accounts.map(a => a.name).join() === 'alice,bob@example.com,dave' && o.accounts.every(a => Object.keys(a).join() === 'name,createdAt,updatedAt')" && ! grep -q argon2 "$tmp/acclist.out"; echo $?) "$(detail acclist)"
check "no password in the database files or any output; Argon2id hashes are stored" \
    $(no_leak "$pw1" && no_leak "$pw2" && ! grep -qF "$pw1" "$tmp"/acc*.out && in_db '$argon2id$v=19$m=1024,t=1,p=1$'; echo $?)
unset TOKENVEND_ARGON2
run_in accdef "$pw1
" account add erin
export TOKENVEND_ARGON2=t=1,m=1024
check "without TOKENVEND_ARGON2 the default cost is used (t=3, 32 MiB)" \
    $([ $rc -eq 0 ] && in_db '$argon2id$v=19$m=32768,t=3,p=1$'; echo $?) "$(detail accdef)"
run accrm account remove alice
check "account remove -> exit 0" $([ $rc -eq 0 ] && json_ok "$tmp/accrm.out" "o.removed === true"; echo $?) "$(detail accrm)"
run accrm2 account remove alice
check "account remove again -> exit 1 not_found" \
    $([ $rc -eq 1 ] && json_ok "$tmp/accrm2.err" 'o.error.code === "not_found"'; echo $?) "$(detail accrm2)"
# passwd and the minimum length (password_min_length, default 12 characters).
run_in accpw "$pw1
" account passwd bob@example.com
check "account passwd (password on stdin) -> passwordChanged, audited" \
    $([ $rc -eq 0 ] && json_ok "$tmp/accpw.out" "o.name === 'bob@example.com' && o.passwordChanged === true" && in_db account_passwd; echo $?) "$(detail accpw)"
run_in accpw2 "$pw1
" account passwd alice
check "account passwd of a removed account -> exit 1 not_found" \
    $([ $rc -eq 1 ] && json_ok "$tmp/accpw2.err" 'o.error.code === "not_found"'; echo $?) "$(detail accpw2)"
run_in accshort "short-pw
" account add frank
check "account add with an 8-character password -> exit 2 naming password_min_length, nothing stored" \
    $([ $rc -eq 2 ] && grep -q password_min_length "$tmp/accshort.err" && ! in_db frank; echo $?) "$(detail accshort)"
run_in accshort2 "short-pw
" account passwd bob@example.com
check "account passwd with a short password -> exit 2" $([ $rc -eq 2 ]; echo $?) "$(detail accshort2)"
run_in accmin "short-pw
" account add frank --set password_min_length=8
check "password_min_length=8 accepts 8 characters" $([ $rc -eq 0 ]; echo $?) "$(detail accmin)"
run acclist2 account list
check "account list no longer shows alice" \
    $([ $rc -eq 0 ] && json_ok "$tmp/acclist2.out" "!o.accounts.some(a => a.name === 'alice')"; echo $?) "$(detail acclist2)"

# --- identity on a database without mappings ---------------------------------------------------
run idl0 identity list
check "identity list on an empty store -> []" \
    $([ $rc -eq 0 ] && json_ok "$tmp/idl0.out" "o.identities.length === 0 && o.next === null"; echo $?) "$(detail idl0)"
run ids0 identity show nobody
check "identity show of an unknown id -> exit 1, not_found 404" \
    $([ $rc -eq 1 ] && json_ok "$tmp/ids0.err" 'o.error.code === "not_found" && o.error.status === 404' && [ ! -s "$tmp/ids0.out" ]; echo $?) "$(detail ids0)"
run idd0 identity delete 8:acs:nobody
check "identity delete of an unknown id -> exit 1, not_found" \
    $([ $rc -eq 1 ] && json_ok "$tmp/idd0.err" 'o.error.code === "not_found"'; echo $?) "$(detail idd0)"
run idbad identity list --limit 0
check "identity list --limit 0 -> exit 2" $([ $rc -eq 2 ]; echo $?) "$(detail idbad)"
# Ids on the command line follow the id rule: exit 2, and the message never quotes the bytes.
for bad in "$(printf 'x\r\nInjected: 1')" "$(printf 'a\xff\xfe')" "$(printf 'o\xc0\xaf')" "$(printf 'c\xc2\x85')"; do
    run idrule identity show "$bad"
    check "identity show with an id that breaks the id rule -> exit 2" \
        $([ $rc -eq 2 ] && json_ok "$tmp/idrule.err" '/ID (is not valid UTF-8|must not contain control characters)/.test(o.error.message)' && ! grep -q Injected "$tmp/idrule.err"; echo $?) "$(detail idrule)"
    run idrule2 identity list --after "$bad"
    check "identity list --after that breaks the id rule -> exit 2" $([ $rc -eq 2 ]; echo $?) "$(detail idrule2)"
done

# --- identity with mappings (emulator) ---------------------------------------------------------
start_emulator_or_finish
resource=${base#http://}

# Mappings u1, u2, u3 -> emulator identities, via the service when it exists.
mapped=
"$TV" serve --help >/dev/null 2>&1
if [ $? -eq 0 ]; then
    up=
    start_serve TOKENVEND_LOG_LEVEL=info && up=1
    run akserve apikey create serve-test
    skey=$(tail -n 1 "$tmp/akserve.out")
    n=0
    for u in u1 u2 u3; do
        r=$(http PUT "http://127.0.0.1:$pi/internal/users/$u" "" "$skey" 2>/dev/null)
        case "$r" in 201*) n=$((n + 1)) ;; esac
    done
    stop_serve
    cat "$tmp/serve.err" >>"$tmp/all.log"
    if [ -n "$up" ] && [ $n -eq 3 ]; then
        mapped=serve
    else
        echo "# tokenvend serve did not create the mappings (up=$up, created=$n); using sqlite3"
    fi
fi
if [ -z "$mapped" ] && command -v sqlite3 >/dev/null; then
    # Stop-gap while the service is missing: real emulator identities, rows written directly.
    n=0
    for u in u1 u2 u3; do
        run mk acs create-user
        aid=$(json_get "$tmp/mk.out" o.communicationUserId)
        sqlite3 "$db" "INSERT INTO mappings (app_user_id, acs_id, resource, created_ms) VALUES ('$u', '$aid', '$resource', $(date +%s000));" && n=$((n + 1))
    done
    [ $n -eq 3 ] && mapped=sqlite3
fi
if [ -z "$mapped" ]; then
    not_ok "mappings for the identity tests (neither tokenvend serve nor sqlite3 worked)"
    finish
fi
ok "three mappings created (via $mapped)"

run idl identity list
check "identity list -> u1, u2, u3 in order with their ACS ids and resource" \
    $([ $rc -eq 0 ] && json_ok "$tmp/idl.out" "o.identities.map(i => i.appUserId).join() === 'u1,u2,u3' && o.identities.every(i => i.acsUserIdentity.startsWith('8:acs:') && i.resource === '$resource' && typeof i.createdAt === 'string') && o.next === null"; echo $?) "$(detail idl)"
run idlp identity list --limit 2
check "identity list --limit 2 -> two and a cursor" \
    $([ $rc -eq 0 ] && json_ok "$tmp/idlp.out" "o.identities.length === 2 && o.next === 'u2'"; echo $?) "$(detail idlp)"
run idlp2 identity list --limit 2 --after u2
check "identity list --after the cursor -> the rest" \
    $([ $rc -eq 0 ] && json_ok "$tmp/idlp2.out" "o.identities.length === 1 && o.identities[0].appUserId === 'u3' && o.next === null"; echo $?) "$(detail idlp2)"
aid1=$(json_get "$tmp/idl.out" "o.identities[0].acsUserIdentity")
aid2=$(json_get "$tmp/idl.out" "o.identities[1].acsUserIdentity")
aid3=$(json_get "$tmp/idl.out" "o.identities[2].acsUserIdentity")
run ids1 identity show u1
check "identity show by app user id" \
    $([ $rc -eq 0 ] && json_ok "$tmp/ids1.out" "o.appUserId === 'u1' && o.acsUserIdentity === '$aid1' && o.pendingDelete === false"; echo $?) "$(detail ids1)"
run ids2 identity show "$aid1"
check "identity show by ACS id" \
    $([ $rc -eq 0 ] && json_ok "$tmp/ids2.out" "o.appUserId === 'u1' && o.acsUserIdentity === '$aid1'"; echo $?) "$(detail ids2)"

# Without ACS credentials a delete changes nothing.
COMMUNICATION_SERVICES_CONNECTION_STRING= run iddnocs identity delete u1
rc_del=$rc
run ids3 identity show u1
check "identity delete without a connection string -> exit 2, mapping kept" \
    $([ $rc_del -eq 2 ] && [ ! -s "$tmp/iddnocs.out" ] && grep -q COMMUNICATION_SERVICES_CONNECTION_STRING "$tmp/iddnocs.err" && json_ok "$tmp/ids3.out" "o.appUserId === 'u1'"; echo $?) "$(detail iddnocs)"

run idd1 identity delete u1
check "identity delete u1 -> exit 0, deleted at ACS" \
    $([ $rc -eq 0 ] && json_ok "$tmp/idd1.out" "o.acsUserIdentity === '$aid1' && o.deleted === true && o.queued === false"; echo $?) "$(detail idd1)"
run ids4 identity show u1
check "identity show u1 after the delete -> not_found" $([ $rc -eq 1 ]; echo $?) "$(detail ids4)"
run acsdel acs delete "$aid1"
check "the emulator no longer knows u1's identity (acs delete -> 404)" \
    $([ $rc -eq 1 ] && json_ok "$tmp/acsdel.err" 'o.error.status === 404'; echo $?) "$(detail acsdel)"
run idd2 identity delete "$aid2"
check "identity delete by ACS id -> deleted" \
    $([ $rc -eq 0 ] && json_ok "$tmp/idd2.out" "o.appUserId === 'u2' && o.deleted === true"; echo $?) "$(detail idd2)"

# ACS failing: the mapping goes, the delete stays queued for the service.
r=$(http PUT "$base/emulator/faults" '{"error_rate":1,"error_status":503,"ops":["delete"]}')
run idd3 identity delete u3 --set acs_max_retries=0
check "identity delete while ACS fails -> exit 1, queued, mapping gone" \
    $([ $rc -eq 1 ] && json_ok "$tmp/idd3.out" "o.deleted === false && o.queued === true" && json_ok "$tmp/idd3.err" "o.error.status === 503"; echo $?) "$(detail idd3) faults: $r"
http DELETE "$base/emulator/faults" >/dev/null
run ids5 identity show "$aid3"
check "identity show of the queued identity -> not_found, says a delete is queued" \
    $([ $rc -eq 1 ] && grep -q "already queued" "$tmp/ids5.err"; echo $?) "$(detail ids5)"
run idl2 identity list
check "identity list is empty after the deletes" \
    $([ $rc -eq 0 ] && json_ok "$tmp/idl2.out" "o.identities.length === 0"; echo $?) "$(detail idl2)"

# A mapping bound to another ACS resource is reported, not deleted with the wrong credentials.
if command -v sqlite3 >/dev/null; then
    sqlite3 "$db" "INSERT INTO mappings (app_user_id, acs_id, resource, created_ms) VALUES ('u9', '8:acs:other_1', 'other.example', 1);"
    run idd9 identity delete u9
    rc_del=$rc
    run ids9 identity show u9
    check "identity delete of another resource's mapping -> exit 1 conflict, mapping kept" \
        $([ $rc_del -eq 1 ] && [ $rc -eq 0 ] && grep -q "another ACS resource" "$tmp/idd9.err" && json_ok "$tmp/idd9.err" 'o.error.code === "conflict"'; echo $?) "$(detail idd9)"
fi

check "no key or password in any log line or the database after all commands" \
    $(no_leak "$key1" && no_leak "$secret1" && no_leak "$pw1" && no_leak "$pw2" &&
        { [ -z "${skey:-}" ] || no_leak "$skey"; }; echo $?)

finish
