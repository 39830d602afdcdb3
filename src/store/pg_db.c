/* The PostgreSQL store's lifecycle: opening the pool, the schema version and migrations, the
 * write probe. The table files' statements go through the helpers in pg_int.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "pg_migrate.h"
#include "store/migrations.h"
#include "pg_int.h"
#include "store_int.h"

/* A compiled-in version the database lacks, i.e. whether a migration is pending. */
static int pg_behind(int current)
{
    for (size_t i = 0; i < store_pg_migrations_count; i++)
        if (store_pg_migrations[i].version > current)
            return 1;
    return 0;
}

int store_open_pg(const struct pgpool_opts *o, int migrate, struct store **out, char *err,
                  size_t errcap)
{
    struct store *s = NULL;
    int current = 0;
    int rc = TV_ERR_INVALID;

    if (err == NULL || errcap == 0)
        return TV_ERR_INVALID;
    err[0] = '\0';
    if (o == NULL || out == NULL ||
        (migrate != STORE_MIGRATE_NO && migrate != STORE_MIGRATE_YES &&
         migrate != STORE_MIGRATE_DEFER)) {
        snprintf(err, errcap, "store: invalid arguments");
        goto fail;
    }
    rc = TV_ERR_NOMEM;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        goto fail;
    s->kind = STORE_PG;
    rc = store_instance_init(s);
    if (rc != 0) {
        snprintf(err, errcap, "store: no randomness for the instance name");
        goto fail;
    }
    rc = pgpool_new(o, &s->pg, err, errcap);
    if (rc != 0)
        goto fail;
    rc = pgmig_version(s->pg, &current);
    if (rc != 0) {
        snprintf(err, errcap, "could not read the PostgreSQL schema version: %s", err_message(rc));
        goto fail;
    }
    if (migrate == STORE_MIGRATE_YES) {
        /* pgmig_run refuses a newer schema itself, with its own line. */
        rc = pgmig_run(s->pg, NULL, err, errcap);
    } else if (current > store_version_latest() ||
               (current != 0 && !store_version_known(current))) {
        snprintf(err, errcap,
                 "database schema version %d is not one this binary knows (it knows up to %d): "
                 "use a newer tokenvend",
                 current, store_version_latest());
        rc = TV_ERR_CONFIG;
    } else if (migrate == STORE_MIGRATE_NO && pg_behind(current)) {
        snprintf(err, errcap,
                 "database schema version %d, this binary needs %d: run `tokenvend migrate`",
                 current, store_version_latest());
        rc = TV_ERR_CONFIG;
    }
    if (rc != 0)
        goto fail;
    *out = s;
    return 0;
fail:
    store_close(s);
    return rc;
}

void pgstore_close(struct store *s)
{
    pgpool_free(s->pg);
    free(s);
}

int pgstore_schema_version(struct store *s, int *current)
{
    return pgmig_version(s->pg, current);
}

int pgstore_schema_has(struct store *s, int version, int *has)
{
    return pgmig_has(s->pg, version, has);
}

int pgstore_migrate(struct store *s, int *applied)
{
    char err[PGPOOL_ERR_MAX];
    int rc = pgmig_run(s->pg, applied, err, sizeof(err));

    if (rc != 0)
        log_msg(LOGL_ERROR, NULL, "store: %s", err);
    return rc;
}

/* The write probe's body: one row written, then rolled back by the caller's non-zero return. */
static int ping_tx(struct pgpool_tx *tx, void *arg)
{
    int *wrote = arg;
    int rc = pgpool_tx_exec(tx,
                            "INSERT INTO meta (key, value) VALUES ('tokenvend.ping', '\\x00')"
                            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                            0, NULL, NULL, NULL, NULL);

    *wrote = rc == 0;
    /* Never commit: the probe proves the write path and leaves nothing behind. */
    return rc != 0 ? rc : TV_ERR_INTERNAL;
}

int pgstore_ping_write(struct store *s)
{
    int wrote = 0;

    (void)pgpool_tx_run(s->pg, ping_tx, &wrote);
    return wrote ? 0 : TV_ERR_UNAVAILABLE;
}
