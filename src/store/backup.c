/* Online backup of the SQLite store (store/backup.h) with SQLite's backup API: a snapshot of the
 * live database copied page by page into dest.tmp, checked, made durable and renamed into place.
 * Uses connections of its own, so the service's writer and readers are never held. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "store/backup.h"
#include "store_int.h"

/* Pages per sqlite3_backup_step: small enough that one step is short (4 MiB at 4 KiB pages),
 * large enough that the per-step overhead does not count. */
#define BACKUP_STEP_PAGES 1024
/* A step that finds a lock waits this long and tries again, up to the store's busy timeout. */
#define BACKUP_RETRY_MS 10
#define BACKUP_RETRIES (STORE_BUSY_TIMEOUT_MS / BACKUP_RETRY_MS)

/* One backup under way: its paths and connections. */
struct backup {
    const char *dest;
    char tmp[PATH_MAX];
    int tmp_made; /* dest.tmp exists and is ours: removed on failure */
    sqlite3 *src;
    sqlite3 *dst;
    char *err;
    size_t errcap;
};

static void backup_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The error line for a failed SQLite call on db, and the matching code. */
static int backup_sqlite_fail(struct backup *b, sqlite3 *db, int src, const char *what)
{
    int code = src & 0xff;

    snprintf(b->err, b->errcap, "%s: %s", what, db != NULL ? sqlite3_errmsg(db) : "out of memory");
    return code == SQLITE_BUSY || code == SQLITE_LOCKED ? TV_ERR_UNAVAILABLE : TV_ERR_IO;
}

/* dest's absolute path with its directory resolved (dest itself need not exist): what dest
 * names after symbolic links in its directories are followed. 0, or -1 when it cannot be told. */
static int backup_dest_canon(const char *dest, char out[PATH_MAX])
{
    char dir[PATH_MAX], real[PATH_MAX];
    const char *slash = strrchr(dest, '/');
    const char *base = slash != NULL ? slash + 1 : dest;

    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dest)
        snprintf(dir, sizeof dir, "/");
    else if ((size_t)(slash - dest) < sizeof dir)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - dest), dest);
    else
        return -1;
    if (base[0] == '\0' || realpath(dir, real) == NULL)
        return -1;
    if ((size_t)snprintf(out, PATH_MAX, "%s/%s", strcmp(real, "/") == 0 ? "" : real, base) >=
        PATH_MAX)
        return -1;
    return 0;
}

/* Whether dest (lstat in *d, or absent: d NULL) is db_path or one of its -wal/-shm files, by
 * device and inode of the files there now and, for files that do not exist yet, by name.
 * SQLite resolves a symbolic link to the database and keeps -wal/-shm beside its target, so
 * both the path as given and the resolved one are looked at. */
static int backup_dest_is_db(const char *dest, const struct stat *d, const char *db_path)
{
    static const char *const suffix[] = {"", "-wal", "-shm"};
    char real[PATH_MAX], canon[PATH_MAX], side[PATH_MAX];
    const char *base[2] = {db_path, NULL};
    struct stat s;
    int have_canon = backup_dest_canon(dest, canon) == 0;

    if (realpath(db_path, real) != NULL)
        base[1] = real;
    for (int j = 0; j < 2; j++) {
        if (base[j] == NULL)
            continue;
        for (int i = 0; i < 3; i++) {
            if ((size_t)snprintf(side, sizeof side, "%s%s", base[j], suffix[i]) >= sizeof side)
                continue;
            if (d != NULL && stat(side, &s) == 0 && s.st_dev == d->st_dev && s.st_ino == d->st_ino)
                return 1;
            /* The resolved names are absolute: compare dest's resolved name with them. */
            if (j == 1 && have_canon && strcmp(side, canon) == 0)
                return 1;
        }
    }
    return 0;
}

/* dest must not be the database (or its -wal/-shm files) and, unless forced, must not exist;
 * when it exists it must be a regular file. */
static int backup_check_dest(struct backup *b, const char *db_path, int force)
{
    struct stat d;
    int exists = 1;

    if (lstat(b->dest, &d) != 0) {
        if (errno != ENOENT) {
            snprintf(b->err, b->errcap, "%.300s: %s", b->dest, strerror(errno));
            return TV_ERR_IO;
        }
        exists = 0;
    }
    if (exists && !S_ISREG(d.st_mode)) {
        snprintf(b->err, b->errcap, "%.300s exists and is not a regular file", b->dest);
        return TV_ERR_INVALID;
    }
    if (backup_dest_is_db(b->dest, exists ? &d : NULL, db_path)) {
        snprintf(b->err, b->errcap, "%.300s is the database itself (or one of its files)", b->dest);
        return TV_ERR_INVALID;
    }
    if (exists && !force) {
        snprintf(b->err, b->errcap, "%.300s exists (--force replaces it)", b->dest);
        return TV_ERR_CONFLICT;
    }
    return 0;
}

/* Creates dest.tmp empty with mode 0600 (SQLite would create it with the umask's mode, and a
 * backup holds every hash and the session key). O_EXCL: a second backup to the same place, or
 * the leftover of an interrupted one, is refused rather than overwritten. */
static int backup_make_tmp(struct backup *b)
{
    int fd;

    if ((size_t)snprintf(b->tmp, sizeof b->tmp, "%s.tmp", b->dest) >= sizeof b->tmp) {
        snprintf(b->err, b->errcap, "the backup path is too long");
        return TV_ERR_INVALID;
    }
    fd = open(b->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST) {
            snprintf(b->err, b->errcap,
                     "%.300s exists: another backup is writing it, or one was interrupted "
                     "(remove it when no backup runs)",
                     b->tmp);
            return TV_ERR_CONFLICT;
        }
        snprintf(b->err, b->errcap, "cannot create %.300s: %s", b->tmp, strerror(errno));
        return TV_ERR_IO;
    }
    b->tmp_made = 1;
    /* O_CREAT's mode is masked by the umask; fchmod makes it exactly 0600 either way. */
    if (fchmod(fd, 0600) != 0 || close(fd) != 0) {
        snprintf(b->err, b->errcap, "cannot set up %.300s: %s", b->tmp, strerror(errno));
        return TV_ERR_IO;
    }
    return 0;
}

/* Opens the source (never creating it) inside a read transaction that holds its snapshot for
 * the whole copy, and the destination. */
static int backup_open(struct backup *b, const char *db_path)
{
    int src;

    src = sqlite3_open_v2(db_path, &b->src, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK)
        return backup_sqlite_fail(b, b->src, src, "cannot open the database");
    sqlite3_busy_timeout(b->src, STORE_BUSY_TIMEOUT_MS);
    /* The SELECT starts the read transaction; BEGIN alone defers it. Until COMMIT every step
     * reads this one snapshot, so writes made meanwhile (WAL: they are not blocked) neither
     * restart the backup nor appear half in it. */
    src = sqlite3_exec(b->src, "BEGIN; SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL);
    if (src != SQLITE_OK)
        return backup_sqlite_fail(b, b->src, src, "cannot read the database");
    src = sqlite3_open_v2(b->tmp, &b->dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK)
        return backup_sqlite_fail(b, b->dst, src, "cannot open the backup file");
    sqlite3_busy_timeout(b->dst, STORE_BUSY_TIMEOUT_MS);
    return 0;
}

/* The copy itself, in steps; *pages receives the source's page count. */
static int backup_copy(struct backup *b, int64_t *pages)
{
    sqlite3_backup *bk = sqlite3_backup_init(b->dst, "main", b->src, "main");
    int src = SQLITE_OK, fin, retries = 0;

    if (bk == NULL)
        return backup_sqlite_fail(b, b->dst, sqlite3_errcode(b->dst), "cannot start the backup");
    for (;;) {
        src = sqlite3_backup_step(bk, BACKUP_STEP_PAGES);
        if (src == SQLITE_DONE)
            break;
        if ((src == SQLITE_BUSY || src == SQLITE_LOCKED) && retries++ < BACKUP_RETRIES) {
            backup_sleep_ms(BACKUP_RETRY_MS);
            continue;
        }
        if (src != SQLITE_OK)
            break;
    }
    *pages = sqlite3_backup_pagecount(bk);
    fin = sqlite3_backup_finish(bk);
    if (src != SQLITE_DONE)
        return backup_sqlite_fail(b, b->dst, src, "the backup failed");
    if (fin != SQLITE_OK)
        return backup_sqlite_fail(b, b->dst, fin, "the backup failed");
    return 0;
}

/* Empties the tables whose rows are transient in the copy (the same ones `tokenvend store copy`
 * leaves out). token_cache: kept tokens are a cache, and a restore brings back the mappings as
 * they were, revoke times included, so a kept token that ACS revoked after the backup would be
 * served again; after a restore the services issue fresh ones. acs_budget: slot stamps are
 * transient (made again on first use); stale ones would only hold slots for one window, but
 * nothing is lost without them. session_refresh: refresh tokens are live credentials of
 * sessions; a backup restored later must not bring back a family that was logged out or
 * revoked after it was taken (users log in again). A table the copy lacks (a database from before
 * its migration) is skipped. secure_delete zeroes the freed pages, so the sealed tokens are not
 * left in the file's free space. */
static int backup_drop_transient(struct backup *b)
{
    static const struct {
        const char *table, *sql;
    } drop[] = {
        {"token_cache", "DELETE FROM token_cache"},
        {"acs_budget", "DELETE FROM acs_budget"},
        {"session_refresh", "DELETE FROM session_refresh"},
    };
    sqlite3_stmt *st = NULL;
    int src, rc = TV_ERR_IO;

    src = sqlite3_exec(b->dst, "PRAGMA secure_delete=ON; BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (src != SQLITE_OK)
        return backup_sqlite_fail(b, b->dst, src, "cannot clear the backup's caches");
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++) {
        src = sqlite3_prepare_v2(b->dst,
                                 "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                                 -1, &st, NULL);
        if (src == SQLITE_OK)
            src = sqlite3_bind_text(st, 1, drop[i].table, -1, SQLITE_STATIC);
        if (src == SQLITE_OK)
            src = sqlite3_step(st);
        sqlite3_finalize(st);
        st = NULL;
        if (src == SQLITE_DONE)
            continue; /* no such table in this schema version */
        if (src != SQLITE_ROW ||
            (src = sqlite3_exec(b->dst, drop[i].sql, NULL, NULL, NULL)) != SQLITE_OK) {
            rc = backup_sqlite_fail(b, b->dst, src, "cannot clear the backup's caches");
            goto done;
        }
    }
    src = sqlite3_exec(b->dst, "COMMIT", NULL, NULL, NULL);
    if (src != SQLITE_OK) {
        rc = backup_sqlite_fail(b, b->dst, src, "cannot clear the backup's caches");
        goto done;
    }
    rc = 0;
done:
    if (rc != 0)
        (void)sqlite3_exec(b->dst, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* Makes the copy a standalone file (rollback journal: the source's WAL mark would have SQLite
 * look for a -wal beside it), leaves its transient rows out and checks it. */
static int backup_finish_file(struct backup *b)
{
    sqlite3_stmt *st = NULL;
    const unsigned char *v;
    int src, rc = TV_ERR_IO;

    src = sqlite3_exec(b->dst, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL);
    if (src != SQLITE_OK)
        return backup_sqlite_fail(b, b->dst, src, "cannot finish the backup file");
    if ((rc = backup_drop_transient(b)) != 0)
        return rc;
    rc = TV_ERR_IO;
    src = sqlite3_prepare_v2(b->dst, "PRAGMA quick_check", -1, &st, NULL);
    if (src == SQLITE_OK)
        src = sqlite3_step(st);
    if (src != SQLITE_ROW) {
        rc = backup_sqlite_fail(b, b->dst, src, "cannot check the backup file");
        goto done;
    }
    v = sqlite3_column_text(st, 0);
    if (v == NULL || strcmp((const char *)v, "ok") != 0) {
        snprintf(b->err, b->errcap, "the backup file failed its check: %.200s",
                 v != NULL ? (const char *)v : "(no answer)");
        goto done;
    }
    rc = 0;
done:
    sqlite3_finalize(st);
    return rc;
}

/* fsync of a file or directory by path. */
static int backup_fsync_path(const char *path, int dir, int64_t *size)
{
    struct stat st;
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    int rc = -1;

    if (fd < 0)
        return -1;
    if (fsync(fd) == 0 && (size == NULL || fstat(fd, &st) == 0)) {
        if (size != NULL)
            *size = (int64_t)st.st_size;
        rc = 0;
    }
    (void)close(fd);
    return rc;
}

/* Moves dest.tmp to dest: atomically replacing dest when forced; otherwise refusing a dest that
 * appeared meanwhile (RENAME_NOREPLACE, or link() where the file system lacks it). Then makes
 * the rename durable. */
static int backup_place(struct backup *b, int force)
{
    char dir[PATH_MAX];
    char *slash;
    int moved;

    if (force) {
        moved = rename(b->tmp, b->dest) == 0;
    } else {
        moved = renameat2(AT_FDCWD, b->tmp, AT_FDCWD, b->dest, RENAME_NOREPLACE) == 0;
        if (!moved && (errno == EINVAL || errno == ENOSYS) && link(b->tmp, b->dest) == 0) {
            (void)unlink(b->tmp);
            moved = 1;
        }
    }
    if (!moved) {
        int e = errno;
        snprintf(b->err, b->errcap, "cannot rename %.300s to %.300s: %s", b->tmp, b->dest,
                 e == EEXIST ? "it exists now (--force replaces it)" : strerror(e));
        return e == EEXIST ? TV_ERR_CONFLICT : TV_ERR_IO;
    }
    b->tmp_made = 0;
    snprintf(dir, sizeof dir, "%s", b->dest);
    slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    if (backup_fsync_path(dir, 1, NULL) != 0) {
        snprintf(b->err, b->errcap, "cannot sync the directory %.300s: %s", dir, strerror(errno));
        return TV_ERR_IO;
    }
    return 0;
}

int store_backup(struct store *s, const char *dest, int flags, struct store_backup_result *res,
                 char *err, size_t errcap)
{
    struct backup b;
    struct store_backup_result out = {0, 0};
    int force = (flags & STORE_BACKUP_FORCE) != 0;
    int rc = TV_ERR_INVALID;

    if (err == NULL || errcap == 0)
        return TV_ERR_INVALID;
    memset(&b, 0, sizeof b);
    b.dest = dest;
    b.err = err;
    b.errcap = errcap;
    err[0] = '\0';
    if (s == NULL || dest == NULL || dest[0] == '\0' || res == NULL) {
        snprintf(err, errcap, "store_backup: missing argument");
        goto done;
    }
    if (s->kind != STORE_SQLITE || s->path == NULL) {
        snprintf(err, errcap,
                 "a PostgreSQL store is backed up with pg_dump (README \"Backup and restore\")");
        rc = TV_ERR_CONFIG;
        goto done;
    }
    if ((rc = backup_check_dest(&b, s->path, force)) != 0 || (rc = backup_make_tmp(&b)) != 0 ||
        (rc = backup_open(&b, s->path)) != 0 || (rc = backup_copy(&b, &out.pages)) != 0 ||
        (rc = backup_finish_file(&b)) != 0)
        goto done;
    /* Close first: only then has SQLite written and deleted its journal. */
    rc = sqlite3_close(b.dst);
    b.dst = NULL;
    if (rc != SQLITE_OK) {
        snprintf(err, errcap, "cannot close the backup file");
        rc = TV_ERR_IO;
        goto done;
    }
    if (backup_fsync_path(b.tmp, 0, &out.bytes) != 0) {
        snprintf(err, errcap, "cannot sync %.300s: %s", b.tmp, strerror(errno));
        rc = TV_ERR_IO;
        goto done;
    }
    if ((rc = backup_place(&b, force)) != 0)
        goto done;
    *res = out;
done:
    if (b.src != NULL) {
        (void)sqlite3_exec(b.src, "COMMIT", NULL, NULL, NULL);
        (void)sqlite3_close(b.src);
    }
    if (b.dst != NULL)
        (void)sqlite3_close(b.dst);
    if (b.tmp_made) {
        static const char *const side[] = {"-journal", "-wal", "-shm"};
        char path[PATH_MAX + 16];
        (void)unlink(b.tmp);
        for (size_t i = 0; i < sizeof side / sizeof side[0]; i++) {
            snprintf(path, sizeof path, "%s%s", b.tmp, side[i]);
            (void)unlink(path);
        }
    }
    return rc;
}
