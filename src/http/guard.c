/* Defences of the service's listeners against hostile clients, next to server.c:
 * - per-connection state (libmicrohttpd's connection notifications), so a request that
 *   libmicrohttpd abandons without its completion callback is still released when the
 *   connection closes;
 * - request deadlines: libmicrohttpd's timeout is an idle timeout that every byte resets, so a
 *   client dripping its head holds a slot forever. A sweeper thread closes connections whose
 *   head is not complete within head_timeout_s of the request's start (accept for a new
 *   connection, its first bytes on a kept-alive one), whose body is not complete within
 *   request_timeout_s of it, or whose next request line has not arrived within conn_timeout_s;
 * - the per-address connection cap (peers.c), counted when a connection starts;
 * - a query guard (too many arguments overflow libmicrohttpd's per-connection memory, which it
 *   then mishandles) and request framing checks (RFC 9112 section 6). */
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "core/clock.h"
#include "core/log.h"
#include "http_int.h"

#define HTTP_SWEEP_MS 250
/* How often an idle kept-alive connection is asked whether bytes of its next request arrived,
 * and how long after it went idle bytes count as a next request's (the kernel's record of the
 * last data received has a few milliseconds of granularity; the previous request's last bytes
 * must not count). */
#define HTTP_IDLE_LOOK_MS 1000
#define HTTP_IDLE_SLACK_MS 100
/* What one query argument costs in libmicrohttpd 0.9.75's per-connection pool: its header
 * record (7 words) rounded up to the pool's alignment. */
#define HTTP_ARG_COST 64u

/* ---- per-connection state ---- */

void http_conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                      enum MHD_ConnectionNotificationCode code)
{
    struct http_listener *l = cls;
    struct http_conn *c = *socket_context;
    const union MHD_ConnectionInfo *ci;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        c = calloc(1, sizeof(*c));
        if (!c) {
            /* Without its state the connection would escape the deadlines and the cap: refuse
             * it (libmicrohttpd sees the hang-up and closes it). */
            if (ci)
                shutdown(ci->connect_fd, SHUT_RDWR);
            return;
        }
        c->l = l;
        c->fd = ci ? ci->connect_fd : -1;
        /* A new connection's first request starts now: its head is due within the head
         * deadline, request line included, however slowly its bytes arrive. */
        atomic_init(&c->phase, HTTP_CONN_HEAD);
        atomic_init(&c->since_ms, clock_mono_ms());
        ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (l->peers && ci && http_peer_key_of(ci->client_addr, &c->peer)) {
            int over = http_peers_add(l, &c->peer);
            c->counted = over >= 0;
            /* Over the cap (accepts racing past http_peers_admit) or not counted: refuse. */
            if (over != 0 && c->fd >= 0) {
                c->cut = 1;
                shutdown(c->fd, SHUT_RDWR);
            }
        }
        pthread_mutex_lock(&l->cmu);
        c->next = l->conns;
        if (c->next)
            c->next->prev = c;
        l->conns = c;
        pthread_mutex_unlock(&l->cmu);
        *socket_context = c;
        return;
    }
    if (!c)
        return;
    /* libmicrohttpd closes the socket only after this notification returns, so removing the
     * entry under cmu guarantees the sweeper never shuts down a closed or reused descriptor. */
    pthread_mutex_lock(&l->cmu);
    if (c->prev)
        c->prev->next = c->next;
    else
        l->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&l->cmu);
    *socket_context = NULL;
    if (c->counted)
        http_peers_del(l, &c->peer);
    /* A request libmicrohttpd gave up on without calling the completion callback (it does so
     * when it fails to queue its own error answer twice, e.g. after a header or query overflow):
     * release it here, as that callback would have. */
    if (c->req)
        http_req_finish(c->req, MHD_REQUEST_TERMINATED_WITH_ERROR);
    free(c);
}

struct http_conn *http_conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return ci ? ci->socket_context : NULL;
}

void http_conn_phase(struct http_conn *c, int phase)
{
    int was;

    if (!c)
        return;
    was = atomic_load(&c->phase);
    /* HEAD and BODY run on the request's clock: a new connection's first request started at
     * accept, a kept-alive connection's next one at its request line (after IDLE). */
    if (!((phase == HTTP_CONN_HEAD || phase == HTTP_CONN_BODY) &&
          (was == HTTP_CONN_HEAD || was == HTTP_CONN_BODY)))
        atomic_store(&c->since_ms, clock_mono_ms());
    atomic_store(&c->phase, phase);
}

/* ---- the sweeper ---- */

/* When bytes of an idle kept-alive connection's next request began to arrive (about; 0 while
 * none have), so its head deadline can run from there. libmicrohttpd reads them at once and
 * tells nothing until the request line is complete, so this asks the kernel when data last
 * arrived (TCP_INFO), at most every HTTP_IDLE_LOOK_MS. Under l->cmu. */
static int64_t http_idle_next_at(struct http_conn *c, int64_t since, int64_t now)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);

    if (c->idle_since != since) {
        c->idle_since = since;
        c->next_ms = 0;
        c->looked_ms = 0;
    }
    if (c->next_ms != 0 || now - c->looked_ms < HTTP_IDLE_LOOK_MS)
        return c->next_ms;
    c->looked_ms = now;
    if (getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
        now - (int64_t)ti.tcpi_last_data_recv > since + HTTP_IDLE_SLACK_MS)
        c->next_ms = now - (int64_t)ti.tcpi_last_data_recv;
    return c->next_ms;
}

/* Shuts down every connection of l past its deadline; libmicrohttpd then sees the hang-up and
 * closes it through its normal path (completion callback, then the CLOSED notification). */
static void http_sweep_listener(struct http_listener *l, int64_t now)
{
    static const char *const what[] = {"request-line", "head", "request"};
    const struct http_server *s = l->srv;
    int64_t limit_ms[] = {(int64_t)s->conn_timeout_s * 1000, (int64_t)s->head_timeout_s * 1000,
                          (int64_t)s->request_timeout_s * 1000}; /* IDLE, HEAD, BODY */

    pthread_mutex_lock(&l->cmu);
    for (struct http_conn *c = l->conns; c; c = c->next) {
        int phase = atomic_load(&c->phase);
        int64_t since = atomic_load(&c->since_ms), next;

        if (c->cut || c->fd < 0)
            continue;
        /* A kept-alive connection dripping its next request line: the head deadline runs from
         * its first bytes, as on a new connection, not the whole idle timeout. */
        if (phase == HTTP_CONN_IDLE && now - since < limit_ms[HTTP_CONN_IDLE] &&
            (next = http_idle_next_at(c, since, now)) != 0 &&
            now - next >= limit_ms[HTTP_CONN_HEAD])
            phase = HTTP_CONN_HEAD;
        else if (phase < HTTP_CONN_IDLE || phase > HTTP_CONN_BODY || now - since < limit_ms[phase])
            continue;
        c->cut = 1;
        shutdown(c->fd, SHUT_RDWR);
        log_msg(LOGL_DEBUG, NULL, "http: %s: closed a connection past its %s deadline", l->name,
                what[phase]);
    }
    pthread_mutex_unlock(&l->cmu);
}

static void *http_sweeper_main(void *arg)
{
    struct http_server *s = arg;
    struct timespec ts;

    pthread_mutex_lock(&s->sweep_mu);
    while (!s->sweep_stop) {
        int64_t wake = clock_mono_ms() + HTTP_SWEEP_MS;
        ts.tv_sec = (time_t)(wake / 1000);
        ts.tv_nsec = (long)(wake % 1000) * 1000000L;
        pthread_cond_timedwait(&s->sweep_cv, &s->sweep_mu, &ts);
        if (s->sweep_stop)
            break;
        pthread_mutex_unlock(&s->sweep_mu);
        for (size_t i = 0; i < s->n; i++)
            http_sweep_listener(&s->l[i], clock_mono_ms());
        pthread_mutex_lock(&s->sweep_mu);
    }
    pthread_mutex_unlock(&s->sweep_mu);
    return NULL;
}

int http_sweeper_start(struct http_server *s)
{
    pthread_condattr_t ca;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* clock_mono_ms's clock */
    pthread_cond_init(&s->sweep_cv, &ca);
    pthread_condattr_destroy(&ca);
    s->sweep_stop = 0;
    if (pthread_create(&s->sweeper, NULL, http_sweeper_main, s) != 0) {
        pthread_cond_destroy(&s->sweep_cv);
        return -1;
    }
    s->sweeping = 1;
    return 0;
}

void http_sweeper_stop(struct http_server *s)
{
    if (!s->sweeping)
        return;
    pthread_mutex_lock(&s->sweep_mu);
    s->sweep_stop = 1;
    pthread_cond_signal(&s->sweep_cv);
    pthread_mutex_unlock(&s->sweep_mu);
    pthread_join(s->sweeper, NULL);
    pthread_cond_destroy(&s->sweep_cv);
    s->sweeping = 0;
}

/* ---- the query guard ---- */

int http_uri_guard(const char *uri, size_t pool_size)
{
    /* Non-const on purpose (strchr drops the qualifier without a cast): see the write below. */
    char *q = uri ? strchr(uri, '?') : NULL;
    size_t nargs = 1, len;

    if (!q || q[1] == '\0')
        return 0;
    for (const char *p = q + 1; *p; p++)
        nargs += *p == '&';
    len = strlen(uri);
    /* The pool holds the read buffer (about half of it once the request line is in), one
     * record per argument and per header, and the answer's header: a quarter of it for the
     * arguments, and half for target plus arguments, leaves ordinary headers their room. */
    if (nargs * HTTP_ARG_COST <= pool_size / 4 && len + nargs * HTTP_ARG_COST <= pool_size / 2)
        return 0;
    /* libmicrohttpd 0.9.75 (connection.c, parse_initial_message_line) hands this callback a
     * pointer into its own writable read buffer and parses the arguments from it right after
     * the callback returns; when they overflow the pool it queues a 431, then overwrites the
     * state that would send it, and the connection hangs until the client leaves. Ending the
     * argument string here makes it parse none, so the request reaches the access handler,
     * which answers 414. */
    q[1] = '\0';
    return 1;
}

/* ---- request framing ---- */

struct http_frame {
    int content_length; /* Content-Length fields seen */
    int transfer_encoding;
    int bad;    /* a field the checks refuse */
    int bad_te; /* a Transfer-Encoding other than "chunked" */
};

static int http_is_tchar(unsigned char ch)
{
    /* RFC 9110 section 5.6.2 token characters */
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static int http_name_is(const char *key, size_t len, const char *want)
{
    return len == strlen(want) && strncasecmp(key, want, len) == 0;
}

static int http_name_starts(const char *key, size_t len, const char *want)
{
    size_t n = strlen(want);
    return len > n && strncasecmp(key, want, n) == 0;
}

static enum MHD_Result http_frame_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                        size_t key_size, const char *value, size_t value_size)
{
    struct http_frame *f = cls;
    uintptr_t k = (uintptr_t)key, v = (uintptr_t)value;

    (void)kind;
    (void)value_size;
    if (!key || key_size == 0) {
        f->bad = 1;
        return MHD_NO;
    }
    for (size_t i = 0; i < key_size; i++) {
        if (!http_is_tchar((unsigned char)key[i])) {
            f->bad = 1; /* e.g. "Content-Length : 5" leaves the name "Content-Length " */
            return MHD_NO;
        }
    }
    /* libmicrohttpd 0.9.75 joins an obs-fold continuation line onto the field NAME (process_
     * broken_line appends it at the name's end): "Transfer-Encoding:\r\n chunked" becomes a field
     * named "Transfer-Encodingchunked". When it grew the name in place, the value pointer now
     * lies inside the name; a name that merely starts with a framing field's name is refused
     * too, since no such legitimate field exists. */
    if (value && v >= k && v <= k + key_size) {
        f->bad = 1;
        return MHD_NO;
    }
    if (http_name_starts(key, key_size, MHD_HTTP_HEADER_CONTENT_LENGTH) ||
        http_name_starts(key, key_size, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
        f->bad = 1;
        return MHD_NO;
    }
    if (http_name_is(key, key_size, MHD_HTTP_HEADER_CONTENT_LENGTH))
        f->content_length++;
    if (http_name_is(key, key_size, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
        f->transfer_encoding++;
        /* Only "chunked" is understood; anything else (gzip, "chunked, chunked", an empty value)
         * would leave the body's end to a guess. */
        if (!value || strcasecmp(value, "chunked") != 0)
            f->bad_te = 1;
    }
    return MHD_YES;
}

const char *http_frame_check(struct MHD_Connection *conn)
{
    struct http_frame f = {0, 0, 0, 0};

    MHD_get_connection_values_n(conn, MHD_HEADER_KIND, http_frame_field, &f);
    if (f.bad)
        return "malformed header field";
    if (f.bad_te)
        return "unsupported Transfer-Encoding";
    if (f.content_length > 1)
        return "more than one Content-Length";
    if (f.transfer_encoding > 1)
        return "more than one Transfer-Encoding";
    if (f.content_length && f.transfer_encoding)
        return "both Content-Length and Transfer-Encoding";
    return NULL;
}
