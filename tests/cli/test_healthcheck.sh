#!/usr/bin/env bash
# Shell tests of `tokenvend healthcheck`, the image's HEALTHCHECK command: a ready service -> 0
# (public listener from TOKENVEND_PUBLIC_ADDR with a wildcard host probed on loopback,
# --internal, --url to the emulator), and exit 1 with one {"error":...} line on stderr for a
# stopped port, a non-2xx answer, a listener that never answers (--timeout-ms), an unknown port,
# and a usage error (never 2, which Docker reserves). A proxy in the environment is not used.
# Ends with "N passed, N failed"; exits non-zero on any failure.
set -u

# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/lib.sh"

# hc OUTNAME ARGS... : runs `tokenvend healthcheck ARGS`; stdout/stderr to $tmp/OUTNAME.out/.err;
# sets $rc.
hc() {
    local name=$1
    shift
    timeout 60 "$TV" healthcheck "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
    rc=$?
}
# one_error FILE CODE REGEX : FILE holds exactly one line, an error of CODE whose message matches.
one_error() {
    [ "$(wc -l <"$1")" -eq 1 ] &&
        json_ok "$1" "o.error.code === '$2' && /$3/.test(o.error.message)"
}

if [ ! -x "$TV" ] || [ ! -x "$EMU" ]; then
    not_ok "binaries exist ($TV, $EMU)"
    finish
fi
unset TOKENVEND_PUBLIC_ADDR TOKENVEND_INTERNAL_ADDR http_proxy https_proxy HTTP_PROXY HTTPS_PROXY \
    all_proxy ALL_PROXY no_proxy NO_PROXY

hc help --help
check "--help -> exit 0 with the usage" \
    $([ $rc -eq 0 ] && grep -q '^Usage: tokenvend healthcheck' "$tmp/help.out"; echo $?) "$(detail help)"
"$TV" help >"$tmp/top.out" 2>&1
check "the overall usage lists healthcheck" $(grep -q '^  healthcheck ' "$tmp/top.out"; echo $?) \
    "$(cat "$tmp/top.out")"

# --- against a ready service -------------------------------------------------------------------
start_emulator_or_finish

p1=$(free_port)
p2=$(free_port)
export TOKENVEND_DB=$tmp/tv.db
export TOKENVEND_LOCAL_ACCOUNTS=on
# The service binds every IPv4 interface, as in the image; the check must probe 127.0.0.1.
TOKENVEND_PUBLIC_ADDR=0.0.0.0:$p1 TOKENVEND_INTERNAL_ADDR=127.0.0.1:$p2 \
    "$TV" serve >"$tmp/serve.out" 2>"$tmp/serve.err" &
serve_pid=$!
export TOKENVEND_PUBLIC_ADDR=0.0.0.0:$p1 TOKENVEND_INTERNAL_ADDR=127.0.0.1:$p2

# Ready within a generous bound (migrations, first ACS call); every try is a real probe.
ready=
for _ in $(seq 1 300); do
    hc ready
    if [ $rc -eq 0 ]; then
        ready=1
        break
    fi
    kill -0 "$serve_pid" 2>/dev/null || break
    sleep 0.1
done
check "ready service: exit 0, public /readyz probed on 127.0.0.1" \
    $([ -n "$ready" ] && grep -qF "http://127.0.0.1:$p1/readyz answered 200" "$tmp/ready.out" &&
        [ ! -s "$tmp/ready.err" ]; echo $?) "$(detail ready; tail -n 20 "$tmp/serve.err")"

hc internal --internal
check "--internal: exit 0 from the internal listener's /readyz" \
    $([ $rc -eq 0 ] && grep -qF "http://127.0.0.1:$p2/readyz answered 200" "$tmp/internal.out"; echo $?) \
    "$(detail internal)"

hc setflag --set "public_addr=127.0.0.1:$p1"
check "--set public_addr=...: the flag is read like serve reads it" $([ $rc -eq 0 ]; echo $?) \
    "$(detail setflag)"

hc emu --url "$base/emulator/jwks"
check "--url to the emulator's JWKS: exit 0" $([ $rc -eq 0 ]; echo $?) "$(detail emu)"

http_proxy=http://127.0.0.1:1 HTTP_PROXY=http://127.0.0.1:1 ALL_PROXY=http://127.0.0.1:1 hc proxy
check "a proxy in the environment is not used" $([ $rc -eq 0 ]; echo $?) "$(detail proxy)"

# --- failures: exit 1, one line saying why -----------------------------------------------------
hc notfound --url "http://127.0.0.1:$p1/no-such-route"
check "non-2xx answer (404): exit 1 naming the status and the error's text" \
    $([ $rc -eq 1 ] && one_error "$tmp/notfound.err" unhealthy "no-such-route answered 404: .*not_found" &&
        [ ! -s "$tmp/notfound.out" ]; echo $?) "$(detail notfound)"

hc loginget --url "http://127.0.0.1:$p1/api/login"
check "non-2xx answer (405 on a POST-only route): exit 1" \
    $([ $rc -eq 1 ] && one_error "$tmp/loginget.err" unhealthy "answered 4[0-9][0-9]"; echo $?) \
    "$(detail loginget)"

stop_serve
hc stopped
check "stopped service: exit 1, the refused connection named" \
    $([ $rc -eq 1 ] && one_error "$tmp/stopped.err" unhealthy "127\\.0\\.0\\.1:$p1\\/readyz: .*(onnect|refused)"; echo $?) \
    "$(detail stopped)"

# A listener that accepts and never answers: the timeout ends the check.
node -e 'const s = require("net").createServer(() => {}).listen(0, "127.0.0.1", () => {
    console.log(s.address().port); });' >"$tmp/hole.port" &
hole_pid=$!
for _ in $(seq 1 100); do
    [ -s "$tmp/hole.port" ] && break
    sleep 0.1
done
hc hole --url "http://127.0.0.1:$(head -n 1 "$tmp/hole.port")/readyz" --timeout-ms 300
check "a listener that never answers: exit 1 once --timeout-ms has passed" \
    $([ $rc -eq 1 ] && one_error "$tmp/hole.err" unhealthy "[Tt]imed? ?out"; echo $?) "$(detail hole)"
kill "$hole_pid" 2>/dev/null
wait "$hole_pid" 2>/dev/null

hc port0 --set public_addr=0.0.0.0:0
check "public_addr with port 0: exit 1, says the port is unknown" \
    $([ $rc -eq 1 ] && one_error "$tmp/port0.err" config_error "port 0"; echo $?) "$(detail port0)"

hc badcfg --set token_minutes=nonsense
check "a configuration that does not load: exit 1 (not 2) with the config error" \
    $([ $rc -eq 1 ] && one_error "$tmp/badcfg.err" config_error "token_minutes"; echo $?) "$(detail badcfg)"

hc usage --bogus
check "unknown flag: exit 1 (not 2, which Docker reserves) with a usage error" \
    $([ $rc -eq 1 ] && one_error "$tmp/usage.err" usage_error "bogus"; echo $?) "$(detail usage)"

hc both --internal --url http://127.0.0.1:1/
check "--internal with --url: exit 1, usage error" \
    $([ $rc -eq 1 ] && one_error "$tmp/both.err" usage_error "exclude"; echo $?) "$(detail both)"

hc ftp --url ftp://127.0.0.1/
check "a URL that is not http(s): exit 1, usage error" \
    $([ $rc -eq 1 ] && one_error "$tmp/ftp.err" usage_error "http"; echo $?) "$(detail ftp)"

hc tmo --timeout-ms 0
check "--timeout-ms out of range: exit 1, usage error" \
    $([ $rc -eq 1 ] && one_error "$tmp/tmo.err" usage_error "timeout-ms"; echo $?) "$(detail tmo)"

finish
