/* login_failures table on PostgreSQL (login_failures.c is the SQLite sibling; the public
 * functions there check their arguments and call these). SQLite serialises the read, test and
 * write of a name's state with its single writer; here a transaction-scoped advisory lock on
 * the name does it, across every replica on the database, and no more widely. */
#include <string.h>

#include "core/err.h"
#include "pg_int.h"
#include "pg_tables.h"
#include "store/login_failures.h"

/* The lock's key: a 64-bit hash of the name in a namespace of its own (the seed), so it does
 * not meet the migrations' lock or another table's. */
static const char SQL_LOCK[] = "SELECT pg_advisory_xact_lock(hashtextextended($1, 7342))";
static const char SQL_GET[] = "SELECT tat_ms FROM login_failures WHERE name = $1";
static const char SQL_PUT[] = "INSERT INTO login_failures (name, tat_ms) VALUES ($1, $2)"
                              " ON CONFLICT (name) DO UPDATE SET tat_ms = excluded.tat_ms";
/* Pruning takes only rows no other transaction holds (SKIP LOCKED): a DELETE that waited for
 * them could deadlock with an add that holds one row and waits for this prune's (40P01). A
 * skipped row is being written by its own add or refund, which prunes after it commits. */
static const char SQL_PRUNE[] = "DELETE FROM login_failures WHERE name IN (SELECT name FROM"
                                " login_failures WHERE tat_ms <= $1 FOR UPDATE SKIP LOCKED)";
/* After one add or refund: a bounded batch, so a backlog costs no single request much and
 * still shrinks faster than one add can grow the table. */
static const char SQL_PRUNE_SOME[] =
    "DELETE FROM login_failures WHERE name IN (SELECT name FROM login_failures"
    " WHERE tat_ms <= $1 LIMIT 64 FOR UPDATE SKIP LOCKED)";
static const char SQL_COUNT[] = "SELECT count(*) FROM login_failures";

int pgstore_login_failure_get(struct store *s, const char *name, int64_t *tat_ms)
{
    int64_t v = 0;
    int has = 0;
    int rc = pgs_query_int64(s, SQL_GET, name, &v, &has);

    if (rc == 0)
        *tat_ms = has ? v : 0;
    return rc;
}

/* Inside a transaction: takes the name's lock, then reads its tat (0 when none). */
static int tat_lock_read(struct pgpool_tx *tx, const char *name, int64_t *tat)
{
    struct store_param p[] = {STORE_TEXT(name), STORE_END};
    PGresult *r = NULL;
    int rc = pgs_tx_exec(tx, SQL_LOCK, p, NULL);

    if (rc == 0)
        rc = pgs_tx_exec(tx, SQL_GET, p, &r);
    *tat = rc == 0 && PQntuples(r) > 0 ? pgs_col_int64(r, 0, 0) : 0;
    PQclear(r);
    return rc;
}

static int tat_write(struct pgpool_tx *tx, const char *name, int64_t tat)
{
    struct store_param p[] = {STORE_TEXT(name), STORE_INT64(tat), STORE_END};

    return pgs_tx_exec(tx, SQL_PUT, p, NULL);
}

/* As on SQLite, the table stays as small as the names that failed within one window. Run
 * after the name's transaction committed, never inside it: that one holds the name's row, and
 * two such transactions pruning each other's rows deadlocked. The add or refund has already
 * taken effect, so a failed prune (logged by the pool) does not fail it; the next one catches
 * up. */
static void prune_after(struct store *s, int64_t now_ms)
{
    struct store_param p[] = {STORE_INT64(now_ms), STORE_END};

    (void)pgs_exec(s, SQL_PRUNE_SOME, p, PGPOOL_RETRY, NULL);
}

/* The arguments and results of the transaction bodies below; the results are set on every
 * run (a body may run twice). */
struct lf_arg {
    const char *name;
    const struct ratelimit *rl;
    int64_t now_ms;
    int64_t tat; /* add: the state after (or the full one that refused) */
    int wrote;   /* refund: a row was written */
};

static int add_tx(struct pgpool_tx *tx, void *arg)
{
    struct lf_arg *a = arg;
    int rc = tat_lock_read(tx, a->name, &a->tat);

    if (rc == 0 && !ratelimit_fits(a->rl, a->tat, a->now_ms, NULL))
        return TV_ERR_RATE_LIMITED;
    if (rc == 0) {
        a->tat = ratelimit_take(a->rl, a->tat, a->now_ms);
        rc = tat_write(tx, a->name, a->tat);
    }
    return rc;
}

int pgstore_login_failure_add(struct store *s, const char *name, const struct ratelimit *rl,
                              int64_t now_ms, int64_t *tat_ms)
{
    struct lf_arg a = {.name = name, .rl = rl, .now_ms = now_ms};
    int rc = pgpool_tx_run(s->pg, add_tx, &a);

    if (rc == 0)
        prune_after(s, now_ms);
    if ((rc == 0 || rc == TV_ERR_RATE_LIMITED) && tat_ms != NULL)
        *tat_ms = a.tat;
    return rc;
}

static int refund_tx(struct pgpool_tx *tx, void *arg)
{
    struct lf_arg *a = arg;
    int64_t tat = 0;
    int rc = tat_lock_read(tx, a->name, &tat);

    /* Undoing one event moves tat back by one interval; the prune after it removes a full
     * bucket. */
    a->wrote = 0;
    if (rc == 0 && tat > 0) {
        rc = tat_write(tx, a->name, tat - a->rl->interval_ms);
        a->wrote = rc == 0;
    }
    return rc;
}

int pgstore_login_failure_refund(struct store *s, const char *name, const struct ratelimit *rl,
                                 int64_t now_ms)
{
    struct lf_arg a = {.name = name, .rl = rl, .now_ms = now_ms};
    int rc = pgpool_tx_run(s->pg, refund_tx, &a);

    if (rc == 0 && a.wrote)
        prune_after(s, now_ms);
    return rc;
}

static int normalize_tx(struct pgpool_tx *tx, void *arg)
{
    struct lf_arg *a = arg;
    int64_t tat = 0, norm;
    int rc = tat_lock_read(tx, a->name, &tat);

    norm = ratelimit_normalize(a->rl, tat, a->now_ms);
    if (rc == 0 && norm != tat)
        rc = tat_write(tx, a->name, norm);
    return rc;
}

int pgstore_login_failure_normalize(struct store *s, const char *name, const struct ratelimit *rl,
                                    int64_t now_ms)
{
    struct lf_arg a = {.name = name, .rl = rl, .now_ms = now_ms};

    return pgpool_tx_run(s->pg, normalize_tx, &a);
}

int pgstore_login_failure_prune(struct store *s, int64_t now_ms, int *removed)
{
    struct store_param p[] = {STORE_INT64(now_ms), STORE_END};
    int64_t changes = 0;
    int rc = pgs_write_run(s, SQL_PRUNE, p, &changes);

    if (rc == 0 && removed != NULL)
        *removed = (int)changes;
    return rc;
}

int pgstore_login_failure_count(struct store *s, int64_t *n)
{
    return pgs_count(s, SQL_COUNT, n);
}
