/* A look into an existing SQLite database without changing it, for `tokenvend config check`:
 * the schema version and one meta value, so a binary older than the database or a secret key
 * that does not open the stored session key is refused before serve would refuse it. Never
 * creates, migrates or writes the file. Blocking; thread-safe (one connection per call). */
#ifndef TV_STORE_PEEK_H
#define TV_STORE_PEEK_H

#include <stddef.h>

/* What store_peek found. */
struct store_peek {
    int version;  /* schema version as store_schema_version reports it (0: no schema) */
    int latest;   /* the newest version this binary knows */
    int foreign;  /* version is one this binary does not know (store_open refuses it) */
    int has_meta; /* the meta value asked for is present (in buf, len bytes) */
    size_t len;   /* its length */
};

/* Opens the SQLite file at path read-only (SQLITE_OPEN_READONLY: a missing file is never
 * created), reads its schema version and, when meta_key is not NULL and the meta table exists,
 * that meta value into buf[cap]. 0; TV_ERR_NOT_FOUND when stat finds no file at path (none, or
 * none this user may reach: serve creates it or says why it cannot); TV_ERR_TOO_LARGE when the
 * value does not fit; another code with one line in err (errcap bytes) when the file cannot be read
 * as a database. path must not be a PostgreSQL URI. */
int store_peek(const char *path, const char *meta_key, void *buf, size_t cap,
               struct store_peek *out, char *err, size_t errcap);

#endif
