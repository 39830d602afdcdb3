/* Online backup of the SQLite store into a new file (`tokenvend backup`). Not for the PostgreSQL
 * store, whose backups are pg_dump's (README "Backup and restore"). Thread-safe: the backup uses
 * its own connections, never the store's writer or readers. */
#ifndef TV_STORE_BACKUP_H
#define TV_STORE_BACKUP_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* store_backup flags. */
#define STORE_BACKUP_FORCE 1 /* replace dest when it exists */

/* What one backup wrote. */
struct store_backup_result {
    int64_t bytes; /* size of the backup file */
    int64_t pages; /* database pages copied */
};

/* Copies the database s is open on into the file dest, consistently while other connections and
 * processes go on reading and writing it: one read transaction on the source holds a snapshot
 * for the whole copy (in WAL mode it blocks no writer), taken over in steps of pages. The copy
 * goes to "dest.tmp" (created 0600; an existing one is refused: another backup, or one that was
 * interrupted), has its transient rows removed (token_cache and acs_budget, as store copy leaves
 * them out: a restored kept token could have been revoked at ACS since), is checked (PRAGMA
 * quick_check) and fsync'd, then renamed to dest and its
 * directory fsync'd, so dest is either the whole backup or absent. The backup is a standalone
 * file in rollback-journal mode (no -wal beside it). Without STORE_BACKUP_FORCE an existing dest
 * is refused, and dest is never the database itself nor its -wal/-shm (beside the database's
 * resolved path too: SQLite keeps them beside a symbolic link's target).
 * 0 with *res filled; on failure one line in err (errcap bytes), dest untouched, no dest.tmp
 * left behind, and: TV_ERR_INVALID (bad arguments, dest is the database, dest names no regular
 * file), TV_ERR_CONFLICT (dest or dest.tmp exists), TV_ERR_CONFIG (a PostgreSQL store),
 * TV_ERR_UNAVAILABLE (the database stayed locked), TV_ERR_IO (a file or SQLite failure).
 * Blocking: as long as reading the database takes. */
int store_backup(struct store *s, const char *dest, int flags, struct store_backup_result *res,
                 char *err, size_t errcap);

#endif
