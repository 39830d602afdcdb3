#!/usr/bin/env bash
# Banned-call check, in the spirit of curl's checksrc: C library calls that write without a bound,
# keep hidden static state between calls, or cannot report bad input are refused in the sources,
# each with the reason and the bounded or reentrant call to use instead. Prints file:line: for
# every use and exits 1 when there is any. Comments and string literals are not code and are
# skipped. A line that must keep such a call says so with `check-src: allow NAME` in a comment
# on that line, plus the reason.
# Usage: scripts/check-src.sh [FILE|DIR]...   (default: src include tests/lib tools)
set -euo pipefail

cd "$(dirname "$0")/.."

# name|why|instead
banned='gets|no bound on the input at all|fgets
strcpy|no bound on the destination|snprintf(dst, sizeof dst, "%s", src) or memcpy with a checked length
stpcpy|no bound on the destination|memcpy with a checked length
strcat|no bound on the destination|struct buf (core/buf.h) or snprintf at an offset
strncpy|leaves the result unterminated when the source is long, pads with zeros otherwise|snprintf or memcpy with a checked length
strncat|its bound is the space left, an easy off-by-one|struct buf (core/buf.h) or snprintf at an offset
sprintf|no bound on the destination|snprintf, checking the result
vsprintf|no bound on the destination|vsnprintf, checking the result
strtok|keeps hidden static state: not thread-safe, not reentrant|strtok_r, or memchr/strcspn on a length
atoi|cannot report bad input and overflow is undefined|strtol/strtoul with an end pointer and errno
atol|cannot report bad input and overflow is undefined|strtol with an end pointer and errno
atoll|cannot report bad input and overflow is undefined|strtoll with an end pointer and errno
atof|cannot report bad input|strtod with an end pointer
tmpnam|a name another process can take before it is opened|mkstemp
tempnam|a name another process can take before it is opened|mkstemp
mktemp|a name another process can take before it is opened|mkstemp
gmtime|returns a shared static buffer: not thread-safe|gmtime_r
localtime|returns a shared static buffer: not thread-safe|localtime_r
ctime|returns a shared static buffer: not thread-safe|strftime with gmtime_r
asctime|returns a shared static buffer: not thread-safe|strftime with gmtime_r
alloca|unbounded stack use, no failure report|a fixed-size array or malloc'
names=$(cut -d'|' -f1 <<<"$banned" | paste -sd'|')

if [ $# -eq 0 ]; then
    set -- src include tests/lib tools
fi
files=$(find "$@" -type f \( -name '*.c' -o -name '*.h' \) | sort)

# awk blanks comments (across lines) and string/char literals, keeping the line numbers, then
# reports each call of a banned name that is not a member (.x, ->x) or part of a longer name.
# shellcheck disable=SC2086 # the file list is split on purpose (paths have no spaces)
found=$(awk -v names="$names" '
FNR == 1 { incomment = 0 }
{
    raw = $0
    line = ""
    i = 1
    n = length(raw)
    while (i <= n) {
        c = substr(raw, i, 1)
        two = substr(raw, i, 2)
        if (incomment) {
            if (two == "*/") { incomment = 0; i += 2 } else i++
            continue
        }
        if (two == "/*") { incomment = 1; i += 2; line = line " "; continue }
        if (two == "//") break
        if (c == "\"" || c == "\047") {
            q = c
            i++
            while (i <= n && substr(raw, i, 1) != q) {
                if (substr(raw, i, 1) == "\\") i++
                i++
            }
            i++
            line = line q q
            continue
        }
        line = line c
        i++
    }
    rest = line
    while (match(rest, "(^|[^A-Za-z0-9_.>])(" names ")[ \t]*\\(")) {
        call = substr(rest, RSTART, RLENGTH)
        sub(/^[^A-Za-z_]/, "", call)
        sub(/[ \t]*\($/, "", call)
        if (raw !~ ("check-src: allow " call "([^A-Za-z0-9_]|$)"))
            print FILENAME ":" FNR ": " call
        rest = substr(rest, RSTART + RLENGTH)
    }
}' $files)

if [ -z "$found" ]; then
    echo "check-src: no banned calls in $(wc -w <<<"$files") files"
    exit 0
fi
while IFS= read -r hit; do
    name=${hit##*: }
    row=$(grep "^$name|" <<<"$banned")
    why=$(cut -d'|' -f2 <<<"$row")
    instead=$(cut -d'|' -f3 <<<"$row")
    echo "$hit() is banned: $why; use $instead" >&2
done <<<"$found"
echo "check-src: $(wc -l <<<"$found") banned call(s)" >&2
exit 1
