/* The store's change notifications (include/store/watch.h): on PostgreSQL one LISTEN
 * connection outside the pool, served by a thread of its own (poll + PQconsumeInput +
 * PQnotifies); on SQLite a watch that is always current.
 *
 * What "current" promises: every invalidation committed before the last liveness answer has
 * reached on_event. The thread keeps it true by:
 * - LISTEN before reading invalidation_seq, so nothing committed after the read can be missed;
 * - counting the distinct sequence values its notifications carried since the last read: at a
 *   reconnect the counter must have moved by exactly that many, else on_reset (a value taken by
 *   a statement that then failed makes a needless reset, which is harmless);
 * - a query ("SELECT 1") after PING_IDLE_MS of silence: the server sends the notifications
 *   committed before it ahead of its answer, so an answer proves the stream complete up to
 *   there, and a connection that died silently (no RST) shows within PING_STALE_MS. */
#include "store/watch.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "pg_pool.h"
#include "store_int.h"

#define CHANNEL "tokenvend_invalidate"
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000
/* A liveness query after this much silence; the watch stops being current when its answer is
 * late by PING_STALE_MS (both well inside the 1 s the issue allows), and the connection is
 * given up after PING_DEAD_MS (a loaded server may just be slow). */
#define PING_IDLE_MS 250
#define PING_STALE_MS 400
#define PING_DEAD_MS 5000
#define QUERY_WAIT_MS 5000 /* LISTEN and the counter read at (re)connect */

struct store_watch {
    struct store *s;
    struct store_watch_cb cb;
    int pg; /* 0: SQLite, always current, no thread */
    atomic_int current;
    atomic_int stop;
    int wake[2]; /* a byte on wake[1] ends the thread's waits */
    pthread_t thread;
    int started;
    atomic_ullong events, resets, reconnects, syncs;
    /* The thread's own: */
    PGconn *conn;
    int synced_once;
    int64_t base; /* invalidation_seq at the last sync */
    uint64_t got; /* distinct values above base carried by notifications since */
    int down;     /* an outage is being logged: once at its start, once at its end */
};

/* Server notices on this connection (none are expected: LISTEN and SELECT) are dropped rather
 * than printed raw to stderr by libpq's default processor. */
static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Waits up to ms for the stop signal (or for fd to become ready for events, when fd >= 0).
 * Returns 1 when asked to stop, 0 otherwise (fd ready, timeout or EINTR); *ready (may be NULL)
 * tells whether fd was. */
static int wait_fd_ready(struct store_watch *w, int fd, short events, long ms, int *ready)
{
    struct pollfd pf[2] = {{.fd = w->wake[0], .events = POLLIN}, {.fd = fd, .events = events}};
    int n;

    if (ready != NULL)
        *ready = 0;
    if (atomic_load(&w->stop))
        return 1;
    n = poll(pf, fd >= 0 ? 2 : 1, ms < 0 ? 0 : (int)ms);
    if (n > 0 && fd >= 0 && ready != NULL)
        *ready = pf[1].revents != 0;
    return atomic_load(&w->stop);
}

static int wait_fd(struct store_watch *w, int fd, short events, long ms)
{
    return wait_fd_ready(w, fd, events, ms, NULL);
}

/* Drives a non-blocking connect to the end, or to the pool's deadline, or to stop. */
static int connect_listen_conn(struct store_watch *w, PGconn **out)
{
    long timeout_ms = 0;
    PGconn *c = pgpool_conn_start(w->s->pg, &timeout_ms);
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    int64_t deadline = clock_mono_ms() + timeout_ms;

    if (c == NULL || PQstatus(c) == CONNECTION_BAD)
        goto fail;
    while (st != PGRES_POLLING_OK) {
        int64_t left = deadline - clock_mono_ms();
        if (st == PGRES_POLLING_FAILED || left <= 0)
            goto fail;
        if (wait_fd(w, PQsocket(c), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, left))
            goto fail;
        st = PQconnectPoll(c);
    }
    PQsetNoticeProcessor(c, quiet_notice, NULL);
    if (PQsetnonblocking(c, 1) != 0)
        goto fail;
    *out = c;
    return 0;
fail:
    PQfinish(c);
    return TV_ERR_UNAVAILABLE;
}

/* "k:<seq>:<n>:<id of n bytes><app user id>": the id is length-prefixed because ids stored
 * before the id rule may hold any byte. Returns 0 and fills ev (pointing into the buffers). */
static int parse_payload(const char *p, struct store_watch_event *ev, int64_t *seq,
                         char id[STORE_ID_MAX + 1], char app[STORE_ID_MAX + 1])
{
    char *end;
    long long v;
    unsigned long n;
    size_t rest;

    if (p[0] != 'u' && p[0] != 'a')
        return TV_ERR_INVALID;
    ev->kind = p[0] == 'u' ? STORE_WATCH_MAPPING : STORE_WATCH_ACCOUNT;
    if (p[1] != ':')
        return TV_ERR_INVALID;
    errno = 0;
    v = strtoll(p + 2, &end, 10);
    if (errno != 0 || end == p + 2 || *end != ':' || v < 1)
        return TV_ERR_INVALID;
    *seq = (int64_t)v;
    p = end + 1;
    n = strtoul(p, &end, 10);
    if (end == p || *end != ':' || n < 1 || n > STORE_ID_MAX || strnlen(end + 1, n) < n)
        return TV_ERR_INVALID;
    memcpy(id, end + 1, n);
    id[n] = '\0';
    p = end + 1 + n;
    rest = strlen(p);
    if (rest > STORE_ID_MAX)
        return TV_ERR_INVALID;
    memcpy(app, p, rest + 1);
    ev->id = id;
    ev->app_user_id = app;
    return 0;
}

/* Every notification libpq has read: each to on_event, its sequence value counted. */
static void drain_notifies(struct store_watch *w)
{
    PGnotify *n;

    while ((n = PQnotifies(w->conn)) != NULL) {
        char id[STORE_ID_MAX + 1], app[STORE_ID_MAX + 1];
        struct store_watch_event ev;
        int64_t seq = 0;
        if (strcmp(n->relname, CHANNEL) == 0 && n->extra != NULL &&
            parse_payload(n->extra, &ev, &seq, id, app) == 0) {
            if (seq > w->base)
                w->got++;
            if (w->cb.on_event != NULL)
                w->cb.on_event(w->cb.arg, &ev);
            atomic_fetch_add(&w->events, 1);
        } else {
            /* Not ours to interpret: treated as possibly missed, so nothing stale survives. */
            log_msg(LOGL_ERROR, NULL,
                    "store: unreadable invalidation notification; dropping "
                    "every cached item");
            if (w->cb.on_reset != NULL)
                w->cb.on_reset(w->cb.arg);
            atomic_fetch_add(&w->resets, 1);
        }
        PQfreemem(n);
    }
}

/* Sends sql and waits (stop-aware) for its last result: 0 with *res (caller PQclear()s) or
 * TV_ERR_UNAVAILABLE. Notifications arriving meanwhile are handled. */
static int query_wait(struct store_watch *w, const char *sql, PGresult **res)
{
    int64_t deadline = clock_mono_ms() + QUERY_WAIT_MS;
    PGresult *last = NULL, *r;
    int rc = TV_ERR_UNAVAILABLE;

    if (!PQsendQuery(w->conn, sql))
        return rc;
    while (PQflush(w->conn) == 1)
        if (wait_fd(w, PQsocket(w->conn), POLLOUT, deadline - clock_mono_ms()) ||
            clock_mono_ms() >= deadline)
            return rc;
    for (;;) {
        while (PQisBusy(w->conn)) {
            if (clock_mono_ms() >= deadline ||
                wait_fd(w, PQsocket(w->conn), POLLIN, deadline - clock_mono_ms()) ||
                !PQconsumeInput(w->conn))
                goto out;
        }
        r = PQgetResult(w->conn);
        if (r == NULL)
            break;
        PQclear(last);
        last = r;
    }
    if (last != NULL &&
        (PQresultStatus(last) == PGRES_COMMAND_OK || PQresultStatus(last) == PGRES_TUPLES_OK)) {
        rc = 0;
        *res = last;
        last = NULL;
    }
out:
    PQclear(last);
    drain_notifies(w);
    return rc;
}

/* LISTEN, then the counter; decides whether anything may have been missed since the last
 * sync, and only then reports current. */
static int listen_and_sync(struct store_watch *w)
{
    PGresult *r = NULL;
    int64_t last;
    /* Its own name in pg_stat_activity, so an operator can tell it from the pool's. */
    int rc = query_wait(w, "SET application_name = '" STORE_WATCH_APP_NAME "'", &r);

    PQclear(r);
    r = NULL;
    if (rc == 0)
        rc = query_wait(w, "LISTEN " CHANNEL, &r);
    PQclear(r);
    r = NULL;
    if (rc == 0)
        rc = query_wait(w, "SELECT last_value, is_called FROM invalidation_seq", &r);
    if (rc != 0 || PQntuples(r) != 1) {
        PQclear(r);
        return TV_ERR_UNAVAILABLE;
    }
    /* A sequence never used reads last_value 1 (its start) with is_called false. */
    last = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    if (strcmp(PQgetvalue(r, 0, 1), "t") != 0)
        last = 0;
    PQclear(r);
    if (!w->synced_once || last < w->base || (uint64_t)(last - w->base) != w->got) {
        /* The first sync resets too: whatever was cached before the watch ran is unproven. */
        if (w->cb.on_reset != NULL)
            w->cb.on_reset(w->cb.arg);
        atomic_fetch_add(&w->resets, 1);
    }
    w->base = last;
    w->got = 0;
    w->synced_once = 1;
    atomic_fetch_add(&w->syncs, 1);
    atomic_store(&w->current, 1);
    return 0;
}

/* Serves the connection until it breaks, stops answering, or the watch stops. */
static void listen_loop(struct store_watch *w)
{
    int64_t last_rx = clock_mono_ms(), ping_at = 0;

    for (;;) {
        int64_t now = clock_mono_ms();
        long wait_ms;
        int ready = 0;
        if (ping_at != 0) {
            int64_t late = now - ping_at;
            if (late >= PING_STALE_MS)
                atomic_store(&w->current, 0);
            if (late >= PING_DEAD_MS) {
                log_msg(LOGL_ERROR, NULL,
                        "store: the PostgreSQL LISTEN connection did not answer for %d ms; "
                        "reconnecting",
                        PING_DEAD_MS);
                return;
            }
            wait_ms = (long)(late < PING_STALE_MS ? PING_STALE_MS - late : PING_DEAD_MS - late);
        } else {
            if (now - last_rx >= PING_IDLE_MS) {
                if (!PQsendQuery(w->conn, "SELECT 1") || PQflush(w->conn) < 0)
                    return;
                ping_at = now;
                continue;
            }
            wait_ms = (long)(PING_IDLE_MS - (now - last_rx));
        }
        if (wait_fd_ready(w, PQsocket(w->conn), POLLIN, wait_ms, &ready))
            return;
        if (!ready)
            continue;
        if (PQflush(w->conn) < 0 || !PQconsumeInput(w->conn))
            return; /* the connection broke */
        drain_notifies(w);
        while (ping_at != 0 && !PQisBusy(w->conn)) {
            PGresult *r = PQgetResult(w->conn);
            if (r == NULL) {
                /* Answered: every notification committed before it has been handled. */
                ping_at = 0;
                atomic_store(&w->current, 1);
                break;
            }
            if (PQresultStatus(r) != PGRES_TUPLES_OK) {
                PQclear(r);
                return;
            }
            PQclear(r);
        }
        if (PQstatus(w->conn) == CONNECTION_BAD)
            return;
        last_rx = clock_mono_ms();
    }
}

static void *watch_main(void *arg)
{
    struct store_watch *w = arg;
    long backoff = BACKOFF_MIN_MS;
    int ever = 0;

    while (!atomic_load(&w->stop)) {
        int rc = connect_listen_conn(w, &w->conn);
        if (rc == 0)
            rc = listen_and_sync(w);
        if (rc == 0) {
            if (ever)
                atomic_fetch_add(&w->reconnects, 1);
            ever = 1;
            if (w->down)
                log_msg(LOGL_INFO, NULL, "store: PostgreSQL LISTEN connection is back");
            w->down = 0;
            backoff = BACKOFF_MIN_MS;
            listen_loop(w);
        }
        atomic_store(&w->current, 0);
        PQfinish(w->conn);
        w->conn = NULL;
        if (atomic_load(&w->stop))
            break;
        if (!w->down)
            log_msg(LOGL_ERROR, NULL,
                    "store: PostgreSQL LISTEN connection lost; caches bypassed until it is back");
        w->down = 1;
        (void)wait_fd(w, -1, 0, backoff);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    return NULL;
}

int store_watch_start(struct store *s, const struct store_watch_cb *cb, struct store_watch **out)
{
    struct store_watch *w;

    if (s == NULL || cb == NULL || out == NULL)
        return TV_ERR_INVALID;
    if ((w = calloc(1, sizeof *w)) == NULL)
        return TV_ERR_NOMEM;
    w->s = s;
    w->cb = *cb;
    w->wake[0] = w->wake[1] = -1;
    if (s->kind != STORE_PG) {
        atomic_store(&w->current, 1);
        *out = w;
        return 0;
    }
    w->pg = 1;
    if (pipe(w->wake) != 0) {
        free(w);
        return TV_ERR_INTERNAL;
    }
    (void)fcntl(w->wake[1], F_SETFL, O_NONBLOCK);
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        close(w->wake[0]);
        close(w->wake[1]);
        free(w);
        return TV_ERR_INTERNAL;
    }
    w->started = 1;
    *out = w;
    return 0;
}

void store_watch_stop(struct store_watch *w)
{
    if (w == NULL)
        return;
    if (w->started) {
        char b = 1;
        atomic_store(&w->stop, 1);
        if (write(w->wake[1], &b, 1) < 0) {
            /* The pipe is never full (one byte per stop): nothing to do. */
        }
        pthread_join(w->thread, NULL);
    }
    if (w->wake[0] >= 0) {
        close(w->wake[0]);
        close(w->wake[1]);
    }
    free(w);
}

int store_watch_current(const struct store_watch *w)
{
    return w != NULL && atomic_load(&w->current);
}

int store_watch_pushes(const struct store_watch *w)
{
    return w != NULL && w->pg;
}

void store_watch_stats_get(const struct store_watch *w, struct store_watch_stats *out)
{
    memset(out, 0, sizeof *out);
    if (w == NULL)
        return;
    out->events = atomic_load(&w->events);
    out->resets = atomic_load(&w->resets);
    out->reconnects = atomic_load(&w->reconnects);
    out->syncs = atomic_load(&w->syncs);
}
