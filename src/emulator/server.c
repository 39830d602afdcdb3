/* libmicrohttpd glue of acs-emulator. Per-request state is created in the URI-log callback (so
 * the raw request target, percent escapes intact, is what gets verified and routed) and freed in
 * the completion callback, which also writes the request's log line, or, when libmicrohttpd
 * skips that callback (it does after a header or query overflow), when the connection closes.
 * Injected latency suspends the connection; one timer thread keeps a min-heap of wake-up times and
 * resumes them. */
#include "server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <json-c/json.h>
#include <microhttpd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "http/server.h"
#include "app.h"
#include "routes.h"

#define SRV_HOST_MAX 256
#define SRV_REQID_MAX 80
#define SRV_DEFAULT_THREADS 4
#define SRV_CONNECTION_LIMIT 8192
#define SRV_CONNECTION_TIMEOUT_S 120
#define SRV_RESUME_BATCH 64
/* libmicrohttpd's default per-connection memory (the daemon does not set its own). */
#define SRV_CONNECTION_MEMORY (32u * 1024u)

enum srv_phase { SRV_NEW, SRV_BODY, SRV_WAITING, SRV_DONE };

struct srv_req {
    struct emu_server *srv;
    char *target;
    int64_t start_ms;
    enum srv_phase phase;
    struct buf body;
    int too_large;
    struct emu_http_req hreq;
    struct emu_route_ctx ctx;
    struct emu_reply rep;
    struct MHD_Connection *conn;
    int64_t wake_ms;
    int status; /* sent, or 0 for none */
    int dropped;
    int uri_too_long;    /* http_uri_guard cut the query: answer 414 */
    struct srv_conn *sc; /* the connection, until the request completes */
    char method[16];
    char request_id[SRV_REQID_MAX]; /* ours, sent as request-id */
    char client_id[SRV_REQID_MAX];  /* the client's x-ms-client-request-id, for the log */
};

/* One per connection (libmicrohttpd's socket context): it holds the current request so that one
 * libmicrohttpd abandons without the completion callback is freed when the connection closes. */
struct srv_conn {
    struct srv_req *req;
};

struct emu_server {
    struct MHD_Daemon *d;
    struct emu_app *app;
    uint16_t port;
    char host[SRV_HOST_MAX];
    pthread_t timer;
    int timer_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct srv_req **heap; /* min-heap on wake_ms, under mu */
    size_t nheap, capheap;
    int stopping;
};

static int64_t srv_mono_ms(void)
{
    return clock_mono_ms(); /* CLOCK_MONOTONIC, as the condition variable uses */
}

/* ---- timer heap (caller holds mu) ---- */

static void srv_heap_swap(struct emu_server *s, size_t a, size_t b)
{
    struct srv_req *t = s->heap[a];
    s->heap[a] = s->heap[b];
    s->heap[b] = t;
}

static int srv_heap_push(struct emu_server *s, struct srv_req *r)
{
    size_t i;

    if (s->nheap == s->capheap) {
        size_t n = s->capheap ? s->capheap * 2 : 256;
        struct srv_req **h = realloc(s->heap, n * sizeof(*h));
        if (!h)
            return TV_ERR_NOMEM;
        s->heap = h;
        s->capheap = n;
    }
    i = s->nheap++;
    s->heap[i] = r;
    while (i > 0 && s->heap[(i - 1) / 2]->wake_ms > s->heap[i]->wake_ms) {
        srv_heap_swap(s, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    return 0;
}

static struct srv_req *srv_heap_pop(struct emu_server *s)
{
    struct srv_req *top = s->heap[0];
    size_t i = 0;

    s->heap[0] = s->heap[--s->nheap];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->nheap && s->heap[l]->wake_ms < s->heap[m]->wake_ms)
            m = l;
        if (r < s->nheap && s->heap[r]->wake_ms < s->heap[m]->wake_ms)
            m = r;
        if (m == i)
            break;
        srv_heap_swap(s, i, m);
        i = m;
    }
    return top;
}

/* Suspends r's connection until delay_ms from now. Called from the access handler. Returns 1
 * when suspended, 0 when it was not (shutting down, or no memory): then answer at once. The
 * suspend happens under mu so the timer can never resume a connection not yet suspended. */
static int srv_timer_add(struct emu_server *s, struct srv_req *r, int64_t delay_ms)
{
    int suspended = 0;

    pthread_mutex_lock(&s->mu);
    if (!s->stopping) {
        r->wake_ms = srv_mono_ms() + delay_ms;
        if (srv_heap_push(s, r) == 0) {
            MHD_suspend_connection(r->conn);
            suspended = 1;
            pthread_cond_signal(&s->cv);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return suspended;
}

static void *srv_timer_main(void *arg)
{
    struct emu_server *s = arg;
    struct MHD_Connection *batch[SRV_RESUME_BATCH];
    size_t n;

    pthread_mutex_lock(&s->mu);
    for (;;) {
        int64_t now = srv_mono_ms();
        n = 0;
        while (s->nheap > 0 && n < SRV_RESUME_BATCH && (s->stopping || s->heap[0]->wake_ms <= now))
            batch[n++] = srv_heap_pop(s)->conn;
        if (n > 0) {
            /* Resume outside mu: MHD takes its own locks and may run handlers that call
             * srv_timer_add. */
            pthread_mutex_unlock(&s->mu);
            for (size_t i = 0; i < n; i++)
                MHD_resume_connection(batch[i]);
            pthread_mutex_lock(&s->mu);
            continue;
        }
        if (s->stopping)
            break;
        if (s->nheap == 0) {
            pthread_cond_wait(&s->cv, &s->mu);
        } else {
            int64_t wake = s->heap[0]->wake_ms;
            struct timespec ts = {.tv_sec = (time_t)(wake / 1000),
                                  .tv_nsec = (long)(wake % 1000) * 1000000L};
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- request lifecycle ---- */

static void *srv_uri_log(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct srv_req *r = calloc(1, sizeof(*r));
    int cut = http_uri_guard(uri, SRV_CONNECTION_MEMORY);
    const union MHD_ConnectionInfo *ci;

    if (!r)
        return NULL;
    r->uri_too_long = cut;
    r->srv = cls;
    r->start_ms = srv_mono_ms();
    r->target = strdup(uri ? uri : "/");
    buf_init(&r->body, EMU_BODY_MAX);
    if (!r->target) {
        free(r);
        return NULL;
    }
    ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    r->sc = ci ? ci->socket_context : NULL;
    if (r->sc)
        r->sc->req = r;
    return r;
}

static void srv_req_free(struct srv_req *r)
{
    if (!r)
        return;
    if (r->sc)
        r->sc->req = NULL;
    emu_reply_release(&r->rep);
    buf_release(&r->body);
    free(r->target);
    free(r);
}

static void srv_log_request(struct srv_req *r)
{
    struct json_object *f;
    const char *q;

    if (!log_enabled(LOGL_INFO))
        return;
    f = json_object_new_object();
    if (!f)
        return;
    q = strchr(r->target, '?');
    json_object_object_add(f, "method", json_object_new_string(r->method));
    json_object_object_add(
        f, "path",
        json_object_new_string_len(r->target, q ? (int)(q - r->target) : (int)strlen(r->target)));
    json_object_object_add(f, "status", json_object_new_int(r->status));
    json_object_object_add(f, "latency_ms", json_object_new_int64(srv_mono_ms() - r->start_ms));
    if (r->ctx.has_op)
        json_object_object_add(f, "op", json_object_new_string(emu_op_name(r->ctx.op)));
    if (r->dropped)
        json_object_object_add(f, "dropped", json_object_new_boolean(1));
    if (r->client_id[0])
        json_object_object_add(f, "client_request_id", json_object_new_string(r->client_id));
    log_fields(LOGL_INFO, r->request_id, "request", f);
    json_object_put(f);
}

static void srv_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                          enum MHD_RequestTerminationCode toe)
{
    struct srv_req *r = *con_cls;

    (void)cls;
    (void)conn;
    (void)toe;
    if (!r)
        return;
    if (r->method[0])
        srv_log_request(r);
    srv_req_free(r);
    *con_cls = NULL;
}

static void srv_conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                            enum MHD_ConnectionNotificationCode code)
{
    struct srv_conn *sc = *socket_context;

    (void)cls;
    (void)conn;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_context = calloc(1, sizeof(struct srv_conn)); /* NULL: no fallback, no harm */
        return;
    }
    if (!sc)
        return;
    if (sc->req) /* libmicrohttpd skipped the completion callback */
        srv_req_free(sc->req);
    free(sc);
    *socket_context = NULL;
}

static const char *srv_header(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

static void srv_request_id(char out[SRV_REQID_MAX])
{
    uint8_t b[16];
    uint64_t a = emu_rand_u64(), z = emu_rand_u64();

    memcpy(b, &a, 8);
    memcpy(b + 8, &z, 8);
    emu_uuid_format(b, 4, out);
}

static enum MHD_Result srv_queue(struct srv_req *r, struct MHD_Connection *conn)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    const char *client_id = srv_header(conn, "x-ms-client-request-id");
    size_t len = r->rep.body ? strlen(r->rep.body) : 0;
    char num[32];

    if (r->rep.body) {
        resp = MHD_create_response_from_buffer(len, r->rep.body, MHD_RESPMEM_MUST_FREE);
        if (resp)
            r->rep.body = NULL; /* MHD frees it now */
    } else {
        resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    }
    if (!resp)
        return MHD_NO;
    if (len > 0)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                "application/json; charset=utf-8");
    if (client_id)
        MHD_add_response_header(resp, "x-ms-client-request-id", client_id);
    MHD_add_response_header(resp, "request-id", r->request_id);
    MHD_add_response_header(resp, "MS-CV", r->request_id);
    if (r->rep.retry_after_ms > 0) {
        snprintf(num, sizeof(num), "%lld", (long long)((r->rep.retry_after_ms + 999) / 1000));
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, num);
        snprintf(num, sizeof(num), "%lld", (long long)r->rep.retry_after_ms);
        MHD_add_response_header(resp, "retry-after-ms", num);
    }
    r->status = r->rep.status;
    ret = MHD_queue_response(conn, (unsigned)r->rep.status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void srv_fill_hreq(struct srv_req *r, struct MHD_Connection *conn)
{
    struct emu_http_req *h = &r->hreq;

    h->method = r->method;
    h->target = r->target;
    h->host = srv_header(conn, MHD_HTTP_HEADER_HOST);
    h->x_ms_date = srv_header(conn, "x-ms-date");
    h->date = srv_header(conn, MHD_HTTP_HEADER_DATE);
    h->content_sha256 = srv_header(conn, "x-ms-content-sha256");
    h->authorization = srv_header(conn, MHD_HTTP_HEADER_AUTHORIZATION);
    h->body = r->body.data ? r->body.data : "";
    h->body_len = r->body.len;
    h->body_too_large = r->too_large;
}

static enum MHD_Result srv_too_large(struct srv_req *r, struct MHD_Connection *conn)
{
    static const char body[] = "{\"error\":{\"code\":\"RequestEntityTooLarge\","
                               "\"message\":\"The request body is too large.\"}}";

    r->rep.status = 413;
    r->rep.body = strdup(body);
    if (!r->rep.body)
        return MHD_NO;
    r->phase = SRV_DONE;
    return srv_queue(r, conn);
}

static enum MHD_Result srv_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct emu_server *s = cls;
    struct srv_req *r = *con_cls;
    const char *v;
    int final;

    (void)version;
    if (!r) {
        /* The URI-log callback failed to allocate; try once more here. */
        r = srv_uri_log(s, url, conn);
        if (!r)
            return MHD_NO;
        *con_cls = r;
    }
    switch (r->phase) {
    case SRV_NEW:
        r->phase = SRV_BODY;
        r->conn = conn;
        (void)buf_copy_str(r->method, sizeof(r->method), method);
        srv_request_id(r->request_id);
        v = srv_header(conn, "x-ms-client-request-id");
        if (v)
            (void)buf_copy_str(r->client_id, sizeof(r->client_id), v);
        if (r->uri_too_long) {
            r->rep.status = 414;
            r->rep.body =
                strdup("{\"error\":{\"code\":\"RequestUriTooLong\","
                       "\"message\":\"The request URI has too many query parameters.\"}}");
            if (!r->rep.body)
                return MHD_NO;
            r->phase = SRV_DONE;
            return srv_queue(r, conn);
        }
        v = srv_header(conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (v && strtoull(v, NULL, 10) > EMU_BODY_MAX)
            return srv_too_large(r, conn);
        return MHD_YES;
    case SRV_BODY:
        if (*upload_data_size > 0) {
            if (!r->too_large && buf_append(&r->body, upload_data, *upload_data_size) != 0)
                r->too_large = 1; /* keep reading and discarding; answer 413 at the end */
            *upload_data_size = 0;
            return MHD_YES;
        }
        srv_fill_hreq(r, conn);
        final = emu_routes_begin(s->app, &r->hreq, &r->ctx, &r->rep);
        if (!final) {
            r->phase = SRV_WAITING;
            if (srv_timer_add(s, r, r->ctx.fault.latency_ms))
                return MHD_YES;
            emu_routes_finish(s->app, &r->hreq, &r->ctx, &r->rep);
        }
        break;
    case SRV_WAITING:
        /* Resumed by the timer: the headers are still in place, so refresh the borrowed
         * pointers and answer. */
        srv_fill_hreq(r, conn);
        emu_routes_finish(s->app, &r->hreq, &r->ctx, &r->rep);
        break;
    case SRV_DONE:
        return MHD_YES;
    }
    r->phase = SRV_DONE;
    if (r->rep.drop) {
        r->dropped = 1;
        return MHD_NO; /* MHD closes the socket without a byte of answer */
    }
    return srv_queue(r, conn);
}

int emu_server_start(struct emu_app *app, const struct emu_config *cfg, struct emu_server **out)
{
    int rc = TV_ERR_NOMEM;
    struct emu_server *s = calloc(1, sizeof(*s));
    struct sockaddr_storage ss;
    socklen_t ss_len = 0;
    pthread_condattr_t ca;
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    const union MHD_DaemonInfo *info;
    unsigned threads = cfg->threads ? cfg->threads : SRV_DEFAULT_THREADS;

    if (!s)
        return TV_ERR_NOMEM;
    s->app = app;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    memset(&ss, 0, sizeof(ss));
    rc = netaddr_parse(cfg->listen, &ss, &ss_len, s->host, sizeof s->host);
    if (rc != 0) {
        log_msg(LOGL_ERROR, NULL, "--listen must be HOST:PORT, got \"%s\"",
                cfg->listen ? cfg->listen : "");
        goto out;
    }
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    rc = TV_ERR_INTERNAL;
    if (pthread_create(&s->timer, NULL, srv_timer_main, s) != 0)
        goto out;
    s->timer_started = 1;
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, srv_handle, s, MHD_OPTION_SOCK_ADDR,
                            (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE, threads,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)SRV_CONNECTION_LIMIT,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)SRV_CONNECTION_TIMEOUT_S,
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_URI_LOG_CALLBACK,
                            srv_uri_log, s, MHD_OPTION_NOTIFY_COMPLETED, srv_completed, s,
                            MHD_OPTION_NOTIFY_CONNECTION, srv_conn_notify, s,
                            MHD_OPTION_EXTERNAL_LOGGER, http_mhd_log, s, MHD_OPTION_END);
    if (!s->d) {
        log_msg(LOGL_ERROR, NULL, "cannot listen on %s", cfg->listen);
        rc = TV_ERR_IO;
        goto out;
    }
    info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    if (!info || info->port == 0) {
        log_msg(LOGL_ERROR, NULL, "cannot learn the bound port");
        goto out;
    }
    s->port = info->port;
    *out = s;
    s = NULL;
    rc = 0;
out:
    emu_server_stop(s);
    return rc;
}

uint16_t emu_server_port(const struct emu_server *s)
{
    return s->port;
}

const char *emu_server_host(const struct emu_server *s)
{
    return s->host;
}

void emu_server_stop(struct emu_server *s)
{
    if (!s)
        return;
    /* Stop the timer first: it resumes every suspended connection on the way out, which MHD
     * requires before MHD_stop_daemon; handlers seeing `stopping` no longer suspend. */
    if (s->timer_started) {
        pthread_mutex_lock(&s->mu);
        s->stopping = 1;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->timer, NULL);
    }
    if (s->d)
        MHD_stop_daemon(s->d);
    free(s->heap);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void emu_signals_block(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int emu_signals_wait(const sigset_t *set)
{
    int sig = 0;
    while (sigwait(set, &sig) != 0)
        ;
    return sig;
}
