#!/usr/bin/env bash
# review11b reproducers: the configuration file tokenvend reads by default (issue 11 point 5,
# /etc/tokenvend/tokenvend.conf, here $TOKENVEND_CONFIG_DIR/tokenvend.conf).
#  - A file anyone on the machine may write decides where the service takes its callers' keys
#    from (oidc_issuer, oidc_jwks_url), its database and its ACS resource: whoever can write it
#    can point oidc_jwks_url at keys of their own and be any app user. Nothing says so today, not
#    even `config check --strict` (only group/other-READABLE files holding secrets draw a word).
#  - A dangling symlink at the system path (a configuration mount that did not come up) is taken
#    for "no file": the search silently goes on to config/tokenvend.conf under the working
#    directory, a different file, and `config check --strict` passes.
# Each case asks only that `config check --strict` does not pass (a warning or an error both
# make it exit 2). Ends with "N passed, N failed".
set -u

# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/lib.sh"

if [ ! -x "$TV" ]; then
    echo "build $TV first"
    exit 2
fi
TVABS=$(pwd)/$TV
cd "$tmp" || exit 2

run_check() {
    env -i PATH="$PATH" HOME="$tmp" TOKENVEND_CONFIG_DIR="$1" \
        COMMUNICATION_SERVICES_CONNECTION_STRING='endpoint=http://127.0.0.1:9/;accesskey=c2VjcmV0' \
        TOKENVEND_LOCAL_ACCOUNTS=on TOKENVEND_DB="$tmp/db/tv.db" \
        "$TVABS" config check --strict >"$tmp/out" 2>"$tmp/err"
}
mkdir -p db && chmod 700 db

# 0. Control: a private file in the system directory passes --strict and is the one read.
mkdir -m 755 etc0
printf 'log_level = info\n' >etc0/tokenvend.conf
chmod 644 etc0/tokenvend.conf
run_check "$tmp/etc0"
rc=$?
if [ "$rc" -eq 0 ] && grep -q "configuration file $tmp/etc0/tokenvend.conf" out; then
    ok "control: a 0644 file passes --strict and is read"
else
    not_ok "control: a 0644 file passes --strict and is read" "exit $rc; $(tail -n 3 err) $(tail -n 1 out)"
fi

# 1. The same file writable by everyone.
mkdir -m 755 etc1
printf 'log_level = info\n' >etc1/tokenvend.conf
chmod 666 etc1/tokenvend.conf
run_check "$tmp/etc1"
rc=$?
if [ "$rc" -ne 0 ]; then
    ok "a world-writable configuration file does not pass --strict (exit $rc)"
else
    not_ok "a world-writable configuration file does not pass --strict" "exit 0; stderr: $(cat err)"
fi

# 2. A dangling symlink at the system path, and config/tokenvend.conf under the working directory.
mkdir -m 755 etc2 config
ln -s "$tmp/mount-that-failed/tokenvend.conf" etc2/tokenvend.conf
printf 'log_level = info\n' >config/tokenvend.conf
run_check "$tmp/etc2"
rc=$?
if [ "$rc" -ne 0 ]; then
    ok "a dangling symlink at the system configuration path does not pass --strict (exit $rc)"
else
    not_ok "a dangling symlink at the system configuration path does not pass --strict" \
        "exit 0; read instead: $(grep '^# configuration file\|^# no configuration' out)"
fi

finish
