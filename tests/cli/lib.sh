# Shared harness of the CLI shell suites (sourced, not run): the build's binaries, a temporary
# directory removed at exit together with the emulator and service the suite started, and
# TAP-like result lines ending in "N passed, N failed". JSON is read with node (no jq/python).
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
