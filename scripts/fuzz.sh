#!/usr/bin/env bash
# Builds every tests/fuzz/fuzz_*.c as a libFuzzer binary (clang, ASan + UBSan) and runs each for
# FUZZ_SECONDS (default 30). Needs clang and libclang-rt-14-dev (libFuzzer's runtime on Debian
# 12); installs them via scripts/deps.sh fuzz when root, else prints the command and exits 1.
# Env: BUILD (outputs in $BUILD-fuzz), FUZZ_SECONDS, FUZZ_MAX_LEN (8192), FUZZ_ONLY (one name),
#      FUZZ_TOTAL_SECONDS: a budget for the whole run instead, split evenly among the harnesses
#      (at least 1 s each), so adding a harness does not lengthen CI's fuzz step.
#      FUZZ_JOBS: harnesses built and run at a time (default: one per core).
#      FUZZ_MERGE=1: afterwards, minimize (-merge=1) the run's corpus together with the committed
#      one into tests/fuzz/corpus/<harness>/ (how the committed corpora are refreshed).
# Corpora: each harness starts from the seeds below, the committed corpus in
# tests/fuzz/corpus/<harness>/ (read, never written by a run) and what earlier runs left in
# $BUILD-fuzz/corpus/<harness>/ (where new inputs go).
# Harnesses see include/ and, as tests do, the modules' private headers under src/.
# A harness may list the sources it needs in a "fuzz-sources: a.c b.c" comment; otherwise it is
# linked with src/acs/*.c. Every harness is linked with src/core/*.c as well.
# Exit 1 when any harness fails to build or finds a bug.
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
out=${BUILD}-fuzz
seconds=${FUZZ_SECONDS:-30}
if [ -n "${FUZZ_TOTAL_SECONDS:-}" ]; then
    n=$(find tests/fuzz -name 'fuzz_*.c' | wc -l)
    [ -z "${FUZZ_ONLY:-}" ] || n=1
    seconds=$((FUZZ_TOTAL_SECONDS / (n > 0 ? n : 1)))
    [ "$seconds" -ge 1 ] || seconds=1
fi
max_len=${FUZZ_MAX_LEN:-8192}
only=${FUZZ_ONLY:-}
pkgs="openssl json-c libcurl libmicrohttpd libpq"

scripts/deps.sh fuzz --quiet
CLANG=${CLANG:-$(command -v clang || command -v clang-14 || true)}
if [ -z "$CLANG" ]; then
    echo "fuzz: clang not found; install it with: apt-get install -y clang libclang-rt-14-dev" >&2
    exit 1
fi

# The Makefile's warning list (one file for both), always as errors here.
warn="$(sed 's/#.*//' mk/warnings.txt) -Werror"
# shellcheck disable=SC2086
cflags="-std=c17 -D_GNU_SOURCE -g -O1 $warn -Iinclude -Isrc $(pkg-config --cflags $pkgs)
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
# shellcheck disable=SC2086
libs="$(pkg-config --libs $pkgs) -lpthread -lm"

# Seeds: valid inputs give the fuzzer a head start into the interesting paths.
seed() {
    local name=$1 dir=$2
    case "$name" in
    fuzz_connstr)
        printf 'endpoint=https://contoso.communication.azure.com/;accesskey=U0VDUkVUU0VDUkVU' >"$dir/s1"
        printf 'AccessKey=3q2+7w==;ENDPOINT=http://[::1]:8090;' >"$dir/s2"
        printf ' endpoint = http://127.1:80/ ; accesskey = AQI= \r\n' >"$dir/s3"
        ;;
    fuzz_dburi)
        printf 'postgresql://tv:s3cret@127.0.0.1:5432/tv?sslmode=require' >"$dir/s1"
        printf 'postgres://u@h/d?pass%%77ord=s3cret&options=-c%%20search_path%%3Dx' >"$dir/s2"
        printf 'host=h user=u password=s3cret sslpassword=k3y dbname=d' >"$dir/s3"
        printf 'postgresql://u:p@ss/w@h1:1,h2:2/d' >"$dir/s4"
        ;;
    fuzz_jsonx)
        printf '{"scopes":["chat","voip"],"expiresInMinutes":60}' >"$dir/s1"
        printf '{"a":[1,-2.5e3,true,false,null,{"b":"\\u00e9\\ud83d\\ude00"}]}' >"$dir/s2"
        printf '{"error":{"code":"Denied","message":"x"}}' >"$dir/s3"
        ;;
    fuzz_jwt)
        # s1 is a valid ES256 token for the harness's fixed key; s2 its claims; s3 a JWK.
        printf 'eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImZ6In0.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlLyIsImF1ZCI6WyJ4IiwiYXBpOi8vdG9rZW52ZW5kIl0sInN1YiI6ImFsaWNlIiwib2lkIjoibzEiLCJpYXQiOjE3MDAwMDAwMDAsIm5iZiI6MTcwMDAwMDAwMCwiZXhwIjo0MDAwMDAwMDAwfQ.MPjJmkGxV0BWYHP8lCVwwbknbT30Ua3DQpifvoPVgUwPjuo9MkV1xHYaZ2QmINfIzGrXTPclLuvlfupSaTr9Yw' >"$dir/s1"
        printf '{"iss":"https://issuer.example/","aud":["x","api://tokenvend"],"sub":"alice","iat":1700000000,"nbf":1700000000,"exp":4000000000}' >"$dir/s2"
        printf '{"kty":"RSA","alg":"PS256","use":"sig","key_ops":["verify"],"kid":"k","n":"AQAB","e":"AQAB"}' >"$dir/s3"
        ;;
    fuzz_token_json)
        # flags byte, then token NUL expiresOn NUL ACS id (see the harness).
        printf '\000eyJhbGciOiJSUzI1NiJ9.eyJza3lwZWlkIjoiYWNzOjEifQ.c2ln\0002026-12-03T01:00:00.000+00:00\0008:acs:11111111-2222-3333-4444-555555555555_00000000-aaaa-bbbb-cccc-000000000001' >"$dir/s1"
        printf '\003tok\000\000' >"$dir/s2"
        printf '\000a"b\\c\000\303\251\000\001' >"$dir/s3"
        printf '\374xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\000e\000id' >"$dir/s4"
        ;;
    fuzz_router)
        # pattern (or CORS list), newline, path (or parameter pieces).
        printf '/public/users/{}/token\n/public/users/alice%%40example.com/token' >"$dir/s1"
        printf '/internal/identities/{}/{}\n/internal/identities/8%%3Aacs%%3A1/x' >"$dir/s2"
        printf '/\n/' >"$dir/s3"
        printf 'https://app.example, http://localhost:3000 ,*\n%%zz%%0%%00abc' >"$dir/s4"
        printf '/a/{}/b/{}/c\nx/y' >"$dir/s5"
        ;;
    fuzz_config)
        cp config/tokenvend.conf "$dir/s1"
        printf 'public_addr = 127.0.0.1:8080\ninternal_addr = [::1]:8081\nlog_level = debug\nallowed_scopes = chat, voip\ncors_origins = "https://a.example,http://b.example" # comment\noidc_issuer = https://issuer.example/\n' >"$dir/s2"
        printf 'token_minutes = 60\r\ncache = off\r\nacs_connection_string = "a \\"quoted\\" # value "\r\n' >"$dir/s3"
        printf 'unknown = 1\n' >"$dir/s4"
        ;;
    fuzz_b64)
        printf 'XYTsKEg4k4IBjck/O/DOcGSlgC31ZsyEf0pwWn9r6Y9I6s8sIPjuP3BfWJhkK0VT0JVH6KCP7zJfqgT350uETw==' >"$dir/s1"
        printf 'eyJhbGciOiJSUzI1NiJ9' >"$dir/s2"
        printf 'AQ==' >"$dir/s3"
        ;;
    esac
}

# build_one NAME: compiles tests/fuzz/NAME.c with its sources into $out/NAME; its compiler output
# goes to $out/NAME.build.log.
build_one() {
    local name=$1 src=tests/fuzz/$1.c deps c
    deps=$(sed -n 's/.*fuzz-sources:[[:space:]]*\(.*\)$/\1/p' "$src" | head -n1)
    deps=${deps%%\*/}
    [ -n "$deps" ] || deps="$(ls src/acs/*.c)"
    # src/core is the layer every module stands on: always linked, so a harness's list names
    # only what it tests and cannot go stale when a module starts using another core file.
    for c in src/core/*.c; do
        case " $deps " in *" $c "*) ;; *) deps="$deps $c" ;; esac
    done
    # shellcheck disable=SC2086
    "$CLANG" $cflags -o "$out/$name" "$src" $deps $libs >"$out/$name.build.log" 2>&1
}

# run_one NAME: seeds and runs one built harness; its report goes to $out/NAME.report, printed by
# the caller in harness order.
run_one() {
    local name=$1 corpus=$out/corpus/$1 committed=tests/fuzz/corpus/$1 merged
    exec >"$out/$name.report" 2>&1
    mkdir -p "$corpus" "$committed"
    seed "$name" "$corpus"
    echo "== run $name for ${seconds}s ($(find "$committed" -type f | wc -l) committed corpus entries)"
    # stdin is /dev/null: a harness that reads a file the input names (fuzz_config) must never
    # wait on a terminal or a pipe.
    if ! "$out/$name" -max_len="$max_len" -max_total_time="$seconds" -print_final_stats=1 \
        -artifact_prefix="$out/artifacts/$name-" "$corpus" "$committed" >"$out/$name.log" 2>&1 </dev/null; then
        echo "fuzz: $name FAILED; reproducer in $out/artifacts/, log $out/$name.log:"
        tail -n 40 "$out/$name.log"
        return 1
    fi
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|^Done [0-9]+ runs' "$out/$name.log" |
        sed "s/^/   $name /"
    if [ "${FUZZ_MERGE:-0}" = 1 ]; then
        merged=$(mktemp -d)
        "$out/$name" -merge=1 -max_len="$max_len" "$merged" "$corpus" "$committed" \
            >"$out/$name.merge.log" 2>&1 </dev/null
        rm -rf "$committed" && mkdir -p "$committed" && cp "$merged"/* "$committed"/ && rm -rf "$merged"
        echo "   $name: merged into $committed: $(find "$committed" -type f | wc -l) entries"
    fi
    echo "   $name: ${seconds}s, $(find "$corpus" -type f | wc -l) corpus entries, no crash"
}

# each_parallel FUNCTION NAME...: FUNCTION NAME for every NAME, $jobs at a time; prints the names
# whose run failed.
each_parallel() {
    local fn=$1 name i=0 running=0
    shift
    local names=("$@") pids=()
    for name in "${names[@]}"; do
        if [ "$running" -ge "$jobs" ]; then
            wait -n || true # bash keeps each status for the wait on its pid below
            running=$((running - 1))
        fi
        "$fn" "$name" &
        pids[i++]=$!
        running=$((running + 1))
    done
    for i in "${!names[@]}"; do
        wait "${pids[$i]}" || echo "${names[$i]}"
    done
}

# The harnesses build, then run, $jobs at a time (FUZZ_JOBS, default one per core): each run is a
# single process with its own time budget, so running two at once on two cores gives each the
# same seconds of fuzzing as running them one after another did, in half the wall time.
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
status=0
mkdir -p "$out" "$out/artifacts"
names=()
for src in tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    [ -z "$only" ] || [ "$only" = "$name" ] || continue
    names+=("$name")
done
echo "== build ${names[*]} ($jobs at a time, in $out/)"
broken=$(each_parallel build_one "${names[@]}")
built=()
for name in "${names[@]}"; do
    if grep -qx "$name" <<<"$broken"; then
        cat "$out/$name.build.log" >&2
        echo "fuzz: $name: build failed" >&2
        status=1
    else
        built+=("$name")
    fi
done
[ ${#built[@]} -gt 0 ] || exit 1
failed_runs=$(each_parallel run_one "${built[@]}")
for name in "${built[@]}"; do
    if grep -qx "$name" <<<"$failed_runs"; then
        cat "$out/$name.report" >&2
        status=1
    else
        cat "$out/$name.report"
    fi
done
exit $status
