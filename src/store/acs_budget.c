/* acs_budget table: the upstream budget's slots (store/acs_budget.h). The SQL below runs the
 * rules of core/budget.h; tests/unit/test_budget.c checks the same rules on a model. */
#include "store/acs_budget.h"

#include <string.h>

#include "core/budget.h"
#include "core/clock.h"
#include "core/err.h"
#include "pg_tables.h"
#include "store_int.h"

/* How many of slots 0..N-1 exist: fewer than N means some must be made. */
static const char SQL_COUNT[] = "SELECT count(*) FROM acs_budget WHERE op = ?1 AND slot < ?2";
/* Makes slots 0..N-1 of an op that are missing (a first use, a larger N, rows removed). */
static const char SQL_ENSURE[] =
    "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < ?2)"
    " INSERT OR IGNORE INTO acs_budget (op, slot, used_ms) SELECT ?1, i, 0 FROM s";
/* budget_slot_normalize: a stamp beyond now + hold + skew (?3) becomes now + hold (?2). */
static const char SQL_NORMALIZE[] =
    "UPDATE acs_budget SET used_ms = ?2 WHERE op = ?1 AND used_ms > ?3";
/* budget_slot_free (used <= now - W, ?4), oldest first, stamped now + hold (?2). */
static const char SQL_TAKE[] =
    "UPDATE acs_budget SET used_ms = ?2 WHERE op = ?1 AND slot IN (SELECT slot FROM acs_budget"
    " WHERE op = ?1 AND slot < ?3 AND used_ms <= ?4 ORDER BY used_ms LIMIT ?5)";
static const char SQL_OLDEST[] = "SELECT min(used_ms) FROM acs_budget WHERE op = ?1 AND slot < ?2";
static const char SQL_IN_USE[] =
    "SELECT count(*) FROM acs_budget WHERE op = ?1 AND slot < ?2 AND used_ms > ?3";

static int take_args_ok(const struct store_budget_take *t)
{
    return t != NULL && store_check_str(t->op, 1, STORE_BUDGET_OP_MAX) == 0 && t->slots >= 1 &&
           t->slots <= STORE_BUDGET_SLOTS_MAX && t->window_ms >= 1 && t->hold_ms >= 0 &&
           t->want >= 0 && t->want <= STORE_BUDGET_TAKE_MAX;
}

/* Runs a statement of the form (op, int, int...) to the end; *changes (may be NULL). */
static int run(struct store_conn *c, const char *sql, const char *op, const int64_t *v, int nv,
               int64_t *changes)
{
    sqlite3_stmt *st;
    int rc = store_stmt(c, sql, &st);

    if (rc != 0)
        return rc;
    store_bind_text(st, 1, op);
    for (int i = 0; i < nv; i++)
        sqlite3_bind_int64(st, i + 2, v[i]);
    rc = store_step_done(c, st);
    if (rc == 0 && changes != NULL)
        *changes = sqlite3_changes(c->db);
    store_stmt_done(st);
    return rc;
}

/* A one-value query of the same form; a NULL value reads as 0. */
static int one(struct store_conn *c, const char *sql, const char *op, const int64_t *v, int nv,
               int64_t *out)
{
    sqlite3_stmt *st;
    int row = 0;
    int rc = store_stmt(c, sql, &st);

    if (rc != 0)
        return rc;
    store_bind_text(st, 1, op);
    for (int i = 0; i < nv; i++)
        sqlite3_bind_int64(st, i + 2, v[i]);
    rc = store_step(c, st, &row);
    *out = rc == 0 && row ? sqlite3_column_int64(st, 0) : 0;
    store_stmt_done(st);
    return rc;
}

int store_acs_budget_take(struct store *s, struct store_budget_take *t)
{
    struct store_conn *c;
    int64_t now, stamp, cutoff, oldest = 0, have = 0;
    int rc;

    if (s == NULL || !take_args_ok(t) || (t->fake_clock && t->clock == NULL))
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_acs_budget_take(s, t);
    if ((rc = store_write_begin(s, &c)) != 0)
        return rc;
    /* The clock is read once the writer lock is held: a take that waited for another
     * process's transaction still stamps its slots with the time they are really granted.
     * The host's clock: every process on the file reads the same one. */
    now = t->fake_clock ? t->clock(t->clock_arg) : clock_wall_ms();
    stamp = budget_slot_stamp(now, t->hold_ms);
    cutoff = budget_add(now, -t->window_ms);
    t->now_ms = now;
    t->got = t->next_free_ms = t->in_use = 0;
    /* Rows may go while processes run (an operator empties the transient table, a restore):
     * a take that finds fewer than N makes them again rather than finding no slot for ever. */
    if (!t->ensure)
        rc = one(c, SQL_COUNT, t->op, (int64_t[]){t->slots}, 1, &have);
    if (rc == 0 && (t->ensure || have < t->slots))
        rc = run(c, SQL_ENSURE, t->op, (int64_t[]){t->slots}, 1, NULL);
    if (rc == 0)
        rc = run(c, SQL_NORMALIZE, t->op, (int64_t[]){stamp, budget_add(stamp, BUDGET_SKEW_MS)}, 2,
                 NULL);
    if (rc == 0 && t->want > 0)
        rc = run(c, SQL_TAKE, t->op, (int64_t[]){stamp, t->slots, cutoff, t->want}, 4, &t->got);
    if (rc == 0 && t->got < t->want) {
        rc = one(c, SQL_OLDEST, t->op, (int64_t[]){t->slots}, 1, &oldest);
        t->next_free_ms = budget_next_free(oldest, t->window_ms);
    }
    if (rc == 0)
        rc = one(c, SQL_IN_USE, t->op, (int64_t[]){t->slots, cutoff}, 2, &t->in_use);
    return store_write_end(s, c, rc);
}
