#!/usr/bin/env bash
# Installs the Debian packages tokenvend needs: apt-get when run as root, otherwise prints the
# exact command and fails. Usage: scripts/deps.sh build|test|bench [--quiet]
set -euo pipefail

what=${1:-build}
quiet=${2:-}

# libyaml-dev: the build-time OpenAPI generator (tools/openapi) reads docs/openapi.yaml with it;
# the service itself does not link it.
build_pkgs=(build-essential pkg-config libmicrohttpd-dev libcurl4-openssl-dev libssl-dev
    libjson-c-dev libsqlite3-dev libargon2-dev libpq-dev libyaml-dev)
# postgresql-15 ships initdb, pg_ctl and postgres (/usr/lib/postgresql/15/bin): the PostgreSQL
# store tests start a throw-away cluster of their own (tests/lib/pg.c, tests/e2e/lib/pg.mjs).
# openssl: the keyless SDK test makes its TLS certificate with the openssl command.
# haproxy: tests/e2e/compose-lb.test.mjs runs compose.replicas.yaml's balancer configuration.
# sqlite3: tests/e2e/backup.test.mjs checks a restored backup with PRAGMA integrity_check;
#   tests/reliability/crash.mjs reads the emulator's database and checks tokenvend's.
# chromium: tests/e2e/web-example.test.mjs drives the browser example (examples/web) in Debian's
#   headless Chromium through playwright-core, which downloads no browser of its own.
# valgrind: the short reliability run in make test (tests/reliability/reliability.test.mjs) runs
#   500 requests under memcheck; without it a fresh machine would skip that case.
test_pkgs=(libcmocka-dev curl openssl postgresql-15 haproxy sqlite3 chromium valgrind)
bench_pkgs=(wrk)

case "$what" in
build) want=("${build_pkgs[@]}") ;;
test) want=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
bench) want=("${build_pkgs[@]}" "${bench_pkgs[@]}") ;;
fuzz) want=("${build_pkgs[@]}" clang libclang-rt-14-dev) ;;
# make valgrind / make reliability: memcheck over tokenvend serve (tests/reliability/valgrind.mjs).
valgrind) want=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
*)
    echo "usage: $0 build|test|bench|fuzz|valgrind [--quiet]" >&2
    exit 2
    ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1; then
    [ "$quiet" = --quiet ] || echo "deps: not a Debian system; make sure these are installed: ${want[*]}" >&2
    exit 0
fi

missing=()
for p in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    [ "$quiet" = --quiet ] || echo "deps: all ${#want[@]} packages present"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing Debian packages: ${missing[*]}" >&2
    echo "deps: install them with:" >&2
    echo "    sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi

echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
