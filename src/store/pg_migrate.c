/* Schema migrations of the PostgreSQL store (see pg_migrate.h). Each migration's transaction
 * takes pg_advisory_xact_lock first: a runner that waited for another one then sees its rows
 * in schema_migrations and skips what it applied. The lock is released with the transaction,
 * so a runner that dies holding it never blocks the others. Reading the version takes no lock
 * and creates nothing: replicas usually connect as a role that may only read and write rows. */
#include "pg_migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "store/migrations.h"

/* Migrations may rewrite big tables, and a runner may wait for another's: longer than the
 * pool's statement timeout, which is sized for requests, yet never without end. */
#define PGMIG_TIMEOUT_MS 600000L
static const char SQL_LOCK[] = "SELECT pg_advisory_xact_lock($1::bigint)";
/* Whether the bookkeeping table exists (in the search path, as every other statement finds
 * it), and whether this role may read it. */
static const char SQL_PROBE[] = "SELECT c IS NOT NULL, c IS NOT NULL AND has_table_privilege(c, "
                                "'SELECT') FROM (SELECT to_regclass('schema_migrations') AS c) t";
/* Who we are and whether we may create tables where they go, to explain a failed migration. */
static const char SQL_WHO[] = "SELECT current_user, coalesce(current_schema(), ''),"
                              " coalesce(has_schema_privilege(current_schema(), 'CREATE'), false)";
static const char SQL_TABLE[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                " version INTEGER PRIMARY KEY,"
                                " name TEXT NOT NULL,"
                                " applied_ms BIGINT NOT NULL)";
static const char SQL_VERSIONS[] = "SELECT version FROM schema_migrations ORDER BY version";
static const char SQL_HAS[] = "SELECT count(*) FROM schema_migrations WHERE version = $1::int";
static const char SQL_RECORD[] =
    "INSERT INTO schema_migrations (version, name, applied_ms) VALUES ($1::int, $2, $3::bigint)";

static int known(int v)
{
    for (size_t i = 0; i < store_pg_migrations_count; i++)
        if (store_pg_migrations[i].version == v)
            return 1;
    return 0;
}

static int latest(void)
{
    int l = 0;

    for (size_t i = 0; i < store_pg_migrations_count; i++)
        if (store_pg_migrations[i].version > l)
            l = store_pg_migrations[i].version;
    return l;
}

/* Locks, and makes the bookkeeping table when it is missing (under the lock: two CREATE TABLE
 * IF NOT EXISTS at once may both try to create it). Only then: CREATE TABLE IF NOT EXISTS
 * needs the schema's CREATE privilege even when the table is there. */
static int lock_and_table(struct pgpool_tx *tx)
{
    const char *key[] = {PGMIG_LOCK_KEY};
    PGresult *r = NULL;
    int rc = pgpool_tx_set_timeout(tx, PGMIG_TIMEOUT_MS);

    if (rc == 0)
        rc = pgpool_tx_exec(tx, SQL_LOCK, 1, key, NULL, NULL, NULL);
    if (rc == 0)
        rc = pgpool_tx_exec(tx, SQL_PROBE, 0, NULL, NULL, NULL, &r);
    if (rc == 0 && strcmp(PQgetvalue(r, 0, 0), "t") != 0)
        rc = pgpool_tx_exec(tx, SQL_TABLE, 0, NULL, NULL, NULL, NULL);
    PQclear(r);
    return rc;
}

/* The version as pgmig_version defines it, from the recorded rows (ascending). */
static int version_of(const PGresult *r)
{
    size_t k = 0;
    int complete = 0, unknown = 0, gap = 0;

    for (int i = 0; i < PQntuples(r); i++) {
        int v = (int)strtol(PQgetvalue(r, i, 0), NULL, 10);
        if (!known(v))
            unknown = v; /* ascending: the last one is the highest */
        else if (!gap && k < store_pg_migrations_count && store_pg_migrations[k].version == v) {
            complete = v;
            k++;
        } else {
            gap = 1;
        }
    }
    return unknown != 0 ? unknown : complete;
}

/* No lock: a migration still running is not seen (its transaction has not committed), which is
 * the version until it commits; pgmig_run reads again under the lock before applying. */
int pgmig_version(struct pgpool *p, int *current)
{
    PGresult *probe = NULL, *r = NULL;
    int v = 0;
    int rc = pgpool_exec(p, SQL_PROBE, 0, NULL, NULL, NULL, PGPOOL_RETRY, &probe);

    if (rc != 0)
        goto done;
    if (strcmp(PQgetvalue(probe, 0, 0), "t") != 0)
        goto done; /* no bookkeeping table: an empty database, version 0 */
    if (strcmp(PQgetvalue(probe, 0, 1), "t") != 0) {
        log_msg(LOGL_ERROR, NULL,
                "store: this PostgreSQL role may not read table schema_migrations: grant it "
                "SELECT on the tables tokenvend migrate made");
        rc = TV_ERR_CONFIG;
        goto done;
    }
    rc = pgpool_exec(p, SQL_VERSIONS, 0, NULL, NULL, NULL, PGPOOL_RETRY, &r);
    if (rc == 0)
        v = version_of(r);
done:
    if (rc == 0 && current != NULL)
        *current = v;
    PQclear(r);
    PQclear(probe);
    return rc;
}

int pgmig_has(struct pgpool *p, int version, int *has)
{
    char v[16];
    const char *vals[] = {v};
    PGresult *probe = NULL, *r = NULL;
    int found = 0;
    int rc = pgpool_exec(p, SQL_PROBE, 0, NULL, NULL, NULL, PGPOOL_RETRY, &probe);

    snprintf(v, sizeof(v), "%d", version);
    /* No bookkeeping table yet: nothing is applied (a SELECT would fail on it). */
    if (rc == 0 && strcmp(PQgetvalue(probe, 0, 0), "t") == 0) {
        rc = pgpool_exec(p, SQL_HAS, 1, vals, NULL, NULL, PGPOOL_RETRY, &r);
        if (rc == 0)
            found = strcmp(PQgetvalue(r, 0, 0), "0") != 0;
    }
    if (rc == 0)
        *has = found;
    PQclear(r);
    PQclear(probe);
    return rc;
}

/* After a migration failed: when the role may not create tables in its schema, that is the
 * cause (PostgreSQL said 42501, which the pool reports as an I/O error), and one the operator
 * fixes in the configuration. Rewrites err and returns TV_ERR_CONFIG then, else rc. */
static int explain_privilege(struct pgpool *p, const struct store_migration *m, int rc, char *err,
                             size_t errcap)
{
    PGresult *r = NULL;

    if (rc != TV_ERR_IO || pgpool_exec(p, SQL_WHO, 0, NULL, NULL, NULL, PGPOOL_RETRY, &r) != 0)
        return rc;
    if (strcmp(PQgetvalue(r, 0, 2), "t") != 0) {
        snprintf(err, errcap,
                 "PostgreSQL migration %s needs to create tables, and role %.64s may not create "
                 "in schema %.64s: run `tokenvend migrate` as a role that may (the schema's "
                 "owner), and give this one only SELECT, INSERT, UPDATE, DELETE on the tables",
                 m->name, PQgetvalue(r, 0, 0),
                 PQgetvalue(r, 0, 1)[0] != '\0' ? PQgetvalue(r, 0, 1) : "(none in search_path)");
        rc = TV_ERR_CONFIG;
    }
    PQclear(r);
    return rc;
}

struct apply_arg {
    const struct store_migration *m;
    int applied;
};

/* One migration, unless the database (read under the lock) already has it. Runs again from the
 * start when the connection broke before COMMIT, so it sets everything it reports. */
static int tx_apply(struct pgpool_tx *tx, void *arg)
{
    struct apply_arg *a = arg;
    char version[16], when[24];
    const char *has_vals[] = {version};
    const char *rec_vals[] = {version, a->m->name, when};
    PGresult *r = NULL;
    int rc;

    a->applied = 0;
    snprintf(version, sizeof(version), "%d", a->m->version);
    snprintf(when, sizeof(when), "%lld", (long long)clock_wall_ms());
    rc = lock_and_table(tx);
    if (rc == 0)
        rc = pgpool_tx_exec(tx, SQL_HAS, 1, has_vals, NULL, NULL, &r);
    if (rc != 0 || strcmp(PQgetvalue(r, 0, 0), "0") != 0)
        goto done;
    rc = pgpool_tx_exec_script(tx, a->m->sql);
    if (rc != 0) {
        log_msg(LOGL_ERROR, NULL, "store: PostgreSQL migration %s failed", a->m->name);
        goto done;
    }
    rc = pgpool_tx_exec(tx, SQL_RECORD, 3, rec_vals, NULL, NULL, NULL);
    if (rc == 0)
        a->applied = 1;
done:
    PQclear(r);
    return rc;
}

int pgmig_run(struct pgpool *p, int *applied, char *err, size_t errcap)
{
    int current = 0, count = 0;
    int rc;

    if (err == NULL || errcap == 0)
        return TV_ERR_INVALID;
    err[0] = '\0';
    for (size_t i = 1; i < store_pg_migrations_count; i++) {
        if (store_pg_migrations[i].version <= store_pg_migrations[i - 1].version) {
            snprintf(err, errcap, "PostgreSQL migrations out of order at %s",
                     store_pg_migrations[i].name);
            rc = TV_ERR_INTERNAL;
            goto out;
        }
    }
    rc = pgmig_version(p, &current);
    if (rc != 0) {
        snprintf(err, errcap, "could not read the PostgreSQL schema version: %s", err_message(rc));
        goto out;
    }
    if (current != 0 && !known(current)) {
        snprintf(err, errcap,
                 "database schema version %d is not one this binary knows (it knows up to %d): "
                 "use the tokenvend that made it, or a newer one",
                 current, latest());
        rc = TV_ERR_CONFIG;
        goto out;
    }
    /* Every version the database lacks, in order (tx_apply skips the recorded ones, so a
     * database with gaps gets them too). */
    for (size_t i = 0; i < store_pg_migrations_count && rc == 0; i++) {
        struct apply_arg a = {.m = &store_pg_migrations[i]};
        if (a.m->version <= current)
            continue;
        rc = pgpool_tx_run(p, tx_apply, &a);
        if (rc != 0) {
            snprintf(err, errcap, "PostgreSQL migration %s failed: %s", a.m->name, err_message(rc));
            rc = explain_privilege(p, a.m, rc, err, errcap);
            break;
        }
        count += a.applied;
        if (a.applied)
            log_msg(LOGL_INFO, NULL, "store: applied PostgreSQL migration %s", a.m->name);
    }
out:
    if (applied != NULL)
        *applied = count;
    return rc;
}
