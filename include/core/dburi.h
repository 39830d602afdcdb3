/* The `db` setting names a SQLite file by its path or a PostgreSQL database by a
 * postgresql:// or postgres:// URI, which may carry a password. These helpers tell the forms
 * apart and make a copy that is safe to log or print. Pure functions, thread-safe. */
#ifndef TV_CORE_DBURI_H
#define TV_CORE_DBURI_H

#include <stddef.h>

/* Whether db has the form of a PostgreSQL URI (postgresql:// or postgres://). */
int dburi_is_pg(const char *db);

/* Whether db is a libpq key=value connection string ("host=... dbname=..."), which tokenvend
 * does not take as a store (it would become a SQLite file named after it): the URI form is. */
int dburi_is_conninfo(const char *db);

/* Whether db (a URI or a key=value string) carries a password (or a client key's password), so
 * that a file holding it must be private. An unreadable one counts as secret. */
int dburi_has_secret(const char *db);

/* What libpq understands of uri (a URI, or key=value), rebuilt for logs: user, host, port,
 * database and the other parameters, every password as "***"; built from libpq's parse, never
 * by editing the text, so no spelling of a parameter shows a secret. A string libpq cannot read,
 * or one with more than one '@', shows the scheme only. 0, TV_ERR_INVALID (NULL), or
 * TV_ERR_TOO_LARGE (out then holds ""). */
int dburi_redact(const char *uri, char *out, size_t cap);

/* The db setting as it may be shown: a path as it is, a URI (or key=value string) redacted (a
 * placeholder when it is too long for out). out is always terminated. */
void dburi_display(const char *db, char *out, size_t cap);

#endif
