/* Test helper: the store suites run from one source against either backend. The environment
 * variable TV_TEST_STORE chooses: unset or "sqlite" gives a SQLite file per store, "pg" a
 * database per store in ONE throw-away PostgreSQL cluster per test binary (tests/lib/pg.c),
 * started by store_fx_group_setup, so each test still begins with an empty store.
 * Not thread-safe (call from the test's main thread). */
#ifndef TV_TESTS_STORE_FX_H
#define TV_TESTS_STORE_FX_H

#include "pg.h"
#include "store/store.h"

/* Where one test's store lives: a file, or a database of the shared cluster. */
struct store_fx {
    char path[128];       /* SQLite: the file */
    char uri[PG_URI_MAX]; /* PostgreSQL: the database's URI */
    char db[32];          /* PostgreSQL: the database's name */
};

/* Whether the suite runs on PostgreSQL (TV_TEST_STORE=pg). */
int store_fx_is_pg(void);
/* cmocka group setup and teardown: start and stop the cluster when on PostgreSQL. */
int store_fx_group_setup(void **state);
int store_fx_group_teardown(void **state);
/* A new, empty place for a store: path (SQLite; its directory is created by store_open) or a
 * new database of the cluster. 0 or -1. */
int store_fx_new(struct store_fx *fx, const char *path);
/* store_open (SQLite) or the PostgreSQL store on fx's database, with the same migrate mode. */
int store_fx_open(const struct store_fx *fx, int migrate, struct store **out);
/* Removes what store_fx_new made (the database; the SQLite files are the caller's). */
void store_fx_drop(struct store_fx *fx);
/* Runs one SQL command as the superuser in fx's database (PostgreSQL only). 0 or -1. */
int store_fx_admin_exec(const struct store_fx *fx, const char *sql);
/* Stops the shared cluster's server without removing anything, and starts it again
 * (PostgreSQL only; every store on it loses its connections). 0 or -1. */
int store_fx_pause(void);
int store_fx_resume(void);

/* One test's store in a new temporary directory (/tmp/tv-store-XXXXXX/tv.db), migrated and open:
 * the setup and teardown that most store suites share. */
struct store_fx_tmp {
    char dir[64];
    char path[128]; /* SQLite: the file (dir/tv.db) */
    struct store_fx sx;
    struct store *s;
};
/* cmocka per-test setup: *state becomes a new struct store_fx_tmp. 0 or -1 (nothing left). */
int store_fx_tmp_setup(void **state);
/* cmocka per-test teardown: closes the store, drops its database or files and the directory. */
int store_fx_tmp_teardown(void **state);

#endif
