/* login_failures table: one GCRA state (tat_ms) per user name. */
#include <string.h>

#include "core/err.h"
#include "pg_tables.h"
#include "store/login_failures.h"
#include "store_int.h"

static const char SQL_GET[] = "SELECT tat_ms FROM login_failures WHERE name = ?1";
static const char SQL_PUT[] = "INSERT INTO login_failures (name, tat_ms) VALUES (?1, ?2)"
                              " ON CONFLICT (name) DO UPDATE SET tat_ms = excluded.tat_ms";
static const char SQL_PRUNE[] = "DELETE FROM login_failures WHERE tat_ms <= ?1";
static const char SQL_COUNT[] = "SELECT count(*) FROM login_failures";

int store_login_failure_get(struct store *s, const char *name, int64_t *tat_ms)
{
    int64_t v = 0;
    int has = 0;
    int rc;

    if (store_check_str(name, 1, STORE_NAME_MAX) != 0 || tat_ms == NULL)
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_login_failure_get(s, name, tat_ms);
    rc = store_query_int64(s, SQL_GET, name, &v, &has);
    if (rc == 0)
        *tat_ms = has ? v : 0;
    return rc;
}

/* On the writer inside a transaction: the row's tat, 0 when none. */
static int tat_read(struct store_conn *c, const char *name, int64_t *tat)
{
    sqlite3_stmt *st;
    int row = 0;
    int rc = store_stmt(c, SQL_GET, &st);

    if (rc != 0)
        return rc;
    store_bind_text(st, 1, name);
    rc = store_step(c, st, &row);
    *tat = rc == 0 && row ? sqlite3_column_int64(st, 0) : 0;
    store_stmt_done(st);
    return rc;
}

static int tat_write(struct store_conn *c, const char *name, int64_t tat)
{
    sqlite3_stmt *st;
    int rc = store_stmt(c, SQL_PUT, &st);

    if (rc != 0)
        return rc;
    store_bind_text(st, 1, name);
    sqlite3_bind_int64(st, 2, tat);
    rc = store_step_done(c, st);
    store_stmt_done(st);
    return rc;
}

static int prune(struct store_conn *c, int64_t now_ms, int *removed)
{
    sqlite3_stmt *st;
    int rc = store_stmt(c, SQL_PRUNE, &st);

    if (rc != 0)
        return rc;
    sqlite3_bind_int64(st, 1, now_ms);
    rc = store_step_done(c, st);
    if (rc == 0 && removed != NULL)
        *removed = sqlite3_changes(c->db);
    store_stmt_done(st);
    return rc;
}

int store_login_failure_add(struct store *s, const char *name, const struct ratelimit *rl,
                            int64_t now_ms, int64_t *tat_ms)
{
    struct store_conn *c;
    int64_t tat = 0;
    int rc;

    if (store_check_str(name, 1, STORE_NAME_MAX) != 0 || rl == NULL)
        return TV_ERR_INVALID;
    if (rl->off)
        return 0;
    if (s->kind == STORE_PG)
        return pgstore_login_failure_add(s, name, rl, now_ms, tat_ms);
    if ((rc = store_write_begin(s, &c)) != 0)
        return rc;
    rc = tat_read(c, name, &tat);
    /* Read, test and take in one writer transaction: two attempts racing past a caller's
     * earlier check cannot both be counted into a full bucket. */
    if (rc == 0 && !ratelimit_fits(rl, tat, now_ms, NULL))
        rc = TV_ERR_RATE_LIMITED;
    if (rc == 0) {
        tat = ratelimit_take(rl, tat, now_ms);
        rc = tat_write(c, name, tat);
    }
    /* Pruning here keeps the table as small as the names that failed within one window,
     * with no extra writer transaction; the index on tat_ms keeps it cheap. */
    if (rc == 0)
        rc = prune(c, now_ms, NULL);
    rc = store_write_end(s, c, rc);
    if ((rc == 0 || rc == TV_ERR_RATE_LIMITED) && tat_ms != NULL)
        *tat_ms = tat;
    return rc;
}

int store_login_failure_refund(struct store *s, const char *name, const struct ratelimit *rl,
                               int64_t now_ms)
{
    struct store_conn *c;
    int64_t tat = 0;
    int rc;

    if (store_check_str(name, 1, STORE_NAME_MAX) != 0 || rl == NULL)
        return TV_ERR_INVALID;
    if (rl->off)
        return 0;
    if (s->kind == STORE_PG)
        return pgstore_login_failure_refund(s, name, rl, now_ms);
    if ((rc = store_write_begin(s, &c)) != 0)
        return rc;
    rc = tat_read(c, name, &tat);
    /* Undoing one event moves tat back by one interval; a tat that lands at or before now is a
     * full bucket, which the prune below removes (no row means the same). */
    if (rc == 0 && tat > 0) {
        rc = tat_write(c, name, tat - rl->interval_ms);
        if (rc == 0)
            rc = prune(c, now_ms, NULL);
    }
    return store_write_end(s, c, rc);
}

int store_login_failure_normalize(struct store *s, const char *name, const struct ratelimit *rl,
                                  int64_t now_ms)
{
    struct store_conn *c;
    int64_t tat = 0, norm;
    int rc;

    if (store_check_str(name, 1, STORE_NAME_MAX) != 0 || rl == NULL)
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_login_failure_normalize(s, name, rl, now_ms);
    if ((rc = store_write_begin(s, &c)) != 0)
        return rc;
    rc = tat_read(c, name, &tat);
    norm = ratelimit_normalize(rl, tat, now_ms);
    if (rc == 0 && norm != tat)
        rc = tat_write(c, name, norm);
    return store_write_end(s, c, rc);
}

int store_login_failure_prune(struct store *s, int64_t now_ms, int *removed)
{
    struct store_conn *c;
    int rc;

    if (s->kind == STORE_PG)
        return pgstore_login_failure_prune(s, now_ms, removed);
    rc = store_write_begin(s, &c);
    if (rc != 0)
        return rc;
    rc = prune(c, now_ms, removed);
    return store_write_end(s, c, rc);
}

int store_login_failure_count(struct store *s, int64_t *n)
{
    int has = 0;

    if (n == NULL)
        return TV_ERR_INVALID;
    *n = 0;
    if (s->kind == STORE_PG)
        return pgstore_login_failure_count(s, n);
    return store_query_int64(s, SQL_COUNT, NULL, n, &has);
}
