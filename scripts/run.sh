#!/usr/bin/env bash
# `make run`: starts acs-emulator and tokenvend on loopback with a demo local account and an
# internal API key, runs the ACS quickstart against the emulator through the CLI, and prints how
# to fetch a token with curl. Both keep running until Ctrl-C. Everything lives under data/.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
emu_port=${ACS_EMULATOR_PORT:-8090}
public=${TOKENVEND_PUBLIC_ADDR:-127.0.0.1:8080}
internal=${TOKENVEND_INTERNAL_ADDR:-127.0.0.1:8081}
demo_user=demo
demo_password=${DEMO_PASSWORD:-demo-password}
mkdir -p data

pids=()
stop() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap stop EXIT
trap 'exit 130' INT TERM

# Waits until file $1 is non-empty or process $2 died.
wait_for() {
    for _ in $(seq 100); do
        [ -s "$1" ] && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

: >data/emulator.out
"$BUILD/bin/acs-emulator" --listen "127.0.0.1:$emu_port" --db data/emulator.db \
    >data/emulator.out 2>data/emulator.log &
pids+=($!)
if ! wait_for data/emulator.out $!; then
    echo "acs-emulator failed to start; its log (data/emulator.log):" >&2
    cat data/emulator.log >&2
    exit 1
fi
COMMUNICATION_SERVICES_CONNECTION_STRING=$(head -n 1 data/emulator.out)
export COMMUNICATION_SERVICES_CONNECTION_STRING
export TOKENVEND_DB=data/tokenvend.db TOKENVEND_LOCAL_ACCOUNTS=on
export TOKENVEND_PUBLIC_ADDR=$public TOKENVEND_INTERNAL_ADDR=$internal

echo "== acs-emulator listens on 127.0.0.1:$emu_port (log: data/emulator.log)"
"$BUILD/bin/tokenvend" quickstart
echo

"$BUILD/bin/tokenvend" migrate >/dev/null 2>>data/admin.log
printf '%s\n' "$demo_password" | "$BUILD/bin/tokenvend" account add "$demo_user" >/dev/null 2>>data/admin.log
api_key=$("$BUILD/bin/tokenvend" apikey create "demo-backend-$(date +%s)" 2>>data/admin.log | tail -n 1)

"$BUILD/bin/tokenvend" serve >data/tokenvend.log 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    curl -fsS "http://$public/healthz" >/dev/null 2>&1 && break
    if ! kill -0 "${pids[1]}" 2>/dev/null; then
        echo "tokenvend failed to start; its log (data/tokenvend.log):" >&2
        cat data/tokenvend.log >&2
        exit 1
    fi
    sleep 0.1
done

cat <<EOT
== tokenvend serves the public API on http://$public and the internal API on http://$internal
   (log: data/tokenvend.log, database: data/tokenvend.db)

Fetch an ACS token as the demo user ($demo_user / $demo_password):

  jwt=\$(curl -s http://$public/api/login -H 'Content-Type: application/json' \\
        -d '{"username":"$demo_user","password":"$demo_password"}' | sed 's/.*"access_token":"\\([^"]*\\)".*/\\1/')
  curl -s http://$public/api/token -H "Authorization: Bearer \$jwt"
  curl -s -X POST http://$public/api/token -H "Authorization: Bearer \$jwt" \\
       -d '{"scopes":["voip"],"expiresInMinutes":60}'

Call the internal API with the demo API key (shown once; also try GET /internal/users):

  curl -s -X PUT http://$internal/internal/users/alice -H 'Authorization: Bearer $api_key'
  curl -s -X POST http://$internal/internal/users/alice/token -H 'Authorization: Bearer $api_key' -d '{}'

Is a token still valid? (the emulator checks signature, expiry, revocation, deletion)

  curl -s -X POST http://127.0.0.1:$emu_port/emulator/validate -d '{"token":"<token>"}'

Press Ctrl-C to stop both.
EOT
wait
