/* The service's HTTP server on libmicrohttpd: N listeners (public, internal), each with its own
 * route table and CORS allow-list, body/header/connection limits, request ids, one JSON access-log
 * line per request and Prometheus counters. Not a client. Replies may come from any thread. */
#ifndef TV_HTTP_SERVER_H
#define TV_HTTP_SERVER_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct buf;
struct json_object;
struct http_server;
struct http_req;

/* A route handler. Runs on a server thread. It either replies before returning, or keeps `req`
 * and replies later from any thread (the connection is then suspended, holding no thread, and
 * resumed by the reply). Every dispatched request must get exactly one reply. */
typedef void (*http_handler_fn)(struct http_req *req, void *ctx);

/* method: "GET", "POST", ... (exact, upper case). pattern: literal segments and "{}" for exactly
 * one non-empty path segment, e.g. "/internal/users/{}/token"; no trailing slash except "/".
 * The first matching route wins. */
struct http_route {
    const char *method;
    const char *pattern;
    http_handler_fn fn;
};

/* One listening socket. Strings and the route array are borrowed and must outlive the server. */
struct http_listener_opts {
    const char *name; /* "public", "internal": a label in logs and metrics */
    const char *addr; /* "host:port" or "[v6]:port"; port 0 picks a free port */
    const struct http_route *routes;
    size_t nroutes;
    void *ctx; /* passed to every handler of this listener */
    /* Comma-separated exact origins ("https://app.example.com,http://localhost:3000"), or NULL /
     * "" for no CORS. "*" allows any origin; it is safe here because callers authenticate with
     * an Authorization header, never cookies, so Access-Control-Allow-Credentials is never sent. */
    const char *cors_origins;
    unsigned threads; /* 0 = 2: a small epoll thread pool; 1 = one internal polling thread */
};

/* Server-wide limits; a zero field takes the default shown. */
struct http_server_opts {
    const struct http_listener_opts *listeners;
    size_t nlisteners; /* 1..HTTP_MAX_LISTENERS */
    size_t body_max;   /* 64 KiB: larger Content-Length or chunked body -> 413 */
    /* 8 KiB: libmicrohttpd's per-connection memory (request line + headers must fit, with
     * ~800 bytes of slack; else 431). libmicrohttpd 0.9.75 zeroes the whole pool after each
     * request, so every kept-alive connection costs this much RSS: 8 KiB keeps 5000 idle
     * connections near 50 MB; 16 KiB would be ~90 MB. */
    size_t header_mem;
    unsigned conn_limit; /* 10000 connections per listener */
    /* connections per client; 0 = unlimited (behind a proxy every client shares one IP). A
     * client is an IPv4 address (also IPv4-mapped) or an IPv6 /64. The service passes its
     * max_connections_per_ip setting. */
    unsigned per_ip_limit;
    /* 60: a kept-alive connection whose next request line has not arrived this long after its
     * previous request is closed, however slowly it drips bytes (libmicrohttpd's own timeout
     * restarts on every byte). */
    unsigned conn_timeout_s;
    /* 10: the request line and headers must be complete this long after the request's start
     * (accept for a new connection, its first bytes on a kept-alive one), else the
     * connection is closed unanswered. Capped at conn_timeout_s and request_timeout_s, so a
     * client dripping its head is never kept longer than an idle one. */
    unsigned head_timeout_s;
    /* 30: the whole request, body included, must be complete this long after its start, else
     * the connection is closed (no answer: the client is too slow or hostile). */
    unsigned request_timeout_s;
    unsigned cors_max_age_s; /* 600: Access-Control-Max-Age on preflight answers */
};

#define HTTP_MAX_LISTENERS 4
#define HTTP_BODY_MAX_DEFAULT (64u * 1024u)
#define HTTP_REQ_ID_MAX                                                                            \
    64 /* an incoming X-Request-Id is used when 1..64 chars of [A-Za-z0-9._-]                      \
        */

/* Validates the options and copies what it needs (not the borrowed strings/routes). Binds
 * nothing. 0, TV_ERR_CONFIG (bad address, pattern or option) or TV_ERR_NOMEM. *out on success. */
int http_server_new(const struct http_server_opts *o, struct http_server **out);
/* Binds every listener's socket and listens on it, without serving: the ports are held, and
 * connections wait in the backlog until http_server_start. On failure logs one line naming the
 * listener, the address and the system's reason ("Address already in use", "Permission
 * denied", "Cannot assign requested address"), closes what it bound and returns TV_ERR_IO.
 * Optional: http_server_start binds what is not bound yet. Call at most once, before start. */
int http_server_bind(struct http_server *s);
/* Binds (unless http_server_bind did) and starts every listener (threads start serving at once).
 * Also raises the soft RLIMIT_NOFILE towards the hard limit so conn_limit connections can be held.
 * 0 or TV_ERR_IO (cannot bind; logged). Call once. */
int http_server_start(struct http_server *s);
/* The port listener i is actually bound to (useful with port 0), or 0 if not started. */
uint16_t http_server_port(const struct http_server *s, size_t i);
/* Graceful stop: stops accepting, waits up to drain_ms for dispatched requests to be answered,
 * answers the rest 503 shutting_down, then stops the threads. Blocks. A reply arriving later
 * for such a request is discarded safely (the request memory lives until that reply). */
void http_server_stop(struct http_server *s, int drain_ms);
/* Stops (drain 0) if still running, then frees. NULL is a no-op. */
void http_server_free(struct http_server *s);
/* Appends Prometheus text: tokenvend_http_requests_total{listener,method,route,status},
 * tokenvend_http_request_duration_seconds histogram {listener,method,route},
 * tokenvend_http_in_flight. Requests that matched no route count under route="unmatched".
 * Thread-safe. 0 or the buf error. */
int http_server_metrics_write(struct http_server *s, struct buf *out);

/* ---- request accessors: valid from handler entry until the reply call (any thread), except
 * http_req_header / http_req_query, which only work during the handler call itself (they read
 * libmicrohttpd's connection): copy what you need later. ---- */
const char *http_req_method(const struct http_req *req);
const char *http_req_path(const struct http_req *req);  /* raw path, without the query */
const char *http_req_route(const struct http_req *req); /* the matched pattern */
/* The i-th "{}" segment, percent-decoded (never contains NUL: such requests get 400); NULL if
 * i is out of range. */
const char *http_req_param(const struct http_req *req, size_t i);
const char *http_req_header(const struct http_req *req, const char *name); /* NULL if absent */
/* Every line of header `name` in the order they came, into out[0..max) (the last max lines
 * when there are more); returns the count. Same lifetime as http_req_header's answers. */
size_t http_req_header_all(const struct http_req *req, const char *name, const char **out,
                           size_t max);
const char *http_req_query(const struct http_req *req, const char *name); /* decoded, or NULL */
const char *http_req_id(const struct http_req *req);     /* X-Request-Id, in and out */
const char *http_req_remote(const struct http_req *req); /* client IP as text */
/* 1 when the request's Origin header is allowed by the listener's cors_origins (listed, or a
 * "*" entry), else 0. */
int http_req_origin_allowed(const struct http_req *req);
/* 1 when the request's Origin header names an origin of the listener's cors_origins list
 * itself (a "*" entry does not count), else 0. */
int http_req_origin_listed(const struct http_req *req);
/* The request body (NUL-terminated, "" when none); *len gets its length (may contain NULs). */
const char *http_req_body(const struct http_req *req, size_t *len);
/* Attaches handler data; free_fn(p) runs when the request is released (after the reply and
 * the end of the connection's request, on whichever thread comes last). */
void http_req_set_data(struct http_req *req, void *p, void (*free_fn)(void *));
void *http_req_data(const struct http_req *req);

/* ---- replies: exactly one per request, from any thread. After it the handler must not touch
 * req again (it may be freed at once). ---- */
/* Adds a response header to the coming reply (copies both; at most 16 per request; silently
 * ignored past that or after the reply). Call before the reply, from the replying thread.
 * "Cache-Control: no-store" also marks the body a secret: every copy the server makes of it
 * (and, for http_reply_json, the json-c tree's strings) is wiped before it is freed. */
void http_reply_header(struct http_req *req, const char *name, const char *value);
/* JSON reply; `body` is consumed (json_object_put) even on failure. NULL body = empty body. */
void http_reply_json(struct http_req *req, int status, struct json_object *body);
/* A body of any type (copied), e.g. "text/plain; version=0.0.4" for /metrics. */
void http_reply_data(struct http_req *req, int status, const char *content_type, const void *data,
                     size_t len);
void http_reply_empty(struct http_req *req, int status);
/* The one error shape {"error":{"code":err_name(rc),"message":...}} with err_http_status(rc);
 * message NULL = err_message(rc). Any 429 or 503 reply (error or not, including the shutdown
 * 503) without a Retry-After set by http_reply_header gets "Retry-After: 1". */
void http_reply_error(struct http_req *req, int rc, const char *message);
void http_reply_error_status(struct http_req *req, int status, const char *code,
                             const char *message);

/* For libmicrohttpd's URI-log callback (uri as it passes it, pool_size the connection memory
 * limit): when the query has more arguments than the connection's memory can hold, cuts the
 * query off in libmicrohttpd's buffer, so that libmicrohttpd parses no argument instead of
 * overflowing (which in 0.9.75 hangs the connection and skips the completion callback), and
 * returns 1: the caller then answers 414. Else 0 and nothing changes. */
int http_uri_guard(const char *uri, size_t pool_size);

/* libmicrohttpd's MHD_OPTION_EXTERNAL_LOGGER callback: its messages become debug log lines
 * (cls unused). Shared with acs-emulator's server. */
void http_mhd_log(void *cls, const char *fmt, va_list ap);

#endif
