#!/usr/bin/env bash
# Checks the container files without a Docker engine:
#   1. docker-compose.yml against the Compose Specification's JSON schema (plus the project's own
#      expectations: both services, health checks, the emulator connection string, a /data volume),
#      and compose.replicas.yaml against it too (plus the replica recipe's rules: postgres:15, two
#      or more replicas, one published port, health checks and service_healthy everywhere, secrets
#      from files only, read-only root, no capabilities, no-new-privileges);
#   2. the Dockerfile built for real by scripts/check-image.sh (podman, as root), then,
#      inside the built image as its user: both binaries resolve their shared libraries,
#      `acs-emulator --help` and `tokenvend version` run, the user is not root, /data is writable
#      acs-emulator serves its JWKS from inside the image, and tokenvend serve starts against
#      it, answers its HEALTHCHECK, creates an identity for an API key and exits 0 on SIGTERM.
# Usage: scripts/check-container.sh [--compose-only]
# The schema is tests/container/compose-spec.json (origin and licence in tests/container/README.md).
set -euo pipefail

cd "$(dirname "$0")/.."
compose_only=${1:-}

if [ ! -d tests/e2e/node_modules/ajv ] || [ ! -d tests/e2e/node_modules/yaml ]; then
    (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
fi
node tests/e2e/tools/check-compose.mjs docker-compose.yml tests/container/compose-spec.json
node tests/e2e/tools/check-compose.mjs compose.replicas.yaml tests/container/compose-spec.json replicas

if [ "$compose_only" = --compose-only ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "check-container: the image check needs root (podman with chroot isolation); skipped" >&2
    exit 1
fi

# The docker image format keeps HEALTHCHECK (OCI drops it with a warning).
export BUILDAH_FORMAT=docker

# shellcheck disable=SC2016 # expanded inside the image, not here
probe='set -e
for b in /usr/local/bin/tokenvend /usr/local/bin/acs-emulator; do
    if ldd "$b" | grep "not found"; then echo "missing shared libraries for $b" >&2; exit 1; fi
done
acs-emulator --help >/dev/null
tokenvend version
[ "$(id -u)" != 0 ] || { echo "image runs as root" >&2; exit 1; }
touch /data/.probe && rm /data/.probe
# The emulator serves from inside the image (the chroot shares the host loopback).
acs-emulator --listen 127.0.0.1:0 --db /data/probe-emulator.db >/tmp/cs 2>/tmp/emu.log &
pid=$!
i=0
while ! grep -q "^endpoint=" /tmp/cs && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
endpoint=$(sed -n "s/^endpoint=\([^;]*\);.*/\1/p" /tmp/cs)
curl -fsS -o /dev/null "${endpoint}emulator/jwks" || { kill $pid; cat /tmp/emu.log >&2; exit 1; }
# The service starts against it, passes its own HEALTHCHECK command, and serves an API key.
# Below the ephemeral range (32768+), so no outgoing connection holds the port.
pub=$(shuf -i 20000-32000 -n 1)
int=$((pub + 1))
export COMMUNICATION_SERVICES_CONNECTION_STRING="$(head -n 1 /tmp/cs)"
export TOKENVEND_PUBLIC_ADDR=127.0.0.1:$pub TOKENVEND_INTERNAL_ADDR=127.0.0.1:$int
export TOKENVEND_DB=/data/probe-tokenvend.db
tokenvend serve 2>/tmp/tv.log &
tv=$!
i=0
until curl -fsS -o /dev/null "http://127.0.0.1:$pub/healthz"; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 $tv 2>/dev/null; then cat /tmp/tv.log >&2; exit 1; fi
    sleep 0.1
done
key=$(tokenvend apikey create probe 2>/dev/null | tail -n 1)
curl -fsS -o /dev/null -X PUT -H "Authorization: Bearer $key" \
    "http://127.0.0.1:$int/internal/users/probe" || { cat /tmp/tv.log >&2; exit 1; }
kill -TERM $tv && wait $tv || { echo "tokenvend did not exit 0 on SIGTERM" >&2; exit 1; }
kill -TERM $pid && wait $pid
rm -f /data/probe-emulator.db* /data/probe-tokenvend.db* /tmp/cs /tmp/emu.log /tmp/tv.log
echo "image: OK (user $(id -u):$(id -g), workdir $(pwd), emulator served $endpoint, tokenvend served 127.0.0.1:$pub and :$int)"'
scripts/check-image.sh -t localhost/tokenvend:check -- /bin/sh -c "$probe"
