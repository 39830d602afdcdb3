#!/usr/bin/env bash
# `make bench` (the targets are in scripts/bench/report.mjs and docs/benchmarks.md): starts acs-emulator, a local OIDC issuer and tokenvend on
# loopback, drives them with wrk (and a node client for idle connections), writes the results
# to docs/benchmarks.md and prints the table. Never part of `make test`: the figures depend on
# the machine and on whatever else runs on it.
#
# Settings (environment): BUILD (build), BENCH_SECONDS (10, per scenario), BENCH_USERS (1000),
# BENCH_IDLE (5000 idle connections), BENCH_MEMORY_REQUESTS (1000000),
# BENCH_MEMORY_MAX_SECONDS (300, a bound on the memory scenario's request phase),
# BENCH_LOG_LEVEL (warn: no access log line per request), BENCH_OUT (docs/benchmarks.md),
# BENCH_ONLY=hit (only floor, hit and "hit, limits on"; prints their rows, writes no file),
# BENCH_STORM_USERS (120, the storm row),
# BENCH_EMU_REUSE_S (600: the emulator tokenvend talks to runs with --reuse-signed-token-s 600,
# so a repeated issue for a user returns the token it signed first instead of spending an
# RSA-2048 signature on this machine, as the real ACS would not; 0 signs every token).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
DUR=${BENCH_SECONDS:-10}
USERS=${BENCH_USERS:-1000}
IDLE=${BENCH_IDLE:-5000}
MEM_REQUESTS=${BENCH_MEMORY_REQUESTS:-1000000}
MEM_MAX_S=${BENCH_MEMORY_MAX_SECONDS:-300}
LOG_LEVEL=${BENCH_LOG_LEVEL:-warn}
EMU_REUSE_S=${BENCH_EMU_REUSE_S:-600}
OUT=${BENCH_OUT:-docs/benchmarks.md}
TV=$BUILD/bin/tokenvend
EMU=$BUILD/bin/acs-emulator
LUA=scripts/bench/wrk.lua
nproc_=$(nproc)

for tool in wrk node; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "bench: $tool is missing (scripts/deps.sh bench installs wrk; node 20 is required)" >&2
        exit 1
    fi
done
for bin in "$TV" "$EMU"; do
    [ -x "$bin" ] || { echo "bench: $bin is not built (make BUILD=$BUILD all)" >&2; exit 1; }
done

# 5,000 idle connections plus wrk's need more descriptors than the usual soft limit of 1024.
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] && hard=65536
ulimit -n "$hard"
if [ "$(ulimit -n)" -lt $((IDLE + 1000)) ]; then
    echo "bench: the open-files limit ($(ulimit -n)) is too low for $IDLE idle connections" >&2
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/tokenvend-bench.XXXXXX")
res=$work/results
mkdir -p "$res"
emu_pid='' oidc_pid='' tv_pid='' idle_pid='' sampler_pid=''

cleanup() {
    local p
    for p in "$sampler_pid" "$idle_pid" "$tv_pid" "$oidc_pid" "$emu_pid"; do
        if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; fi
    done
    for p in "$sampler_pid" "$idle_pid" "$tv_pid" "$oidc_pid" "$emu_pid"; do
        if [ -n "$p" ]; then wait "$p" 2>/dev/null || true; fi
    done
    if [ -n "${BENCH_KEEP:-}" ]; then
        echo "bench: kept $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '== %s\n' "$*" >&2; }
http() { node scripts/bench/http.mjs "$@"; }
free_port() {
    node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
# Upstream calls the emulator has seen (creates + issues), to tell cache hits from misses.
emu_calls() {
    node -e 'fetch(process.argv[1]).then(r=>r.json()).then(s=>console.log(s.requests.create+s.requests.issue))' \
        "$emu_url/emulator/stats"
}
# Tokens the emulator answered from its reuse cache instead of signing them.
emu_reused() {
    node -e 'fetch(process.argv[1]).then(r=>r.json()).then(s=>console.log(s.tokens_reused||0))' \
        "$emu_url/emulator/stats"
}
emu_latency() {
    if [ "$1" -gt 0 ]; then
        http PUT "$emu_url/emulator/faults" "{\"latency_ms\":$1}" >/dev/null
    else
        http DELETE "$emu_url/emulator/faults" >/dev/null
    fi
}

# Samples tokenvend's VmRSS (KiB) every 0.2 s as "epoch_seconds kib" lines into file $1.
rss_start() {
    local pid=$tv_pid
    (
        while [ -r "/proc/$pid/status" ]; do
            kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || break
            echo "$(date +%s.%N) $kib"
            sleep 0.2
        done
    ) >"$1" &
    sampler_pid=$!
}
rss_stop() {
    kill "$sampler_pid" 2>/dev/null || true
    wait "$sampler_pid" 2>/dev/null || true
    sampler_pid=''
}

# CPU ticks so far: "tokenvend emulator machine-busy machine-total" (tokenvend 0 when not running).
cpu_snap() {
    local tv=0 emu
    [ -n "$tv_pid" ] && tv=$(awk '{print $14 + $15}' "/proc/$tv_pid/stat" 2>/dev/null || echo 0)
    emu=$(awk '{print $14 + $15}' "/proc/$emu_pid/stat")
    echo "$tv $emu $(awk '/^cpu / {b = $2 + $3 + $4 + $7 + $8; print b, b + $5 + $6}' /proc/stat)"
}

# cpu_record NAME SNAP0 SNAP1: CPU use between two snapshots as percent of one core for
# tokenvend, the emulator and the whole machine (all cores, wrk and anything else included).
cpu_record() {
    local a0 b0 c0 t0 a1 b1 c1 t1 dt
    read -r a0 b0 c0 t0 <<<"$2"
    read -r a1 b1 c1 t1 <<<"$3"
    dt=$((t1 - t0 > 0 ? t1 - t0 : 1))
    {
        echo "cpu_tv=$(((a1 - a0) * 100 * nproc_ / dt))"
        echo "cpu_emu=$(((b1 - b0) * 100 * nproc_ / dt))"
        echo "cpu_busy=$(((c1 - c0) * 100 * nproc_ / dt))"
    } >>"$res/$1"
}

# run_wrk NAME CONNECTIONS URL [wrk args...]: runs wrk for DUR seconds (unless the args give
# -d) and appends its counts to $res/NAME; tokenvend's RSS is sampled meanwhile.
run_wrk() {
    local name=$1 conns=$2 url=$3
    shift 3
    local c0 c1
    [ -n "$tv_pid" ] && rss_start "$work/$name.rss"
    c0=$(cpu_snap)
    wrk -t2 -c"$conns" -d"${DUR}s" --timeout 10s "$@" -s "$LUA" "$url" >"$work/$name.wrk" 2>&1 || {
        [ -n "$tv_pid" ] && rss_stop
        echo "bench: wrk failed for $name:" >&2
        cat "$work/$name.wrk" >&2
        return 1
    }
    c1=$(cpu_snap)
    [ -n "$tv_pid" ] && rss_stop
    grep '^BENCH ' "$work/$name.wrk" | tail -n 1 | cut -d' ' -f2- | tr ' ' '\n' >>"$res/$name"
    echo "connections=$conns" >>"$res/$name"
    cpu_record "$name" "$c0" "$c1"
    if [ -f "$work/$name.rss" ]; then
        echo "rss_max_kib=$(awk 'BEGIN{m=0} $2>m{m=$2} END{print m}' "$work/$name.rss")" >>"$res/$name"
    fi
    say "$name: $(grep -E '^(rps|p50_ms|p99_ms)=' "$res/$name" | tr '\n' ' ')"
}

# start_tv [VAR=value ...]: (re)starts tokenvend on fresh ports with the bench settings.
# Every bench client comes from 127.0.0.1, so the per-address connection cap is turned off; so is
# the per-user limit (its default, 120/60s, would refuse most of a hit run's requests: each of
# the 1,000 users asks hundreds of times a second). The "hit, limits on" row turns limits on.
# The upstream budget is off: the emulator here has no rate limits, and ACS's real ones (the
# budget's default, 1,000 calls per 30 s) would make the miss and create rows measure the
# budget; the storm row measures it.
start_tv() {
    stop_tv
    pub_port=$(free_port)
    int_port=$(free_port)
    env COMMUNICATION_SERVICES_CONNECTION_STRING="$connstr" TOKENVEND_DB="$work/tv.db" \
        TOKENVEND_PUBLIC_ADDR="127.0.0.1:$pub_port" TOKENVEND_INTERNAL_ADDR="127.0.0.1:$int_port" \
        TOKENVEND_OIDC_ISSUER="$issuer" TOKENVEND_OIDC_AUDIENCE=api://tokenvend \
        TOKENVEND_OIDC_JWKS_URL="$issuer/jwks" TOKENVEND_LOG_LEVEL="$LOG_LEVEL" \
        TOKENVEND_MAX_CONNECTIONS_PER_IP=0 TOKENVEND_LIMIT_USER=off TOKENVEND_ACS_BUDGET=off "$@" \
        "$TV" serve >>"$work/tokenvend.log" 2>&1 &
    tv_pid=$!
    if ! http wait "http://127.0.0.1:$pub_port/healthz" 15; then
        echo "bench: tokenvend did not start; its log:" >&2
        cat "$work/tokenvend.log" >&2
        exit 1
    fi
}
# stop_tv [KILL]: SIGTERM (graceful) or SIGKILL (a crash) and wait.
stop_tv() {
    [ -n "$tv_pid" ] || return 0
    kill "-${1:-TERM}" "$tv_pid" 2>/dev/null || true
    wait "$tv_pid" 2>/dev/null || true
    tv_pid=''
}

# ---- machine and build ------------------------------------------------------------------
{
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | grep -c . || true)"
    echo "nproc=$(nproc)"
    echo "cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "mem_gib=$(awk '/^MemTotal:/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)"
    echo "kernel=$(uname -sr)"
    # shellcheck disable=SC1091
    echo "os=$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
    echo "cc=$(${CC:-cc} --version | head -n 1)"
    echo "opt=${BENCH_OPT:--O2 -g}"
    echo "wrk=$(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2)"
    echo "node=$(node --version)"
    echo "libmicrohttpd=$(pkg-config --modversion libmicrohttpd 2>/dev/null || echo '?')"
    echo "sqlite=$(pkg-config --modversion sqlite3 2>/dev/null || echo '?')"
    echo "openssl=$(pkg-config --modversion openssl 2>/dev/null || echo '?')"
    echo "seconds=$DUR"
    echo "users=$USERS"
    echo "log_level=$LOG_LEVEL"
    # Whether the ACS client's connection pool is a setting yet (the miss paragraph says so).
    if grep -q acs_max_connections src/core/config.c 2>/dev/null; then echo "acs_pool_setting=1"; else echo "acs_pool_setting=0"; fi
    # One core's RSA-2048 rate: the emulator signs every token, tokenvend verifies every JWT.
    if command -v openssl >/dev/null 2>&1; then
        openssl speed -seconds 1 rsa2048 2>/dev/null | awk '/^rsa 2048/ {print "rsa_sign=" $(NF-1); print "rsa_verify=" $NF}'
    fi
    if [ -f src/service/tcache.c ]; then echo "cache_built=1"; else echo "cache_built=0"; fi
    echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$res/machine"

# ---- the emulator, the OIDC issuer, the database ---------------------------------------
# start_emu [FLAGS...]: (re)starts acs-emulator on a free port; sets emu_pid, connstr, emu_url.
# The emulator always logs at warn: at info it writes one JSON line per request.
start_emu() {
    stop_emu
    : >"$work/emu.out"
    "$EMU" --listen 127.0.0.1:0 --no-rate-limits --log-level warn "$@" >"$work/emu.out" 2>>"$work/emu.log" &
    emu_pid=$!
    for _ in $(seq 100); do
        [ -s "$work/emu.out" ] && break
        sleep 0.1
    done
    connstr=$(head -n 1 "$work/emu.out")
    if [ -z "$connstr" ]; then
        echo "bench: acs-emulator did not start; its log:" >&2
        cat "$work/emu.log" >&2
        exit 1
    fi
    emu_url=$(printf '%s' "$connstr" | sed -E 's#^endpoint=(http://[^/;]+)/?;.*#\1#')
}
stop_emu() {
    [ -n "$emu_pid" ] || return 0
    kill "$emu_pid" 2>/dev/null || true
    wait "$emu_pid" 2>/dev/null || true
    emu_pid=''
}

say "starting the OIDC issuer ($USERS users) and the database in $work"
node scripts/bench/oidc.mjs "$work/tokens.txt" "$USERS" >"$work/oidc.out" 2>"$work/oidc.log" &
oidc_pid=$!
for _ in $(seq 100); do
    [ -s "$work/oidc.out" ] && break
    sleep 0.1
done
issuer=$(head -n 1 "$work/oidc.out")
if [ -z "$issuer" ]; then
    echo "bench: the OIDC issuer did not start" >&2
    exit 1
fi

TOKENVEND_DB="$work/tv.db" "$TV" migrate >/dev/null
api_key=$(TOKENVEND_DB="$work/tv.db" "$TV" apikey create bench 2>/dev/null | tail -n 1)

# ---- the emulator alone: what the upstream can do on this machine ------------------------
# The same signed request replayed by wrk: "issue" issues tokens for one identity over and
# over, "create" creates identities. First an emulator that signs every token it issues (what
# ACS does, but on this machine's cores), then the one tokenvend will use, which reuses them.
emu_wrk() { # NAME CONNECTIONS REQUEST-ARRAY-NAME
    local -n r=$3
    BENCH_METHOD=POST BENCH_BODY="${r[4]}" run_wrk "$1" "$2" "$emu_url${r[0]}" \
        -H "${r[1]}" -H "${r[2]}" -H "${r[3]}" -H 'content-type: application/json'
}
emu_requests() {
    # shellcheck disable=SC2034 # read through the nameref in emu_wrk
    mapfile -t issue_req < <(node scripts/bench/emu-request.mjs "$connstr" issue)
    # shellcheck disable=SC2034
    mapfile -t create_req < <(node scripts/bench/emu-request.mjs "$connstr" create)
}
if [ "${BENCH_ONLY:-}" = hit ]; then
    # The quick comparison of the hit rows needs only the emulator tokenvend talks to.
    start_emu --reuse-signed-token-s "$EMU_REUSE_S"
else
say "acs-emulator alone, signing every token"
start_emu
emu_requests
emu_latency 0
emu_wrk emu_issue 64 issue_req
emu_wrk emu_create 64 create_req
emu_latency 50
emu_wrk emu_issue_50ms_256 256 issue_req
emu_wrk emu_issue_50ms_16 16 issue_req
emu_latency 0
if [ "$EMU_REUSE_S" -gt 0 ]; then
    start_emu --reuse-signed-token-s "$EMU_REUSE_S"
    say "acs-emulator alone, --reuse-signed-token-s $EMU_REUSE_S"
    emu_requests
    emu_latency 0
    emu_wrk emu_issue_reuse 64 issue_req
    emu_latency 50
    emu_wrk emu_issue_50ms_256_reuse 256 issue_req
    emu_wrk emu_issue_50ms_16_reuse 16 issue_req
    emu_latency 0
    http POST "$emu_url/emulator/stats/reset" >/dev/null
fi
fi
echo "emu_reuse_s=$EMU_REUSE_S" >>"$res/machine"

# ---- floor, hit, create: tokenvend with its default settings (cache on) -----------------
start_tv
say "floor: GET /healthz"
run_wrk floor 64 "http://127.0.0.1:$pub_port/healthz"

say "hit: warming $USERS users (identity + token each)"
before=$(emu_calls)
BENCH_MODE=tokens BENCH_TOKENS="$work/tokens.txt" BENCH_THREADS=2 \
    wrk -t2 -c32 -d3s --timeout 10s -s "$LUA" "http://127.0.0.1:$pub_port/api/token" >"$work/warm.wrk" 2>&1
echo "warm_upstream_calls=$(($(emu_calls) - before))" >>"$res/hit"
before=$(emu_calls)
BENCH_MODE=tokens BENCH_TOKENS="$work/tokens.txt" BENCH_THREADS=2 \
    run_wrk hit 64 "http://127.0.0.1:$pub_port/api/token"
echo "upstream_calls=$(($(emu_calls) - before))" >>"$res/hit"

hit_limits() {
    # The same hit with the per-user and per-address limits on, at values no request of the run
    # reaches (a burst of 1,000,000 each: all of wrk's connections come from 127.0.0.1), so every
    # request pays the limiters' whole cost and none is refused (a 429 counts as an error).
    start_tv TOKENVEND_LIMIT_USER=1000000/1000s TOKENVEND_LIMIT_IP=1000000/1000s
    say "hit, limits on: warming $USERS users"
    BENCH_MODE=tokens BENCH_TOKENS="$work/tokens.txt" BENCH_THREADS=2 \
        wrk -t2 -c32 -d3s --timeout 10s -s "$LUA" "http://127.0.0.1:$pub_port/api/token" >"$work/warm_limits.wrk" 2>&1
    before=$(emu_calls)
    BENCH_MODE=tokens BENCH_TOKENS="$work/tokens.txt" BENCH_THREADS=2 \
        run_wrk hit_limits 64 "http://127.0.0.1:$pub_port/api/token"
    echo "upstream_calls=$(($(emu_calls) - before))" >>"$res/hit_limits"
    start_tv
}
# BENCH_ONLY=hit: just the hit rows (hit, hit with limits on), for a quick comparison.
if [ "${BENCH_ONLY:-}" = hit ]; then
    hit_limits
    node scripts/bench/report.mjs "$res" "$work/benchmarks.md" | grep -E '^\| (hit|Scenario)' || true
    exit 0
fi
hit_limits

say "create: PUT /internal/users/{new id} per request"
before=$(emu_calls)
BENCH_MODE=create BENCH_PATH_PREFIX=/internal/users/create- BENCH_RUN=r$$ \
    run_wrk create 64 "http://127.0.0.1:$int_port/" -H "Authorization: Bearer $api_key"
echo "upstream_calls=$(($(emu_calls) - before))" >>"$res/create"
# Every mapping acknowledged with a 2xx must survive a crash: SIGKILL, then count the rows.
stop_tv KILL
rows=$(TOKENVEND_DB="$work/tv.db" "$TV" identity list 2>/dev/null | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () =>
        console.log(JSON.parse(s).identities.filter((i) => i.appUserId.startsWith(process.argv[1])).length));' \
    "create-r$$-")
echo "rows_after_kill=$rows" >>"$res/create"

# ---- hit on PostgreSQL: the same users on a replica whose store is PostgreSQL --------------
# A throw-away cluster (scripts/bench/pg.mjs); tokenvend started on it as on SQLite, the same
# warm-up, then the same hit run. The target is >= 0.8 x the SQLite hit of this run: the token
# path reads its mapping from the mapping cache while the LISTEN watch is current, so a hit makes
# no database round trip. BENCH_PG=0 skips it. A build whose TOKENVEND_DB does not take a
# postgresql:// URI yet treats it as a SQLite path: the probe below sees that (in a directory
# of its own, so nothing lands elsewhere) and the row says why it was not run.
pg_hit() {
    local pg_pid pg_uri probe
    if [ "${BENCH_PG:-1}" = 0 ]; then
        echo "pg_skipped=BENCH_PG=0" >"$res/hit_pg"
        return 0
    fi
    if [ ! -x "${TV_PG_BINDIR:-/usr/lib/postgresql/15/bin}/initdb" ]; then
        echo "pg_skipped=postgresql-15 is not installed (scripts/deps.sh test)" >"$res/hit_pg"
        return 0
    fi
    mkfifo "$work/pg.in"
    node scripts/bench/pg.mjs <"$work/pg.in" >"$work/pg.out" 2>"$work/pg.log" &
    pg_pid=$!
    exec 9>"$work/pg.in"
    for _ in $(seq 600); do
        [ -s "$work/pg.out" ] && break
        kill -0 "$pg_pid" 2>/dev/null || break
        sleep 0.1
    done
    pg_uri=$(head -n 1 "$work/pg.out")
    if [ -z "$pg_uri" ]; then
        echo "pg_skipped=PostgreSQL did not start: $(tail -n 1 "$work/pg.log")" >"$res/hit_pg"
    else
        probe=$work/pg-probe
        mkdir -p "$probe"
        (cd "$probe" && TOKENVEND_DB="$pg_uri" "$OLDPWD/$TV" migrate >/dev/null 2>&1) || true
        if [ -n "$(ls -A "$probe")" ]; then
            echo "pg_skipped=this build's TOKENVEND_DB does not take a postgresql:// URI yet" >"$res/hit_pg"
        else
            start_tv TOKENVEND_DB="$pg_uri"
            say "hit on PostgreSQL: warming $USERS users"
            before=$(emu_calls)
            BENCH_MODE=tokens BENCH_TOKENS="$work/tokens.txt" BENCH_THREADS=2 \
                wrk -t2 -c32 -d3s --timeout 10s -s "$LUA" "http://127.0.0.1:$pub_port/api/token" >"$work/warm_pg.wrk" 2>&1
            echo "warm_upstream_calls=$(($(emu_calls) - before))" >>"$res/hit_pg"
            before=$(emu_calls)
            BENCH_MODE=tokens BENCH_TOKENS="$work/tokens.txt" BENCH_THREADS=2 \
                run_wrk hit_pg 64 "http://127.0.0.1:$pub_port/api/token"
            echo "upstream_calls=$(($(emu_calls) - before))" >>"$res/hit_pg"
            stop_tv
        fi
    fi
    exec 9>&-
    kill "$pg_pid" 2>/dev/null || true
    wait "$pg_pid" 2>/dev/null || true
}
pg_hit

# ---- miss and overhead: cache off, emulator latency 50 ms --------------------------------
start_tv TOKENVEND_CACHE=off
emu_latency 50
say "miss: GET /api/token, cache off, emulator latency 50 ms"
before=$(emu_calls)
reused_before=$(emu_reused)
BENCH_MODE=tokens BENCH_TOKENS="$work/tokens.txt" BENCH_THREADS=2 \
    run_wrk miss 256 "http://127.0.0.1:$pub_port/api/token"
echo "upstream_calls=$(($(emu_calls) - before))" >>"$res/miss"
echo "upstream_reused=$(($(emu_reused) - reused_before))" >>"$res/miss"
say "overhead: 16 connections, emulator latency 50 ms"
before=$(emu_calls)
reused_before=$(emu_reused)
BENCH_MODE=tokens BENCH_TOKENS="$work/tokens.txt" BENCH_THREADS=2 \
    run_wrk overhead 16 "http://127.0.0.1:$pub_port/api/token"
echo "upstream_calls=$(($(emu_calls) - before))" >>"$res/overhead"
echo "upstream_reused=$(($(emu_reused) - reused_before))" >>"$res/overhead"
emu_latency 0

# ---- memory: idle keep-alive connections, then many cached-token requests ----------------
# header_limit 8192: every keep-alive connection holds that much (README, "Header memory");
# the idle timeout is raised so the idle connections outlive the request phase.
start_tv TOKENVEND_HEADER_LIMIT=8192 TOKENVEND_CONNECTION_TIMEOUT_S=900
say "memory: $IDLE idle connections, then $MEM_REQUESTS requests"
rss_start "$work/memory.rss"
memory_sampler=$sampler_pid
sleep 1
echo "t_idle=$(date +%s.%N)" >>"$res/memory"
node scripts/bench/idle.mjs "$pub_port" "$IDLE" >"$work/idle.out" 2>&1 &
idle_pid=$!
for _ in $(seq 600); do
    grep -q '^open=' "$work/idle.out" && break
    sleep 0.1
done
grep '^open=' "$work/idle.out" | tr ' ' '\n' >>"$res/memory"
sleep 2
echo "t_req=$(date +%s.%N)" >>"$res/memory"
done_requests=0 chunks=0 started=$SECONDS
c0=$(cpu_snap)
while [ "$done_requests" -lt "$MEM_REQUESTS" ] && [ $((SECONDS - started)) -lt "$MEM_MAX_S" ]; do
    BENCH_MODE=tokens BENCH_TOKENS="$work/tokens.txt" BENCH_THREADS=2 \
        wrk -t2 -c64 -d"${DUR}s" --timeout 10s -s "$LUA" "http://127.0.0.1:$pub_port/api/token" \
        >"$work/memory.wrk" 2>&1
    line=$(grep "^BENCH " "$work/memory.wrk" | cut -d" " -f2-)
    echo "$line" >>"$res/memory.chunks"
    n=$(printf "%s" "$line" | sed -E "s/^requests=([0-9]+) .*/\1/")
    done_requests=$((done_requests + n))
    chunks=$((chunks + 1))
done
echo "t_end=$(date +%s.%N)" >>"$res/memory"
cpu_record memory "$c0" "$(cpu_snap)"
sleep 1
sampler_pid=$memory_sampler
rss_stop
kill "$idle_pid" 2>/dev/null || true
wait "$idle_pid" 2>/dev/null || true
idle_pid=''
grep '^still_open=' "$work/idle.out" >>"$res/memory" || echo "still_open=0" >>"$res/memory"
{
    echo "requests=$done_requests"
    echo "chunks=$chunks"
    echo "idle=$IDLE"
} >>"$res/memory"
cp "$work/memory.rss" "$res/memory.rss"
stop_tv
echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$res/machine"

# ---- storm: new users at once against ACS-like rate limits (issue 10, upstream budget) -------
# Its own emulator (--rate-limit-create/issue 20, window 2 s) and tokenvend (acs_budget the same,
# ACS deadline 6 s); clients honour Retry-After. scripts/bench/storm.mjs says what it measures.
say "storm: ${BENCH_STORM_USERS:-120} new users at once, ACS limits and budget 20 per 2 s"
TV_BUILD=$BUILD node scripts/bench/storm.mjs "${BENCH_STORM_USERS:-120}" 20 2 >"$res/storm" 2>"$work/storm.log" ||
    echo "storm_skipped=$(tail -n 1 "$work/storm.log")" >"$res/storm"

node scripts/bench/report.mjs "$res" "$OUT"
say "wrote $OUT"
