/* libmicrohttpd lifecycle of the service's listeners: one daemon per listener (epoll, internal
 * thread or a small pool), routing, limits, CORS preflight, suspend/resume for handlers that
 * answer later, the access-log line and the counters. Per-request state is created in the
 * URI-log callback (so the raw target, escapes intact, is routed) and released by reference
 * count: libmicrohttpd holds one reference until the request-completed callback, the handler
 * holds one until its reply, so a reply arriving after the client left is still safe. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-c/json.h>
#include <microhttpd.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "http_int.h"

#define HTTP_DEFAULT_HEADER_MEM (8u * 1024u)
#define HTTP_DEFAULT_CONN_LIMIT 10000u
#define HTTP_DEFAULT_TIMEOUT_S 60u
#define HTTP_DEFAULT_HEAD_TIMEOUT_S 10u
#define HTTP_DEFAULT_REQUEST_TIMEOUT_S 30u
#define HTTP_DEFAULT_MAX_AGE_S 600u
#define HTTP_DEFAULT_THREADS 2u
#define HTTP_MAX_THREADS 16u
#define HTTP_FLUSH_MS 1000
#define HTTP_DISCARD_MAX (1024u * 1024u)
#define HTTP_LISTEN_BACKLOG 1024
#define HTTP_ALLOW_HEADERS "Authorization, Content-Type, X-Request-Id, teams-user-aad-token"

/* A slow client must not outlast an idle one: the head deadline stays below the idle timeout
 * (and the effective one never exceeds either of the others, see http_server_new). */
_Static_assert(HTTP_DEFAULT_HEAD_TIMEOUT_S < HTTP_DEFAULT_TIMEOUT_S &&
                   HTTP_DEFAULT_HEAD_TIMEOUT_S < HTTP_DEFAULT_REQUEST_TIMEOUT_S,
               "default head deadline below the idle and request deadlines");

static const char http_json[] = "application/json";

/* Queues resp on the server thread; while draining, asks the client to close the connection
 * so keep-alive clients stop sending new requests. */
static enum MHD_Result http_queue(struct http_req *r, unsigned status, struct MHD_Response *resp)
{
    enum MHD_Result ret;

    if (r->close || atomic_load(&r->l->srv->draining))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    ret = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* ---- request creation and release ---- */

static void *http_uri_log(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct http_listener *l = cls;
    struct http_req *r = calloc(1, sizeof(*r));
    struct http_target t;
    int cut = http_target_guard(uri, l->srv->header_mem, &t); /* before anything can fail */

    if (!r)
        return NULL;
    r->target = strdup(uri ? uri : "/");
    if (!r->target) {
        free(r);
        return NULL;
    }
    r->uri_too_long = cut && !t.bad;
    r->target_at = uri;
    r->target_seen = t.seen;
    r->target_bad = t.bad;
    /* The connection owns the request until libmicrohttpd completes it, so a request it
     * abandons is still released when the connection closes. */
    r->hc = http_conn_of(conn);
    if (r->hc) {
        r->hc->req = r;
        http_conn_phase(r->hc, HTTP_CONN_HEAD);
    }
    pthread_mutex_init(&r->mu, NULL);
    atomic_init(&r->refs, 1);
    r->l = l;
    r->route = -1;
    r->start_ms = clock_mono_ms();
    r->cors_vary = l->any_origin || l->norigins > 0;
    buf_init(&r->body, l->srv->body_max);
    buf_init(&r->hdrs, HTTP_REPLY_HEADERS_MAX);
    return r;
}

static void http_access_log(struct http_req *r, enum MHD_RequestTerminationCode toe, int64_t dur_ms)
{
    struct json_object *f;

    if (!log_enabled(LOGL_INFO))
        return;
    f = json_object_new_object();
    if (!f)
        return;
    json_object_object_add(f, "listener", json_object_new_string(r->l->name));
    json_object_object_add(f, "method", json_object_new_string(r->method));
    /* The path without its query: query strings may carry secrets, paths here carry ids. */
    json_object_object_add(f, "path", json_object_new_string(r->target));
    if (r->route >= 0)
        json_object_object_add(f, "route", json_object_new_string(r->l->routes[r->route].pattern));
    json_object_object_add(f, "status", json_object_new_int(r->status));
    json_object_object_add(f, "duration_ms", json_object_new_int64(dur_ms));
    json_object_object_add(f, "bytes_in", json_object_new_int64((int64_t)r->body.len));
    json_object_object_add(f, "bytes_out", json_object_new_int64((int64_t)r->bytes_out));
    json_object_object_add(f, "remote", json_object_new_string(r->remote));
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        json_object_object_add(f, "aborted", json_object_new_int((int)toe));
    log_fields(LOGL_INFO, r->id, "request", f);
    json_object_put(f);
}

void http_req_finish(struct http_req *r, int toe)
{
    int64_t dur_us;

    if (r->hc) {
        r->hc->req = NULL;
        http_conn_phase(r->hc, HTTP_CONN_IDLE); /* a kept-alive connection waits anew */
        r->hc = NULL;
    }
    if (r->method[0]) {
        dur_us = (clock_mono_ms() - r->start_ms) * 1000;
        http_stats_record(r->l, r->route, r->status, dur_us);
        http_access_log(r, (enum MHD_RequestTerminationCode)toe, dur_us / 1000);
        atomic_fetch_sub(&r->l->srv->live, 1);
    }
    /* From here on, nothing may use the connection: a late reply only sees the state. */
    pthread_mutex_lock(&r->mu);
    r->conn = NULL;
    pthread_mutex_unlock(&r->mu);
    http_req_unref(r);
}

static void http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
    struct http_req *r = *con_cls;

    (void)cls;
    (void)conn;
    if (!r)
        return;
    *con_cls = NULL;
    http_req_finish(r, (int)toe);
}

/* ---- answers given by the server itself (server thread, before dispatch) ---- */

static enum MHD_Result http_queue_now(struct http_req *r, int status, const char *ctype, char *body,
                                      size_t len)
{
    struct MHD_Response *resp = http_resp_build(r, status, ctype, body, len);

    r->read_phase = 3;
    http_conn_phase(r->hc, HTTP_CONN_ANSWERING);
    if (!resp)
        return MHD_NO;
    r->status = status;
    return http_queue(r, (unsigned)status, resp);
}

static enum MHD_Result http_error_now(struct http_req *r, int rc, const char *message)
{
    size_t len = 0;
    char *body = http_error_body(err_name(rc), message ? message : err_message(rc), &len);

    return http_queue_now(r, err_http_status(rc), http_json, body, body ? len : 0);
}

/* ---- routing ---- */

/* Appends method to the Allow list unless already there. */
static void http_allow_add(char allow[HTTP_ALLOW_MAX], const char *method)
{
    size_t len = strlen(allow), mlen = strlen(method);
    const char *p = allow;

    while ((p = strstr(p, method)) != NULL) {
        if ((p == allow || p[-1] == ' ') && (p[mlen] == ',' || p[mlen] == '\0'))
            return;
        p += mlen;
    }
    if (len + mlen + 3 >= HTTP_ALLOW_MAX)
        return;
    snprintf(allow + len, HTTP_ALLOW_MAX - len, "%s%s", len ? ", " : "", method);
}

/* Finds the route for method + path. Returns the index, or -1 with allow[] listing the methods
 * the path does accept ("" when no route has that path). */
static long http_route_find(struct http_listener *l, const char *method, const char *path,
                            size_t len, struct http_span params[HTTP_MAX_PARAMS], size_t *nparams,
                            char allow[HTTP_ALLOW_MAX])
{
    allow[0] = '\0';
    for (size_t i = 0; i < l->nroutes; i++) {
        struct http_span sp[HTTP_MAX_PARAMS];
        size_t n = 0;
        if (!http_pattern_match(l->routes[i].pattern, path, len, sp, &n))
            continue;
        if (strcmp(l->routes[i].method, method) == 0) {
            memcpy(params, sp, sizeof(sp));
            *nparams = n;
            return (long)i;
        }
        http_allow_add(allow, l->routes[i].method);
    }
    return -1;
}

static enum MHD_Result http_preflight(struct http_req *r, const char *origin, const char *want,
                                      const char *allow)
{
    struct http_listener *l = r->l;
    char age[16];

    if (!http_cors_allowed(l, origin))
        return http_error_now(r, TV_ERR_FORBIDDEN, "origin not allowed");
    if (!allow[0])
        return http_error_now(r, TV_ERR_NOT_FOUND, "no such route");
    (void)want; /* the browser checks the method against Allow-Methods itself */
    snprintf(age, sizeof(age), "%u", l->srv->cors_max_age_s);
    http_reply_header(r, "Access-Control-Allow-Methods", allow);
    http_reply_header(r, "Access-Control-Allow-Headers", HTTP_ALLOW_HEADERS);
    http_reply_header(r, "Access-Control-Max-Age", age);
    /* Access-Control-Allow-Credentials comes with Allow-Origin (http_resp_build). */
    return http_queue_now(r, 204, NULL, NULL, 0);
}

/* First call for a request: headers are complete, the body is not read yet. */
static enum MHD_Result http_begin(struct http_req *r, struct MHD_Connection *conn,
                                  const char *method, const char *version)
{
    const struct http_head head = {method, r->target_at, r->target_seen, r->target_bad, version};
    struct http_listener *l = r->l;
    struct http_span params[HTTP_MAX_PARAMS];
    size_t nparams = 0;
    char allow[HTTP_ALLOW_MAX];
    const char *v, *origin, *q, *bad;
    const union MHD_ConnectionInfo *ci;

    r->conn = conn;
    r->read_phase = 1;
    http_conn_phase(r->hc, HTTP_CONN_BODY); /* the head is in; the body is due by the deadline */
    atomic_fetch_add(&l->srv->live, 1);
    snprintf(r->method, sizeof(r->method), "%s", method);
    v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    if (http_req_id_valid(v))
        snprintf(r->id, sizeof(r->id), "%s", v);
    else
        http_uuid_new(r->id);
    ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, r->remote,
                      sizeof(r->remote));
        else if (sa->sa_family == AF_INET6) {
            const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
            /* An IPv4 client on a dual-stack socket is named (and counted) by its IPv4 address. */
            if (IN6_IS_ADDR_V4MAPPED(a6))
                inet_ntop(AF_INET, a6->s6_addr + 12, r->remote, sizeof(r->remote));
            else
                inet_ntop(AF_INET6, a6, r->remote, sizeof(r->remote));
        }
    }
    q = strchr(r->target, '?');
    r->path_len = q ? (size_t)(q - r->target) : strlen(r->target);
    r->target[r->path_len] = '\0'; /* the query is read through libmicrohttpd, decoded */
    origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    /* An origin the list names gets itself back, so that a credentialed answer (the session
     * cookie) is usable by it; "*" stands only for the origins the list does not name. */
    if (origin && http_cors_allowed(l, origin))
        snprintf(r->cors_origin, sizeof(r->cors_origin), "%s",
                 l->any_origin && !http_cors_listed(l, origin) ? "*" : origin);
    /* Framing a proxy in front may read differently is refused before anything else, and the
     * connection closed, so bytes smuggled into the body never become a request here. */
    bad = http_frame_check(conn, &head);
    if (bad) {
        r->close = 1;
        return http_error_now(r, TV_ERR_INVALID, bad);
    }
    if (r->uri_too_long) {
        size_t len = 0;
        char *body = http_error_body(err_name(TV_ERR_TOO_LARGE), "request target too long", &len);
        r->close = 1;
        return http_queue_now(r, 414, http_json, body, body ? len : 0);
    }
    bad = http_query_check(conn);
    if (bad)
        return http_error_now(r, TV_ERR_INVALID, bad);
    if (r->path_len > HTTP_PATH_MAX)
        return http_error_now(r, TV_ERR_NOT_FOUND, "no such route");
    r->route = http_route_find(l, method, r->target, r->path_len, params, &nparams, allow);
    v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Access-Control-Request-Method");
    if (r->route < 0 && strcmp(method, "OPTIONS") == 0 && origin && v)
        return http_preflight(r, origin, v, allow);
    if (r->route < 0 && !allow[0])
        return http_error_now(r, TV_ERR_NOT_FOUND, "no such route");
    if (r->route < 0) {
        http_reply_header(r, "Allow", allow);
        return http_error_now(r, TV_ERR_METHOD, NULL);
    }
    for (size_t i = 0; i < nparams; i++) {
        int rc = http_percent_decode(r->target + params[i].off, params[i].len, &r->params[i]);
        if (rc != 0)
            return http_error_now(r, rc == TV_ERR_NOMEM ? rc : TV_ERR_INVALID,
                                  "malformed path parameter");
        r->nparams = i + 1;
    }
    v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (v && strtoull(v, NULL, 10) > l->srv->body_max) {
        /* Answered before a byte of the body is read; libmicrohttpd then closes. */
        return http_error_now(r, TV_ERR_TOO_LARGE, "request body too large");
    }
    return MHD_YES;
}

/* Calls the handler; queues its reply now, or suspends until it arrives. */
static enum MHD_Result http_dispatch(struct http_req *r)
{
    struct http_server *srv = r->l->srv;
    struct MHD_Response *resp = NULL;
    int status = 0, suspended = 0;

    http_conn_phase(r->hc, HTTP_CONN_ANSWERING);
    pthread_mutex_lock(&r->mu);
    r->state = HTTP_ST_HANDLER;
    r->owed = 1;
    pthread_mutex_unlock(&r->mu);
    atomic_fetch_add(&r->refs, 1);
    atomic_fetch_add(&srv->in_flight, 1);
    r->l->routes[r->route].fn(r, r->l->ctx);

    pthread_mutex_lock(&r->mu);
    if (r->state == HTTP_ST_REPLIED) {
        resp = r->resp;
        r->resp = NULL;
        r->state = HTTP_ST_SENT;
        r->read_phase = 3;
        status = r->status;
    } else {
        pthread_mutex_lock(&srv->mu);
        if (!srv->stopping) {
            r->next = srv->suspended;
            if (r->next)
                r->next->prev = r;
            r->prev = NULL;
            srv->suspended = r;
            r->state = HTTP_ST_SUSPENDED;
            r->read_phase = 2;
            suspended = 1;
            /* Under r->mu, so no reply can try to resume before the suspension. */
            MHD_suspend_connection(r->conn);
        }
        pthread_mutex_unlock(&srv->mu);
        if (!suspended) {
            size_t len = 0;
            char *body =
                http_error_body(err_name(TV_ERR_SHUTDOWN), err_message(TV_ERR_SHUTDOWN), &len);
            r->state = HTTP_ST_ABANDONED;
            atomic_fetch_sub(&srv->in_flight, 1);
            resp = http_resp_build(r, 503, http_json, body, body ? len : 0);
            status = 503;
            r->status = 503;
            r->read_phase = 3;
        }
    }
    pthread_mutex_unlock(&r->mu);
    if (suspended)
        return MHD_YES; /* r may be answered (and resumed) from now on */
    if (!resp)
        return MHD_NO;
    return http_queue(r, (unsigned)status, resp);
}

/* The connection was resumed: a reply (or the shutdown 503) is waiting in r->resp. */
static enum MHD_Result http_resumed(struct http_req *r)
{
    struct MHD_Response *resp;

    pthread_mutex_lock(&r->mu);
    resp = r->resp;
    r->resp = NULL;
    if (r->state == HTTP_ST_REPLIED)
        r->state = HTTP_ST_SENT;
    r->read_phase = 3;
    pthread_mutex_unlock(&r->mu);
    if (!resp)
        return MHD_NO;
    return http_queue(r, (unsigned)r->status, resp);
}

static enum MHD_Result http_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **con_cls)
{
    struct http_req *r = *con_cls;

    if (!r) {
        r = http_uri_log(cls, url, conn);
        if (!r)
            return MHD_NO;
        r->target_at = NULL; /* url is unescaped already: the request line goes unchecked */
        *con_cls = r;
    }
    switch (r->read_phase) {
    case 0:
        return http_begin(r, conn, method, version);
    case 1:
        if (*upload_data_size > 0) {
            /* libmicrohttpd 0.9.75 cannot queue an answer in the middle of a body, so a body
             * past the limit is read and dropped, up to a bound, and answered 413 at its end;
             * a client streaming beyond the bound is cut off. */
            if (!r->too_large && buf_append(&r->body, upload_data, *upload_data_size) != 0) {
                r->too_large = 1;
                buf_release(&r->body);
            }
            if (r->too_large) {
                r->discarded += *upload_data_size;
                if (r->discarded > HTTP_DISCARD_MAX)
                    return MHD_NO;
            }
            *upload_data_size = 0;
            return MHD_YES;
        }
        if (r->too_large)
            return http_error_now(r, TV_ERR_TOO_LARGE, "request body too large");
        return http_dispatch(r);
    case 2:
        return http_resumed(r);
    default:
        /* Answered already; discard whatever body follows. */
        *upload_data_size = 0;
        return MHD_YES;
    }
}

void http_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];

    (void)cls;
    if (!log_enabled(LOGL_DEBUG))
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    log_msg(LOGL_DEBUG, NULL, "libmicrohttpd: %s", msg);
}

/* ---- lifecycle ---- */

int http_server_new(const struct http_server_opts *o, struct http_server **out)
{
    struct http_server *s;
    int rc = TV_ERR_CONFIG;

    if (!o || !out || o->nlisteners == 0 || o->nlisteners > HTTP_MAX_LISTENERS)
        return TV_ERR_CONFIG;
    s = calloc(1, sizeof(*s));
    if (!s)
        return TV_ERR_NOMEM;
    pthread_mutex_init(&s->mu, NULL);
    atomic_init(&s->in_flight, 0);
    atomic_init(&s->live, 0);
    atomic_init(&s->draining, 0);
    s->body_max = o->body_max ? o->body_max : HTTP_BODY_MAX_DEFAULT;
    s->header_mem = o->header_mem ? o->header_mem : HTTP_DEFAULT_HEADER_MEM;
    s->conn_limit = o->conn_limit ? o->conn_limit : HTTP_DEFAULT_CONN_LIMIT;
    s->per_ip_limit = o->per_ip_limit;
    s->conn_timeout_s = o->conn_timeout_s ? o->conn_timeout_s : HTTP_DEFAULT_TIMEOUT_S;
    s->request_timeout_s =
        o->request_timeout_s ? o->request_timeout_s : HTTP_DEFAULT_REQUEST_TIMEOUT_S;
    /* The head is part of the request, and a client dripping it must not be kept longer than
     * an idle one. */
    s->head_timeout_s = o->head_timeout_s ? o->head_timeout_s : HTTP_DEFAULT_HEAD_TIMEOUT_S;
    if (s->head_timeout_s > s->conn_timeout_s)
        s->head_timeout_s = s->conn_timeout_s;
    if (s->head_timeout_s > s->request_timeout_s)
        s->head_timeout_s = s->request_timeout_s;
    pthread_mutex_init(&s->sweep_mu, NULL);
    s->cors_max_age_s = o->cors_max_age_s ? o->cors_max_age_s : HTTP_DEFAULT_MAX_AGE_S;
    for (size_t i = 0; i < o->nlisteners; i++) {
        const struct http_listener_opts *lo = &o->listeners[i];
        struct http_listener *l = &s->l[i];
        struct sockaddr_storage ss;

        s->n = i + 1;
        l->fd = -1;
        pthread_mutex_init(&l->cmu, NULL);
        l->srv = s;
        l->index = i;
        l->name = lo->name ? lo->name : "http";
        l->addr = lo->addr;
        l->routes = lo->routes;
        l->nroutes = lo->nroutes;
        l->ctx = lo->ctx;
        l->threads = lo->threads ? lo->threads : HTTP_DEFAULT_THREADS;
        if (l->threads > HTTP_MAX_THREADS || netaddr_parse(lo->addr, &ss, NULL, NULL, 0) != 0) {
            log_msg(LOGL_ERROR, NULL, "http: listener %s: bad address \"%s\" or thread count",
                    l->name, lo->addr ? lo->addr : "");
            goto fail;
        }
        for (size_t r = 0; r < lo->nroutes; r++) {
            if (!lo->routes[r].method || !lo->routes[r].fn ||
                http_pattern_check(lo->routes[r].pattern) != 0) {
                log_msg(LOGL_ERROR, NULL, "http: listener %s: bad route #%zu", l->name, r);
                goto fail;
            }
        }
        rc = http_cors_parse(l, lo->cors_origins);
        if (rc != 0) {
            log_msg(LOGL_ERROR, NULL, "http: listener %s: bad CORS origin list", l->name);
            goto fail;
        }
        rc = TV_ERR_NOMEM;
        l->stats = calloc(lo->nroutes + 1, sizeof(*l->stats));
        if (!l->stats || (s->per_ip_limit > 0 && http_peers_new(l, s->per_ip_limit) != 0))
            goto fail;
        rc = TV_ERR_CONFIG;
    }
    *out = s;
    return 0;
fail:
    http_server_free(s);
    return rc;
}

/* Enough descriptors for the connection limits; failures only mean fewer connections. */
static void http_raise_nofile(const struct http_server *s)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)s->conn_limit * s->n + 256;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        log_msg(LOGL_WARN, NULL, "http: cannot raise the open-file limit");
}

/* libmicrohttpd's accept policy (cls: the listener): while the server drains, a new connection
 * is closed at once; otherwise the per-address cap decides. The drain does not use
 * MHD_quiesce_daemon: in 0.9.75 it removes the listen socket from each epoll worker's set while
 * that worker may be removing it itself, and the loser of the race aborts the process ("Failed to
 * remove listen FD from epoll set", seen once in a loaded CI run). Any server thread. */
static enum MHD_Result http_admit(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    struct http_listener *l = cls;

    if (atomic_load(&l->srv->draining))
        return MHD_NO;
    return l->peers ? http_peers_admit(cls, addr, addrlen) : MHD_YES;
}

/* Closes the sockets bound but not handed to a daemon. */
static void http_unbind(struct http_server *s)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->l[i].fd >= 0)
            close(s->l[i].fd);
        s->l[i].fd = -1;
    }
}

/* One listener's socket, bound and listening, with the options libmicrohttpd gives its own:
 * SO_REUSEADDR (a restart binds at once over connections in TIME_WAIT) and, for IPv6, v6 only
 * (an IPv4 listener on the same port stays possible). 0, or -1 with errno set. */
static int http_listen_socket(const struct sockaddr_storage *ss, socklen_t len)
{
    int on = 1;
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
        (ss->ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) != 0) ||
        bind(fd, (const struct sockaddr *)ss, len) != 0 || listen(fd, HTTP_LISTEN_BACKLOG) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int http_server_bind(struct http_server *s)
{
    for (size_t i = 0; i < s->n; i++) {
        struct http_listener *l = &s->l[i];
        struct sockaddr_storage ss;
        socklen_t len = 0;

        if (l->fd >= 0 || l->d != NULL)
            continue;
        if (netaddr_parse(l->addr, &ss, &len, NULL, 0) != 0) {
            log_msg(LOGL_ERROR, NULL,
                    "cannot listen on %s (%s listener): the address does not "
                    "resolve",
                    l->addr, l->name);
            http_unbind(s);
            return TV_ERR_IO;
        }
        if ((l->fd = http_listen_socket(&ss, len)) < 0) {
            log_msg(LOGL_ERROR, NULL, "cannot listen on %s (%s listener): %s", l->addr, l->name,
                    strerror(errno));
            http_unbind(s);
            return TV_ERR_IO;
        }
    }
    return 0;
}

int http_server_start(struct http_server *s)
{
    if (http_server_bind(s) != 0)
        return TV_ERR_IO;
    http_raise_nofile(s);
    s->started = 1;
    if (http_sweeper_start(s) != 0) {
        log_msg(LOGL_ERROR, NULL, "http: cannot start the deadline thread");
        return TV_ERR_INTERNAL;
    }
    for (size_t i = 0; i < s->n; i++) {
        struct http_listener *l = &s->l[i];
        struct sockaddr_storage ss;
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
                         MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
        const union MHD_DaemonInfo *info;
        /* One internal polling thread, or a pool: the pool option must be absent for one. */
        struct MHD_OptionItem pool[2] = {{MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)l->threads, NULL},
                                         {MHD_OPTION_END, 0, NULL}};

        if (l->threads <= 1)
            pool[0] = pool[1];
        if (netaddr_parse(l->addr, &ss, NULL, NULL, 0) != 0)
            return TV_ERR_CONFIG;
        if (ss.ss_family == AF_INET6)
            flags |= MHD_USE_IPv6;
        /* The daemon owns the socket from here: it closes it when it stops, and on some of its
         * failure paths too, so it is forgotten here first (a second close could hit a
         * descriptor another thread has opened since). */
        int fd = l->fd;
        l->fd = -1;
        /* The per-address cap is peers.c's (IPv6 by /64), so libmicrohttpd's own stays off. */
        l->d = MHD_start_daemon(
            flags, 0, http_admit, l, http_handle, l, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_ARRAY,
            pool, MHD_OPTION_CONNECTION_LIMIT, s->conn_limit, MHD_OPTION_CONNECTION_TIMEOUT,
            s->conn_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, s->header_mem,
            MHD_OPTION_URI_LOG_CALLBACK, http_uri_log, l, MHD_OPTION_NOTIFY_COMPLETED,
            http_completed, l, MHD_OPTION_NOTIFY_CONNECTION, http_conn_notify, l,
            MHD_OPTION_EXTERNAL_LOGGER, http_mhd_log, l, MHD_OPTION_UNESCAPE_CALLBACK,
            http_unescape, l, MHD_OPTION_END);
        if (!l->d) {
            log_msg(LOGL_ERROR, NULL, "http: cannot start the %s listener on %s", l->name, l->addr);
            return TV_ERR_IO;
        }
        info = MHD_get_daemon_info(l->d, MHD_DAEMON_INFO_BIND_PORT);
        l->port = info ? info->port : 0;
        log_msg(LOGL_INFO, NULL, "http: %s listener on %s, port %u", l->name, l->addr,
                (unsigned)l->port);
    }
    return 0;
}

uint16_t http_server_port(const struct http_server *s, size_t i)
{
    return s && i < s->n ? s->l[i].port : 0;
}

/* Answers every suspended request 503 and resumes it, so the daemons can stop. */
static void http_abandon_suspended(struct http_server *s)
{
    for (;;) {
        struct http_req *r;
        size_t len = 0;
        char *body;

        pthread_mutex_lock(&s->mu);
        s->stopping = 1;
        r = s->suspended;
        if (r)
            atomic_fetch_add(&r->refs, 1); /* listed means suspended, hence alive */
        pthread_mutex_unlock(&s->mu);
        if (!r)
            break;
        body = http_error_body(err_name(TV_ERR_SHUTDOWN), err_message(TV_ERR_SHUTDOWN), &len);
        pthread_mutex_lock(&r->mu);
        if (r->state == HTTP_ST_SUSPENDED) {
            r->resp = http_resp_build(r, 503, http_json, body, body ? len : 0);
            body = NULL;
            r->status = 503;
            r->state = HTTP_ST_ABANDONED;
            atomic_fetch_sub(&s->in_flight, 1);
            pthread_mutex_lock(&s->mu);
            if (r->prev)
                r->prev->next = r->next;
            else
                s->suspended = r->next;
            if (r->next)
                r->next->prev = r->prev;
            r->prev = r->next = NULL;
            pthread_mutex_unlock(&s->mu);
            MHD_resume_connection(r->conn);
        }
        pthread_mutex_unlock(&r->mu);
        free(body);
        http_req_unref(r);
    }
}

void http_server_stop(struct http_server *s, int drain_ms)
{
    int64_t deadline;

    if (!s || !s->started)
        return;
    /* New connections are closed at once from here on (http_admit); the listening sockets
     * close with the daemons below. */
    atomic_store(&s->draining, 1);
    deadline = clock_mono_ms() + (drain_ms > 0 ? drain_ms : 0);
    while (atomic_load(&s->live) > 0 && clock_mono_ms() < deadline)
        clock_sleep_ms(5);
    http_abandon_suspended(s);
    /* Give the 503s (and replies that just arrived) a moment to reach their clients. */
    deadline = clock_mono_ms() + HTTP_FLUSH_MS;
    while (atomic_load(&s->live) > 0 && clock_mono_ms() < deadline)
        clock_sleep_ms(5);
    for (size_t i = 0; i < s->n; i++) {
        if (s->l[i].d)
            MHD_stop_daemon(s->l[i].d);
        s->l[i].d = NULL;
    }
    http_sweeper_stop(s);
    s->started = 0;
}

void http_server_free(struct http_server *s)
{
    if (!s)
        return;
    http_server_stop(s, 0);
    http_unbind(s);
    for (size_t i = 0; i < s->n; i++) {
        struct http_listener *l = &s->l[i];
        for (size_t j = 0; j < l->norigins; j++)
            free(l->origins[j]);
        free(l->origins);
        free(l->stats);
        http_peers_free(l);
        pthread_mutex_destroy(&l->cmu);
    }
    pthread_mutex_destroy(&s->sweep_mu);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---- accessors ---- */

const char *http_req_method(const struct http_req *req)
{
    return req->method;
}

const char *http_req_path(const struct http_req *req)
{
    return req->target; /* cut at the '?' when the request began */
}

const char *http_req_route(const struct http_req *req)
{
    return req->route >= 0 ? req->l->routes[req->route].pattern : "";
}

const char *http_req_param(const struct http_req *req, size_t i)
{
    return i < req->nparams ? req->params[i] : NULL;
}

const char *http_req_header(const struct http_req *req, const char *name)
{
    return req->conn ? MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name) : NULL;
}

struct http_hdr_all {
    const char *name;
    const char **out;
    size_t max, n;
};

static enum MHD_Result http_hdr_all_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                        const char *value)
{
    struct http_hdr_all *h = cls;

    (void)kind;
    if (key != NULL && value != NULL && strcasecmp(key, h->name) == 0) {
        /* Past max, the newest lines win: a walk reads them from the right. */
        if (h->n == h->max) {
            memmove(h->out, h->out + 1, (h->max - 1) * sizeof *h->out);
            h->n--;
        }
        h->out[h->n++] = value;
    }
    return MHD_YES;
}

size_t http_req_header_all(const struct http_req *req, const char *name, const char **out,
                           size_t max)
{
    struct http_hdr_all h = {.name = name, .out = out, .max = max};

    if (req->conn == NULL || max == 0)
        return 0;
    (void)MHD_get_connection_values(req->conn, MHD_HEADER_KIND, http_hdr_all_one, &h);
    return h.n;
}

const char *http_req_query(const struct http_req *req, const char *name)
{
    return req->conn ? MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name) : NULL;
}

const char *http_req_id(const struct http_req *req)
{
    return req->id;
}

const char *http_req_remote(const struct http_req *req)
{
    return req->remote;
}

int http_req_origin_allowed(const struct http_req *req)
{
    return req->cors_origin[0] != '\0';
}

int http_req_origin_listed(const struct http_req *req)
{
    const char *origin;

    /* Against the list itself: the reflected value is "*" for every origin when the list also
     * has a "*" entry, which would hide an origin named next to it. */
    if (req->conn == NULL || req->l == NULL)
        return 0;
    origin = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Origin");
    return http_cors_listed(req->l, origin);
}

const char *http_req_body(const struct http_req *req, size_t *len)
{
    if (len)
        *len = req->body.len;
    return buf_cstr(&req->body);
}

void http_req_set_data(struct http_req *req, void *p, void (*free_fn)(void *))
{
    req->data = p;
    req->data_free = free_fn;
}

void *http_req_data(const struct http_req *req)
{
    return req->data;
}
