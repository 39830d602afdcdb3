/* Per-route request counters and latency histograms, kept in atomics so recording takes no lock,
 * and their Prometheus text exposition. */
#include <inttypes.h>
#include <string.h>

#include "core/err.h"
#include "http_int.h"

/* Upper bounds in microseconds; the label text is the same bound in seconds. */
static const uint64_t http_hist_us[HTTP_HIST_BUCKETS] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 10000000};
static const char *const http_hist_le[HTTP_HIST_BUCKETS] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "10"};

void http_stats_record(struct http_listener *l, long route, int status, int64_t dur_us)
{
    struct http_route_stats *st;
    size_t b = 0;
    uint64_t us = dur_us > 0 ? (uint64_t)dur_us : 0;

    if (!l->stats)
        return;
    st = &l->stats[route >= 0 ? (size_t)route : l->nroutes];
    if (status < 100 || status > 599)
        status = 0;
    atomic_fetch_add_explicit(&st->by_status[status], 1, memory_order_relaxed);
    while (b < HTTP_HIST_BUCKETS && us > http_hist_us[b])
        b++;
    atomic_fetch_add_explicit(&st->hist[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->sum_us, us, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->count, 1, memory_order_relaxed);
}

static void http_route_labels(const struct http_listener *l, size_t r, const char **method,
                              const char **pattern)
{
    if (r < l->nroutes) {
        *method = l->routes[r].method;
        *pattern = l->routes[r].pattern;
    } else {
        *method = "";
        *pattern = "unmatched"; /* 404, 405, preflight, and requests refused before routing */
    }
}

static int http_metrics_counts(struct http_server *s, struct buf *out)
{
    int rc = buf_append_str(out, "# HELP tokenvend_http_requests_total HTTP requests answered, "
                                 "by listener, route pattern and status.\n"
                                 "# TYPE tokenvend_http_requests_total counter\n");

    for (size_t i = 0; rc == 0 && i < s->n; i++) {
        const struct http_listener *l = &s->l[i];
        for (size_t r = 0; rc == 0 && r <= l->nroutes; r++) {
            const char *method, *pattern;
            http_route_labels(l, r, &method, &pattern);
            for (int st = 0; rc == 0 && st < 600; st++) {
                uint64_t v = atomic_load_explicit(&l->stats[r].by_status[st], memory_order_relaxed);
                if (v == 0)
                    continue;
                rc = buf_printf(out,
                                "tokenvend_http_requests_total{listener=\"%s\",method=\"%s\","
                                "route=\"%s\",status=\"%d\"} %" PRIu64 "\n",
                                l->name, method, pattern, st, v);
            }
        }
    }
    return rc;
}

static int http_metrics_hist(struct http_server *s, struct buf *out)
{
    int rc = buf_append_str(out, "# HELP tokenvend_http_request_duration_seconds Time from the "
                                 "request line to the end of the answer.\n"
                                 "# TYPE tokenvend_http_request_duration_seconds histogram\n");

    for (size_t i = 0; rc == 0 && i < s->n; i++) {
        const struct http_listener *l = &s->l[i];
        for (size_t r = 0; rc == 0 && r <= l->nroutes; r++) {
            const struct http_route_stats *st = &l->stats[r];
            const char *method, *pattern;
            uint64_t cum = 0, count = atomic_load(&st->count);
            if (count == 0)
                continue;
            http_route_labels(l, r, &method, &pattern);
            for (size_t b = 0; rc == 0 && b <= HTTP_HIST_BUCKETS; b++) {
                cum += atomic_load_explicit(&st->hist[b], memory_order_relaxed);
                rc = buf_printf(out,
                                "tokenvend_http_request_duration_seconds_bucket{listener=\"%s\","
                                "method=\"%s\",route=\"%s\",le=\"%s\"} %" PRIu64 "\n",
                                l->name, method, pattern,
                                b < HTTP_HIST_BUCKETS ? http_hist_le[b] : "+Inf", cum);
            }
            if (rc == 0)
                rc = buf_printf(out,
                                "tokenvend_http_request_duration_seconds_sum{listener=\"%s\","
                                "method=\"%s\",route=\"%s\"} %" PRIu64 ".%06" PRIu64 "\n"
                                "tokenvend_http_request_duration_seconds_count{listener=\"%s\","
                                "method=\"%s\",route=\"%s\"} %" PRIu64 "\n",
                                l->name, method, pattern, atomic_load(&st->sum_us) / 1000000,
                                atomic_load(&st->sum_us) % 1000000, l->name, method, pattern, cum);
        }
    }
    return rc;
}

int http_server_metrics_write(struct http_server *s, struct buf *out)
{
    int rc = http_metrics_counts(s, out);

    if (rc == 0)
        rc = http_metrics_hist(s, out);
    if (rc == 0)
        rc = buf_printf(out,
                        "# HELP tokenvend_http_in_flight Requests dispatched to a handler and not "
                        "yet answered.\n# TYPE tokenvend_http_in_flight gauge\n"
                        "tokenvend_http_in_flight %ld\n",
                        atomic_load(&s->in_flight));
    return rc;
}
