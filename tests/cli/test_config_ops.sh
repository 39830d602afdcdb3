#!/usr/bin/env bash
# What a new operator trips over at start (issue 11, point 5): `config check` refusing what
# `serve` refuses (one function, app_config_check, runs for both) and warning about TOKENVEND_*
# variables no setting reads; which configuration file is read by default (TOKENVEND_CONFIG,
# $TOKENVEND_CONFIG_DIR or /etc/tokenvend, config/ under the working directory) and saying so;
# `serve` binding its listeners before it creates or migrates the database. No ACS is called:
# the connection string names a host nobody asks. Ends with "N passed, N failed".
set -u

# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/lib.sh"

# run comes from lib.sh; detail is this suite's own (the last lines of stdout only).
detail() {
    echo "exit $rc"
    echo "stdout:"
    tail -n 5 "$tmp/$1.out"
    echo "stderr:"
    cat "$tmp/$1.err"
}
# serve_bounded OUTNAME ARGS... : `tokenvend serve` that is expected to stop by itself; one that
# wrongly starts is stopped after a while and fails its check.
serve_bounded() {
    local name=$1
    shift
    timeout 30 "$TV" serve "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
    rc=$?
}
# serve_start OUTNAME ARGS... : starts `tokenvend serve` in the background and waits (bounded)
# for its "listening" line; sets $serve_pid, and $rc (0 listening, 1 not).
serve_start() {
    local name=$1
    shift
    "$TV" serve "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
    serve_pid=$!
    rc=1
    for _ in $(seq 300); do
        if grep -q '"msg":"listening"' "$tmp/$name.err" 2>/dev/null; then
            rc=0
            break
        fi
        kill -0 "$serve_pid" 2>/dev/null || break
        sleep 0.1
    done
}
serve_stop() {
    if [ -n "$serve_pid" ]; then
        kill -TERM "$serve_pid" 2>/dev/null
        wait "$serve_pid" 2>/dev/null
    fi
    serve_pid=
}

if [ ! -x "$TV" ]; then
    not_ok "binary exists ($TV)"
    finish
fi

# A clean environment: only what each case sets. The connection string parses; nothing calls
# the host it names (config check calls nothing; serve makes no ACS call without requests).
for v in $(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' | grep -i '^tokenvend_\|^communication_services_\|^azure_'); do
    unset "$v"
done
export COMMUNICATION_SERVICES_CONNECTION_STRING='endpoint=https://acs.invalid/;accesskey=aGVsbG8='
export TOKENVEND_LOG_LEVEL=info
# No system-wide file of this machine's (/etc/tokenvend) leaks into the cases.
export TOKENVEND_CONFIG_DIR=$tmp/no-system-dir
tv_abs=$(realpath "$TV")
mkdir -p "$tmp/empty"
# A configuration that passes with no warning: local accounts give app users a way in.
ok_flags=(--set local_accounts=on)

# --- Unknown TOKENVEND_* variables ---------------------------------------------------------------
TOKENVEND_PUBLIC_ADR=127.0.0.1:7777 run typo config check "${ok_flags[@]}"
check "config check: TOKENVEND_PUBLIC_ADR -> a warning naming it, 'did you mean TOKENVEND_PUBLIC_ADDR?', exit 0" \
    $([ $rc -eq 0 ] && grep -q 'environment variable TOKENVEND_PUBLIC_ADR is not a tokenvend setting' "$tmp/typo.err" &&
        grep -q 'did you mean TOKENVEND_PUBLIC_ADDR?' "$tmp/typo.err" && grep -q '^public_addr = 0.0.0.0:8080  # default$' "$tmp/typo.out"; echo $?) "$(detail typo)"
check "the warning never shows the variable's value" $(! grep -q 7777 "$tmp/typo.err"; echo $?) "$(detail typo)"
TOKENVEND_PUBLIC_ADR=127.0.0.1:7777 run typostrict config check --strict "${ok_flags[@]}"
check "config check --strict: an unknown variable -> exit 2" \
    $([ $rc -eq 2 ] && json_ok "$tmp/typostrict.err" 'o.error.code === "config_error" && /--strict/.test(o.error.message)'; echo $?) "$(detail typostrict)"
run clean config check --strict "${ok_flags[@]}"
check "config check --strict with nothing to warn about -> exit 0, no warning" \
    $([ $rc -eq 0 ] && ! grep -q '"warn"' "$tmp/clean.err"; echo $?) "$(detail clean)"
tokenvend_db=x.db TOKENVEND_DB_FIEL=/x TOKENVEND_FROBNICATE_EVERYTHING=1 run typo2 config check "${ok_flags[@]}"
check "config check: any case, swapped letters, and a name close to nothing" \
    $([ $rc -eq 0 ] && grep -q 'tokenvend_db is not a tokenvend setting and is ignored; did you mean TOKENVEND_DB?' "$tmp/typo2.err" &&
        grep -q 'TOKENVEND_DB_FIEL is not a tokenvend setting and is ignored; did you mean TOKENVEND_DB_FILE?' "$tmp/typo2.err" &&
        grep 'TOKENVEND_FROBNICATE_EVERYTHING is not a tokenvend setting' "$tmp/typo2.err" | grep -vq 'did you mean'; echo $?) "$(detail typo2)"
printf '%s\n' "$tmp/known.db" >"$tmp/dbname"
: >"$tmp/empty.conf"
TOKENVEND_ARGON2=t=1,m=1024 TOKENVEND_DB_FILE="$tmp/dbname" TOKENVEND_CONFIG="$tmp/empty.conf" \
    run known config check "${ok_flags[@]}"
check "config check: known variables (a setting's, its _FILE form, TOKENVEND_CONFIG, _CONFIG_DIR, _ARGON2) -> no warning" \
    $([ $rc -eq 0 ] && ! grep -q 'not a tokenvend setting' "$tmp/known.err"; echo $?) "$(detail known)"

# serve logs the same warning at start (and still starts: a warning, not a refusal).
TOKENVEND_PUBLIC_ADR=127.0.0.1:7777 serve_start typoserve --set public_addr=127.0.0.1:0 \
    --set internal_addr=127.0.0.1:0 --set "db=$tmp/typo.db" "${ok_flags[@]}"
serve_stop
check "serve: TOKENVEND_PUBLIC_ADR -> the same warning in its log, then it serves" \
    $([ $rc -eq 0 ] && grep -q 'TOKENVEND_PUBLIC_ADR is not a tokenvend setting and is ignored; did you mean TOKENVEND_PUBLIC_ADDR?' "$tmp/typoserve.err"; echo $?) "$(detail typoserve)"

# --- config check refuses what serve refuses ------------------------------------------------------
# Each case: config check exits 2 with a config_error naming the problem, and serve (against a
# fresh database path) exits 2 with the same sentence in its log, having created nothing.
refusal_case() {
    local title=$1 pattern=$2
    shift 2
    run refuse config check "$@"
    local crc=$rc
    serve_bounded refuseserve --set public_addr=127.0.0.1:0 --set internal_addr=127.0.0.1:0 \
        --set "db=$tmp/refused/tv.db" "$@"
    check "$title: config check exit 2 and serve exit 2, same message, no database" \
        $([ $crc -eq 2 ] && json_ok "$tmp/refuse.err" "o.error.code === 'config_error' && /$pattern/.test(o.error.message)" &&
            [ $rc -eq 2 ] && grep -q "$pattern" "$tmp/refuseserve.err" && [ ! -e "$tmp/refused" ]; echo $?) \
        "config check: exit $crc $(cat "$tmp/refuse.err"); serve: $(detail refuseserve)"
}
refusal_case "an OIDC issuer without an audience" "oidc_audience is not" \
    --set oidc_issuer=https://idp.example/
saved_cs=$COMMUNICATION_SERVICES_CONNECTION_STRING
unset COMMUNICATION_SERVICES_CONNECTION_STRING
refusal_case "no ACS connection string nor endpoint" "no ACS connection string" "${ok_flags[@]}"
export COMMUNICATION_SERVICES_CONNECTION_STRING=$saved_cs
refusal_case "a connection string that does not parse" "acs_connection_string: malformed" \
    --set 'acs_connection_string=endpoint=https://x/;nokey=1'
refusal_case "a listener address that does not resolve" "is not an address of this machine" \
    --set internal_addr=nohost.invalid:0
# No way for app users to log in (no OIDC, local accounts off): serve starts (the internal API
# works), and both say so.
run nologinstrict config check --strict
strict_rc=$rc
run nologin config check
check "config check: no OIDC and local accounts off -> a warning, exit 0; --strict exit 2" \
    $([ $rc -eq 0 ] && grep -q 'neither TOKENVEND_OIDC_ISSUER nor local accounts are configured' "$tmp/nologin.err" &&
        [ $strict_rc -eq 2 ]; echo $?) "$(detail nologin)"

# --- Which configuration file ---------------------------------------------------------------------
# The system directory's file (TOKENVEND_CONFIG_DIR stands in for /etc/tokenvend) comes before
# config/ under the working directory (this checkout has one); TOKENVEND_CONFIG before both;
# --config before everything. config check prints which file it read, serve logs it.
mkdir -p "$tmp/etc"
printf 'token_minutes = 120\n' >"$tmp/etc/tokenvend.conf"
printf 'token_minutes = 240\n' >"$tmp/named.conf"
printf 'token_minutes = 360\n' >"$tmp/flag.conf"
TOKENVEND_CONFIG_DIR=$tmp/etc run sysdir config check "${ok_flags[@]}"
check "config file: the system directory's tokenvend.conf is read by default, and config check says so" \
    $([ $rc -eq 0 ] && grep -qF "token_minutes = 120  # $tmp/etc/tokenvend.conf:1" "$tmp/sysdir.out" &&
        grep -qxF "# configuration file $tmp/etc/tokenvend.conf (default)" "$tmp/sysdir.out"; echo $?) "$(detail sysdir)"
run localdef config check "${ok_flags[@]}"
check "config file: without a system file, config/tokenvend.conf under the working directory" \
    $([ $rc -eq 0 ] && grep -qxF "# configuration file config/tokenvend.conf (default)" "$tmp/localdef.out"; echo $?) "$(detail localdef)"
(cd "$tmp/empty" && "$tv_abs" config check "${ok_flags[@]}") >"$tmp/nofile.out" 2>"$tmp/nofile.err"
rc=$?
check "config file: neither -> 'no configuration file; environment and defaults only'" \
    $([ $rc -eq 0 ] && grep -qxF "# no configuration file; environment and defaults only" "$tmp/nofile.out" &&
        grep -q '^token_minutes = 1440  # default$' "$tmp/nofile.out"; echo $?) "$(detail nofile)"
TOKENVEND_CONFIG_DIR=$tmp/etc TOKENVEND_CONFIG=$tmp/named.conf run envfile config check "${ok_flags[@]}"
check "config file: TOKENVEND_CONFIG wins over the default files" \
    $([ $rc -eq 0 ] && grep -qF "token_minutes = 240  # $tmp/named.conf:1" "$tmp/envfile.out" &&
        grep -qxF "# configuration file $tmp/named.conf (env TOKENVEND_CONFIG)" "$tmp/envfile.out"; echo $?) "$(detail envfile)"
TOKENVEND_CONFIG_DIR=$tmp/etc TOKENVEND_CONFIG=$tmp/named.conf run flagfile config check --config "$tmp/flag.conf" "${ok_flags[@]}"
check "config file: --config wins over TOKENVEND_CONFIG" \
    $([ $rc -eq 0 ] && grep -qF "token_minutes = 360  # $tmp/flag.conf:1" "$tmp/flagfile.out" &&
        grep -qxF "# configuration file $tmp/flag.conf (--config)" "$tmp/flagfile.out"; echo $?) "$(detail flagfile)"
TOKENVEND_CONFIG=$tmp/missing.conf run envmiss config check "${ok_flags[@]}"
check "config file: TOKENVEND_CONFIG naming a missing file -> exit 2 naming it" \
    $([ $rc -eq 2 ] && json_ok "$tmp/envmiss.err" "o.error.message.includes('TOKENVEND_CONFIG $tmp/missing.conf')"; echo $?) "$(detail envmiss)"
TOKENVEND_CONFIG_DIR=$tmp/etc serve_start fileserve --set public_addr=127.0.0.1:0 \
    --set internal_addr=127.0.0.1:0 --set "db=$tmp/file.db" "${ok_flags[@]}"
serve_stop
check "serve logs at info which configuration file it read" \
    $([ $rc -eq 0 ] && grep '"level":"info"' "$tmp/fileserve.err" | grep -qF "\"msg\":\"configuration file $tmp/etc/tokenvend.conf (default)\""; echo $?) "$(detail fileserve)"
(cd "$tmp/empty" && "$tv_abs" serve --set public_addr=127.0.0.1:0 --set internal_addr=127.0.0.1:0 \
    --set "db=$tmp/nofile.db" --set local_accounts=on) >"$tmp/nofileserve.out" 2>"$tmp/nofileserve.err" &
serve_pid=$!
for _ in $(seq 300); do
    grep -q '"msg":"listening"' "$tmp/nofileserve.err" 2>/dev/null && break
    kill -0 "$serve_pid" 2>/dev/null || break
    sleep 0.1
done
serve_stop
check "serve without any file logs 'no configuration file; environment and defaults only'" \
    $(grep -q '"msg":"no configuration file; environment and defaults only"' "$tmp/nofileserve.err"; echo $?) "$(cat "$tmp/nofileserve.err")"

# --- Bind before migrate --------------------------------------------------------------------------
# A port another process holds: serve says which listener, which address and why, exits 2, and
# has not created (let alone migrated) its fresh SQLite database.
node -e '
    const s = require("net").createServer().listen(0, "127.0.0.1", () => {
        console.log(s.address().port);
    });
    setTimeout(() => process.exit(0), 60000);
' >"$tmp/holder.port" &
holder_pid=$!
for _ in $(seq 100); do
    [ -s "$tmp/holder.port" ] && break
    sleep 0.1
done
held=$(head -n 1 "$tmp/holder.port")
for which in public internal; do
    if [ "$which" = public ]; then
        addrs=(--set "public_addr=127.0.0.1:$held" --set internal_addr=127.0.0.1:0)
    else
        addrs=(--set public_addr=127.0.0.1:0 --set "internal_addr=127.0.0.1:$held")
    fi
    serve_bounded inuse "${addrs[@]}" --set "db=$tmp/fresh-$which/tv.db" "${ok_flags[@]}"
    check "serve: $which port in use -> exit 2 naming listener, address and reason; no database created" \
        $([ -n "$held" ] && [ $rc -eq 2 ] &&
            grep -q "cannot listen on 127.0.0.1:$held ($which listener): Address already in use" "$tmp/inuse.err" &&
            [ ! -e "$tmp/fresh-$which" ] && ! grep -q 'applied migration' "$tmp/inuse.err" &&
            ! grep -q 'requests drained' "$tmp/inuse.err"; echo $?) "$(detail inuse)"
done
# The same with the database directory already there: no file is created in it.
mkdir -p "$tmp/fresh-dir"
serve_bounded inuse2 --set "public_addr=127.0.0.1:$held" --set internal_addr=127.0.0.1:0 \
    --set "db=$tmp/fresh-dir/tv.db" "${ok_flags[@]}"
check "serve: port in use, database directory present -> no file created in it" \
    $([ $rc -eq 2 ] && [ -z "$(ls -A "$tmp/fresh-dir")" ]; echo $?) "$(detail inuse2)"
kill "$holder_pid" 2>/dev/null
wait "$holder_pid" 2>/dev/null
# An address this machine does not have (TEST-NET-1): "Cannot assign requested address".
serve_bounded noaddr --set public_addr=192.0.2.1:0 --set internal_addr=127.0.0.1:0 \
    --set "db=$tmp/fresh-noaddr/tv.db" "${ok_flags[@]}"
check "serve: an address the machine does not have -> exit 2 with the reason; no database created" \
    $([ $rc -eq 2 ] && grep -q "cannot listen on 192.0.2.1:0 (public listener): Cannot assign requested address" "$tmp/noaddr.err" &&
        [ ! -e "$tmp/fresh-noaddr" ]; echo $?) "$(detail noaddr)"
# A port below the unprivileged range, for a user without the capability: "Permission denied".
# As root, the case runs as nobody (setpriv) from a copy of the binary nobody can read.
unpriv=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start 2>/dev/null || echo 1024)
if [ "$unpriv" -gt 80 ] && { [ "$(id -u)" -ne 0 ] || command -v setpriv >/dev/null; }; then
    priv=()
    tv_priv=$tv_abs
    if [ "$(id -u)" -eq 0 ]; then
        pubdir=$(mktemp -d /tmp/tv-config-ops-XXXXXX)
        chmod 755 "$pubdir"
        cp "$tv_abs" "$pubdir/tokenvend"
        tv_priv=$pubdir/tokenvend
        priv=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    fi
    # TOKENVEND_CONFIG_DIR: one nobody may search (a directory it cannot look into is refused,
    # never taken for "no file").
    (cd /tmp && TOKENVEND_CONFIG_DIR=${pubdir:-$tmp/no-system-dir} timeout 30 "${priv[@]}" "$tv_priv" serve --set public_addr=127.0.0.1:80 \
        --set internal_addr=127.0.0.1:0 --set "db=$tmp/fresh-priv/tv.db" "${ok_flags[@]}") \
        >"$tmp/priv.out" 2>"$tmp/priv.err"
    rc=$?
    [ -n "${pubdir:-}" ] && rm -rf "$pubdir"
    check "serve: a privileged port without the right -> exit 2 with 'Permission denied'; no database created" \
        $([ $rc -eq 2 ] && grep -q "cannot listen on 127.0.0.1:80 (public listener): Permission denied" "$tmp/priv.err" &&
            [ ! -e "$tmp/fresh-priv" ]; echo $?) "$(detail priv)"
else
    ok "serve: a privileged port without the right (skipped: ports from $unpriv are open to everyone here)"
fi
# Bound first, served only once ready: a normal start still answers.
serve_start okserve --set public_addr=127.0.0.1:0 --set internal_addr=127.0.0.1:0 \
    --set "db=$tmp/ok.db" "${ok_flags[@]}"
started=$rc
port=$(node -e '
    const l = require("fs").readFileSync(process.argv[1], "utf8").split("\n")
        .filter(x => x.includes("\"msg\":\"listening\""))[0];
    process.stdout.write(String(JSON.parse(l).internal_addr.split(":").pop()));
' "$tmp/okserve.err" 2>/dev/null)
status=$(node -e '
    fetch(process.argv[1]).then(r => process.stdout.write(String(r.status))).catch(() => process.stdout.write("none"));
' "http://127.0.0.1:$port/readyz")
check "serve: a normal start binds, migrates, then answers /readyz 200" \
    $([ $started -eq 0 ] && [ "$status" = 200 ]; echo $?) "readyz: $status; $(detail okserve)"

# --- serve --help says what each listener serves, and it does ------------------------------------
# Every operations route the help lists for a listener answers there (not 404), and one it lists
# for the other listener only is 404 there (/metrics lives on the internal listener alone).
run servehelp serve --help
node -e '
    const fs = require("fs");
    const help = fs.readFileSync(process.argv[1], "utf8");
    const log = fs.readFileSync(process.argv[2], "utf8").split("\n")
        .filter(x => x.includes("\"msg\":\"listening\""))[0];
    const listening = JSON.parse(log);
    const base = { public: "http://" + listening.public_addr, internal: "http://" + listening.internal_addr };
    const listed = {};
    for (const which of ["public", "internal"]) {
        const line = help.split("\n").find(l => l.startsWith("  " + which + ":"));
        if (!line) { console.log("no line for " + which + " in serve --help"); process.exit(1); }
        listed[which] = line.slice(line.indexOf(":") + 1).split(",").map(s => s.trim().split(" "));
    }
    (async () => {
        let bad = 0;
        const all = [...listed.public, ...listed.internal];
        if (!all.some(([, p]) => p === "/metrics")) { console.log("help lists no /metrics"); bad++; }
        for (const which of ["public", "internal"]) {
            for (const [m, p] of all) {
                const says = listed[which].some(([m2, p2]) => m2 === m && p2 === p);
                const r = await fetch(base[which] + p, { method: m });
                await r.arrayBuffer();
                const serves = r.status !== 404;
                if (says !== serves) {
                    console.log(`${which} ${m} ${p}: help ${says ? "lists" : "omits"} it, status ${r.status}`);
                    bad++;
                }
            }
        }
        process.exit(bad ? 1 : 0);
    })().catch(e => { console.log(String(e)); process.exit(1); });
' "$tmp/servehelp.out" "$tmp/okserve.err" >"$tmp/helpcheck.out" 2>&1
hrc=$?
serve_stop
check "serve --help lists each listener's operations routes, and each listener serves exactly those" \
    $([ $started -eq 0 ] && [ $hrc -eq 0 ]; echo $?) "$(cat "$tmp/helpcheck.out"; cat "$tmp/servehelp.out")"

finish
