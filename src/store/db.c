/* Store lifecycle: opening the file with its pragmas, the writer and reader connections, the
 * prepared-statement cache and the helpers the table files share. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "core/err.h"
#include "core/log.h"
#include "store/store.h"
#include "store_int.h"

int store_err(struct store_conn *c, int src, const char *what)
{
    int rc;
    int primary = src & 0xff;
    const char *msg = c->db != NULL ? sqlite3_errmsg(c->db) : sqlite3_errstr(src);

    switch (primary) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        /* Only called for failures: a "success" code here means SQLite lost the real one,
         * and the caller must still see an error. */
        rc = TV_ERR_INTERNAL;
        break;
    case SQLITE_CONSTRAINT:
        /* A duplicate is an expected outcome (the caller asked "insert unless present"); any
         * other constraint means a caller passed a value the schema rejects. */
        if (src == SQLITE_CONSTRAINT_UNIQUE || src == SQLITE_CONSTRAINT_PRIMARYKEY)
            return TV_ERR_CONFLICT;
        rc = TV_ERR_INVALID;
        break;
    case SQLITE_NOMEM:
        rc = TV_ERR_NOMEM;
        break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        rc = TV_ERR_UNAVAILABLE;
        break;
    default:
        rc = TV_ERR_IO;
        break;
    }
    log_msg(LOGL_ERROR, NULL, "store: %s failed: %s (sqlite %d)", what, msg, src);
    return rc;
}

int store_stmt(struct store_conn *c, const char *sql, sqlite3_stmt **out)
{
    sqlite3_stmt *st = NULL;
    int src;
    size_t i;

    for (i = 0; i < c->nstmts; i++) {
        if (c->stmts[i].sql == sql) {
            *out = c->stmts[i].st;
            return 0;
        }
    }
    if (c->nstmts == STORE_STMT_CACHE) {
        log_msg(LOGL_ERROR, NULL, "store: statement cache full (%d)", STORE_STMT_CACHE);
        return TV_ERR_INTERNAL;
    }
    src = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (src != SQLITE_OK)
        return store_err(c, src, "prepare");
    c->stmts[c->nstmts].sql = sql;
    c->stmts[c->nstmts].st = st;
    c->nstmts++;
    *out = st;
    return 0;
}

void store_stmt_done(sqlite3_stmt *st)
{
    if (st == NULL)
        return;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

int store_step(struct store_conn *c, sqlite3_stmt *st, int *row)
{
    int src = sqlite3_step(st);

    if (src == SQLITE_ROW) {
        *row = 1;
        return 0;
    }
    if (src == SQLITE_DONE) {
        *row = 0;
        return 0;
    }
    return store_err(c, sqlite3_extended_errcode(c->db), "step");
}

int store_step_done(struct store_conn *c, sqlite3_stmt *st)
{
    int row = 0;
    int rc;

    do {
        rc = store_step(c, st, &row);
    } while (rc == 0 && row);
    return rc;
}

int store_bind_text(sqlite3_stmt *st, int idx, const char *s)
{
    int src =
        s == NULL ? sqlite3_bind_null(st, idx) : sqlite3_bind_text(st, idx, s, -1, SQLITE_STATIC);
    return src == SQLITE_OK ? 0 : TV_ERR_INTERNAL;
}

int store_bind_text_or_null(sqlite3_stmt *st, int idx, const char *s)
{
    return store_bind_text(st, idx, s != NULL && s[0] != '\0' ? s : NULL);
}

int store_col_text(sqlite3_stmt *st, int i, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    size_t n = t == NULL ? 0 : (size_t)sqlite3_column_bytes(st, i);

    if (n >= cap) {
        dst[0] = '\0';
        return TV_ERR_INTERNAL;
    }
    if (n > 0)
        memcpy(dst, t, n);
    dst[n] = '\0';
    return 0;
}

int store_check_str(const char *s, size_t min, size_t max)
{
    size_t n;

    if (s == NULL)
        return TV_ERR_INVALID;
    n = strnlen(s, max + 1);
    return n < min || n > max ? TV_ERR_INVALID : 0;
}

int store_check_list(int limit, const void *out, const int *n)
{
    if (limit < 1 || limit > STORE_LIST_MAX || out == NULL || n == NULL)
        return TV_ERR_INVALID;
    return 0;
}

/* Runs a statement once (not cached): pragmas and transaction control at open time. */
static int conn_exec(struct store_conn *c, const char *sql)
{
    int src = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    return src == SQLITE_OK ? 0 : store_err(c, sqlite3_extended_errcode(c->db), sql);
}

static void conn_free(struct store_conn *c)
{
    size_t i;

    if (c == NULL)
        return;
    for (i = 0; i < c->nstmts; i++)
        sqlite3_finalize(c->stmts[i].st);
    if (sqlite3_close(c->db) != SQLITE_OK)
        log_msg(LOGL_ERROR, NULL, "store: close failed: %s", sqlite3_errmsg(c->db));
    free(c);
}

/* Opens one connection. The NOMUTEX flag is safe because the store's own locks give each
 * connection to one thread at a time, and it spares SQLite's per-call mutex. */
static int conn_open(const char *path, int writer, struct store_conn **out)
{
    struct store_conn *c = calloc(1, sizeof(*c));
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (writer ? SQLITE_OPEN_CREATE : 0);
    sqlite3_stmt *st = NULL;
    const char *mode;
    int rc = TV_ERR_NOMEM;
    int src;

    if (c == NULL)
        goto fail;
    src = sqlite3_open_v2(path, &c->db, flags, NULL);
    if (src != SQLITE_OK) {
        rc = store_err(c, src, "open");
        goto fail;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, STORE_BUSY_TIMEOUT_MS);
    if (writer) {
        /* journal_mode answers with the mode in force: anything but "wal" (e.g. a file system
         * without shared memory) is a configuration problem worth failing on. */
        src = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
        if (src == SQLITE_OK)
            src = sqlite3_step(st);
        if (src != SQLITE_ROW) {
            rc = store_err(c, sqlite3_extended_errcode(c->db), "journal_mode");
            goto fail;
        }
        mode = (const char *)sqlite3_column_text(st, 0);
        if (mode == NULL || strcmp(mode, "wal") != 0) {
            log_msg(LOGL_ERROR, NULL, "store: %s cannot use WAL mode", path);
            rc = TV_ERR_CONFIG;
            goto fail;
        }
        sqlite3_finalize(st);
        st = NULL;
        rc = conn_exec(c, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON");
    } else {
        /* A reader never writes; query_only turns a bug that tries into an error. */
        rc = conn_exec(c, "PRAGMA foreign_keys=ON; PRAGMA query_only=1");
    }
    if (rc != 0)
        goto fail;
    *out = c;
    return 0;
fail:
    sqlite3_finalize(st);
    if (c != NULL && c->db == NULL)
        free(c);
    else
        conn_free(c);
    return rc;
}

/* mkdir -p of path's directory, new directories private to the service's user. */
static int make_parent_dirs(const char *path)
{
    char dir[PATH_MAX];
    size_t n = strlen(path);
    size_t i;
    struct stat sb;

    if (n >= sizeof(dir))
        return TV_ERR_INVALID;
    memcpy(dir, path, n + 1);
    while (n > 0 && dir[n - 1] != '/')
        n--;
    if (n <= 1)
        return 0;
    dir[n - 1] = '\0';
    for (i = 1; i <= n - 1; i++) {
        if (dir[i] != '/' && dir[i] != '\0')
            continue;
        dir[i] = '\0';
        if (stat(dir, &sb) != 0 && mkdir(dir, 0700) != 0 && errno != EEXIST) {
            log_msg(LOGL_ERROR, NULL, "store: cannot create directory %s: %s", dir,
                    strerror(errno));
            return TV_ERR_IO;
        }
        if (i < n - 1)
            dir[i] = '/';
    }
    return 0;
}

/* Creates the file ourselves so it is mode 0600 (SQLite gives the -wal and -shm files the
 * database file's mode); an existing file keeps its mode. */
static int create_private_file(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

    if (fd < 0) {
        log_msg(LOGL_ERROR, NULL, "store: cannot open %s: %s", path, strerror(errno));
        return TV_ERR_IO;
    }
    close(fd);
    return 0;
}

int sqlstore_open(const char *path, int migrate, struct store **out)
{
    struct store *s = NULL;
    int rc = TV_ERR_INVALID;
    int current = 0;
    int latest = store_version_latest();

    /* The connections run without SQLite's own mutexes (the store's locks serialise each
     * one), which still needs a library built thread-safe. */
    if (sqlite3_threadsafe() == 0) {
        log_msg(LOGL_ERROR, NULL, "store: SQLite was built without thread support");
        rc = TV_ERR_CONFIG;
        goto fail;
    }
    if (path == NULL || path[0] == '\0' || out == NULL ||
        (migrate != STORE_MIGRATE_NO && migrate != STORE_MIGRATE_YES &&
         migrate != STORE_MIGRATE_DEFER))
        goto fail;
    rc = make_parent_dirs(path);
    if (rc != 0)
        goto fail;
    rc = create_private_file(path);
    if (rc != 0)
        goto fail;
    rc = TV_ERR_NOMEM;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        goto fail;
    s->path = strdup(path);
    if (s->path == NULL || store_instance_init(s) != 0) {
        free(s->path);
        free(s);
        s = NULL;
        goto fail;
    }
    pthread_mutex_init(&s->wlock, NULL);
    pthread_mutex_init(&s->rlock, NULL);
    pthread_cond_init(&s->rcond, NULL);
    rc = conn_open(path, 1, &s->writer);
    if (rc != 0)
        goto fail;
    rc = store_migrate_prepare(s);
    if (rc != 0)
        goto fail;
    rc = store_schema_version(s, &current, NULL);
    if (rc != 0)
        goto fail;
    if (current > latest || (current != 0 && !store_version_known(current))) {
        log_msg(LOGL_ERROR, NULL,
                "store: %s has schema version %d, which this binary does not know (it knows up "
                "to %d); use a newer tokenvend",
                path, current, latest);
        rc = TV_ERR_CONFIG;
        goto fail;
    }
    if (current < latest) {
        if (migrate == STORE_MIGRATE_YES) {
            rc = store_migrate(s, NULL);
        } else if (migrate == STORE_MIGRATE_NO) {
            log_msg(LOGL_ERROR, NULL,
                    "store: %s has schema version %d, this binary needs %d; run "
                    "`tokenvend migrate`",
                    path, current, latest);
            rc = TV_ERR_CONFIG;
        }
        if (rc != 0)
            goto fail;
    }
    *out = s;
    return 0;
fail:
    store_close(s);
    return rc;
}

void store_close(struct store *s)
{
    int i;

    if (s == NULL)
        return;
    if (s->kind == STORE_PG) {
        pgstore_close(s);
        return;
    }
    /* Readers first, so the writer's close is the database's last and checkpoints the WAL. */
    for (i = 0; i < s->nreaders; i++)
        conn_free(s->readers[i]);
    conn_free(s->writer);
    pthread_cond_destroy(&s->rcond);
    pthread_mutex_destroy(&s->rlock);
    pthread_mutex_destroy(&s->wlock);
    free(s->path);
    free(s);
}

static const char SQL_BEGIN[] = "BEGIN IMMEDIATE";
static const char SQL_COMMIT[] = "COMMIT";
static const char SQL_ROLLBACK[] = "ROLLBACK";

static int run_cached(struct store_conn *c, const char *sql)
{
    sqlite3_stmt *st;
    int rc = store_stmt(c, sql, &st);

    if (rc == 0) {
        rc = store_step_done(c, st);
        store_stmt_done(st);
    }
    return rc;
}

int store_write_begin(struct store *s, struct store_conn **c)
{
    int rc;

    pthread_mutex_lock(&s->wlock);
    rc = run_cached(s->writer, SQL_BEGIN);
    if (rc != 0) {
        pthread_mutex_unlock(&s->wlock);
        return rc;
    }
    *c = s->writer;
    return 0;
}

int store_write_end(struct store *s, struct store_conn *c, int rc)
{
    if (rc == 0) {
        rc = run_cached(c, SQL_COMMIT);
        /* A failed COMMIT may leave the transaction open (e.g. SQLITE_BUSY): end it so the
         * next writer does not inherit it. */
        if (rc != 0 && !sqlite3_get_autocommit(c->db))
            run_cached(c, SQL_ROLLBACK);
    } else if (!sqlite3_get_autocommit(c->db)) {
        run_cached(c, SQL_ROLLBACK);
    }
    pthread_mutex_unlock(&s->wlock);
    return rc;
}

int store_read_begin(struct store *s, struct store_conn **c)
{
    struct store_conn *r = NULL;
    int rc = 0;

    pthread_mutex_lock(&s->rlock);
    while (s->rfree == NULL && s->nreaders == STORE_READERS_MAX)
        pthread_cond_wait(&s->rcond, &s->rlock);
    if (s->rfree != NULL) {
        r = s->rfree;
        s->rfree = r->next_free;
    } else {
        /* Opening under the pool lock is rare (at most STORE_READERS_MAX times) and keeps
         * the count exact. */
        rc = conn_open(s->path, 0, &r);
        if (rc == 0)
            s->readers[s->nreaders++] = r;
    }
    pthread_mutex_unlock(&s->rlock);
    if (rc == 0)
        *c = r;
    return rc;
}

void store_read_end(struct store *s, struct store_conn *c)
{
    pthread_mutex_lock(&s->rlock);
    c->next_free = s->rfree;
    s->rfree = c;
    pthread_cond_signal(&s->rcond);
    pthread_mutex_unlock(&s->rlock);
}

int store_read_one(struct store *s, const char *sql, store_bind_fn bind, const void *arg,
                   store_row_fn conv, void *out)
{
    struct store_conn *c;
    sqlite3_stmt *st = NULL;
    int row = 0;
    int rc = store_read_begin(s, &c);

    if (rc != 0)
        return rc;
    rc = store_stmt(c, sql, &st);
    if (rc == 0) {
        if (bind != NULL)
            bind(st, arg);
        rc = store_step(c, st, &row);
        if (rc == 0 && !row)
            rc = TV_ERR_NOT_FOUND;
        if (rc == 0)
            rc = conv(st, out);
        /* Reset at once: SQLite's copy of the row (a secret, for some tables) goes with it. */
        store_stmt_done(st);
    }
    store_read_end(s, c);
    return rc;
}

int store_get_by_key(struct store *s, const char *sql, const char *key, size_t max,
                     store_row_fn conv, void *tmp, void *out, size_t size)
{
    int rc = store_check_str(key, 1, max);

    if (rc != 0 || out == NULL)
        return TV_ERR_INVALID;
    rc = store_read_one(s, sql, store_bind_key, key, conv, tmp);
    if (rc == 0)
        memcpy(out, tmp, size);
    OPENSSL_cleanse(tmp, size);
    return rc;
}

/* What store_query_int64 reads: column 0, unless it is NULL. */
struct int64_value {
    int64_t v;
    int has;
};

static int int64_row(sqlite3_stmt *st, void *out)
{
    struct int64_value *r = out;

    r->has = sqlite3_column_type(st, 0) != SQLITE_NULL;
    if (r->has)
        r->v = sqlite3_column_int64(st, 0);
    return 0;
}

int store_query_int64(struct store *s, const char *sql, const char *arg, int64_t *value,
                      int *has_value)
{
    struct int64_value r = {0, 0};
    int rc = store_read_one(s, sql, arg != NULL ? store_bind_key : NULL, arg, int64_row, &r);

    /* No row reads as no value: a count or min() over nothing, or an absent key. */
    if (rc == TV_ERR_NOT_FOUND)
        rc = 0;
    *has_value = rc == 0 && r.has;
    if (*has_value)
        *value = r.v;
    return rc;
}

int store_count(struct store *s, const char *sql, int64_t *n)
{
    int64_t v = 0;
    int has = 0;
    int rc = n == NULL ? TV_ERR_INVALID : store_query_int64(s, sql, NULL, &v, &has);

    if (rc == 0)
        *n = v;
    return rc;
}

int store_list_rows(struct store *s, const char *sql, store_bind_fn bind, const void *arg,
                    int limit_idx, int limit, void *out, size_t size, store_row_fn conv, int *n)
{
    struct store_conn *c;
    sqlite3_stmt *st = NULL;
    int row = 0;
    int count = 0;
    int rc = store_read_begin(s, &c);

    if (rc != 0)
        return rc;
    rc = store_stmt(c, sql, &st);
    if (rc == 0) {
        bind(st, arg);
        sqlite3_bind_int(st, limit_idx, limit);
        while (rc == 0 && count < limit) {
            rc = store_step(c, st, &row);
            if (rc != 0 || !row)
                break;
            rc = conv(st, (char *)out + (size_t)count * size);
            if (rc == 0)
                count++;
        }
        store_stmt_done(st);
    }
    store_read_end(s, c);
    if (rc == 0)
        *n = count;
    return rc;
}

void store_bind_after(sqlite3_stmt *st, const void *arg)
{
    const char *after = arg;

    store_bind_text(st, 1, after != NULL ? after : "");
}

int store_write_run(struct store *s, const char *sql, store_bind_fn bind, const void *arg,
                    struct store_write_info *info)
{
    struct store_conn *c;
    sqlite3_stmt *st = NULL;
    struct store_write_info got = {0, 0};
    int rc = store_write_begin(s, &c);

    if (rc != 0)
        return rc;
    rc = store_stmt(c, sql, &st);
    if (rc == 0) {
        bind(st, arg);
        rc = store_step_done(c, st);
        store_stmt_done(st);
        got.changes = sqlite3_changes64(c->db);
        got.rowid = sqlite3_last_insert_rowid(c->db);
    }
    rc = store_write_end(s, c, rc);
    if (rc == 0 && info != NULL)
        *info = got;
    return rc;
}

int store_write_one(struct store *s, const char *sql, store_bind_fn bind, const void *arg)
{
    struct store_write_info info;
    int rc = store_write_run(s, sql, bind, arg, &info);

    return rc == 0 && info.changes == 0 ? TV_ERR_NOT_FOUND : rc;
}

void store_bind_params(sqlite3_stmt *st, const void *arg)
{
    const struct store_param *p = arg;

    for (int i = 1; p->type != STORE_P_END; p++, i++) {
        switch (p->type) {
        case STORE_P_TEXT:
            store_bind_text(st, i, p->p);
            break;
        case STORE_P_TEXT_OR_NULL:
            store_bind_text_or_null(st, i, p->p);
            break;
        case STORE_P_INT64:
            sqlite3_bind_int64(st, i, p->n);
            break;
        case STORE_P_BLOB:
            /* Never NULL: the blob columns are NOT NULL and "" is a valid value. */
            sqlite3_bind_blob(st, i, p->n > 0 ? p->p : "", (int)p->n, SQLITE_STATIC);
            break;
        case STORE_P_END:
            break;
        }
    }
}

void store_bind_key(sqlite3_stmt *st, const void *arg)
{
    store_bind_text(st, 1, arg);
}

void store_bind_key_ms(sqlite3_stmt *st, const void *arg)
{
    const struct store_key_ms *k = arg;

    store_bind_text(st, 1, k->key);
    sqlite3_bind_int64(st, 2, k->ms);
}

static const char SQL_PING[] =
    "INSERT OR REPLACE INTO meta (key, value) VALUES ('tokenvend.ping', x'00')";

int store_ping_write(struct store *s)
{
    struct store_conn *c;
    int rc;

    if (s->kind == STORE_PG)
        return pgstore_ping_write(s);
    rc = store_write_begin(s, &c);
    if (rc != 0)
        return TV_ERR_UNAVAILABLE;
    rc = run_cached(c, SQL_PING);
    /* Roll back whatever happened: the probe proves the lock and the write path, and leaves
     * nothing behind. */
    store_write_end(s, c, rc != 0 ? rc : TV_ERR_INTERNAL);
    return rc != 0 ? TV_ERR_UNAVAILABLE : 0;
}

static const char SQL_JOURNAL_MODE[] = "PRAGMA journal_mode";

static int wal_row(sqlite3_stmt *st, void *out)
{
    const unsigned char *mode = sqlite3_column_text(st, 0);

    if (mode == NULL)
        return TV_ERR_INTERNAL;
    *(int *)out = strcmp((const char *)mode, "wal") == 0;
    return 0;
}

int store_instance_init(struct store *s)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[STORE_INSTANCE_MAX / 2];

    if (RAND_bytes(raw, (int)sizeof raw) != 1)
        return TV_ERR_INTERNAL;
    for (size_t i = 0; i < sizeof raw; i++) {
        s->instance[2 * i] = hex[raw[i] >> 4];
        s->instance[2 * i + 1] = hex[raw[i] & 15];
    }
    s->instance[STORE_INSTANCE_MAX] = '\0';
    return 0;
}

const char *store_instance(const struct store *s)
{
    return s->instance;
}

int store_is_wal(struct store *s, int *wal)
{
    int rc;

    /* PostgreSQL has its own write-ahead log; the question is about SQLite's journal mode. */
    if (s->kind == STORE_PG) {
        *wal = 0;
        return 0;
    }
    rc = store_read_one(s, SQL_JOURNAL_MODE, NULL, NULL, wal_row, wal);

    return rc == TV_ERR_NOT_FOUND ? TV_ERR_INTERNAL : rc;
}
