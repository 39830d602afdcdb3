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
 * - a request-target guard (a control byte or a raw NUL in the target; too many arguments
 *   overflow libmicrohttpd's per-connection memory, which it then mishandles) and request
 *   framing checks (RFC 9112 sections 2.2, 3, 5.2 and 6) over the head exactly as libmicrohttpd
 *   holds it, not over C-string views of it. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "core/clock.h"
#include "core/err.h"
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

/* ---- the request target ---- */

/* True when p starts the tail libmicrohttpd 0.9.75 leaves after a request target before it calls
 * the URI-log callback: the space before the version and the line end overwritten with NULs
 * around "HTTP/1.d" (parse_initial_message_line refuses any other version first). p must point
 * at a NUL no later than that tail: the reads stop at the first byte that differs, so they
 * never pass the real tail. */
static int http_is_line_tail(const char *p)
{
    static const char tail[] = "HTTP/1.";

    if (p[0] != '\0')
        return 0;
    for (size_t i = 0; i < sizeof(tail) - 1; i++) {
        if (p[1 + i] != tail[i])
            return 0;
    }
    return p[8] >= '0' && p[8] <= '9' && p[9] == '\0';
}

int http_target_guard(const char *uri, size_t pool_size, struct http_target *t)
{
    /* Non-const on purpose (memchr drops the qualifier without a cast): see the write below. */
    char *q;
    size_t nargs = 1, i = 0;

    t->seen = 0;
    t->bad = 0;
    if (!uri)
        return 0;
    /* libmicrohttpd hands the target over as a C string, but finds its end (and the '?' it
     * parses the arguments from) by the line's length: a raw NUL would hide the rest of the
     * target, arguments included, from a C-string view. So the scan steps over every NUL
     * that is not the line's tail. It stops at the first tail, which the target itself can
     * imitate ("/a\0HTTP/1.1\0?..."): what lies past an imitation is caught later, exactly,
     * by http_frame_check, and an argument overflow it causes by http_unescape. */
    for (;; i++) {
        unsigned char ch = (unsigned char)uri[i];
        if (ch == '\0' && http_is_line_tail(uri + i))
            break;
        /* RFC 9112 section 3.2: a target holds no control byte and no space; libmicrohttpd
         * lets both through. */
        if (ch <= 0x20 || ch == 0x7F)
            t->bad = 1;
    }
    t->seen = i;
    q = memchr(uri, '?', i);
    if (!q || q[1] == '\0')
        return 0;
    for (const char *p = q + 1; p < uri + i; p++)
        nargs += *p == '&';
    /* The pool holds the read buffer (about half of it once the request line is in), one
     * record per argument and per header, and the answer's header: a quarter of it for the
     * arguments, and half for target plus arguments, leaves ordinary headers their room. A
     * target refused anyway costs nothing either. */
    if (!t->bad && nargs * HTTP_ARG_COST <= pool_size / 4 &&
        i + nargs * HTTP_ARG_COST <= pool_size / 2)
        return 0;
    /* libmicrohttpd 0.9.75 (connection.c, parse_initial_message_line) hands this callback a
     * pointer into its own writable read buffer and parses the arguments from it right after
     * the callback returns; when they overflow the pool it queues a 431, then overwrites the
     * state that would send it, and the connection hangs until the client leaves. Ending the
     * argument string here makes it parse none, so the request reaches the access handler,
     * which answers 414 (or 400 for a bad target). */
    q[1] = '\0';
    return 1;
}

int http_uri_guard(const char *uri, size_t pool_size)
{
    struct http_target t;

    return http_target_guard(uri, pool_size, &t);
}

/* The answer for a request whose query libmicrohttpd could not hold after all (a target that
 * imitated the line's tail hid its arguments from the guard): libmicrohttpd has queued a 431
 * that it will never send and waits for bytes it already discarded. The error is written to
 * the socket directly (nothing else is being sent on it: the previous answer is complete before
 * a request line is parsed) and the connection shut down, which libmicrohttpd then closes. */
static void http_conn_refuse(struct http_conn *c, struct http_req *r)
{
    char head[256], id[37];
    size_t blen = 0;
    char *body = http_error_body(err_name(TV_ERR_TOO_LARGE), "request target too long", &blen);
    int hlen;

    http_uuid_new(id);
    hlen = snprintf(head, sizeof(head),
                    "HTTP/1.1 414 URI Too Long\r\nContent-Type: application/json\r\n"
                    "Content-Length: %zu\r\nX-Request-Id: %s\r\nConnection: close\r\n\r\n",
                    body ? blen : 0, id);
    pthread_mutex_lock(&c->l->cmu);
    if (!c->cut && c->fd >= 0) {
        c->cut = 1;
        if (hlen > 0 && (size_t)hlen < sizeof(head) &&
            send(c->fd, head, (size_t)hlen, MSG_NOSIGNAL | MSG_DONTWAIT) == hlen && body)
            (void)send(c->fd, body, blen, MSG_NOSIGNAL | MSG_DONTWAIT);
        shutdown(c->fd, SHUT_RDWR);
    }
    pthread_mutex_unlock(&c->l->cmu);
    free(body);
    r->status = 414;
    http_stats_record(c->l, -1, 414, 0);
    log_msg(LOGL_INFO, id, "http: %s: answered 414 and closed: a query overflowed", c->l->name);
}

size_t http_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    struct http_conn *c = http_conn_of(conn);

    (void)cls;
    /* Called for each argument and then, last, for the target; by then libmicrohttpd has
     * parsed the arguments, and a response it queued itself means it failed to. */
    if (c && c->req && c->req->target_at == s && !c->req->method[0] &&
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_HTTP_STATUS) != NULL)
        http_conn_refuse(c, c->req);
    return MHD_http_unescape(s);
}

/* ---- request framing ---- */

struct http_frame {
    const char *head_end; /* one past the head in libmicrohttpd's buffer; NULL: unknown */
    const char *line_end; /* the NUL that ended the previous line (CR or LF overwritten) */
    int content_length;   /* Content-Length fields seen */
    int transfer_encoding;
    int host;   /* Host fields seen */
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

/* True when [from, to) is 1..max bytes of the head, all NUL: a line end (CR LF or a bare LF,
 * both overwritten), plus an empty line's when max allows. Anything else there is a byte a
 * C-string view skipped: what followed a raw NUL in a line, or an obs-fold line. (A raw NUL
 * right before a bare LF looks like a CR LF here; it hides nothing but itself.) */
static int http_gap_is_eol(const struct http_frame *f, const char *from, const char *to, size_t max)
{
    /* Addresses compared as integers: a field libmicrohttpd moved lies outside the head. */
    uintptr_t a = (uintptr_t)from, b = (uintptr_t)to;

    if (b <= a || b - a > max || (f->head_end && b > (uintptr_t)f->head_end))
        return 0;
    for (size_t i = 0; i < b - a; i++) {
        if (from[i] != '\0')
            return 0;
    }
    return 1;
}

static enum MHD_Result http_frame_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                        size_t key_size, const char *value, size_t value_size)
{
    struct http_frame *f = cls;
    uintptr_t k = (uintptr_t)key, v = (uintptr_t)value;

    (void)kind;
    if (!key || key_size == 0 || !value) {
        f->bad = 1;
        return MHD_NO;
    }
    for (size_t i = 0; i < key_size; i++) {
        if (!http_is_tchar((unsigned char)key[i])) {
            f->bad = 1; /* e.g. "Content-Length : 5" leaves the name "Content-Length " */
            return MHD_NO;
        }
    }
    /* Each field must sit where its own line put it: right after the previous line's end,
     * "name" NUL (the colon) optional whitespace "value", its line end next. libmicrohttpd
     * 0.9.75 joins an obs-fold continuation onto the field NAME (process_broken_line), moving
     * or growing it, and stops a name or value at a raw NUL; either leaves the field away from
     * that place or bytes between it and the next line. RFC 9112 sections 5.2 and 2.2: both
     * are refused. */
    if (f->line_end) {
        if (!http_gap_is_eol(f, f->line_end, key, 2) || v <= k + key_size ||
            key[key_size] != '\0' || (f->head_end && v + value_size >= (uintptr_t)f->head_end)) {
            f->bad = 1;
            return MHD_NO;
        }
        for (size_t i = key_size + 1; i < v - k; i++) {
            if (key[i] != ' ' && key[i] != '\t') {
                f->bad = 1;
                return MHD_NO;
            }
        }
        f->line_end = value + value_size;
    }
    /* RFC 9110 section 5.5: no CR, LF or NUL in a value (a bare CR ends a line for some
     * parsers), and no other control but HTAB. */
    for (size_t i = 0; i < value_size; i++) {
        unsigned char ch = (unsigned char)value[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7F) {
            f->bad = 1;
            return MHD_NO;
        }
    }
    /* A name that merely starts with a framing field's name is refused too: no such legitimate
     * field exists, and it is what a fold joined onto the name looks like. */
    if (http_name_starts(key, key_size, MHD_HTTP_HEADER_CONTENT_LENGTH) ||
        http_name_starts(key, key_size, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
        f->bad = 1;
        return MHD_NO;
    }
    if (http_name_is(key, key_size, MHD_HTTP_HEADER_CONTENT_LENGTH))
        f->content_length++;
    if (http_name_is(key, key_size, MHD_HTTP_HEADER_HOST))
        f->host++;
    if (http_name_is(key, key_size, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
        f->transfer_encoding++;
        /* Only "chunked" is understood; anything else (gzip, "chunked, chunked", an empty value)
         * would leave the body's end to a guess. */
        if (value_size != 7 || strncasecmp(value, "chunked", 7) != 0)
            f->bad_te = 1;
    }
    return MHD_YES;
}

/* The request line as libmicrohttpd left it: "method" NUL "target" NUL "HTTP/1.d" NUL. One
 * space between the parts, no control byte or space in the target and nothing hidden in it
 * behind a NUL: its full length, known from where the version begins, must be what
 * http_target_guard saw. */
static const char *http_line_check(const struct http_head *h)
{
    size_t mlen = strlen(h->method);
    uintptr_t t = (uintptr_t)h->target, ver = (uintptr_t)h->version;

    for (size_t i = 0; i < mlen; i++) {
        if (!http_is_tchar((unsigned char)h->method[i]))
            return "malformed request line";
    }
    if (t != (uintptr_t)h->method + mlen + 1 || ver <= t)
        return "malformed request line";
    if (h->target_bad || ver - 1 - t != h->target_seen)
        return "control character or space in the request target";
    return NULL;
}

const char *http_frame_check(struct MHD_Connection *conn, const struct http_head *h)
{
    struct http_frame f;
    const union MHD_ConnectionInfo *ci;
    const char *bad;

    memset(&f, 0, sizeof(f));
    if (h && h->target) {
        bad = http_line_check(h);
        if (bad)
            return bad;
        ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
        if (ci && ci->header_size > 0)
            f.head_end = h->method + ci->header_size;
        f.line_end = h->version + strlen(h->version);
    }
    MHD_get_connection_values_n(conn, MHD_HEADER_KIND, http_frame_field, &f);
    /* After the last field: its line end, then the empty line's (each CR LF or LF). */
    if (!f.bad && f.line_end && f.head_end && !http_gap_is_eol(&f, f.line_end, f.head_end, 4))
        f.bad = 1;
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
    /* RFC 9112 section 6.1: Transfer-Encoding in an HTTP/1.0 request is faulty framing (1.0
     * has no chunked coding; an intermediary would read the body by other rules). */
    if (f.transfer_encoding && h && h->version && strcmp(h->version, "HTTP/1.0") == 0)
        return "Transfer-Encoding in an HTTP/1.0 request";
    /* RFC 9112 section 3.2: an HTTP/1.1 request names its host exactly once (a second Host is
     * how requests are smuggled past a proxy that routes on the first). */
    if (f.host > 1)
        return "more than one Host";
    if (f.host == 0 && h && h->version && strcmp(h->version, "HTTP/1.1") == 0)
        return "no Host field (required in HTTP/1.1)";
    return NULL;
}

/* ---- the query ---- */

static enum MHD_Result http_query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                      size_t key_size, const char *value, size_t value_size)
{
    int *bad = cls;

    (void)kind;
    /* libmicrohttpd decodes "%00" into the argument and keeps its length, but handlers read
     * arguments as C strings, which would end there: "limit=5%00junk" would read as "5". */
    if ((key && memchr(key, '\0', key_size)) || (value && memchr(value, '\0', value_size))) {
        *bad = 1;
        return MHD_NO;
    }
    return MHD_YES;
}

const char *http_query_check(struct MHD_Connection *conn)
{
    int bad = 0;

    MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND, http_query_arg, &bad);
    return bad ? "NUL in a query argument" : NULL;
}
