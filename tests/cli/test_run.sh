#!/usr/bin/env bash
# Shell tests of `make run` (scripts/run.sh) in its three modes: the access key (default),
# KEYLESS=1 (client secret against acs-emulator's stand-in Entra ID) and KEYLESS=managed-identity
# (IDENTITY_ENDPOINT + IDENTITY_HEADER). Each run gets free loopback ports and its own data
# directory (RUN_DATA), must print its mode, run the quickstart to its end, serve a token through
# the internal API with the API key it printed, and stop everything on SIGTERM. Ends with
# "N passed, N failed"; exits non-zero on any failure.
set -u

# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/lib.sh"

run_pid=
stop_run() {
    if [ -n "$run_pid" ]; then
        kill -TERM "$run_pid" 2>/dev/null
        wait "$run_pid" 2>/dev/null
        run_pid=
    fi
}
trap 'stop_run; cleanup' EXIT

# Four distinct free loopback ports (bound together, then released).
free_ports() {
    node -e '
        const net = require("net");
        const servers = [];
        (async () => {
            for (let i = 0; i < 4; i++) {
                const s = net.createServer();
                await new Promise((res) => s.listen(0, "127.0.0.1", res));
                servers.push(s);
            }
            process.stdout.write(servers.map((s) => s.address().port).join(" "));
            servers.forEach((s) => s.close());
        })();
    '
}

# http METHOD URL [BODY] [AUTH] : prints "STATUS BODY".
http() {
    node -e '
        const [m, url, body, auth] = process.argv.slice(1);
        const headers = {};
        if (auth) headers["authorization"] = "Bearer " + auth;
        fetch(url, {method: m, body: body || undefined, headers})
            .then(async r => process.stdout.write(r.status + " " + await r.text()))
            .catch(e => { process.stdout.write("000 " + String(e)); });
    ' "$1" "$2" "${3:-}" "${4:-}"
}

# start_run NAME KEYLESS : starts scripts/run.sh in the background; waits for its last line.
start_run() {
    local name=$1 keyless=$2
    read -r emu_port entra_port pub_port int_port <<<"$(free_ports)"
    out=$tmp/$name.out
    KEYLESS=$keyless RUN_DATA=$tmp/$name ACS_EMULATOR_PORT=$emu_port ENTRA_PORT=$entra_port \
        TOKENVEND_PUBLIC_ADDR=127.0.0.1:$pub_port TOKENVEND_INTERNAL_ADDR=127.0.0.1:$int_port \
        BUILD=$BUILD scripts/run.sh >"$out" 2>&1 &
    run_pid=$!
    for _ in $(seq 1 240); do
        grep -q '^Press Ctrl-C' "$out" && return 0
        kill -0 "$run_pid" 2>/dev/null || return 1
        sleep 0.25
    done
    return 1
}

# check_run NAME KEYLESS MODE-LINE-REGEX ENTRA-ROUTE
check_run() {
    local name=$1 keyless=$2 mode_re=$3 route=$4 key r
    start_run "$name" "$keyless"
    check "$name: run.sh starts and prints its instructions" $? "$(tail -n 20 "$out")"
    check "$name: prints its mode" $(grep -Eq "$mode_re" "$out"; echo $?) "$(head -n 8 "$out")"
    check "$name: the quickstart ran to its end" \
        $(grep -q '^Deleted the identity with ID: 8:acs:' "$out"; echo $?) "$(head -n 30 "$out")"
    key=$(sed -n "s/.*internal\/users\/alice\/token -H 'Authorization: Bearer \([^']*\)'.*/\1/p" "$out" | head -n 1)
    r=$(http POST "http://127.0.0.1:$int_port/internal/users/alice/token" '{}' "$key")
    check "$name: a token through the internal API with the printed key" \
        $([[ $r == 200\ *'"token":"'* ]]; echo $?) "$r"
    if [ -n "$route" ]; then
        r=$(http GET "http://127.0.0.1:$entra_port/entra/requests")
        check "$name: tokenvend fetched its Entra token from the stand-in ($route)" \
            $([[ $r == 200\ *'"route":"'$route'"'* ]]; echo $?) "$r"
        check "$name: config check's credential line is shown, secret as ***" \
            $(grep -Eq '^   keyless mode \(Microsoft Entra ID\): credential=[a-z_]+ .*=\*\*\*' "$out"; echo $?) "$(head -n 8 "$out")"
        # No secret on a command line (every user can read /proc/PID/cmdline).
        local cmdlines=
        for p in $(pgrep -f "acs-emulator entra --listen 127.0.0.1:$entra_port"); do
            cmdlines+="$(tr '\0' ' ' </proc/"$p"/cmdline) | "
        done
        check "$name: the stand-in's secrets are not on its command line" \
            $([ -n "$cmdlines" ] && ! grep -Eq -- '--client-secret|--identity-header' <<<"$cmdlines"; echo $?) "$cmdlines"
        # The access key's signature is refused: the service really runs without it.
        local cs
        cs=$(head -n 1 "$tmp/$name/emulator.out")
        env -i PATH="$PATH" COMMUNICATION_SERVICES_CONNECTION_STRING="$cs" "$TV" acs create-user >"$tmp/$name.hmac" 2>&1
        check "$name: the emulator refuses the access key (--entra-only)" \
            $(grep -q acs_denied "$tmp/$name.hmac"; echo $?) "$(cat "$tmp/$name.hmac")"
    fi
    check "$name: the data directory is the user's alone (0700)" \
        $([ "$(stat -c %a "$tmp/$name")" = 700 ]; echo $?) "$(stat -c %a "$tmp/$name")"
    stop_run
    r=$(http GET "http://127.0.0.1:$pub_port/healthz")
    check "$name: SIGTERM stops tokenvend" $([[ $r == 000\ * ]]; echo $?) "$r"
    r=$(http GET "http://127.0.0.1:$emu_port/emulator/stats")
    check "$name: SIGTERM stops acs-emulator" $([[ $r == 000\ * ]]; echo $?) "$r"
    if [ -n "$route" ]; then
        r=$(http GET "http://127.0.0.1:$entra_port/entra/requests")
        check "$name: SIGTERM stops the stand-in" $([[ $r == 000\ * ]]; echo $?) "$r"
    fi
}

check_run access-key "" '^== mode: access key' ""
check_run client-secret 1 '^== mode: keyless, Microsoft Entra ID \(client-secret\)' token
check_run managed-identity managed-identity '^== mode: keyless, Microsoft Entra ID \(managed-identity\)' msi

KEYLESS=bogus RUN_DATA=$tmp/bogus BUILD=$BUILD scripts/run.sh >"$tmp/bogus.out" 2>&1
rc=$?
check "KEYLESS=bogus: exit 2 naming the values" \
    $([ $rc -eq 2 ] && grep -q 'KEYLESS must be' "$tmp/bogus.out"; echo $?) "$(cat "$tmp/bogus.out")"

finish
