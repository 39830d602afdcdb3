#!/usr/bin/env bash
# review11a reproducer: `tokenvend backup` promises that the live database is never a destination
# and refuses FILE = the database or its -wal/-shm files ("is the database itself"). When the db
# setting names the database through a symbolic link, SQLite keeps its -wal and -shm beside the
# link's target (it resolves the path), but the check looks for them beside the link, so
# `backup <target>-wal --force` replaces the live WAL of an open database with a copy of the
# database. Ends with "N passed, N failed"; exits non-zero on any failure.
set -u

# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/lib.sh"

if [ ! -x "$TV" ] || ! command -v sqlite3 >/dev/null; then
    not_ok "binaries exist ($TV) and the sqlite3 shell"
    finish
fi
clear_acs_env
export TOKENVEND_LOG_LEVEL=warn
mkdir -p "$tmp/store" "$tmp/conf"
real=$tmp/store/tokenvend.db
TOKENVEND_DB=$real "$TV" migrate >/dev/null 2>&1
ln -s "$real" "$tmp/conf/tokenvend.db"
export TOKENVEND_DB=$tmp/conf/tokenvend.db

# A process holding the database open in WAL mode (as `tokenvend serve` does): its -wal and -shm
# exist beside the real file while it runs.
(
    echo "PRAGMA journal_mode=WAL; BEGIN; SELECT count(*) FROM sqlite_schema;"
    sleep 60 &
    echo $! >"$tmp/sleep.pid"
    wait
) | sqlite3 "$TOKENVEND_DB" >/dev/null 2>&1 &
holder=$!
for _ in $(seq 1 100); do
    [ -e "$real-wal" ] && break
    sleep 0.1
done
check "the open database has its WAL beside the link's target" $([ -e "$real-wal" ]; echo $?) "$(ls -la "$tmp/store")"
ino_before=$(stat -c %i "$real-wal" 2>/dev/null)

"$TV" backup "$real-wal" --force >"$tmp/b.out" 2>"$tmp/b.err"
rc=$?
ino_after=$(stat -c %i "$real-wal" 2>/dev/null)
check "backup onto the live database's -wal (db set through a symlink) is refused: exit 2, WAL untouched" \
    $([ $rc -eq 2 ] && grep -q 'is the database itself' "$tmp/b.err" && [ "$ino_before" = "$ino_after" ]; echo $?) \
    "exit $rc; $(cat "$tmp/b.out" "$tmp/b.err"); -wal inode $ino_before -> $ino_after"

# The holder ends when its input does: stop the sleep that keeps it open (by its pid).
kill "$(cat "$tmp/sleep.pid")" 2>/dev/null
wait "$holder" 2>/dev/null
finish
