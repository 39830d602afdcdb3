/* Caller limits of the API (README "Caller limits"): per app user on the public API, per API
 * key on the internal API, per client address on the public API. Each is a per-process table
 * (core/climit.h) counted on the monotonic clock, so a wall-clock step never frees or locks
 * anyone; a refusal is 429 rate_limited with the GCRA's wait as Retry-After. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "core/buf.h"
#include "core/climit.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/proxies.h"
#include "core/ratelimit.h"

/* X-Forwarded-For lines looked at (the last ones; a proxy adds at most one). */
#define LIMITS_XFF_LINES 8

enum { LIM_USER, LIM_APIKEY, LIM_IP, LIM_N };

static const char *const lim_names[LIM_N] = {"user", "apikey", "ip"};

struct api_limits {
    struct climit *t[LIM_N]; /* NULL: that limit is off */
    struct proxies *proxies; /* NULL: no trusted proxy */
};

void api_limits_free(struct api_limits *l)
{
    if (l == NULL)
        return;
    for (int i = 0; i < LIM_N; i++)
        climit_free(l->t[i]);
    proxies_free(l->proxies);
    free(l);
}

int api_limits_new(const struct api_limits_opts *o, struct api_limits **out)
{
    const char *text[LIM_N] = {o->user, o->apikey, o->ip};
    struct api_limits *l = calloc(1, sizeof *l);
    struct ratelimit rl;
    char why[160] = "out of memory";
    int rc = TV_ERR_NOMEM;

    if (l == NULL)
        goto out;
    for (int i = 0; i < LIM_N; i++) {
        rc = ratelimit_parse(text[i] != NULL ? text[i] : "off", &rl, why, sizeof why);
        if (rc != 0) {
            log_msg(LOGL_ERROR, NULL, "limit_%s: %s", lim_names[i], why);
            rc = TV_ERR_CONFIG;
            goto out;
        }
        if (!rl.off && (rc = climit_new(&rl, CLIMIT_CAPACITY_DEFAULT, &l->t[i])) != 0)
            goto out;
    }
    rc = proxies_parse(o->trusted_proxies, &l->proxies, why, sizeof why);
    if (rc != 0) {
        log_msg(LOGL_ERROR, NULL, "trusted_proxies: %s", why);
        rc = rc == TV_ERR_NOMEM ? rc : TV_ERR_CONFIG;
        goto out;
    }
    *out = l;
    l = NULL;
out:
    api_limits_free(l);
    return rc;
}

/* 429 rate_limited with the wait until one more request fits. */
static void reply_limited(struct http_req *req, int which, int64_t wait_ms)
{
    char secs[24], msg[96];

    snprintf(secs, sizeof secs, "%lld", (long long)ratelimit_retry_after_s(wait_ms));
    snprintf(msg, sizeof msg, "too many requests from this %s; retry after %s s",
             which == LIM_IP     ? "address"
             : which == LIM_USER ? "user"
                                 : "API key",
             secs);
    log_msg(LOGL_DEBUG, http_req_id(req), "caller limit %s: refused, retry after %s s",
            lim_names[which], secs);
    http_reply_header(req, "Retry-After", secs);
    http_reply_error(req, TV_ERR_RATE_LIMITED, msg);
}

static int take(struct http_req *req, struct api_limits *l, int which, const void *key, size_t len)
{
    int64_t wait = 0;

    if (climit_take(l->t[which], key, len, clock_mono_ms(), &wait))
        return 0;
    reply_limited(req, which, wait);
    return TV_ERR_RATE_LIMITED;
}

/* The client of req: the peer, or behind trusted proxies the hop X-Forwarded-For names. 0, or
 * TV_ERR_INVALID when the peer's address does not parse (a unix socket, say). */
static int client_of(struct http_req *req, const struct api_limits *l, struct proxies_addr *a)
{
    const char *xff[LIMITS_XFF_LINES];
    size_t n = 0;

    if (l != NULL && l->proxies != NULL)
        n = http_req_header_all(req, "X-Forwarded-For", xff, LIMITS_XFF_LINES);
    return proxies_client(l != NULL ? l->proxies : NULL, http_req_remote(req), xff, n, a);
}

void api_client_addr(struct http_req *req, struct api_ctx *ctx, char *out, size_t cap)
{
    struct proxies_addr a;

    if (client_of(req, ctx->limits, &a) != 0 ||
        inet_ntop(a.v6 ? AF_INET6 : AF_INET, a.b, out, (socklen_t)cap) == NULL)
        snprintf(out, cap, "%s", http_req_remote(req));
}

int api_limit_ip(struct http_req *req, struct api_ctx *ctx)
{
    struct api_limits *l = ctx->limits;
    struct proxies_addr a;
    uint8_t key[PROXIES_CLIENT_KEY_LEN];

    if (l == NULL || l->t[LIM_IP] == NULL)
        return 0;
    /* The server always has the peer's numeric address; should it not parse, no address is
     * known to count (a unix socket, say) and the other limits still apply. */
    if (client_of(req, l, &a) != 0)
        return 0;
    proxies_client_key(&a, key);
    return take(req, l, LIM_IP, key, sizeof key);
}

int api_limit_caller(struct http_req *req, struct api_ctx *ctx, const struct api_caller *who)
{
    struct api_limits *l = ctx->limits;
    int which = strcmp(who->kind, "apikey") == 0 ? LIM_APIKEY : LIM_USER;

    if (l == NULL || l->t[which] == NULL)
        return 0;
    return take(req, l, which, who->name, strlen(who->name));
}

int api_limits_metrics_write(struct api_limits *l, struct buf *out)
{
    struct climit_stats st[LIM_N];
    int rc;

    if (l == NULL)
        return 0;
    for (int i = 0; i < LIM_N; i++) {
        memset(&st[i], 0, sizeof st[i]);
        if (l->t[i] != NULL)
            climit_stats(l->t[i], &st[i]);
    }
    rc =
        buf_printf(out, "# HELP tokenvend_caller_limit_requests_total Requests counted by a caller "
                        "limit (this process), by limit and outcome.\n"
                        "# TYPE tokenvend_caller_limit_requests_total counter\n");
    for (int i = 0; rc == 0 && i < LIM_N; i++)
        if (l->t[i] != NULL)
            rc = buf_printf(out,
                            "tokenvend_caller_limit_requests_total{limit=\"%s\",outcome="
                            "\"admitted\"} %llu\n"
                            "tokenvend_caller_limit_requests_total{limit=\"%s\",outcome="
                            "\"refused\"} %llu\n",
                            lim_names[i], (unsigned long long)st[i].admitted, lim_names[i],
                            (unsigned long long)st[i].refused);
    if (rc == 0)
        rc = buf_printf(out, "# HELP tokenvend_caller_limit_evictions_total Callers forgotten "
                             "before their bucket was full again (the table was full).\n"
                             "# TYPE tokenvend_caller_limit_evictions_total counter\n");
    for (int i = 0; rc == 0 && i < LIM_N; i++)
        if (l->t[i] != NULL)
            rc = buf_printf(out, "tokenvend_caller_limit_evictions_total{limit=\"%s\"} %llu\n",
                            lim_names[i], (unsigned long long)st[i].evicted_live);
    return rc;
}
