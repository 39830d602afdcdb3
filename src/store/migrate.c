/* Schema migrations: the SQL files compiled into the binary (include/store/migrations.h) are
 * applied in version order, each in one BEGIN IMMEDIATE transaction recorded in
 * schema_migrations, so a crash or a concurrent migrate never applies one twice. Every version
 * the database lacks is applied, not only those above its highest: a database restored by hand
 * or migrated by a branch's binary may hold 1, 2 and 5 without 3 and 4. */
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "store/migrations.h"
#include "store/store.h"
#include "store_int.h"

static const char SQL_VERSIONS[] = "SELECT version FROM schema_migrations ORDER BY version";
static const char SQL_HAS[] = "SELECT count(*) FROM schema_migrations WHERE version = ?1";
static const char SQL_RECORD[] =
    "INSERT INTO schema_migrations (version, name, applied_ms) VALUES (?1, ?2, ?3)";

int store_version_latest(void)
{
    size_t i;
    int latest = 0;

    for (i = 0; i < store_migrations_count; i++)
        if (store_migrations[i].version > latest)
            latest = store_migrations[i].version;
    return latest;
}

int store_version_known(int v)
{
    for (size_t i = 0; i < store_migrations_count; i++)
        if (store_migrations[i].version == v)
            return 1;
    return 0;
}

int store_version_get(struct store_conn *c, int *version)
{
    sqlite3_stmt *st;
    size_t k = 0; /* the next compiled-in migration a gap-free schema would record */
    int row = 0, unknown = 0, has_unknown = 0, complete = 0, gap = 0;
    int rc = store_stmt(c, SQL_VERSIONS, &st);

    if (rc != 0)
        return rc;
    /* Both lists ascend, so one pass finds where the recorded versions first skip one. */
    while ((rc = store_step(c, st, &row)) == 0 && row) {
        int v = sqlite3_column_int(st, 0);
        if (!store_version_known(v)) {
            unknown = v; /* ascending: the last one is the highest */
            has_unknown = 1;
        } else if (!gap && k < store_migrations_count && store_migrations[k].version == v) {
            complete = v;
            k++;
        } else {
            gap = 1;
        }
    }
    store_stmt_done(st);
    if (rc != 0)
        return rc;
    /* A version this binary does not know means another binary (a newer one, or another
     * branch's) made the schema: report it, so that callers refuse the database. */
    *version = has_unknown ? unknown : complete;
    return 0;
}

/* Whether version v is recorded (on the writer, inside the caller's transaction). */
static int version_has(struct store_conn *c, int v, int *has)
{
    sqlite3_stmt *st;
    int row = 0;
    int rc = store_stmt(c, SQL_HAS, &st);

    if (rc != 0)
        return rc;
    sqlite3_bind_int(st, 1, v);
    rc = store_step(c, st, &row);
    if (rc == 0 && row)
        *has = sqlite3_column_int(st, 0) > 0;
    else if (rc == 0)
        rc = TV_ERR_INTERNAL;
    store_stmt_done(st);
    return rc;
}

/* Creates the bookkeeping table (the one piece of schema outside the migration files, since it
 * records them) and checks the compiled-in list is sorted without duplicates. */
int store_migrate_prepare(struct store *s)
{
    struct store_conn *c;
    size_t i;
    int rc;

    for (i = 1; i < store_migrations_count; i++) {
        if (store_migrations[i].version <= store_migrations[i - 1].version) {
            log_msg(LOGL_ERROR, NULL, "store: migrations out of order at %s",
                    store_migrations[i].name);
            return TV_ERR_INTERNAL;
        }
    }
    rc = store_write_begin(s, &c);
    if (rc != 0)
        return rc;
    if (sqlite3_exec(c->db,
                     "CREATE TABLE IF NOT EXISTS schema_migrations ("
                     " version INTEGER PRIMARY KEY,"
                     " name TEXT NOT NULL,"
                     " applied_ms INTEGER NOT NULL) STRICT",
                     NULL, NULL, NULL) != SQLITE_OK)
        rc = store_err(c, sqlite3_extended_errcode(c->db), "create schema_migrations");
    return store_write_end(s, c, rc);
}

int store_schema_version(struct store *s, int *current, int *latest)
{
    int v = 0;
    int rc;

    if (s->kind == STORE_PG) {
        rc = pgstore_schema_version(s, &v);
        goto out;
    }
    /* The writer, not a reader: a migrate that just committed must be visible, and this is
     * called rarely. */
    pthread_mutex_lock(&s->wlock);
    rc = store_version_get(s->writer, &v);
    pthread_mutex_unlock(&s->wlock);
out:
    if (rc == 0 && current != NULL)
        *current = v;
    if (rc == 0 && latest != NULL)
        *latest = store_version_latest();
    return rc;
}

int store_schema_has(struct store *s, int version, int *has)
{
    int h = 0;
    int rc;

    if (has == NULL)
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_schema_has(s, version, has);
    /* The writer, as store_schema_version: a migrate that just committed must be visible. */
    pthread_mutex_lock(&s->wlock);
    rc = version_has(s->writer, version, &h);
    pthread_mutex_unlock(&s->wlock);
    if (rc == 0)
        *has = h;
    return rc;
}

/* Applies one migration if the database (re-read under the write lock, so a concurrent migrate
 * never applies it twice) still lacks it, whatever versions around it it holds. The
 * file's SQL runs inside our transaction, so migration files must not contain BEGIN or COMMIT
 * (nor PRAGMAs that are no-ops inside a transaction, such as foreign_keys). */
static int apply_one(struct store *s, const struct store_migration *m, int *applied)
{
    struct store_conn *c;
    sqlite3_stmt *st;
    int has = 0;
    int rc = store_write_begin(s, &c);

    if (rc != 0)
        return rc;
    rc = version_has(c, m->version, &has);
    if (rc != 0 || has)
        goto done;
    if (sqlite3_exec(c->db, m->sql, NULL, NULL, NULL) != SQLITE_OK) {
        log_msg(LOGL_ERROR, NULL, "store: migration %s failed: %s", m->name, sqlite3_errmsg(c->db));
        rc = TV_ERR_IO;
        goto done;
    }
    rc = store_stmt(c, SQL_RECORD, &st);
    if (rc != 0)
        goto done;
    sqlite3_bind_int(st, 1, m->version);
    store_bind_text(st, 2, m->name);
    sqlite3_bind_int64(st, 3, clock_wall_ms());
    rc = store_step_done(c, st);
    store_stmt_done(st);
    if (rc == 0)
        *applied = 1;
done:
    rc = store_write_end(s, c, rc);
    if (rc == 0 && *applied)
        log_msg(LOGL_INFO, NULL, "store: applied migration %s", m->name);
    return rc;
}

int store_migrate(struct store *s, int *applied)
{
    int current = 0;
    int count = 0;
    int rc;
    size_t i;

    if (s->kind == STORE_PG)
        return pgstore_migrate(s, applied);
    rc = store_schema_version(s, &current, NULL);
    if (rc != 0)
        goto out;
    if (current > store_version_latest() || (current != 0 && !store_version_known(current))) {
        log_msg(LOGL_ERROR, NULL,
                "store: database schema version %d is not one this binary knows (it knows up to "
                "%d): use the tokenvend that made it, or a newer one",
                current, store_version_latest());
        rc = TV_ERR_CONFIG;
        goto out;
    }
    /* Every compiled-in version the database lacks, in order, each in its own transaction;
     * apply_one skips the ones already recorded (current only says where the first gap is). */
    for (i = 0; i < store_migrations_count && rc == 0; i++) {
        int one = 0;

        if (store_migrations[i].version <= current)
            continue;
        rc = apply_one(s, &store_migrations[i], &one);
        count += one;
    }
out:
    if (applied != NULL)
        *applied = count;
    return rc;
}
