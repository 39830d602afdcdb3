#!/usr/bin/env bash
# Shell tests of `tokenvend backup FILE [--force]` at its edges (the backup while serving and the
# restores are tests/e2e/backup.test.mjs): help, usage errors, no database, a PostgreSQL store
# refused without connecting, an existing FILE or FILE.tmp refused and left alone, --force, a
# directory as FILE, a missing directory, mode 0600 whatever the umask, the backup a standalone
# database. Ends with "N passed, N failed"; exits non-zero on any failure.
set -u

# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/lib.sh"

clear_acs_env
export TOKENVEND_LOG_LEVEL=warn
db=$tmp/data/tv.db
export TOKENVEND_DB=$db

run help backup --help
check "backup --help: exit 0, names --force and the restore" \
    $([ $rc -eq 0 ] && grep -q -- '--force' "$tmp/help.out" && grep -q 'tokenvend migrate' "$tmp/help.out"; echo $?) "$(detail help)"
run helpall help
check "help lists backup" $(grep -q '^  backup FILE' "$tmp/helpall.out"; echo $?) "$(detail helpall)"
run noarg backup
check "backup with no FILE: usage, exit 2" $([ $rc -eq 2 ]; echo $?) "$(detail noarg)"
run badflag backup "$tmp/x.db" --forse
check "backup --forse: exit 2 naming the flag" \
    $([ $rc -eq 2 ] && grep -q -- "--forse" "$tmp/badflag.err"; echo $?) "$(detail badflag)"
run nodb backup "$tmp/x.db"
check "no database yet: exit 2, nothing created" \
    $([ $rc -eq 2 ] && grep -q 'no SQLite database at' "$tmp/nodb.err" && [ ! -e "$db" ] && [ ! -e "$tmp/x.db" ]; echo $?) "$(detail nodb)"
TOKENVEND_DB=postgresql://tv@127.0.0.1:1/tv run pg backup "$tmp/x.db"
check "a PostgreSQL store: exit 2 pointing to pg_dump, no file" \
    $([ $rc -eq 2 ] && grep -q 'pg_dump -Fc' "$tmp/pg.err" && [ ! -e "$tmp/x.db" ]; echo $?) "$(detail pg)"

run migrate migrate
printf '%s\n' 'a-long-enough-password' | TOKENVEND_ARGON2=t=1,m=1024 "$TV" account add alice >/dev/null 2>&1

(umask 000 && "$TV" backup "$tmp/b1.db" >"$tmp/b1.out" 2>"$tmp/b1.err")
rc=$?
check "backup: exit 0, JSON with file, bytes and pages" \
    $([ $rc -eq 0 ] && json_ok "$tmp/b1.out" "o.file === '$tmp/b1.db' && o.bytes === $(stat -c %s "$tmp/b1.db" 2>/dev/null || echo -1) && o.pages > 0"; echo $?) "$(detail b1)"
check "backup: mode 0600 under umask 000" $([ "$(stat -c %a "$tmp/b1.db")" = 600 ]; echo $?) "$(stat -c %a "$tmp/b1.db")"
check "backup: a standalone file (no -wal, -journal or .tmp beside it)" \
    $([ "$(ls "$tmp" | grep -c '^b1\.db')" = 1 ]; echo $?) "$(ls "$tmp")"
r=$(TOKENVEND_DB=$tmp/b1.db "$TV" account list 2>/dev/null)
check "backup: opens as a database with the account" $([[ $r == *'"alice"'* ]]; echo $?) "$r"

sum=$(sha256sum <"$tmp/b1.db")
run exists backup "$tmp/b1.db"
check "FILE exists: exit 2 (conflict), FILE unchanged" \
    $([ $rc -eq 2 ] && grep -q '"code":"conflict"' "$tmp/exists.err" && [ "$(sha256sum <"$tmp/b1.db")" = "$sum" ]; echo $?) "$(detail exists)"
echo leftover >"$tmp/b2.db.tmp"
run tmpexists backup "$tmp/b2.db"
check "FILE.tmp exists: exit 2 naming it, left alone, no FILE" \
    $([ $rc -eq 2 ] && grep -q 'b2.db.tmp exists' "$tmp/tmpexists.err" && [ "$(cat "$tmp/b2.db.tmp")" = leftover ] && [ ! -e "$tmp/b2.db" ]; echo $?) "$(detail tmpexists)"
mkdir "$tmp/adir"
run isdir backup "$tmp/adir" --force
check "FILE is a directory: exit 2, even with --force" \
    $([ $rc -eq 2 ] && grep -q 'not a regular file' "$tmp/isdir.err"; echo $?) "$(detail isdir)"
run nodir backup "$tmp/missing/b.db"
check "FILE's directory missing: exit 1 (io_error) saying so" \
    $([ $rc -eq 1 ] && grep -q 'cannot create' "$tmp/nodir.err"; echo $?) "$(detail nodir)"
run self backup "$db" --force
check "FILE is the database: exit 2, even with --force" \
    $([ $rc -eq 2 ] && grep -q 'is the database itself' "$tmp/self.err"; echo $?) "$(detail self)"
printf '%s\n' 'another-long-password' | TOKENVEND_ARGON2=t=1,m=1024 "$TV" account add bob >/dev/null 2>&1
run force backup "$tmp/b1.db" --force
r=$(TOKENVEND_DB=$tmp/b1.db "$TV" account list 2>/dev/null)
check "--force replaces FILE with a new backup" \
    $([ $rc -eq 0 ] && [[ $r == *'"bob"'* ]]; echo $?) "$(detail force; echo "$r")"

finish
