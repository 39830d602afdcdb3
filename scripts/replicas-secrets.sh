#!/usr/bin/env bash
# Makes the four secret files compose.replicas.yaml mounts, under secrets/ (or DIR):
#   postgres_password      random, for the PostgreSQL role tokenvend
#   tokenvend_db_uri       postgresql://tokenvend:<that password>@postgres:5432/tokenvend
#   acs_connection_string  $ACS_CONNECTION_STRING when set (a real ACS resource), else one for the
#                          compose file's acs-emulator with a random access key
#   tokenvend_secret_key   32 random bytes, base64 (seals the session signing key at rest)
# One password feeds both the database and the URI, so they cannot disagree. A file that exists
# is never replaced: the database keeps the password it was created with, and the stored session
# key can only be opened with the secret key that sealed it.
# Each file ends up mode 0400, owned by the user of the container that reads it (postgres: 999,
# tokenvend and acs-emulator: 10001) when run as root; otherwise the script prints the chown
# that rootful Docker needs, since Compose mounts a file secret with the host's owner and mode.
# Usage: scripts/replicas-secrets.sh [DIR]        (needs the openssl command)
set -euo pipefail

cd "$(dirname "$0")/.."
dir=${1:-secrets}
umask 077
mkdir -p "$dir"

# write NAME VALUE: a new file NAME under $dir holding VALUE (no trailing newline needed; tokenvend
# and the postgres image both drop one), left alone when it exists.
write() {
    if [ -e "$dir/$1" ]; then
        echo "replicas-secrets: $dir/$1 exists, kept"
        return 0
    fi
    printf '%s\n' "$2" >"$dir/$1.tmp"
    mv "$dir/$1.tmp" "$dir/$1"
    echo "replicas-secrets: $dir/$1 written"
}

if [ -e "$dir/postgres_password" ]; then
    password=$(cat "$dir/postgres_password")
else
    # Hex, so the URI needs no percent-encoding.
    password=$(openssl rand -hex 24)
fi
write postgres_password "$password"
write tokenvend_db_uri "postgresql://tokenvend:$password@postgres:5432/tokenvend"
write acs_connection_string \
    "${ACS_CONNECTION_STRING:-endpoint=http://acs-emulator:8090/;accesskey=$(openssl rand -base64 48)}"
write tokenvend_secret_key "$(openssl rand -base64 32)"
unset password

chmod 0400 "$dir"/postgres_password "$dir"/tokenvend_db_uri "$dir"/acs_connection_string \
    "$dir"/tokenvend_secret_key
if [ "$(id -u)" -eq 0 ]; then
    chown 999:999 "$dir/postgres_password"
    chown 10001:10001 "$dir/tokenvend_db_uri" "$dir/acs_connection_string" "$dir/tokenvend_secret_key"
else
    echo "replicas-secrets: with rootful Docker the containers read these files as their own users; run:"
    echo "  sudo chown 999:999 $dir/postgres_password"
    echo "  sudo chown 10001:10001 $dir/tokenvend_db_uri $dir/acs_connection_string $dir/tokenvend_secret_key"
fi
