/* The `db` setting names a SQLite file by its path or a PostgreSQL database by a
 * postgresql:// or postgres:// URI, which may carry a password. These helpers tell the forms
 * apart and make a copy that is safe to log or print. Pure functions, thread-safe. */
#ifndef TV_CORE_DBURI_H
#define TV_CORE_DBURI_H

#include <stddef.h>

/* Whether db has the form of a PostgreSQL URI (postgresql:// or postgres://). */
int dburi_is_pg(const char *db);

/* Copies uri into out (cap bytes) with its password replaced by "***", both the one after
 * user: and a password= query parameter, so it may be logged. 0, TV_ERR_INVALID (NULL), or
 * TV_ERR_TOO_LARGE (out then holds ""). */
int dburi_redact(const char *uri, char *out, size_t cap);

/* The db setting as it may be shown: a path as it is, a URI redacted (a placeholder when it is
 * too long for out). out is always terminated. */
void dburi_display(const char *db, char *out, size_t cap);

#endif
