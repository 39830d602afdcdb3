/* Internals of the http module shared by server.c, router.c, reply.c and metrics.c. Not a
 * public header: nothing outside src/http includes it. */
#ifndef TV_HTTP_INT_H
#define TV_HTTP_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "core/buf.h"
#include "http/server.h"

struct MHD_Connection;
struct json_object;
struct MHD_Daemon;
struct MHD_Response;
struct http_peers;

#define HTTP_MAX_PARAMS 4
#define HTTP_MAX_SEGMENTS 16
#define HTTP_PATH_MAX 2048
#define HTTP_MAX_REPLY_HEADERS 16
/* Retry-After of a 429 or 503 answer whose path set none (seconds): the time a client
 * should give a passing overload (a full queue, a shutdown handing over to another
 * replica) before trying again. */
#define HTTP_RETRY_AFTER_DEFAULT_S "1"
#define HTTP_REPLY_HEADERS_MAX (8u * 1024u)
#define HTTP_PARAM_MAX 1024
#define HTTP_METHOD_MAX 16
#define HTTP_REMOTE_MAX 64
#define HTTP_ORIGIN_MAX 256
#define HTTP_ALLOW_MAX 128

/* Latency histogram bounds in microseconds (Prometheus "le" labels in seconds). */
#define HTTP_HIST_BUCKETS 12

/* Counters of one route (or of the listener's unmatched requests): lock-free. */
struct http_route_stats {
    atomic_uint_fast64_t by_status[600];              /* index = status 100..599; 0 = no answer */
    atomic_uint_fast64_t hist[HTTP_HIST_BUCKETS + 1]; /* non-cumulative; last = +Inf */
    atomic_uint_fast64_t sum_us;
    atomic_uint_fast64_t count;
};

/* Where a connection is in its current request, for the deadlines of guard.c. */
enum http_conn_phase {
    HTTP_CONN_IDLE,     /* kept alive after a request, waiting for the next request line */
    HTTP_CONN_HEAD,     /* request line and headers arriving (a new connection starts here) */
    HTTP_CONN_BODY,     /* headers in, body still arriving */
    HTTP_CONN_ANSWERING /* the request is complete: the handler or libmicrohttpd answers */
};

/* The client a per-address connection cap counts by (peers.c): an IPv4 address (also when it
 * arrives IPv4-mapped on an IPv6 socket), or the /64 prefix of an IPv6 address. */
struct http_peer_key {
    uint8_t family; /* AF_INET or AF_INET6; 0: not counted (another address family) */
    uint8_t bytes[8];
};

/* One per open connection (libmicrohttpd's socket context), in its listener's list. */
struct http_conn {
    struct http_listener *l;
    int fd;
    int cut;                      /* shut down (sweeper or admission); under l->cmu */
    int counted;                  /* holds one count of `peer` in l->peers */
    struct http_peer_key peer;    /* its client, as the per-address cap counts it */
    atomic_int phase;             /* enum http_conn_phase */
    atomic_int_fast64_t since_ms; /* when the phase's clock started (monotonic): for HEAD and
                                     BODY the start of the request, else the phase's start */
    /* The sweeper's own (under l->cmu): for the IDLE phase that began at idle_since, when bytes
     * of a next request were first seen (0: none yet) and when it last looked. */
    int64_t idle_since, next_ms, looked_ms;
    struct http_req *req;          /* the current request until it completes; server thread only */
    struct http_conn *prev, *next; /* l->conns, under l->cmu */
};

struct http_listener {
    struct http_server *srv;
    size_t index;
    const char *name;
    const char *addr;
    const struct http_route *routes;
    size_t nroutes;
    void *ctx;
    unsigned threads;
    char **origins; /* exact CORS origins, owned */
    size_t norigins;
    int any_origin;
    struct MHD_Daemon *d;
    int fd; /* the bound, listening socket until its daemon takes it; -1 when none */
    uint16_t port;
    struct http_route_stats *stats; /* nroutes + 1; the last counts requests without a route */
    pthread_mutex_t cmu;            /* conns */
    struct http_conn *conns;
    struct http_peers *peers; /* connections per client (peers.c); NULL: no per-address cap */
};

/* Request lifecycle, guarded by http_req.mu once a handler runs. */
enum http_state {
    HTTP_ST_NEW,       /* headers/body being read; nothing dispatched */
    HTTP_ST_HANDLER,   /* handler running on the server thread; no reply yet */
    HTTP_ST_SUSPENDED, /* handler returned without a reply; connection suspended */
    HTTP_ST_REPLIED,   /* a reply is built and waits to be queued by the server thread */
    HTTP_ST_SENT,      /* queued to libmicrohttpd */
    HTTP_ST_ABANDONED  /* answered 503 at shutdown; a late reply is discarded */
};

struct http_span {
    size_t off, len;
};

struct http_req {
    struct http_listener *l;
    struct MHD_Connection *conn;
    pthread_mutex_t mu;
    atomic_int refs; /* one for libmicrohttpd, one while a reply is owed, transient others */
    enum http_state state;
    int owed;       /* a reply is owed (the handler was called and has not replied) */
    int read_phase; /* 0 first call, 1 reading the body, 2 waiting for a reply, 3 done */
    int too_large;
    int uri_too_long;      /* the query was cut by http_uri_guard: answer 414 */
    const char *target_at; /* where the target began in libmicrohttpd's buffer (URI-log
                              callback), for comparisons only; NULL when not known */
    size_t target_seen;    /* the target's length as http_target_guard saw it */
    int target_bad;        /* it holds a control byte or a space: answer 400 */
    int close;             /* answer with Connection: close (the framing was refused) */
    struct http_conn *hc;  /* the connection, until the request completes (server thread) */
    size_t discarded;      /* body bytes dropped after too_large */
    long route;            /* index into l->routes, or -1 */
    int64_t start_ms;
    char *target; /* raw request target: path and query, percent escapes intact */
    size_t path_len;
    char method[HTTP_METHOD_MAX];
    char id[HTTP_REQ_ID_MAX + 1];
    char remote[HTTP_REMOTE_MAX];
    char cors_origin[HTTP_ORIGIN_MAX]; /* value for Access-Control-Allow-Origin, or "" */
    int cors_vary;                     /* the listener has CORS configured: send Vary */
    char *params[HTTP_MAX_PARAMS];
    size_t nparams;
    struct buf body;
    struct buf hdrs; /* reply headers as "name\0value\0" pairs */
    size_t nhdrs;
    struct MHD_Response *resp; /* a built reply not yet queued */
    int status;                /* the status answered, 0 for none */
    size_t bytes_out;
    void *data;
    void (*data_free)(void *);
    struct http_req *prev, *next; /* suspended list of the server, under srv->mu */
};

struct http_server {
    struct http_listener l[HTTP_MAX_LISTENERS];
    size_t n;
    size_t body_max;
    size_t header_mem;
    unsigned conn_limit;
    unsigned per_ip_limit;
    unsigned conn_timeout_s;
    unsigned head_timeout_s; /* effective: never above conn_timeout_s or request_timeout_s */
    unsigned request_timeout_s;
    unsigned cors_max_age_s;
    pthread_t sweeper; /* guard.c: closes connections past their deadline */
    pthread_mutex_t sweep_mu;
    pthread_cond_t sweep_cv;
    int sweep_stop, sweeping;
    pthread_mutex_t mu; /* the suspended list and `stopping` */
    struct http_req *suspended;
    int stopping;
    int started;
    atomic_long in_flight; /* dispatched and not yet answered */
    atomic_long live;      /* begun and not yet completed (answer sent or connection gone) */
    atomic_int draining;   /* stop has begun: answers carry Connection: close */
};

/* router.c */
/* Checks a route pattern's syntax. 0 or TV_ERR_CONFIG. */
int http_pattern_check(const char *pattern);
/* Matches path (len bytes, no query) against pattern; on a match fills params with the "{}"
 * segments' spans and returns 1, else 0. */
int http_pattern_match(const char *pattern, const char *path, size_t len,
                       struct http_span params[HTTP_MAX_PARAMS], size_t *nparams);
/* Percent-decodes s[0..len) into a new string. 0, TV_ERR_PARSE (bad escape or NUL) or
 * TV_ERR_NOMEM. */
int http_percent_decode(const char *s, size_t len, char **out);
/* True when id is 1..HTTP_REQ_ID_MAX chars of [A-Za-z0-9._-]. */
int http_req_id_valid(const char *id);
/* Writes a random RFC 4122 version 4 UUID. */
void http_uuid_new(char out[37]);
/* Parses a comma-separated origin list into l->origins / l->any_origin. 0, TV_ERR_CONFIG,
 * TV_ERR_NOMEM. */
int http_cors_parse(struct http_listener *l, const char *list);
/* True when origin is allowed on l. */
int http_cors_allowed(const struct http_listener *l, const char *origin);
/* 1 when origin is one of l's exact origins (a "*" entry does not count), else 0. */
int http_cors_listed(const struct http_listener *l, const char *origin);

/* reply.c */
/* Builds the response for req with the common headers; body (malloc'd, may be NULL) is taken.
 * When req's reply headers say Cache-Control: no-store, the body is wiped when libmicrohttpd
 * frees it; a 429 or 503 without a Retry-After among them gets HTTP_RETRY_AFTER_DEFAULT_S.
 * NULL when out of memory. */
struct MHD_Response *http_resp_build(struct http_req *req, int status, const char *ctype,
                                     char *body, size_t len);
/* Builds an error body {"error":{"code","message"}} (malloc'd) and its length. */
char *http_error_body(const char *code, const char *message, size_t *len);
void http_req_unref(struct http_req *req);

/* json_text.c */
/* The compact JSON text of o (json-c's bytes for it), in one malloc'd, NUL-terminated buffer of
 * exactly *len + 1 bytes that no reallocation ever moved, so wiping it wipes every copy. For
 * secret replies. 0, TV_ERR_INVALID (deeper than JSONX_MAX_DEPTH) or TV_ERR_NOMEM. */
int http_json_text(struct json_object *o, char **out, size_t *len);

/* server.c */
/* Ends r's part in its connection, as the completion callback does: counters, access log,
 * the connection's reference. Server thread. */
void http_req_finish(struct http_req *r, int toe);

/* guard.c */
/* MHD_OPTION_NOTIFY_CONNECTION callback (cls: the listener): creates the connection's
 * http_conn on STARTED; on CLOSED removes it and releases a request libmicrohttpd abandoned. */
void http_conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                      enum MHD_ConnectionNotificationCode code);
/* The connection's http_conn, or NULL (it could not be allocated). */
struct http_conn *http_conn_of(struct MHD_Connection *conn);
/* Moves c (may be NULL) to phase, starting its clock now. Any thread. */
void http_conn_phase(struct http_conn *c, int phase);
/* Starts / stops the sweeper thread of s. Start: 0 or -1. */
int http_sweeper_start(struct http_server *s);
void http_sweeper_stop(struct http_server *s);
/* What http_target_guard learnt of a request target. */
struct http_target {
    size_t seen; /* bytes up to the line's tail (past any raw NUL), a lower bound of the length */
    int bad;     /* a control byte (NUL included) or a space among them */
};
/* http_uri_guard with what it learnt in *t: the URI-log callback's check of the target uri
 * (libmicrohttpd's pointer). Returns 1 when it cut the query off (too many arguments, or a bad
 * target), else 0. */
int http_target_guard(const char *uri, size_t pool_size, struct http_target *t);
/* MHD_OPTION_UNESCAPE_CALLBACK: libmicrohttpd's own unescaping, and the backstop for a query
 * that overflowed the connection's memory in spite of the guard: answers 414 on the socket and
 * shuts it down, rather than leave the connection hanging. */
size_t http_unescape(void *cls, struct MHD_Connection *conn, char *s);

/* The request head as libmicrohttpd's buffer holds it, from the first access-handler call. */
struct http_head {
    const char *method;  /* the handler's method argument: where the request line starts */
    const char *target;  /* the URI-log callback's target pointer; NULL: unknown, line unchecked */
    size_t target_seen;  /* struct http_target's */
    int target_bad;      /* struct http_target's */
    const char *version; /* the handler's version argument */
};
/* Request framing (RFC 9112 sections 2.2, 3, 5.2, 6), checked over the bytes of the head rather
 * than over C-string views of them: NULL when acceptable, else why not. Call on the first
 * access-handler call, before any body is read. h may be NULL (headers alone are checked). */
const char *http_frame_check(struct MHD_Connection *conn, const struct http_head *h);
/* NULL when no decoded query argument (name or value) holds a NUL, else why not. */
const char *http_query_check(struct MHD_Connection *conn);

/* peers.c: the per-address connection cap. libmicrohttpd's own cap counts exact addresses, so
 * one IPv6 subscriber (who commonly holds a whole /64) could take every slot. */
/* The key addr counts under; 0 when the family is not counted (k->family is then 0). */
int http_peer_key_of(const struct sockaddr *addr, struct http_peer_key *k);
/* Creates l->peers for a cap of `limit` connections per client. 0 or TV_ERR_NOMEM. */
int http_peers_new(struct http_listener *l, unsigned limit);
/* Frees l->peers (no connection may be open); NULL l->peers is a no-op. */
void http_peers_free(struct http_listener *l);
/* libmicrohttpd's accept-policy callback (cls: the listener): refuses a client already at its
 * cap before libmicrohttpd spends memory on the connection. Any server thread. */
enum MHD_Result http_peers_admit(void *cls, const struct sockaddr *addr, socklen_t addrlen);
/* Counts one more connection of k: 0 within the cap, 1 counted but over it (two accepts raced
 * past http_peers_admit: the caller closes the connection), -1 not counted (out of memory).
 * Any thread. */
int http_peers_add(struct http_listener *l, const struct http_peer_key *k);
/* Releases a count taken by http_peers_add (>= 0). */
void http_peers_del(struct http_listener *l, const struct http_peer_key *k);

/* metrics.c */
void http_stats_record(struct http_listener *l, long route, int status, int64_t dur_us);

#endif
