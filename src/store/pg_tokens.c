/* The kept token cache on PostgreSQL (tokens.c is the SQLite sibling). Each function is one
 * statement; the sealed bytes travel as binary BYTEA parameters and come back through
 * pgs_col_bytea. */
#include "pg_tokens.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "pg_int.h"

static const char SQL_PUT[] =
    "INSERT INTO token_cache (acs_id, scopes, minutes, resource, issued_ms, expires_ms, sealed)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7)"
    " ON CONFLICT (acs_id, scopes, minutes) DO UPDATE SET resource = EXCLUDED.resource,"
    " issued_ms = EXCLUDED.issued_ms, expires_ms = EXCLUDED.expires_ms, sealed = EXCLUDED.sealed";
static const char SQL_GET[] = "SELECT resource, issued_ms, expires_ms, sealed FROM token_cache"
                              " WHERE acs_id = $1 AND scopes = $2 AND minutes = $3";
static const char SQL_PURGE[] = "DELETE FROM token_cache WHERE acs_id = $1";
static const char SQL_PRUNE[] =
    "DELETE FROM token_cache WHERE ctid IN (SELECT ctid FROM token_cache"
    " WHERE expires_ms < $1 ORDER BY expires_ms LIMIT $2)";
static const char SQL_COUNT[] = "SELECT count(*) FROM token_cache";

int pgstore_token_put(struct store *s, const struct store_token *t)
{
    struct store_param p[] = {STORE_TEXT(t->acs_id),
                              STORE_TEXT(t->scopes),
                              STORE_INT64(t->minutes),
                              STORE_TEXT(t->resource),
                              STORE_INT64(t->issued_ms),
                              STORE_INT64(t->expires_ms),
                              STORE_BLOB(t->sealed, t->sealed_len),
                              STORE_END};

    /* An upsert of the same values: safe to repeat on a new connection. */
    return pgs_write_run(s, SQL_PUT, p, NULL);
}

static int token_row(const PGresult *r, int row, void *out)
{
    struct store_token *t = out;
    uint8_t *buf;
    size_t n = 0;
    int rc = pgs_col_text(r, row, 0, t->resource, sizeof t->resource);

    if (rc != 0)
        return rc;
    if ((buf = malloc(STORE_TOKEN_SEALED_MAX)) == NULL)
        return TV_ERR_NOMEM;
    if ((rc = pgs_col_bytea(r, row, 3, buf, STORE_TOKEN_SEALED_MAX, &n)) != 0 || n == 0) {
        free(buf);
        return rc != 0 ? rc : TV_ERR_INTERNAL;
    }
    t->sealed = buf;
    t->sealed_len = n;
    t->issued_ms = pgs_col_int64(r, row, 1);
    t->expires_ms = pgs_col_int64(r, row, 2);
    return 0;
}

int pgstore_token_get(struct store *s, const char *acs_id, const char *scopes, int minutes,
                      struct store_token *out)
{
    struct store_param p[] = {STORE_TEXT(acs_id), STORE_TEXT(scopes), STORE_INT64(minutes),
                              STORE_END};

    return pgs_read_one(s, SQL_GET, p, token_row, out);
}

int pgstore_token_purge(struct store *s, const char *acs_id, int64_t *removed)
{
    struct store_param p[] = {STORE_TEXT(acs_id), STORE_END};
    int64_t n = 0;
    int rc = pgs_write_run(s, SQL_PURGE, p, &n);

    if (rc == 0 && removed != NULL)
        *removed = n;
    return rc;
}

int pgstore_token_prune(struct store *s, int64_t before_ms, int limit, int64_t *removed)
{
    struct store_param p[] = {STORE_INT64(before_ms), STORE_INT64(limit), STORE_END};
    int64_t n = 0;
    int rc = pgs_write_run(s, SQL_PRUNE, p, &n);

    if (rc == 0 && removed != NULL)
        *removed = n;
    return rc;
}

int pgstore_token_count(struct store *s, int64_t *n)
{
    return pgs_count(s, SQL_COUNT, n);
}
