/* SQLite storage for acs-emulator. Writes are single statements in autocommit mode; with WAL and
 * synchronous=NORMAL they do not fsync on every call, which is the right trade for a test
 * double that should survive a restart, not a power cut. */
#include "persist.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/err.h"
#include "core/log.h"

struct emu_persist {
    sqlite3 *db;
    pthread_mutex_t mu;
    sqlite3_stmt *put_identity;
};

static const char persist_schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS identities ("
    " id TEXT PRIMARY KEY, created_ms INTEGER NOT NULL, gen INTEGER NOT NULL,"
    " revoked_ms INTEGER NOT NULL, deleted_ms INTEGER NOT NULL, custom_id TEXT);";

/* Files written before customId support have no custom_id column: add it (NULL for their
 * identities, which had none). */
static int persist_add_custom_id(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(db, "SELECT custom_id FROM identities LIMIT 0", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_finalize(st);
        return 0;
    }
    if (sqlite3_exec(db, "ALTER TABLE identities ADD COLUMN custom_id TEXT", NULL, NULL, NULL) !=
        SQLITE_OK) {
        log_msg(LOGL_ERROR, NULL, "sqlite add custom_id: %s", sqlite3_errmsg(db));
        return TV_ERR_IO;
    }
    return 0;
}

int emu_persist_open(const char *path, struct emu_persist **out)
{
    int rc = TV_ERR_IO;
    struct emu_persist *p = calloc(1, sizeof(*p));
    int fd;

    if (!p)
        return TV_ERR_NOMEM;
    pthread_mutex_init(&p->mu, NULL);
    /* Create the file ourselves so it never exists with a wider mode than 0600. */
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_msg(LOGL_ERROR, NULL, "cannot open database %s", path);
        goto out;
    }
    close(fd);
    if (sqlite3_open_v2(path, &p->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        log_msg(LOGL_ERROR, NULL, "sqlite open %s: %s", path,
                p->db ? sqlite3_errmsg(p->db) : "out of memory");
        goto out;
    }
    sqlite3_busy_timeout(p->db, 5000);
    if (sqlite3_exec(p->db, persist_schema, NULL, NULL, NULL) != SQLITE_OK) {
        log_msg(LOGL_ERROR, NULL, "sqlite schema %s: %s", path, sqlite3_errmsg(p->db));
        goto out;
    }
    if (persist_add_custom_id(p->db) != 0)
        goto out;
    if (sqlite3_prepare_v2(p->db,
                           "INSERT OR REPLACE INTO identities (id, created_ms, gen, revoked_ms,"
                           " deleted_ms, custom_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                           -1, &p->put_identity, NULL) != SQLITE_OK) {
        log_msg(LOGL_ERROR, NULL, "sqlite prepare: %s", sqlite3_errmsg(p->db));
        goto out;
    }
    *out = p;
    p = NULL;
    rc = 0;
out:
    emu_persist_close(p);
    return rc;
}

void emu_persist_close(struct emu_persist *p)
{
    if (!p)
        return;
    sqlite3_finalize(p->put_identity);
    sqlite3_close(p->db);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int emu_persist_meta_get(struct emu_persist *p, const char *key, char **out)
{
    int rc = TV_ERR_IO;
    sqlite3_stmt *st = NULL;
    int step;

    pthread_mutex_lock(&p->mu);
    if (sqlite3_prepare_v2(p->db, "SELECT v FROM meta WHERE k = ?1", -1, &st, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_DONE) {
        rc = TV_ERR_NOT_FOUND;
        goto out;
    }
    if (step != SQLITE_ROW)
        goto out;
    *out = strdup((const char *)sqlite3_column_text(st, 0));
    rc = *out ? 0 : TV_ERR_NOMEM;
out:
    if (rc == TV_ERR_IO)
        log_msg(LOGL_ERROR, NULL, "sqlite meta get %s: %s", key, sqlite3_errmsg(p->db));
    sqlite3_finalize(st);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int emu_persist_meta_put(struct emu_persist *p, const char *key, const char *value)
{
    int rc = TV_ERR_IO;
    sqlite3_stmt *st = NULL;

    pthread_mutex_lock(&p->mu);
    if (sqlite3_prepare_v2(p->db, "INSERT OR REPLACE INTO meta (k, v) VALUES (?1, ?2)", -1, &st,
                           NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        goto out;
    rc = 0;
out:
    if (rc != 0)
        log_msg(LOGL_ERROR, NULL, "sqlite meta put %s: %s", key, sqlite3_errmsg(p->db));
    sqlite3_finalize(st);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int emu_persist_identity_put(struct emu_persist *p, const struct emu_identity_rec *rec)
{
    int rc = TV_ERR_IO;
    sqlite3_stmt *st = p->put_identity;

    pthread_mutex_lock(&p->mu);
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, rec->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, rec->created_ms);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)rec->gen);
    sqlite3_bind_int64(st, 4, rec->revoked_ms);
    sqlite3_bind_int64(st, 5, rec->deleted_ms);
    if (rec->custom_id != NULL)
        sqlite3_bind_text(st, 6, rec->custom_id, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 6);
    if (sqlite3_step(st) == SQLITE_DONE)
        rc = 0;
    else
        log_msg(LOGL_ERROR, NULL, "sqlite identity put: %s", sqlite3_errmsg(p->db));
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int emu_persist_identity_each(struct emu_persist *p, emu_persist_identity_fn fn, void *arg)
{
    int rc = TV_ERR_IO;
    sqlite3_stmt *st = NULL;
    struct emu_identity_rec rec;
    int step;

    pthread_mutex_lock(&p->mu);
    if (sqlite3_prepare_v2(p->db,
                           "SELECT id, created_ms, gen, revoked_ms, deleted_ms, custom_id FROM"
                           " identities",
                           -1, &st, NULL) != SQLITE_OK)
        goto out;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        if (!id || strlen(id) >= sizeof(rec.id))
            continue;
        memset(&rec, 0, sizeof(rec));
        memcpy(rec.id, id, strlen(id) + 1);
        rec.created_ms = sqlite3_column_int64(st, 1);
        rec.gen = (uint64_t)sqlite3_column_int64(st, 2);
        rec.revoked_ms = sqlite3_column_int64(st, 3);
        rec.deleted_ms = sqlite3_column_int64(st, 4);
        rec.custom_id = (const char *)sqlite3_column_text(st, 5); /* NULL for none */
        rc = fn(arg, &rec);
        if (rc != 0)
            goto out;
    }
    rc = step == SQLITE_DONE ? 0 : TV_ERR_IO;
out:
    if (rc == TV_ERR_IO)
        log_msg(LOGL_ERROR, NULL, "sqlite identity scan: %s", sqlite3_errmsg(p->db));
    sqlite3_finalize(st);
    pthread_mutex_unlock(&p->mu);
    return rc;
}
