/* A pool of libpq connections (see pg_pool.h). */
#include "pg_pool.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "core/clock.h"
#include "core/dburi.h"
#include "core/err.h"
#include "core/log.h"

#define PGPOOL_NAME_MAX 128 /* host, port, user or database name kept for messages */
#define PGPOOL_MSG_MAX 384  /* libpq's message, made one line */
#define PGPOOL_TX_RERUNS 3  /* re-runs of a transaction the server rolled back (40P01, 40001) */

/* What went wrong with a statement besides its code (bits of run_on's *why). */
#define WHY_BROKEN 1   /* the connection is gone or unusable: it is closed */
#define WHY_STUCK 2    /* no answer within the client-side deadline (with WHY_BROKEN) */
#define WHY_ROLLBACK 4 /* deadlock or serialization failure: the server rolled it back */

struct pgpool_slot {
    PGconn *conn; /* NULL until first needed, and after it broke */
    int busy;
};

struct pgpool {
    char *uri; /* holds the password: wiped by pgpool_free */
    /* For messages only: what the URI names, never its password. */
    char host[PGPOOL_NAME_MAX];
    char port[PGPOOL_NAME_MAX];
    char user[PGPOOL_NAME_MAX];
    char db[PGPOOL_NAME_MAX];
    char *options;         /* the URI's own options plus "-c statement_timeout=N" */
    char user_timeout[24]; /* tcp_user_timeout (ms): unacknowledged data ends the connection */
    long connect_ms;
    long statement_ms;
    pthread_mutex_t lock;
    pthread_cond_t freed; /* a slot became free (CLOCK_MONOTONIC) */
    int size;
    int busy_now;
    int max_busy;
    int ever_connected; /* a later connection counts as a reconnect */
    long reconnects;
    int down; /* the last connection attempt failed: log the outage once, and its end */
    atomic_long statements; /* round trips begun: statements and transactions */
    struct pgpool_slot slots[];
};

struct pgpool_tx {
    struct pgpool *pool;
    PGconn *conn;
    long stmt_ms; /* the statement timeout in force (pgpool_tx_set_timeout) */
    int broken;   /* a statement found the connection gone */
    int why;      /* WHY_* bits gathered over the transaction */
};

/* libpq's message as one line without the trailing newline. */
static void one_line(const char *msg, char *out, size_t cap)
{
    size_t j = 0;

    for (size_t i = 0; msg != NULL && msg[i] != '\0' && j + 1 < cap; i++)
        out[j++] = msg[i] == '\n' || msg[i] == '\t' ? ' ' : msg[i];
    while (j > 0 && out[j - 1] == ' ')
        j--;
    out[j] = '\0';
}

/* The SQLSTATE in a verbose libpq message ("...failed: FATAL:  28P01:  password ..."): the
 * only way to learn why a connection attempt failed, since there is no PGresult for it. */
static int find_sqlstate(const char *msg, char state[6])
{
    for (const char *p = msg; p != NULL && (p = strstr(p, ":  ")) != NULL; p++) {
        const char *s = p + 3;
        int ok = 1;
        for (int i = 0; i < 5 && ok; i++)
            ok = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z');
        if (ok && s[5] == ':') {
            memcpy(state, s, 5);
            state[5] = '\0';
            return 1;
        }
    }
    return 0;
}

/* One line for a failed connection attempt, and its code. */
static int connect_failure(const struct pgpool *p, PGconn *c, int timed_out, char *err, size_t cap)
{
    char msg[PGPOOL_MSG_MAX], state[6];
    const char *libpq = c != NULL ? PQerrorMessage(c) : "out of memory";
    int has_state = find_sqlstate(libpq, state);

    one_line(libpq, msg, sizeof(msg));
    if (timed_out) {
        snprintf(err, cap, "PostgreSQL at %s:%s did not complete the connection within %ld ms",
                 p->host, p->port, p->connect_ms);
        return TV_ERR_UNAVAILABLE;
    }
    if (has_state && (strcmp(state, "28P01") == 0 || strcmp(state, "28000") == 0)) {
        snprintf(err, cap,
                 "PostgreSQL at %s:%s refused user \"%s\" (SQLSTATE %s: wrong password, or no "
                 "such role or pg_hba.conf entry): check the user and password of the database "
                 "URI",
                 p->host, p->port, p->user, state);
        return TV_ERR_CONFIG;
    }
    if (has_state && strcmp(state, "3D000") == 0) {
        snprintf(err, cap,
                 "PostgreSQL at %s:%s has no database \"%s\" (SQLSTATE 3D000): create it, or fix "
                 "the database URI",
                 p->host, p->port, p->db);
        return TV_ERR_CONFIG;
    }
    if (has_state) {
        snprintf(err, cap, "PostgreSQL at %s:%s refused the connection: %s", p->host, p->port, msg);
        return TV_ERR_UNAVAILABLE;
    }
    snprintf(err, cap, "PostgreSQL at %s:%s is unreachable: %s", p->host, p->port, msg);
    return TV_ERR_UNAVAILABLE;
}

/* Server notices (NOTICE: relation already exists, skipping) would go to stderr through libpq's
 * default processor, outside the JSON log lines: they go to the debug log instead. */
static void on_notice(void *arg, const char *message)
{
    char line[PGPOOL_MSG_MAX];

    (void)arg;
    one_line(message, line, sizeof(line));
    log_msg(LOGL_DEBUG, NULL, "store: PostgreSQL: %s", line);
}

/* Makes one connection within connect_ms, driving libpq's non-blocking connect ourselves: its
 * connect_timeout counts whole seconds per address and starts again for each. */
static PGconn *conn_start(const struct pgpool *p)
{
    /* Words before dbname are defaults the URI may override (it is expanded in place); the
     * words after it are ours: options already holds the URI's own options, and the service
     * needs UTF-8. Keepalives find a dead peer of an idle connection; tcp_user_timeout ends one
     * whose data is never acknowledged (a partition). libpq's connect_timeout is not used by
     * the non-blocking connect below, which keeps a deadline of its own. */
    const char *const kw[] = {"keepalives",
                              "keepalives_idle",
                              "keepalives_interval",
                              "keepalives_count",
                              "tcp_user_timeout",
                              "fallback_application_name",
                              "dbname",
                              "options",
                              "client_encoding",
                              NULL};
    const char *const vals[] = {"1",         "30",   "10",       "3",    p->user_timeout,
                                "tokenvend", p->uri, p->options, "UTF8", NULL};

    return PQconnectStartParams(kw, vals, 1);
}

PGconn *pgpool_conn_start(struct pgpool *p, long *connect_timeout_ms)
{
    if (p == NULL)
        return NULL;
    if (connect_timeout_ms != NULL)
        *connect_timeout_ms = p->connect_ms;
    return conn_start(p);
}

static int connect_one(struct pgpool *p, PGconn **out, char *err, size_t cap)
{
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    int64_t deadline = clock_mono_ms() + p->connect_ms;
    PGconn *c = conn_start(p);
    int rc = TV_ERR_UNAVAILABLE, timed_out = 0;

    if (c == NULL) {
        snprintf(err, cap, "PostgreSQL: out of memory");
        return TV_ERR_NOMEM;
    }
    if (PQstatus(c) == CONNECTION_BAD)
        goto fail;
    /* Verbose messages carry the SQLSTATE of a refusal (find_sqlstate). */
    PQsetErrorVerbosity(c, PQERRORS_VERBOSE);
    while (st != PGRES_POLLING_OK) {
        struct pollfd pf = {.fd = PQsocket(c)};
        int64_t left = deadline - clock_mono_ms();
        int n;
        if (st == PGRES_POLLING_FAILED)
            goto fail;
        if (left <= 0) {
            timed_out = 1;
            goto fail;
        }
        pf.events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
        n = poll(&pf, 1, (int)left);
        if (n < 0 && errno != EINTR)
            goto fail;
        if (n == 0) {
            timed_out = 1;
            goto fail;
        }
        if (n > 0)
            st = PQconnectPoll(c);
    }
    PQsetErrorVerbosity(c, PQERRORS_DEFAULT);
    PQsetNoticeProcessor(c, on_notice, NULL);
    /* Statements are sent and awaited with a deadline of our own (await_result). */
    if (PQsetnonblocking(c, 1) != 0)
        goto fail;
    *out = c;
    return 0;
fail:
    rc = connect_failure(p, c, timed_out, err, cap);
    PQfinish(c);
    return rc;
}

/* A port list as libpq takes it (one per host, comma-separated), each 1..65535. */
static int port_ok(const char *ports)
{
    const char *p = ports;

    for (;;) {
        long v = 0;
        int digits = 0;
        for (; *p >= '0' && *p <= '9' && digits < 6; p++, digits++)
            v = v * 10 + (*p - '0');
        if (digits == 0 || v < 1 || v > 65535)
            return 0;
        if (*p == '\0')
            return 1;
        if (*p++ != ',')
            return 0;
    }
}

/* The parsed options hold the password too: wiped before they are freed. */
static void conninfo_free(PQconninfoOption *info)
{
    if (info == NULL)
        return;
    for (PQconninfoOption *opt = info; opt->keyword != NULL; opt++)
        if (opt->val != NULL)
            OPENSSL_cleanse(opt->val, strlen(opt->val));
    PQconninfoFree(info);
}

/* Parses uri with libpq's own parser and checks what libpq would only find when connecting.
 * 0 with *info (PQconninfoFree), or TV_ERR_CONFIG with one line in err (never the password:
 * libpq's own message may quote the part it could not read, so it is not shown). */
static int uri_parse(const char *uri, PQconninfoOption **info, char *err, size_t errcap)
{
    char redacted[512];
    char *perr = NULL;
    const char *port = "5432";

    *info = NULL;
    if (!dburi_is_pg(uri) || (*info = PQconninfoParse(uri, &perr)) == NULL) {
        dburi_redact(uri, redacted, sizeof(redacted));
        snprintf(err, errcap,
                 "not a valid PostgreSQL URI (postgresql://user:password@host:port/database): %s",
                 redacted);
        PQfreemem(perr);
        return TV_ERR_CONFIG;
    }
    for (PQconninfoOption *opt = *info; opt->keyword != NULL; opt++)
        if (strcmp(opt->keyword, "port") == 0 && opt->val != NULL && opt->val[0] != '\0')
            port = opt->val;
    if (!port_ok(port)) {
        dburi_redact(uri, redacted, sizeof(redacted));
        snprintf(err, errcap, "not a valid PostgreSQL URI (the port must be 1..65535): %s",
                 redacted);
        PQconninfoFree(*info);
        *info = NULL;
        return TV_ERR_CONFIG;
    }
    return 0;
}

int pgpool_uri_check(const char *uri, char *err, size_t errcap)
{
    PQconninfoOption *info = NULL;
    int rc;

    if (err == NULL || errcap == 0)
        return TV_ERR_INVALID;
    err[0] = '\0';
    rc = uri_parse(uri, &info, err, errcap);
    PQconninfoFree(info);
    return rc;
}

int pgpool_new(const struct pgpool_opts *o, struct pgpool **out, char *err, size_t errcap)
{
    PQconninfoOption *info = NULL, *opt;
    struct pgpool *p = NULL;
    const char *uri_options = "";
    size_t olen;
    int rc = TV_ERR_INVALID;

    if (err == NULL || errcap == 0 || out == NULL)
        return TV_ERR_INVALID;
    err[0] = '\0';
    if (o == NULL || o->uri == NULL || o->size < 1 || o->size > PGPOOL_SIZE_MAX ||
        o->connect_timeout_ms < 1 || o->statement_timeout_ms < 1) {
        snprintf(err, errcap, "PostgreSQL pool: invalid options");
        return TV_ERR_INVALID;
    }
    if ((rc = uri_parse(o->uri, &info, err, errcap)) != 0)
        return rc;
    p = calloc(1, sizeof(*p) + (size_t)o->size * sizeof(p->slots[0]));
    if (p == NULL || (p->uri = strdup(o->uri)) == NULL) {
        rc = TV_ERR_NOMEM;
        snprintf(err, errcap, "PostgreSQL pool: out of memory");
        goto fail;
    }
    snprintf(p->host, sizeof(p->host), "localhost");
    snprintf(p->port, sizeof(p->port), "5432");
    for (opt = info; opt->keyword != NULL; opt++) {
        if (opt->val == NULL || opt->val[0] == '\0')
            continue;
        if (strcmp(opt->keyword, "host") == 0)
            snprintf(p->host, sizeof(p->host), "%s", opt->val);
        else if (strcmp(opt->keyword, "port") == 0)
            snprintf(p->port, sizeof(p->port), "%s", opt->val);
        else if (strcmp(opt->keyword, "user") == 0)
            snprintf(p->user, sizeof(p->user), "%s", opt->val);
        else if (strcmp(opt->keyword, "dbname") == 0)
            snprintf(p->db, sizeof(p->db), "%s", opt->val);
        else if (strcmp(opt->keyword, "options") == 0)
            uri_options = opt->val;
    }
    p->connect_ms = o->connect_timeout_ms;
    p->statement_ms = o->statement_timeout_ms;
    /* The URI's options (a search_path...) are kept: ours is added after them, so that the
     * server's last -c statement_timeout, ours, is the one in force. */
    olen = strlen(uri_options) + 48;
    p->options = malloc(olen);
    if (p->options == NULL) {
        rc = TV_ERR_NOMEM;
        snprintf(err, errcap, "PostgreSQL pool: out of memory");
        goto fail;
    }
    snprintf(p->options, olen, "%s%s-c statement_timeout=%ld", uri_options,
             uri_options[0] != '\0' ? " " : "", p->statement_ms);
    snprintf(p->user_timeout, sizeof(p->user_timeout), "%ld", p->connect_ms + p->statement_ms);
    p->size = o->size; /* from here on pgpool_free destroys the lock and condition */
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&p->freed, &ca);
        pthread_condattr_destroy(&ca);
    }
    pthread_mutex_init(&p->lock, NULL);
    rc = connect_one(p, &p->slots[0].conn, err, errcap);
    if (rc != 0)
        goto fail;
    p->ever_connected = 1;
    conninfo_free(info);
    *out = p;
    return 0;
fail:
    conninfo_free(info);
    pgpool_free(p);
    return rc;
}

void pgpool_free(struct pgpool *p)
{
    if (p == NULL)
        return;
    for (int i = 0; i < p->size; i++)
        PQfinish(p->slots[i].conn);
    if (p->uri != NULL) {
        OPENSSL_cleanse(p->uri, strlen(p->uri));
        free(p->uri);
    }
    free(p->options);
    if (p->size > 0) {
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->freed);
    }
    free(p);
}

/* Takes a free slot, waiting at most the connect plus statement timeouts (a caller waits for
 * one in use, which ends within its statement timeout), and connects it if it has no
 * connection. A slot with a connection is preferred, so the pool grows only under load. */
static int acquire(struct pgpool *p, int *idx)
{
    char err[PGPOOL_ERR_MAX];
    struct timespec until;
    int64_t wait_ms = p->connect_ms + p->statement_ms;
    int i, pick = -1, rc = 0;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->lock);
    for (;;) {
        for (i = 0; i < p->size; i++) {
            if (p->slots[i].busy)
                continue;
            if (pick < 0 || (p->slots[pick].conn == NULL && p->slots[i].conn != NULL))
                pick = i;
        }
        if (pick >= 0)
            break;
        if (pthread_cond_timedwait(&p->freed, &p->lock, &until) == ETIMEDOUT) {
            pthread_mutex_unlock(&p->lock);
            log_msg(LOGL_ERROR, NULL,
                    "store: all %d PostgreSQL connections stayed busy for %lld ms", p->size,
                    (long long)wait_ms);
            return TV_ERR_UNAVAILABLE;
        }
    }
    p->slots[pick].busy = 1;
    if (++p->busy_now > p->max_busy)
        p->max_busy = p->busy_now;
    pthread_mutex_unlock(&p->lock);
    if (p->slots[pick].conn == NULL) {
        PGconn *c = NULL;
        rc = connect_one(p, &c, err, sizeof(err));
        pthread_mutex_lock(&p->lock);
        if (rc == 0) {
            p->slots[pick].conn = c;
            if (p->ever_connected)
                p->reconnects++;
            p->ever_connected = 1;
            if (p->down)
                log_msg(LOGL_INFO, NULL, "store: PostgreSQL at %s:%s is reachable again", p->host,
                        p->port);
            p->down = 0;
        } else {
            /* One line per outage, not one per request. */
            if (!p->down)
                log_msg(LOGL_ERROR, NULL, "store: %s", err);
            p->down = 1;
            p->slots[pick].busy = 0;
            p->busy_now--;
            pthread_cond_signal(&p->freed);
        }
        pthread_mutex_unlock(&p->lock);
        if (rc != 0)
            return rc == TV_ERR_CONFIG ? TV_ERR_CONFIG : TV_ERR_UNAVAILABLE;
    }
    *idx = pick;
    return 0;
}

/* Returns a slot. A broken connection is closed, and so is every idle one: a server restart
 * ended them all, and a retry must not pick another dead one. */
static void release(struct pgpool *p, int idx, int broken)
{
    pthread_mutex_lock(&p->lock);
    if (broken) {
        for (int i = 0; i < p->size; i++) {
            if (i == idx || !p->slots[i].busy) {
                PQfinish(p->slots[i].conn);
                p->slots[i].conn = NULL;
            }
        }
    }
    p->slots[idx].busy = 0;
    p->busy_now--;
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->lock);
}

/* The code of a failed statement; *why gets WHY_BROKEN when the connection is gone (a restart
 * or a shutdown of the server ends it with SQLSTATE 57P01..57P03 or class 08, or just closes
 * it), WHY_ROLLBACK for a deadlock or a serialization failure. */
static int result_rc(const struct pgpool *p, PGconn *c, const PGresult *r, int *why)
{
    ExecStatusType st = r != NULL ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    const char *state, *msg;

    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return 0;
    state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (PQstatus(c) == CONNECTION_BAD || state == NULL || strncmp(state, "08", 2) == 0 ||
        strncmp(state, "57P0", 4) == 0) {
        *why |= WHY_BROKEN;
        return TV_ERR_UNAVAILABLE;
    }
    if (strcmp(state, "23505") == 0)
        return TV_ERR_CONFLICT; /* expected in races: the caller decides what it means */
    /* The primary message names constraints and objects, never parameter values (those are
     * in the detail field, which is not logged). */
    msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    if (strcmp(state, "57014") == 0) {
        log_msg(LOGL_ERROR, NULL, "store: a PostgreSQL statement ran past %ld ms and was cancelled",
                p->statement_ms);
        return TV_ERR_UNAVAILABLE;
    }
    if (strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0) {
        /* Transient: pgpool_tx_run runs the transaction again. */
        *why |= WHY_ROLLBACK;
        log_msg(LOGL_WARN, NULL, "store: PostgreSQL: %s (SQLSTATE %s)", msg != NULL ? msg : "?",
                state);
        return TV_ERR_IO;
    }
    log_msg(LOGL_ERROR, NULL, "store: PostgreSQL: %s (SQLSTATE %s)", msg != NULL ? msg : "?",
            state);
    return strncmp(state, "23", 2) == 0 ? TV_ERR_INVALID : TV_ERR_IO;
}

/* Waits until the connection's socket is ready for events or deadline passes: 1 ready, 0 the
 * deadline passed, -1 no socket or a poll error. */
static int wait_socket(PGconn *c, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd pf = {.fd = PQsocket(c), .events = events};
        int64_t left = deadline - clock_mono_ms();
        int n;
        if (pf.fd < 0)
            return -1;
        if (left <= 0)
            return 0;
        n = poll(&pf, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

static int is_error(const PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);

    return st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR;
}

/* After PQsend*: sends what libpq buffered and collects the answer, as PQexec would (the first
 * error, else the last result), but never past stmt_ms plus the connect timeout. The server
 * enforces statement_timeout only while it runs: a frozen server or a partition answers
 * nothing, and only this deadline ends the wait. Then the connection is given up (WHY_STUCK):
 * no PQcancel, which would block on the same unresponsive server. NULL with *why set when
 * there is no answer. */
static PGresult *await_result(const struct pgpool *p, PGconn *c, long stmt_ms, int *why)
{
    int64_t deadline = clock_mono_ms() + stmt_ms + p->connect_ms;
    PGresult *keep = NULL, *r;
    int f, w = 1;

    /* While sending, the server may be answering already: read too, or both sides block. */
    while ((f = PQflush(c)) == 1) {
        if ((w = wait_socket(c, POLLIN | POLLOUT, deadline)) <= 0 || PQconsumeInput(c) == 0)
            goto fail;
    }
    if (f < 0)
        goto fail;
    for (;;) {
        while (PQisBusy(c)) {
            if ((w = wait_socket(c, POLLIN, deadline)) <= 0 || PQconsumeInput(c) == 0)
                goto fail;
        }
        if ((r = PQgetResult(c)) == NULL)
            break;
        if (keep != NULL && is_error(keep)) {
            PQclear(r);
        } else {
            PQclear(keep);
            keep = r;
        }
    }
    return keep;
fail:
    PQclear(keep);
    *why |= WHY_BROKEN;
    if (w == 0) {
        *why |= WHY_STUCK;
        log_msg(LOGL_ERROR, NULL,
                "store: PostgreSQL at %s:%s did not answer within %ld ms; the connection is "
                "closed",
                p->host, p->port, stmt_ms + p->connect_ms);
    }
    return NULL;
}

/* Runs one statement (sql with parameters, or a script when script is set) and sets *res on
 * success. */
static int run_on(const struct pgpool *p, PGconn *c, long stmt_ms, int script, const char *sql,
                  int n, const char *const *values, const int *lengths, const int *formats,
                  PGresult **res, int *why)
{
    PGresult *r = NULL;
    int sent, rc;

    sent = script ? PQsendQuery(c, sql)
                  : PQsendQueryParams(c, sql, n, NULL, values, lengths, formats, 0);
    if (sent)
        r = await_result(p, c, stmt_ms, why);
    if (r == NULL && (*why & WHY_STUCK))
        return TV_ERR_UNAVAILABLE; /* logged */
    rc = result_rc(p, c, r, why);
    if (rc == 0 && res != NULL)
        *res = r;
    else
        PQclear(r);
    return rc;
}

int pgpool_exec(struct pgpool *p, const char *sql, int n, const char *const *values,
                const int *lengths, const int *formats, int flags, PGresult **res)
{
    int rc = TV_ERR_INVALID;

    if (p == NULL || sql == NULL || n < 0 || (n > 0 && values == NULL))
        return TV_ERR_INVALID;
    for (int attempt = 0; attempt < 2; attempt++) {
        int idx, why = 0;
        rc = acquire(p, &idx);
        if (rc != 0)
            return rc;
        atomic_fetch_add(&p->statements, 1);
        rc = run_on(p, p->slots[idx].conn, p->statement_ms, 0, sql, n, values, lengths, formats,
                    res, &why);
        release(p, idx, why & WHY_BROKEN);
        if (!(why & WHY_BROKEN))
            return rc;
        /* A server that did not answer in time is not asked again within the same call. */
        if (why & WHY_STUCK)
            return TV_ERR_UNAVAILABLE;
        if (!(flags & PGPOOL_RETRY) || attempt == 1) {
            log_msg(LOGL_ERROR, NULL,
                    "store: the connection to PostgreSQL at %s:%s was lost during a statement "
                    "that is not repeated",
                    p->host, p->port);
            return TV_ERR_UNAVAILABLE;
        }
    }
    return rc;
}

int pgpool_tx_exec(struct pgpool_tx *tx, const char *sql, int n, const char *const *values,
                   const int *lengths, const int *formats, PGresult **res)
{
    int rc;

    if (tx == NULL || sql == NULL || n < 0 || (n > 0 && values == NULL))
        return TV_ERR_INVALID;
    if (tx->broken)
        return TV_ERR_UNAVAILABLE;
    rc =
        run_on(tx->pool, tx->conn, tx->stmt_ms, 0, sql, n, values, lengths, formats, res, &tx->why);
    tx->broken = (tx->why & WHY_BROKEN) != 0;
    return rc;
}

int pgpool_tx_exec_script(struct pgpool_tx *tx, const char *sql)
{
    int rc;

    if (tx == NULL || sql == NULL)
        return TV_ERR_INVALID;
    if (tx->broken)
        return TV_ERR_UNAVAILABLE;
    /* The simple protocol: an error stops the rest, and is the result. */
    rc = run_on(tx->pool, tx->conn, tx->stmt_ms, 1, sql, 0, NULL, NULL, NULL, NULL, &tx->why);
    tx->broken = (tx->why & WHY_BROKEN) != 0;
    return rc;
}

int pgpool_tx_set_timeout(struct pgpool_tx *tx, long ms)
{
    char sql[64];
    int rc;

    if (tx == NULL || ms < 1)
        return TV_ERR_INVALID;
    snprintf(sql, sizeof(sql), "SET LOCAL statement_timeout = %ld", ms);
    rc = pgpool_tx_exec(tx, sql, 0, NULL, NULL, NULL, NULL);
    if (rc == 0)
        tx->stmt_ms = ms;
    return rc;
}

/* COMMIT, and whether it committed: a transaction that failed inside answers COMMIT with the
 * tag ROLLBACK. *lost when the answer never came (it may have committed). */
static int commit(struct pgpool_tx *tx, int *lost)
{
    PGresult *r = NULL;
    int why = 0;
    int rc = run_on(tx->pool, tx->conn, tx->stmt_ms, 0, "COMMIT", 0, NULL, NULL, NULL, &r, &why);

    if (rc == 0 && strcmp(PQcmdStatus(r), "COMMIT") != 0)
        rc = TV_ERR_IO;
    *lost = (why & WHY_BROKEN) != 0;
    /* A serialization failure at COMMIT is a certain rollback: safe to run again. */
    tx->why |= why & WHY_ROLLBACK;
    PQclear(r);
    return rc;
}

int pgpool_tx_run(struct pgpool *p, pgpool_tx_fn fn, void *arg)
{
    int rc = TV_ERR_INVALID, broken_reruns = 0, rollback_reruns = 0;

    if (p == NULL || fn == NULL)
        return TV_ERR_INVALID;
    for (;;) {
        struct pgpool_tx tx = {.pool = p, .stmt_ms = p->statement_ms};
        int idx, lost = 0;
        rc = acquire(p, &idx);
        if (rc != 0)
            return rc;
        tx.conn = p->slots[idx].conn;
        atomic_fetch_add(&p->statements, 1);
        rc = pgpool_tx_exec(&tx, "BEGIN", 0, NULL, NULL, NULL, NULL);
        if (rc == 0)
            rc = fn(&tx, arg);
        if (rc == 0 && !tx.broken)
            rc = commit(&tx, &lost);
        else if (!tx.broken)
            pgpool_tx_exec(&tx, "ROLLBACK", 0, NULL, NULL, NULL, NULL);
        release(p, idx, tx.broken || lost);
        if (lost) {
            /* The server may have committed before the connection went: not repeated. */
            log_msg(LOGL_ERROR, NULL,
                    "store: the connection to PostgreSQL at %s:%s was lost during COMMIT; the "
                    "transaction may or may not have taken effect",
                    p->host, p->port);
            return TV_ERR_UNAVAILABLE;
        }
        /* A server that did not answer in time is not asked again within the same call. */
        if (tx.why & WHY_STUCK)
            return TV_ERR_UNAVAILABLE;
        if (tx.broken) {
            /* Before COMMIT the server rolls an ended session's transaction back: once more. */
            if (broken_reruns++ < 1)
                continue;
            log_msg(LOGL_ERROR, NULL,
                    "store: the connection to PostgreSQL at %s:%s was lost twice during a "
                    "transaction",
                    p->host, p->port);
            return TV_ERR_UNAVAILABLE;
        }
        /* A deadlock or a serialization failure: the server rolled it all back, and the body
         * may run again (its contract), typically no longer in the other's way. */
        if (rc != 0 && (tx.why & WHY_ROLLBACK) && rollback_reruns++ < PGPOOL_TX_RERUNS) {
            log_msg(LOGL_INFO, NULL, "store: running a PostgreSQL transaction again (%d of %d)",
                    rollback_reruns, PGPOOL_TX_RERUNS);
            continue;
        }
        return rc;
    }
}

long pgpool_statements(struct pgpool *p)
{
    return atomic_load(&p->statements);
}

void pgpool_stats(struct pgpool *p, int *open, int *max_busy, long *reconnects)
{
    int n = 0;

    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < p->size; i++)
        n += p->slots[i].conn != NULL;
    if (open != NULL)
        *open = n;
    if (max_busy != NULL)
        *max_busy = p->max_busy;
    if (reconnects != NULL)
        *reconnects = p->reconnects;
    pthread_mutex_unlock(&p->lock);
}
