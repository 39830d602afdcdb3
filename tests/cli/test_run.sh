#!/usr/bin/env bash
# Shell tests of `make run` (scripts/run.sh) in its three modes: the access key (default),
# KEYLESS=1 (client secret against acs-emulator's stand-in Entra ID) and KEYLESS=managed-identity
# (IDENTITY_ENDPOINT + IDENTITY_HEADER). Each run gets free loopback ports and its own data
# directory (RUN_DATA), must print its mode, run the quickstart to its end, serve a token through
# the internal API with the API key it kept, and stop everything on SIGTERM. `make run` twice on
# one data directory: quiet (no compiler lines, no whole JWT), the same demo API key, and every
# command it prints works as printed; a second run while the first serves is refused and leaves
# the first one's files alone. The browser example: its address printed with the demo account,
# the page served by serve.mjs on EXAMPLE_PORT, tokenvend's CORS answer naming its origin, and
# serve.mjs stopped with the rest. Ends with
# "N passed, N failed"; exits non-zero on any failure.
set -u

# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/lib.sh"

run_pid=
run_group=
stop_run() {
    if [ -n "$run_pid" ]; then
        # `make run` in its own process group: the whole group, as Ctrl-C in a terminal does
        # (a signal to make alone would leave run.sh running).
        if [ -n "$run_group" ]; then
            kill -TERM -- "-$run_pid" 2>/dev/null
        else
            kill -TERM "$run_pid" 2>/dev/null
        fi
        wait "$run_pid" 2>/dev/null
        run_pid=
        run_group=
    fi
}
trap 'stop_run; cleanup' EXIT

# Five distinct free loopback ports (bound together, then released).
free_ports() {
    node -e '
        const net = require("net");
        const servers = [];
        (async () => {
            for (let i = 0; i < 5; i++) {
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
    read -r emu_port entra_port pub_port int_port web_port <<<"$(free_ports)"
    out=$tmp/$name.out
    KEYLESS=$keyless RUN_DATA=$tmp/$name ACS_EMULATOR_PORT=$emu_port ENTRA_PORT=$entra_port \
        TOKENVEND_PUBLIC_ADDR=127.0.0.1:$pub_port TOKENVEND_INTERNAL_ADDR=127.0.0.1:$int_port \
        EXAMPLE_PORT=$web_port BUILD=$BUILD scripts/run.sh >"$out" 2>&1 &
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
    key=$(cat "$tmp/$name/demo-api-key")
    r=$(http POST "http://127.0.0.1:$int_port/internal/users/alice/token" '{}' "$key")
    check "$name: a token through the internal API with the kept key" \
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
    check_example "$name"
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
    r=$(http GET "http://127.0.0.1:$web_port/")
    check "$name: SIGTERM stops the example's server" $([[ $r == 000\ * ]]; echo $?) "$r"
}

# headers URL ORIGIN : prints "STATUS" then the answer's Access-Control-Allow-Origin and
# Content-Security-Policy (empty lines when absent), for a GET sent with that Origin.
headers() {
    node -e '
        const [url, origin] = process.argv.slice(1);
        fetch(url, {headers: origin ? {origin} : {}})
            .then(r => process.stdout.write([r.status, r.headers.get("access-control-allow-origin") || "",
                r.headers.get("content-security-policy") || ""].join("\n")))
            .catch(e => { process.stdout.write("000 " + String(e)); });
    ' "$1" "${2:-}"
}

# check_example NAME : the run printed the example's address with the demo account, serve.mjs
# serves the page and its bundle on it, and tokenvend answers that origin with CORS (and no
# other).
check_example() {
    local name=$1 origin="http://127.0.0.1:$web_port" r h
    check "$name: prints the browser example's address and the demo account" \
        $(grep -Fq "== the browser example: open $origin/ and sign in as demo / " "$out"; echo $?) \
        "$(grep -A1 'browser example' "$out")"
    r=$(http GET "$origin/")
    check "$name: the example page is served" \
        $([[ $r == 200\ *'<script type="module" src="dist/app.js">'* ]]; echo $?) "${r:0:300}"
    r=$(http GET "$origin/dist/app.js")
    check "$name: its bundle is served" $([[ $r == 200\ *tokenRefresher* ]]; echo $?) "${r:0:200}"
    r=$(http GET "$origin/config.json")
    check "$name: config.json names the service" \
        $([[ $r == "200 {\"api\":\"http://127.0.0.1:$pub_port\"}"* ]]; echo $?) "$r"
    h=$(headers "http://127.0.0.1:$pub_port/healthz" "$origin")
    check "$name: tokenvend answers the example's origin with CORS" \
        $([ "$(sed -n 2p <<<"$h")" = "$origin" ]; echo $?) "$h"
    h=$(headers "http://127.0.0.1:$pub_port/healthz" "http://127.0.0.1:1")
    check "$name: and no other origin" $([ -z "$(sed -n 2p <<<"$h")" ]; echo $?) "$h"
}

# run_cmds OUT LOG : runs every command the run printed in OUT (the indented jwt=, token= and
# curl lines), in order, in one POSIX shell as a user would paste them; after each one a line
# "@@rc N" with its exit status, at the end "@@jwt" and "@@token" with the shapes of the two
# variables. Output to LOG.
run_cmds() {
    local script=$tmp/cmds.sh
    {
        echo 'jwt= token='
        grep -E '^  (jwt=|token=|curl )' "$1" | while IFS= read -r line; do
            printf '%s\nrc=$?; echo; echo "@@rc $rc"\n' "$line"
        done
        echo 'echo "@@jwt $(printf %s "$jwt" | tr -cd . | wc -c) ${#jwt}"'
        echo 'echo "@@token ${#token}"'
    } >"$script"
    sh "$script" >"$2" 2>&1
}

# make_run NAME DATA: `make run` with a build directory in which make has to compile and link
# again (a copy of this build without main.o and the binaries), in the background, on the ports
# of the last free_ports; waits for its last line like start_run.
make_run() {
    local name=$1 rundata=$2
    out=$tmp/$name.out
    rm -rf "$tmp/b"
    mkdir -p "$tmp/b"
    cp -a "$BUILD/obj" "$BUILD/gen" "$BUILD/libtokenvend.a" "$BUILD/libemu.a" "$tmp/b/"
    rm -f "$tmp/b/obj/src/main.o"
    env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS RUN_DATA=$rundata ACS_EMULATOR_PORT=$emu_port \
        ENTRA_PORT=$entra_port TOKENVEND_PUBLIC_ADDR=127.0.0.1:$pub_port \
        TOKENVEND_INTERNAL_ADDR=127.0.0.1:$int_port EXAMPLE_PORT=$web_port \
        setsid make --no-print-directory run BUILD="$tmp/b" \
        >"$out" 2>&1 &
    run_pid=$!
    run_group=1
    for _ in $(seq 1 1200); do
        grep -q '^Press Ctrl-C' "$out" && return 0
        kill -0 "$run_pid" 2>/dev/null || return 1
        sleep 0.25
    done
    return 1
}

# Twice in a row on one data directory: quiet, no whole JWT on the screen, the same API key, and
# every printed command works as printed.
check_repeat() {
    local i ids=() jwt_re='[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}'
    # The same ports both times, as `make run` has by default: the mappings of the first run
    # belong to the emulator's address (resource), which a new port would change.
    read -r emu_port entra_port pub_port int_port web_port <<<"$(free_ports)"
    for i in 1 2; do
        make_run "repeat$i" "$tmp/repeat"
        check "make run #$i: starts and prints its instructions" $? "$(tail -n 20 "$out")"
        check "make run #$i: no compiler lines (the build's output is in data/build.log)" \
            $(! grep -Eq '^(cc|gcc|clang) |-o [^ ]*\.o( |$)' "$out" &&
                grep -q ' -c src/main.c' "$tmp/repeat/build.log"; echo $?) \
            "$(grep -E '^(cc|gcc|clang) ' "$out" | head -n 3; ls -l "$tmp/repeat")"
        check "make run #$i: no whole JWT in the output" \
            $(! grep -Eq "$jwt_re" "$out"; echo $?) "$(grep -Eo "$jwt_re" "$out" | head -n 2)"
        check "make run #$i: no placeholder in the printed commands" \
            $(! grep -q '<token>' "$out"; echo $?) "$(grep '<token>' "$out")"
        ids+=("$(sed -n 's/^== demo API key \([0-9a-f]\{16\}\) .*/\1/p' "$out")")
        run_cmds "$out" "$tmp/cmds$i.log"
        check "make run #$i: the printed commands ran" \
            $([ "$(grep -c '^@@rc ' "$tmp/cmds$i.log")" -ge 6 ]; echo $?) "$(cat "$tmp/cmds$i.log")"
        check "make run #$i: every printed command succeeds as printed" \
            $(! grep -q '^@@rc [^0]' "$tmp/cmds$i.log" && ! grep -q '"error"' "$tmp/cmds$i.log"; echo $?) \
            "$(cat "$tmp/cmds$i.log")"
        check "make run #$i: the login gave a JWT and the emulator says the token is valid" \
            $(grep -Eq '^@@jwt 2 [0-9]{3,}$' "$tmp/cmds$i.log" &&
                grep -q '"valid":true' "$tmp/cmds$i.log"; echo $?) "$(cat "$tmp/cmds$i.log")"
        stop_run
    done
    check "make run twice: the same demo API key both times (${ids[*]})" \
        $([ -n "${ids[0]}" ] && [ "${ids[0]}" = "${ids[1]:-}" ]; echo $?) "ids: ${ids[*]}"
    check "make run: the key file is the user's alone (0600)" \
        $([ "$(stat -c %a "$tmp/repeat/demo-api-key")" = 600 ]; echo $?) \
        "$(stat -c %a "$tmp/repeat/demo-api-key")"
}

# A second run on the same data directory (other ports) while the first one serves: refused
# with a message naming the first, which keeps serving with its files untouched.
check_second() {
    local first_pid first_pub first_int before after r p2 second_pid
    start_run first ""
    check "second run: the first one starts" $? "$(tail -n 20 "$out")"
    first_pid=$run_pid first_pub=$pub_port first_int=$int_port
    before=$(cd "$tmp/first" && ls -1; sha256sum emulator.out emulator.log \
        admin.log demo-api-key demo-api-key.header run.lock 2>&1)
    read -r emu_port entra_port pub_port int_port web_port <<<"$(free_ports)"
    RUN_DATA=$tmp/first ACS_EMULATOR_PORT=$emu_port ENTRA_PORT=$entra_port \
        TOKENVEND_PUBLIC_ADDR=127.0.0.1:$pub_port TOKENVEND_INTERNAL_ADDR=127.0.0.1:$int_port \
        EXAMPLE_PORT=$web_port BUILD=$BUILD scripts/run.sh >"$tmp/second.out" 2>&1 &
    second_pid=$!
    for _ in $(seq 1 240); do
        kill -0 "$second_pid" 2>/dev/null || break
        grep -q '^Press Ctrl-C' "$tmp/second.out" && break
        sleep 0.25
    done
    if kill -0 "$second_pid" 2>/dev/null; then
        kill -TERM "$second_pid"
        wait "$second_pid"
        p2=started
    else
        wait "$second_pid"
        p2=$?
    fi
    check "second run: refused (exit $p2) with a message naming the first one's pid" \
        $([ "$p2" != started ] && [ "$p2" -ne 0 ] &&
            grep -q "another run (pid $first_pid) is using $tmp/first" "$tmp/second.out"; echo $?) \
        "$(cat "$tmp/second.out")"
    after=$(cd "$tmp/first" && ls -1; sha256sum emulator.out emulator.log \
        admin.log demo-api-key demo-api-key.header run.lock 2>&1)
    check "second run: the first one's files are untouched" $([ "$before" = "$after" ]; echo $?) \
        "$(diff <(echo "$before") <(echo "$after"))"
    r=$(http GET "http://127.0.0.1:$first_pub/healthz")
    check "second run: the first one is still alive" $([[ $r == 200\ * ]]; echo $?) "$r"
    r=$(http POST "http://127.0.0.1:${first_int##*:}/internal/users/bob/token" '{}' \
        "$(cat "$tmp/first/demo-api-key")")
    check "second run: the first one still serves tokens" \
        $([[ $r == 200\ *'"token":"'* ]]; echo $?) "$r"
    run_pid=$first_pid
    stop_run
}

# npm failing (a stand-in that exits 1 first on PATH): the run says so, names its log, and goes
# on without the page: tokenvend serves, with no CORS origin set for it.
check_no_npm() {
    local r h
    mkdir -p "$tmp/nonpm"
    printf '#!/bin/sh\necho "npm stand-in: failing on purpose" >&2\nexit 1\n' >"$tmp/nonpm/npm"
    chmod +x "$tmp/nonpm/npm"
    PATH=$tmp/nonpm:$PATH start_run nonpm ""
    check "npm failing: the run still starts" $? "$(tail -n 20 "$out")"
    check "npm failing: says the example is not available and names its log" \
        $(grep -Fq "== the browser example is not available: npm failed (log: $tmp/nonpm/example-build.log)" "$out" &&
            grep -q 'failing on purpose' "$tmp/nonpm/example-build.log"; echo $?) "$(head -n 5 "$out")"
    check "npm failing: no example address printed" $(! grep -q '== the browser example: open' "$out"; echo $?) \
        "$(grep 'browser example' "$out")"
    r=$(http POST "http://127.0.0.1:$int_port/internal/users/alice/token" '{}' "$(cat "$tmp/nonpm/demo-api-key")")
    check "npm failing: tokenvend serves tokens all the same" $([[ $r == 200\ *'"token":"'* ]]; echo $?) "$r"
    h=$(headers "http://127.0.0.1:$pub_port/healthz" "http://127.0.0.1:$web_port")
    check "npm failing: no CORS origin set for a page that is not there" \
        $([ -z "$(sed -n 2p <<<"$h")" ]; echo $?) "$h"
    stop_run
}

check_repeat
check_second
check_no_npm
check_run access-key "" '^== mode: access key' ""
check_run client-secret 1 '^== mode: keyless, Microsoft Entra ID \(client-secret\)' token
check_run managed-identity managed-identity '^== mode: keyless, Microsoft Entra ID \(managed-identity\)' msi

KEYLESS=bogus RUN_DATA=$tmp/bogus BUILD=$BUILD scripts/run.sh >"$tmp/bogus.out" 2>&1
rc=$?
check "KEYLESS=bogus: exit 2 naming the values" \
    $([ $rc -eq 2 ] && grep -q 'KEYLESS must be' "$tmp/bogus.out"; echo $?) "$(cat "$tmp/bogus.out")"

finish
