/* Operations features of the running service (issue 6): the audit retention (the store's
 * batched prune, the maintenance passes, and tokenvend serve's object graph pruning rows it
 * never wrote while it runs) and the optional API-key protection of GET /metrics. The service
 * runs in-process (app.c, the same objects `tokenvend serve` builds) on loopback ports chosen
 * by the system, with an ACS endpoint nobody listens on: none of these paths calls ACS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "app.h"
#include "auth/apikey.h"
#include "core/curlx.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "store/refresh.h"
#include "emu.h"
#include "service/maint.h"
#include "store/apikeys.h"
#include "store/audit.h"
#include "store/store.h"

#define DAY MAINT_DAY_MS
#define WAIT_MS 30000 /* a ceiling that only stops a hung run; nothing asserts on time */

struct fx {
    char dir[64];
    char db[128];
    struct store *st; /* the test's own handle on the service's database */
    struct config cfg;
    struct app *app;
    char key[APIKEY_MAX]; /* an API key stored in the database */
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/tv-ops-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->db, sizeof f->db, "%s/tv.db", f->dir);
    if (store_open(f->db, STORE_MIGRATE_YES, &f->st) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char p[160];

    app_free(f->app);
    config_release(&f->cfg);
    store_close(f->st);
    unlink(f->db);
    snprintf(p, sizeof p, "%s-wal", f->db);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", f->db);
    unlink(p);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void add_row(struct store *st, int64_t ts_ms, const char *action)
{
    struct store_audit a;

    memset(&a, 0, sizeof a);
    a.ts_ms = ts_ms;
    snprintf(a.action, sizeof a.action, "%s", action);
    snprintf(a.outcome, sizeof a.outcome, "ok");
    snprintf(a.caller, sizeof a.caller, "user:test");
    assert_int_equal(store_audit_add(st, &a), 0);
}

/* Rows left, and how many of them are older than before_ms. */
static void count_rows(struct store *st, int64_t before_ms, int *total, int *older)
{
    struct store_audit *rows = calloc(STORE_LIST_MAX, sizeof *rows);
    int n = 0;

    assert_non_null(rows);
    assert_int_equal(store_audit_list(st, NULL, STORE_LIST_MAX, rows, &n), 0);
    *total = n;
    *older = 0;
    for (int i = 0; i < n; i++)
        *older += rows[i].ts_ms < before_ms;
    free(rows);
}

/* ---- the store's batched prune ---- */

static void test_prune_batches_oldest_first(void **state)
{
    struct fx *f = *state;
    int64_t n = -1;
    int total, older;

    /* Written out of time order: the prune goes by ts_ms, not by insertion. */
    add_row(f->st, 50, "issue");
    add_row(f->st, 10, "issue");
    add_row(f->st, 30, "issue");
    add_row(f->st, 200, "issue");
    assert_int_equal(store_audit_prune(f->st, 100, 0, &n), TV_ERR_INVALID);
    assert_int_equal(store_audit_prune(f->st, 100, STORE_PRUNE_MAX + 1, &n), TV_ERR_INVALID);
    assert_int_equal(store_audit_prune(f->st, 100, 2, &n), 0);
    assert_true(n == 2);
    count_rows(f->st, 31, &total, &older);
    assert_int_equal(total, 2);
    assert_int_equal(older, 0); /* 10 and 30 went first */
    assert_int_equal(store_audit_prune(f->st, 100, 2, &n), 0);
    assert_true(n == 1); /* a short batch: nothing older is left */
    assert_int_equal(store_audit_prune(f->st, 100, 2, &n), 0);
    assert_true(n == 0);
    count_rows(f->st, 100, &total, &older);
    assert_int_equal(total, 1);
    assert_int_equal(older, 0);
}

/* The prune's row selection is a range seek on an index (migration 0005), not a table scan
 * under the writer lock. */
static void test_prune_uses_index(void **state)
{
    struct fx *f = *state;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char plan[512] = "";
    size_t at = 0;

    assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "EXPLAIN QUERY PLAN SELECT id FROM audit WHERE ts_ms < 5"
                                        " ORDER BY ts_ms LIMIT 10",
                                        -1, &st, NULL),
                     SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW && at < sizeof plan)
        at += (size_t)snprintf(plan + at, sizeof plan - at, "%s;", sqlite3_column_text(st, 3));
    sqlite3_finalize(st);
    sqlite3_close(db);
    if (strstr(plan, "INDEX audit_by_ts") == NULL || strstr(plan, "SCAN audit;") != NULL)
        fail_msg("plan does not seek the ts index: %s", plan);
}

/* ---- maintenance passes, called directly ---- */

static void test_maint_pass(void **state)
{
    struct fx *f = *state;
    struct maint_opts o = {.store = f->st, .audit_retention_days = 30, .batch_rows = 4};
    struct maint *m = NULL;
    struct buf b;
    int64_t now = clock_wall_ms(), pruned = -1;
    int total, older;

    struct maint_opts bad[] = {
        {.store = NULL, .audit_retention_days = 1},
        {.store = f->st, .audit_retention_days = -1},
        {.store = f->st, .interval_ms = -1},
        {.store = f->st, .batch_rows = STORE_PRUNE_MAX + 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(maint_new(&bad[i], &m), TV_ERR_INVALID);
    assert_null(m);

    for (int i = 0; i < 10; i++) /* 10 rows past 30 days: three batches of 4, 4 and 2 */
        add_row(f->st, now - 31 * DAY - i, "login");
    add_row(f->st, now - 29 * DAY, "login");
    add_row(f->st, now, "issue");
    assert_int_equal(maint_new(&o, &m), 0);
    assert_int_equal(maint_run_once(m, now, &pruned), 0);
    assert_true(pruned == 10);
    count_rows(f->st, now - 30 * DAY, &total, &older);
    assert_int_equal(total, 2);
    assert_int_equal(older, 0);
    assert_int_equal(maint_run_once(m, now, &pruned), 0);
    assert_true(pruned == 0);

    buf_init(&b, 8192);
    assert_int_equal(maint_metrics_write(m, &b), 0);
    assert_non_null(strstr(buf_cstr(&b), "\ntokenvend_audit_pruned_total 10\n"));
    assert_non_null(strstr(buf_cstr(&b), "\ntokenvend_maintenance_passes_total 2\n"));
    assert_non_null(strstr(buf_cstr(&b), "\ntokenvend_audit_retention_days 30\n"));
    assert_null(strstr(buf_cstr(&b), "tokenvend_audit_last_prune_timestamp_seconds 0.000"));
    buf_release(&b);
    maint_free(m);
}

static void test_maint_retention_zero_keeps_all(void **state)
{
    struct fx *f = *state;
    struct maint_opts o = {.store = f->st, .audit_retention_days = 0};
    struct maint *m = NULL;
    int64_t now = clock_wall_ms(), pruned = -1;
    int total, older;

    add_row(f->st, 1, "login"); /* 1970 */
    add_row(f->st, now - 400 * DAY, "login");
    assert_int_equal(maint_new(&o, &m), 0);
    assert_int_equal(maint_run_once(m, now, &pruned), 0);
    assert_true(pruned == 0);
    count_rows(f->st, now, &total, &older);
    assert_int_equal(total, 2);
    maint_free(m);
}

/* A pass also deletes the session refresh tokens past their idle or family end (issue 12),
 * whatever the audit retention, and keeps the live ones. */
static void test_maint_prunes_refresh_tokens(void **state)
{
    struct fx *f = *state;
    struct maint_opts o = {.store = f->st, .audit_retention_days = 0};
    struct maint *m = NULL;
    struct store_refresh r, got;
    int64_t now = clock_wall_ms(), pruned = -1, n = -1;
    const struct {
        const char *id;
        int64_t expires, family_expires;
    } rows[] = {{"idle-over", now - 1, now + DAY},
                {"family-over", now + DAY, now},
                {"live", now + DAY, now + 2 * DAY}};

    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        memset(&r, 0, sizeof r);
        snprintf(r.id, sizeof r.id, "%s", rows[i].id);
        snprintf(r.family, sizeof r.family, "fam-%zu", i);
        snprintf(r.account, sizeof r.account, "alice");
        r.created_ms = now - DAY;
        r.expires_ms = rows[i].expires;
        r.family_expires_ms = rows[i].family_expires;
        assert_int_equal(store_refresh_insert(f->st, &r), 0);
    }
    assert_int_equal(maint_new(&o, &m), 0);
    assert_int_equal(maint_run_once(m, now, &pruned), 0);
    assert_int_equal(store_refresh_count(f->st, &n), 0);
    assert_true(n == 1);
    assert_int_equal(store_refresh_get(f->st, "live", &got), 0);
    maint_free(m);
}

/* A stop ends a pass after the batch in progress, so shutdown never waits for a backlog. */
static void test_maint_stop_between_batches(void **state)
{
    struct fx *f = *state;
    struct maint_opts o = {.store = f->st, .audit_retention_days = 1, .batch_rows = 2};
    struct maint *m = NULL;
    int64_t now = clock_wall_ms(), pruned = -1;
    int total, older;

    for (int i = 0; i < 9; i++)
        add_row(f->st, now - 2 * DAY - i, "login");
    assert_int_equal(maint_new(&o, &m), 0);
    maint_stop(m); /* before any thread: the next pass stops after one batch */
    assert_int_equal(maint_run_once(m, now, &pruned), 0);
    assert_true(pruned == 2);
    count_rows(f->st, now, &total, &older);
    assert_int_equal(total, 7);
    maint_free(m);
}

/* ---- the running service ---- */

struct resp {
    long status;
    char body[65536];
    size_t len;
    char www_auth[256];
};

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
    struct resp *r = arg;
    size_t take = sz * n;

    if (take > sizeof r->body - 1 - r->len)
        take = sizeof r->body - 1 - r->len;
    memcpy(r->body + r->len, p, take);
    r->len += take;
    r->body[r->len] = '\0';
    return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
    struct resp *r = arg;
    size_t len = sz * n;
    static const char name[] = "www-authenticate:";

    if (len > sizeof name - 1 && strncasecmp(p, name, sizeof name - 1) == 0)
        snprintf(r->www_auth, sizeof r->www_auth, "%.*s", (int)(len - (sizeof name - 1)),
                 p + sizeof name - 1);
    return len;
}

/* GET http://127.0.0.1:port/path, with "Authorization: Bearer key" when key is not NULL. */
static void http_get(int port, const char *path, const char *key, struct resp *r)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char url[128], auth[160];

    memset(r, 0, sizeof *r);
    assert_non_null(c);
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    if (key != NULL) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        h = curl_slist_append(h, auth);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
    if (curl_easy_perform(c) != CURLE_OK)
        fail_msg("GET %s: no answer", url);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

/* The value of metric `name` in Prometheus text, or -1 when absent. */
static double metric(const char *text, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, name, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return -1;
}

/* Loads the configuration the way `tokenvend serve` does (no config file, these flags) and
 * starts the service. */
static void serve(struct fx *f, const char *retention_days, const char *metrics_auth)
{
    char err[CONFIG_ERR_MAX], connstr[160];
    int port = temu_closed_port();

    assert_true(port > 0);
    /* ACS is never called here; the endpoint only has to parse. */
    snprintf(connstr, sizeof connstr,
             "endpoint=http://127.0.0.1:%d/;accesskey=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
             port);
    struct config_flag flags[] = {
        {"db", f->db, "--set"},
        {"public_addr", "127.0.0.1:0", "--set"},
        {"internal_addr", "127.0.0.1:0", "--set"},
        {"acs_connection_string", connstr, "--set"},
        {"audit_retention_days", retention_days, "--set"},
        {"audit_prune_interval_ms", "100", "--set"},
        {"metrics_auth", metrics_auth, "--set"},
        {"log_level", "warn", "--set"},
    };
    struct config_overrides ov = {
        .default_path = "", .flags = flags, .nflags = sizeof flags / sizeof flags[0]};
    if (config_load(&ov, &f->cfg, err, sizeof err) != 0)
        fail_msg("config: %s", err);
    assert_int_equal(app_new(&f->cfg, &f->app), 0);
    assert_int_equal(app_start(f->app), 0);
    assert_true(app_port(f->app, 1) > 0);
}

/* Polls /metrics (with key, may be NULL) until metric name reaches at least want. */
static double wait_metric(struct fx *f, const char *key, const char *name, double want)
{
    struct resp *r = calloc(1, sizeof *r);
    double v = -1;

    assert_non_null(r);
    for (int64_t end = clock_mono_ms() + WAIT_MS; clock_mono_ms() < end; clock_sleep_ms(20)) {
        http_get(app_port(f->app, 1), "/metrics", key, r);
        assert_int_equal(r->status, 200);
        if ((v = metric(r->body, name)) >= want)
            break;
    }
    free(r);
    if (v < want)
        fail_msg("%s stayed at %g (want >= %g)", name, v, want);
    return v;
}

/* Rows written straight into the store, some older than the retention: the running service
 * deletes those (at start, and again later for rows that age in meanwhile) and keeps the rest. */
static void test_service_prunes_old_rows(void **state)
{
    struct fx *f = *state;
    int64_t now = clock_wall_ms();
    int total, older;

    for (int i = 0; i < 25; i++)
        add_row(f->st, now - 100 * DAY - i * 1000, "login");
    for (int i = 0; i < 5; i++)
        add_row(f->st, now - 29 * DAY + i * 1000, "issue");
    serve(f, "30", "off");

    assert_true(wait_metric(f, NULL, "tokenvend_audit_pruned_total", 25) == 25);
    count_rows(f->st, now - 30 * DAY, &total, &older);
    assert_int_equal(total, 5);
    assert_int_equal(older, 0);

    /* Periodic, not only at start: rows past the retention written while it runs go too. */
    add_row(f->st, now - 31 * DAY, "login");
    add_row(f->st, now - 45 * DAY, "login");
    assert_true(wait_metric(f, NULL, "tokenvend_audit_pruned_total", 27) == 27);
    count_rows(f->st, now - 30 * DAY, &total, &older);
    assert_int_equal(total, 5);
    assert_int_equal(older, 0);
    wait_metric(f, NULL, "tokenvend_audit_last_prune_timestamp_seconds", (double)now / 1000.0);
}

static void test_service_retention_zero_keeps_rows(void **state)
{
    struct fx *f = *state;
    int64_t now = clock_wall_ms();
    struct resp *r = calloc(1, sizeof *r);
    int total, older;

    assert_non_null(r);
    for (int i = 0; i < 7; i++)
        add_row(f->st, now - 1000 * DAY - i, "login");
    serve(f, "0", "off");
    /* Three passes have run (the first at start), and none deleted anything. */
    wait_metric(f, NULL, "tokenvend_maintenance_passes_total", 3);
    count_rows(f->st, now, &total, &older);
    assert_int_equal(total, 7);
    http_get(app_port(f->app, 1), "/metrics", NULL, r);
    assert_true(metric(r->body, "tokenvend_audit_pruned_total") == 0);
    assert_true(metric(r->body, "tokenvend_audit_retention_days") == 0);
    assert_true(metric(r->body, "tokenvend_audit_last_prune_timestamp_seconds") == 0);
    free(r);
}

static void store_key(struct fx *f, const char *name)
{
    struct store_apikey k;

    memset(&k, 0, sizeof k);
    snprintf(k.name, sizeof k.name, "%s", name);
    k.created_ms = clock_wall_ms();
    assert_int_equal(apikey_generate(f->key, sizeof f->key, k.key_id, k.hash), 0);
    assert_int_equal(store_apikey_insert(f->st, &k), 0);
}

static void assert_unauthorized(const struct resp *r, const char *what)
{
    if (r->status != 401 || strstr(r->body, "\"code\":\"unauthorized\"") == NULL ||
        strncmp(r->body, "{\"error\":{", 10) != 0 || strstr(r->www_auth, "Bearer") == NULL)
        fail_msg("%s: want 401 in the error shape with a Bearer challenge, got %ld %s", what,
                 r->status, r->body);
    if (strstr(r->body, "tokenvend_") != NULL)
        fail_msg("%s: metrics leaked into a refusal", what);
}

static void test_metrics_apikey(void **state)
{
    struct fx *f = *state;
    struct resp *r = calloc(1, sizeof *r);
    char other[APIKEY_MAX], id[APIKEY_KEY_ID_MAX];
    uint8_t hash[APIKEY_HASH_LEN];

    assert_non_null(r);
    store_key(f, "scraper");
    /* Well formed, but never stored. */
    assert_int_equal(apikey_generate(other, sizeof other, id, hash), 0);
    serve(f, "90", "apikey");
    int in = app_port(f->app, 1), pub = app_port(f->app, 0);

    http_get(in, "/metrics", NULL, r);
    assert_unauthorized(r, "no key");
    http_get(in, "/metrics", other, r);
    assert_unauthorized(r, "an unknown key");
    http_get(in, "/metrics", "not-a-key", r);
    assert_unauthorized(r, "a malformed key");
    http_get(in, "/metrics", f->key, r);
    assert_int_equal(r->status, 200);
    assert_true(metric(r->body, "tokenvend_audit_retention_days") == 90);
    assert_true(metric(r->body, "tokenvend_maintenance_passes_total") >= 1);

    /* Probes stay open on both listeners; /metrics stays off the public one. */
    http_get(in, "/healthz", NULL, r);
    assert_int_equal(r->status, 200);
    http_get(in, "/readyz", NULL, r);
    assert_int_equal(r->status, 200);
    http_get(pub, "/healthz", NULL, r);
    assert_int_equal(r->status, 200);
    http_get(pub, "/readyz", NULL, r);
    assert_int_equal(r->status, 200);
    http_get(pub, "/metrics", f->key, r);
    assert_int_equal(r->status, 404);
    OPENSSL_cleanse(f->key, sizeof f->key);
    free(r);
}

static void test_metrics_open_by_default(void **state)
{
    struct fx *f = *state;
    struct resp *r = calloc(1, sizeof *r);

    assert_non_null(r);
    serve(f, "90", "off");
    http_get(app_port(f->app, 1), "/metrics", NULL, r);
    assert_int_equal(r->status, 200);
    assert_true(metric(r->body, "tokenvend_audit_pruned_total") >= 0);
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_prune_batches_oldest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_uses_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_maint_pass, setup, teardown),
        cmocka_unit_test_setup_teardown(test_maint_retention_zero_keeps_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_maint_prunes_refresh_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_maint_stop_between_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_prunes_old_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_retention_zero_keeps_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_apikey, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_open_by_default, setup, teardown),
    };

    log_setup(LOGL_WARN, 2);
    curlx_init();
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
