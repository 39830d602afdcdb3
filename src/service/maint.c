/* Periodic maintenance: the expired session refresh tokens, and the audit retention thread. A pass
 * deletes the rows past the retention in batches of batch_rows, each its own write transaction, and
 * rests briefly between batches so that requests waiting for the single writer get it; a large
 * backlog (the first start after an upgrade, or a lowered retention) is therefore worked off
 * without ever holding the writer for more than one small batch. Waits use the monotonic clock, so
 * a wall-clock step neither stalls nor hurries the passes; the cut-off itself is wall time, as the
 * rows' ts_ms. */
#include "service/maint.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "store/audit.h"
#include "store/refresh.h"

#define MAINT_INTERVAL_DEFAULT_MS 3600000L
/* Rest between two batches of one pass: long enough for writers queued on the store's mutex
 * to take it, short enough that a backlog of a million rows takes seconds, not minutes. */
#define MAINT_BATCH_PAUSE_MS 10
#define MAINT_RETENTION_MAX_DAYS 36500L

struct maint {
    struct store *store;
    long retention_days;
    long interval_ms;
    int batch;

    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC; signalled by maint_stop */
    int stop, started;
    pthread_t thread;

    /* Counters for /metrics. */
    atomic_ullong m_passes, m_pruned, m_errors;
    atomic_llong m_last_prune_ms; /* wall time of the last pass that pruned to the end; 0 never */
};

int maint_new(const struct maint_opts *o, struct maint **out)
{
    struct maint *m;
    pthread_condattr_t ca;
    int rc = TV_ERR_INVALID;

    if (o == NULL || o->store == NULL || o->audit_retention_days < 0 ||
        o->audit_retention_days > MAINT_RETENTION_MAX_DAYS || o->interval_ms < 0 ||
        o->batch_rows < 0 || o->batch_rows > STORE_PRUNE_MAX)
        return rc;
    if ((m = calloc(1, sizeof *m)) == NULL)
        return TV_ERR_NOMEM;
    m->store = o->store;
    m->retention_days = o->audit_retention_days;
    m->interval_ms = o->interval_ms > 0 ? o->interval_ms : MAINT_INTERVAL_DEFAULT_MS;
    m->batch = o->batch_rows > 0 ? o->batch_rows : MAINT_BATCH_DEFAULT;
    if (pthread_condattr_init(&ca) != 0) {
        rc = TV_ERR_NOMEM;
        goto fail_free;
    }
    (void)pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (pthread_cond_init(&m->cond, &ca) != 0) {
        rc = TV_ERR_NOMEM;
        goto fail_attr;
    }
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&m->lock, NULL);
    *out = m;
    return 0;
fail_attr:
    pthread_condattr_destroy(&ca);
fail_free:
    free(m);
    return rc;
}

/* Waits up to ms on the condition (lock held). Returns with the lock held; the caller checks
 * m->stop. */
static void wait_locked(struct maint *m, int64_t ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (!m->stop) {
        if (pthread_cond_timedwait(&m->cond, &m->lock, &ts) != 0)
            break;
    }
}

/* Deletes the session refresh tokens past their end (used ones included). Expired tokens are
 * refused whether or not they are still stored, so this only bounds the table; one statement,
 * since the table holds one row per live session and a few used ones. */
static void refresh_prune(struct maint *m, int64_t now_ms)
{
    int64_t n = 0;
    int rc = store_refresh_prune(m->store, now_ms, &n);

    if (rc != 0)
        log_msg(LOGL_WARN, NULL, "session refresh tokens: cannot delete the expired ones: %s",
                err_name(rc));
    else if (n > 0)
        log_msg(LOGL_INFO, NULL, "session refresh tokens: deleted %lld expired", (long long)n);
}

int maint_run_once(struct maint *m, int64_t now_ms, int64_t *pruned)
{
    char iso[CLOCK_ISO_LEN];
    int64_t before_ms, total = 0, n = 0;
    int rc = 0, stop;

    atomic_fetch_add(&m->m_passes, 1);
    refresh_prune(m, now_ms);
    if (m->retention_days == 0)
        goto done; /* keep every row */
    before_ms = now_ms - (int64_t)m->retention_days * MAINT_DAY_MS;
    for (;;) {
        rc = store_audit_prune(m->store, before_ms, m->batch, &n);
        if (rc != 0)
            break;
        total += n;
        atomic_fetch_add(&m->m_pruned, (unsigned long long)n);
        /* A short batch means nothing older is left. */
        if (n < m->batch)
            break;
        /* A stop ends the pass between batches (the rest waits for the next run). */
        pthread_mutex_lock(&m->lock);
        wait_locked(m, MAINT_BATCH_PAUSE_MS);
        stop = m->stop;
        pthread_mutex_unlock(&m->lock);
        if (stop)
            break;
    }
    clock_iso8601(before_ms, iso);
    if (rc != 0) {
        atomic_fetch_add(&m->m_errors, 1);
        log_msg(LOGL_WARN, NULL,
                "audit retention: cannot delete rows older than %s: %s (%lld deleted before "
                "the failure; the next pass goes on)",
                iso, err_name(rc), (long long)total);
    } else {
        if (n < m->batch)
            atomic_store(&m->m_last_prune_ms, (long long)clock_wall_ms());
        if (total > 0)
            log_msg(LOGL_INFO, NULL, "audit retention: deleted %lld rows older than %s",
                    (long long)total, iso);
    }
done:
    if (pruned != NULL)
        *pruned = total;
    return rc;
}

static void *maint_main(void *arg)
{
    struct maint *m = arg;

    pthread_mutex_lock(&m->lock);
    while (!m->stop) {
        pthread_mutex_unlock(&m->lock);
        (void)maint_run_once(m, clock_wall_ms(), NULL);
        pthread_mutex_lock(&m->lock);
        wait_locked(m, m->interval_ms);
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

int maint_start(struct maint *m)
{
    if (pthread_create(&m->thread, NULL, maint_main, m) != 0) {
        log_msg(LOGL_ERROR, NULL, "cannot start the maintenance thread");
        return TV_ERR_INTERNAL;
    }
    m->started = 1;
    return 0;
}

void maint_stop(struct maint *m)
{
    pthread_mutex_lock(&m->lock);
    m->stop = 1;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
    if (m->started) {
        pthread_join(m->thread, NULL);
        m->started = 0;
    }
}

void maint_free(struct maint *m)
{
    if (m == NULL)
        return;
    maint_stop(m);
    pthread_cond_destroy(&m->cond);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

int maint_metrics_write(struct maint *m, struct buf *out)
{
    long long last = atomic_load(&m->m_last_prune_ms);

    return buf_printf(
        out,
        "# HELP tokenvend_maintenance_passes_total Maintenance passes run (audit retention).\n"
        "# TYPE tokenvend_maintenance_passes_total counter\n"
        "tokenvend_maintenance_passes_total %llu\n"
        "# HELP tokenvend_audit_pruned_total Audit rows deleted for being past the retention.\n"
        "# TYPE tokenvend_audit_pruned_total counter\n"
        "tokenvend_audit_pruned_total %llu\n"
        "# HELP tokenvend_audit_prune_errors_total Retention passes a store error cut short.\n"
        "# TYPE tokenvend_audit_prune_errors_total counter\n"
        "tokenvend_audit_prune_errors_total %llu\n"
        "# HELP tokenvend_audit_last_prune_timestamp_seconds When a retention pass last left no "
        "row past the retention (0: never).\n"
        "# TYPE tokenvend_audit_last_prune_timestamp_seconds gauge\n"
        "tokenvend_audit_last_prune_timestamp_seconds %.3f\n"
        "# HELP tokenvend_audit_retention_days Audit rows older than this are deleted (0: kept "
        "forever).\n"
        "# TYPE tokenvend_audit_retention_days gauge\n"
        "tokenvend_audit_retention_days %ld\n",
        (unsigned long long)atomic_load(&m->m_passes),
        (unsigned long long)atomic_load(&m->m_pruned),
        (unsigned long long)atomic_load(&m->m_errors), (double)last / 1000.0, m->retention_days);
}
