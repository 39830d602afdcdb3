#!/usr/bin/env bash
# The fuzzing section of docs/reliability.md: runs every libFuzzer harness (scripts/fuzz.sh,
# FUZZ_SECONDS each, 60 by default) from the committed corpora in tests/fuzz/corpus/, then reads
# each harness's log: runs, seconds, exec/s, the corpus after the run, the committed corpus, and
# the crashes (a crash fails scripts/fuzz.sh, so a section is only written for a clean run).
# Usage: tests/reliability/fuzz-report.sh [--out FILE] [--logs-only]
#   --logs-only: no new run; report the logs the last run left in $BUILD-fuzz/.
set -euo pipefail

cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
out_file=
run=1
while [ $# -gt 0 ]; do
    case $1 in
    --out) out_file=$2; shift 2 ;;
    --logs-only) run=0; shift ;;
    *) echo "usage: $0 [--out FILE] [--logs-only]" >&2; exit 2 ;;
    esac
done
seconds=${FUZZ_SECONDS:-60}
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
if [ "$run" = 1 ]; then
    FUZZ_SECONDS=$seconds BUILD=$BUILD scripts/fuzz.sh
fi
dir=$BUILD-fuzz

{
    echo "## Fuzzing (libFuzzer, ASan + UBSan)"
    echo
    echo "- command: \`FUZZ_SECONDS=$seconds tests/reliability/fuzz-report.sh\` (scripts/fuzz.sh; \`make fuzz\` runs the same harnesses briefly)"
    echo "- date: $(date -u -r "$dir" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo "$started") (logs of the run)"
    echo "- machine: $(nproc) cores, $(uname -srm), clang $(clang --version | sed -n 's/.*version \([0-9.]*\).*/\1/p' | head -n1)"
    echo
    echo "| harness | runs | seconds | exec/s | corpus after the run | committed corpus (tests/fuzz/corpus, -merge=1) | crashes |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    for src in tests/fuzz/fuzz_*.c; do
        name=$(basename "$src" .c)
        log=$dir/$name.log
        [ -f "$log" ] || { echo "| $name | no log | | | | | |"; continue; }
        runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\)/\1/p' "$log" | tail -n1)
        secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n1)
        eps=$(awk -v r="${runs:-0}" -v s="${secs:-0}" 'BEGIN { if (s > 0) printf "%d", r / s; else print "?" }')
        corpus=$(find "$dir/corpus/$name" -type f 2>/dev/null | wc -l)
        committed=$(find "tests/fuzz/corpus/$name" -type f 2>/dev/null | wc -l)
        crashes=$(find "$dir/artifacts" -name "$name-*" -type f 2>/dev/null | wc -l)
        echo "| $name | ${runs:-?} | ${secs:-?} | $eps | $corpus | $committed | $crashes |"
    done
    echo
} >"${out_file:-/dev/stdout}"
[ -z "$out_file" ] || cat "$out_file"
