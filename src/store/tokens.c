/* The kept token cache (include/store/tokens.h) on SQLite; pg_tokens.c is the PostgreSQL
 * sibling. Rows hold ciphertext only; the sealed bytes of a read are copied out and SQLite's
 * copy goes with the statement's reset. */
#include "store/tokens.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/err.h"
#include "pg_tokens.h"
#include "store_int.h"

static const char SQL_PUT[] =
    "INSERT INTO token_cache (acs_id, scopes, minutes, resource, issued_ms, expires_ms, sealed)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    " ON CONFLICT (acs_id, scopes, minutes) DO UPDATE SET resource = excluded.resource,"
    " issued_ms = excluded.issued_ms, expires_ms = excluded.expires_ms, sealed = excluded.sealed";
static const char SQL_GET[] = "SELECT resource, issued_ms, expires_ms, sealed FROM token_cache"
                              " WHERE acs_id = ?1 AND scopes = ?2 AND minutes = ?3";
static const char SQL_PURGE[] = "DELETE FROM token_cache WHERE acs_id = ?1";
/* The index on expires_ms finds the batch without a scan of the live rows. */
static const char SQL_PRUNE[] =
    "DELETE FROM token_cache WHERE rowid IN (SELECT rowid FROM token_cache"
    " WHERE expires_ms < ?1 ORDER BY expires_ms LIMIT ?2)";
static const char SQL_COUNT[] = "SELECT count(*) FROM token_cache";

static int check_key(const char *acs_id, const char *scopes)
{
    if (store_check_str(acs_id, 1, STORE_ID_MAX) != 0 || scopes == NULL ||
        strnlen(scopes, STORE_TOKEN_SCOPES_MAX + 1) > STORE_TOKEN_SCOPES_MAX)
        return TV_ERR_INVALID;
    return 0;
}

int store_token_put(struct store *s, const struct store_token *t)
{
    if (t == NULL || check_key(t->acs_id, t->scopes) != 0 ||
        store_check_str(t->resource, 1, STORE_ID_MAX) != 0 || t->sealed == NULL ||
        t->sealed_len == 0 || t->sealed_len > STORE_TOKEN_SEALED_MAX)
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_token_put(s, t);
    {
        struct store_param p[] = {STORE_TEXT(t->acs_id),
                                  STORE_TEXT(t->scopes),
                                  STORE_INT64(t->minutes),
                                  STORE_TEXT(t->resource),
                                  STORE_INT64(t->issued_ms),
                                  STORE_INT64(t->expires_ms),
                                  STORE_BLOB(t->sealed, t->sealed_len),
                                  STORE_END};
        return store_write_run(s, SQL_PUT, store_bind_params, p, NULL);
    }
}

static int token_row(sqlite3_stmt *st, void *out)
{
    struct store_token *t = out;
    const void *p = sqlite3_column_blob(st, 3);
    size_t n = (size_t)sqlite3_column_bytes(st, 3);
    int rc = store_col_text(st, 0, t->resource, sizeof t->resource);

    if (rc != 0)
        return rc;
    if (n == 0 || n > STORE_TOKEN_SEALED_MAX || p == NULL)
        return TV_ERR_INTERNAL;
    if ((t->sealed = malloc(n)) == NULL)
        return TV_ERR_NOMEM;
    memcpy(t->sealed, p, n);
    t->sealed_len = n;
    t->issued_ms = sqlite3_column_int64(st, 1);
    t->expires_ms = sqlite3_column_int64(st, 2);
    return 0;
}

int store_token_get(struct store *s, const char *acs_id, const char *scopes, int minutes,
                    struct store_token *out)
{
    struct store_token got;
    int rc;

    if (out == NULL || check_key(acs_id, scopes) != 0)
        return TV_ERR_INVALID;
    memset(&got, 0, sizeof got);
    memcpy(got.acs_id, acs_id, strlen(acs_id) + 1);
    memcpy(got.scopes, scopes, strlen(scopes) + 1);
    got.minutes = minutes;
    if (s->kind == STORE_PG) {
        rc = pgstore_token_get(s, acs_id, scopes, minutes, &got);
    } else {
        struct store_param p[] = {STORE_TEXT(acs_id), STORE_TEXT(scopes), STORE_INT64(minutes),
                                  STORE_END};
        rc = store_read_one(s, SQL_GET, store_bind_params, p, token_row, &got);
    }
    if (rc != 0) {
        store_token_release(&got);
        return rc;
    }
    *out = got;
    return 0;
}

void store_token_release(struct store_token *t)
{
    if (t == NULL || t->sealed == NULL)
        return;
    OPENSSL_cleanse(t->sealed, t->sealed_len);
    free(t->sealed);
    t->sealed = NULL;
    t->sealed_len = 0;
}

int store_token_purge(struct store *s, const char *acs_id, int64_t *removed)
{
    struct store_write_info info = {0, 0};
    int rc;

    if (store_check_str(acs_id, 1, STORE_ID_MAX) != 0)
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_token_purge(s, acs_id, removed);
    rc = store_write_run(s, SQL_PURGE, store_bind_key, acs_id, &info);
    if (rc == 0 && removed != NULL)
        *removed = info.changes;
    return rc;
}

int store_token_prune(struct store *s, int64_t before_ms, int limit, int64_t *removed)
{
    struct store_param p[] = {STORE_INT64(before_ms), STORE_INT64(limit), STORE_END};
    struct store_write_info info = {0, 0};
    int rc;

    if (limit < 1 || limit > STORE_TOKEN_PRUNE_MAX)
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_token_prune(s, before_ms, limit, removed);
    rc = store_write_run(s, SQL_PRUNE, store_bind_params, p, &info);
    if (rc == 0 && removed != NULL)
        *removed = info.changes;
    return rc;
}

int store_token_count(struct store *s, int64_t *n)
{
    if (s->kind == STORE_PG)
        return pgstore_token_count(s, n);
    return store_count(s, SQL_COUNT, n);
}
