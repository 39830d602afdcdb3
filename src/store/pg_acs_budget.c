/* acs_budget table on PostgreSQL (acs_budget.c is the SQLite sibling and checks the
 * arguments). SQLite serialises takers with its single writer; here each taker locks only the
 * slots it picks, FOR UPDATE SKIP LOCKED: two replicas taking at once get different slots and
 * neither waits, and a slot another taker holds is simply not free for this one. */
#include "core/budget.h"
#include "core/err.h"
#include "pg_int.h"
#include "pg_tables.h"
#include "store/acs_budget.h"

/* The database server's clock, in ms since the epoch: every replica stamps with the same
 * clock, so one whose own clock runs ahead cannot reuse another's slot early.
 * clock_timestamp(), not now(): the time of the read, not of the transaction's start. */
static const char SQL_NOW[] = "SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint";
static const char SQL_COUNT[] = "SELECT count(*) FROM acs_budget WHERE op = $1 AND slot < $2";
static const char SQL_ENSURE[] =
    "INSERT INTO acs_budget (op, slot, used_ms) SELECT $1, g, 0 FROM"
    " generate_series(0, $2::integer - 1) g ON CONFLICT (op, slot) DO NOTHING";
/* Normalising skips locked slots too: a stamp a concurrent taker is writing is fresh, and
 * waiting for it could only slow both down. */
static const char SQL_NORMALIZE[] =
    "UPDATE acs_budget SET used_ms = $2 WHERE op = $1 AND slot IN (SELECT slot FROM acs_budget"
    " WHERE op = $1 AND used_ms > $3 FOR UPDATE SKIP LOCKED)";
static const char SQL_TAKE[] =
    "UPDATE acs_budget SET used_ms = $2 WHERE op = $1 AND slot IN (SELECT slot FROM acs_budget"
    " WHERE op = $1 AND slot < $3 AND used_ms <= $4 ORDER BY used_ms LIMIT $5"
    " FOR UPDATE SKIP LOCKED)";
static const char SQL_OLDEST[] =
    "SELECT coalesce(min(used_ms), 0) FROM acs_budget WHERE op = $1 AND slot < $2";
static const char SQL_IN_USE[] =
    "SELECT count(*) FROM acs_budget WHERE op = $1 AND slot < $2 AND used_ms > $3";

static int one(struct pgpool_tx *tx, const char *sql, const struct store_param *p, int64_t *out)
{
    PGresult *r = NULL;
    int rc = pgs_tx_exec(tx, sql, p, &r);

    *out = rc == 0 && PQntuples(r) > 0 ? pgs_col_int64(r, 0, 0) : 0;
    PQclear(r);
    return rc;
}

/* The body may run twice (pgpool_tx_run): it sets every result on each run. */
static int take_tx(struct pgpool_tx *tx, void *arg)
{
    struct store_budget_take *t = arg;
    PGresult *r = NULL;
    int64_t now = 0, stamp, cutoff, oldest = 0, have = 0;
    int rc = 0;

    if (t->fake_clock)
        now = t->clock(t->clock_arg);
    else if ((rc = one(tx, SQL_NOW, NULL, &now)) != 0)
        return rc;
    stamp = budget_slot_stamp(now, t->hold_ms);
    cutoff = budget_add(now, -t->window_ms);
    t->now_ms = now;
    t->got = t->next_free_ms = t->in_use = 0;
    {
        /* Rows removed while replicas run (an operator, a restore) are made again. */
        struct store_param p[] = {STORE_TEXT(t->op), STORE_INT64(t->slots), STORE_END};
        if (!t->ensure)
            rc = one(tx, SQL_COUNT, p, &have);
        if (rc == 0 && (t->ensure || have < t->slots))
            rc = pgs_tx_exec(tx, SQL_ENSURE, p, NULL);
    }
    if (rc == 0) {
        struct store_param p[] = {STORE_TEXT(t->op), STORE_INT64(stamp),
                                  STORE_INT64(budget_add(stamp, BUDGET_SKEW_MS)), STORE_END};
        rc = pgs_tx_exec(tx, SQL_NORMALIZE, p, NULL);
    }
    if (rc == 0 && t->want > 0) {
        struct store_param p[] = {STORE_TEXT(t->op),   STORE_INT64(stamp),   STORE_INT64(t->slots),
                                  STORE_INT64(cutoff), STORE_INT64(t->want), STORE_END};
        rc = pgs_tx_exec(tx, SQL_TAKE, p, &r);
        if (rc == 0)
            t->got = pgs_changes(r);
        PQclear(r);
    }
    if (rc == 0 && t->got < t->want) {
        struct store_param p[] = {STORE_TEXT(t->op), STORE_INT64(t->slots), STORE_END};
        rc = one(tx, SQL_OLDEST, p, &oldest);
        t->next_free_ms = budget_next_free(oldest, t->window_ms);
    }
    if (rc == 0) {
        struct store_param p[] = {STORE_TEXT(t->op), STORE_INT64(t->slots), STORE_INT64(cutoff),
                                  STORE_END};
        rc = one(tx, SQL_IN_USE, p, &t->in_use);
    }
    return rc;
}

int pgstore_acs_budget_take(struct store *s, struct store_budget_take *t)
{
    return pgpool_tx_run(s->pg, take_tx, t);
}
