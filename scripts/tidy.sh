#!/usr/bin/env bash
# clang-tidy over many files on every core: one clang-tidy per file, JOBS at a time, each one's
# output kept apart and printed in the order the files were given once all have finished, so
# the report reads as one serial run's would (clang-tidy's own "N warnings generated" chatter on
# stderr is dropped, as `make lint` always did). Exit 1 when any file's run failed (an error, or
# a warning that .clang-tidy's WarningsAsErrors makes one).
# Usage: scripts/tidy.sh JOBS FILE... -- COMPILER-FLAGS...
set -uo pipefail

jobs=$1
shift
files=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do
    files+=("$1")
    shift
done
[ $# -gt 0 ] && shift # the --; what follows are the compiler flags
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Each file's output goes to $out/N.out and its exit status to $out/N.rc (N its place in the list).
for i in "${!files[@]}"; do
    printf '%s\0%s\0' "$i" "${files[$i]}"
done | xargs -0 -n 2 -P "$jobs" bash -c \
    'i=${*: -2:1} f=${*: -1}; set -- "${@:1:$#-2}"
     clang-tidy --quiet "$f" -- "$@" >"$0/$i.out" 2>/dev/null; echo $? >"$0/$i.rc"' "$out" "$@"

status=0
for i in "${!files[@]}"; do
    cat "$out/$i.out" 2>/dev/null
    rc=$(cat "$out/$i.rc" 2>/dev/null || echo missing)
    if [ "$rc" != 0 ]; then
        echo "tidy: ${files[$i]}: clang-tidy exit $rc" >&2
        status=1
    fi
done
exit $status
