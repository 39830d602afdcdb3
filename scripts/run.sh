#!/usr/bin/env bash
# `make run`: starts acs-emulator on loopback, runs the ACS access-token quickstart against it
# through the tokenvend CLI, and leaves the emulator running (Ctrl-C stops it) with the commands
# to try next. The HTTP service (`tokenvend serve`) joins this script when it lands.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
port=${ACS_EMULATOR_PORT:-8090}
mkdir -p data

"$BUILD/bin/acs-emulator" --listen "127.0.0.1:$port" --db data/emulator.db \
    >data/emulator.out 2>data/emulator.log &
emu=$!
trap 'kill $emu 2>/dev/null; wait $emu 2>/dev/null' EXIT INT TERM

for _ in $(seq 50); do
    [ -s data/emulator.out ] && break
    if ! kill -0 $emu 2>/dev/null; then
        echo "acs-emulator failed to start; its log:" >&2
        cat data/emulator.log >&2
        exit 1
    fi
    sleep 0.1
done
COMMUNICATION_SERVICES_CONNECTION_STRING=$(head -n 1 data/emulator.out)
export COMMUNICATION_SERVICES_CONNECTION_STRING

echo "acs-emulator is listening on 127.0.0.1:$port (log: data/emulator.log)"
echo
"$BUILD/bin/tokenvend" quickstart
cat <<EOT

The emulator keeps running until you press Ctrl-C. In another shell:

  export COMMUNICATION_SERVICES_CONNECTION_STRING='$COMMUNICATION_SERVICES_CONNECTION_STRING'
  $BUILD/bin/tokenvend acs create-user-and-token --scopes chat,voip --minutes 60
  $BUILD/bin/tokenvend acs issue '<communicationUserId>' --scopes voip

  # is a token still valid? (the emulator checks signature, expiry, revocation, deletion)
  curl -s -X POST http://127.0.0.1:$port/emulator/validate -d '{"token":"<token>"}'
  curl -s http://127.0.0.1:$port/emulator/stats
EOT
wait $emu
