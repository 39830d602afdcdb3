/* Unit tests of the store's smaller tables, on a temporary file or, with TV_TEST_STORE=pg, on a
 * database of a throw-away PostgreSQL cluster (tests/lib/store_fx.h): API keys (hash only,
 * conflicts, revoke, coarse last-used), local accounts (upsert keeps created time), the audit log
 * (filters, newest-first paging, prune), meta blobs, the readiness write probe, and outbox leases
 * between two store handles on one database (two replicas): concurrent takes never hand out a
 * row twice, an expired lease is taken over and its old holder can no longer finish it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>

#include "core/err.h"
#include "store/accounts.h"
#include "store/apikeys.h"
#include "store/audit.h"
#include "store/login_failures.h"
#include "store/meta.h"
#include "store/outbox.h"
#include "store/store.h"
#include "store_fx.h"

struct fx {
    char dir[64];
    char path[128];
    struct store_fx sx;
    struct store *s;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/tv-store-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/tv.db", f->dir);
    if (store_fx_new(&f->sx, f->path) != 0 || store_fx_open(&f->sx, 1, &f->s) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char p[256];

    store_close(f->s);
    store_fx_drop(&f->sx);
    unlink(f->path);
    snprintf(p, sizeof(p), "%s-wal", f->path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", f->path);
    unlink(p);
    rmdir(f->dir);
    free(f);
    return 0;
}

static struct store_apikey make_key(const char *name, const char *key_id, unsigned char fill)
{
    struct store_apikey k;

    memset(&k, 0, sizeof(k));
    snprintf(k.name, sizeof(k.name), "%s", name);
    snprintf(k.key_id, sizeof(k.key_id), "%s", key_id);
    memset(k.hash, fill, sizeof(k.hash));
    k.created_ms = 1000;
    return k;
}

static void test_apikeys(void **state)
{
    static const struct {
        const char *name, *key_id;
        int want;
    } cases[] = {
        {"backend1", "0123456789abcdef", 0},
        {"backend2", "fedcba9876543210", 0},
        {"backend1", "1111111111111111", TV_ERR_CONFLICT}, /* duplicate name */
        {"backend3", "0123456789abcdef", TV_ERR_CONFLICT}, /* duplicate key id */
        {"", "2222222222222222", TV_ERR_INVALID},
        {"backend4", "", TV_ERR_INVALID},
    };
    struct fx *f = *state;
    struct store_apikey k, list[4];
    int n = -1;
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        k = make_key(cases[i].name, cases[i].key_id, (unsigned char)(0xa0 + i));
        if (store_apikey_insert(f->s, &k) != cases[i].want)
            fail_msg("case %zu (%s, %s)", i, cases[i].name, cases[i].key_id);
    }
    memset(&k, 0, sizeof(k));
    assert_int_equal(store_apikey_get_by_key_id(f->s, "0123456789abcdef", &k), 0);
    assert_string_equal(k.name, "backend1");
    assert_int_equal(k.hash[0], 0xa0);
    assert_int_equal(k.hash[31], 0xa0);
    assert_true(k.created_ms == 1000 && k.last_used_ms == 0 && k.revoked_ms == 0);
    assert_int_equal(store_apikey_get(f->s, "backend2", &k), 0);
    assert_string_equal(k.key_id, "fedcba9876543210");
    assert_int_equal(store_apikey_get_by_key_id(f->s, "nope", &k), TV_ERR_NOT_FOUND);
    assert_int_equal(store_apikey_get(f->s, "nope", &k), TV_ERR_NOT_FOUND);

    assert_int_equal(store_apikey_list(f->s, NULL, 4, list, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "backend1");
    assert_string_equal(list[1].name, "backend2");
    assert_int_equal(store_apikey_list(f->s, "backend1", 4, list, &n), 0);
    assert_int_equal(n, 1);

    /* Revoke keeps the first revocation time; a revoked name still blocks reuse. */
    assert_int_equal(store_apikey_revoke(f->s, "backend1", 5000), 0);
    assert_int_equal(store_apikey_revoke(f->s, "backend1", 9000), 0);
    assert_int_equal(store_apikey_get(f->s, "backend1", &k), 0);
    assert_true(k.revoked_ms == 5000);
    assert_int_equal(store_apikey_revoke(f->s, "nope", 1), TV_ERR_NOT_FOUND);
    k = make_key("backend1", "3333333333333333", 1);
    assert_int_equal(store_apikey_insert(f->s, &k), TV_ERR_CONFLICT);

    /* last_used is written at most once a minute per key. */
    assert_int_equal(store_apikey_touch_used(f->s, "fedcba9876543210", 100000), 0);
    assert_int_equal(store_apikey_touch_used(f->s, "fedcba9876543210", 130000), 0);
    assert_int_equal(store_apikey_get(f->s, "backend2", &k), 0);
    assert_true(k.last_used_ms == 100000);
    assert_int_equal(store_apikey_touch_used(f->s, "fedcba9876543210", 160000), 0);
    assert_int_equal(store_apikey_get(f->s, "backend2", &k), 0);
    assert_true(k.last_used_ms == 160000);
    assert_int_equal(store_apikey_touch_used(f->s, "nope", 1), TV_ERR_NOT_FOUND);

    /* Listed in byte order whatever the database's collation: "Z" (0x5a) before "b". */
    k = make_key("Zed", "4444444444444444", 2);
    assert_int_equal(store_apikey_insert(f->s, &k), 0);
    assert_int_equal(store_apikey_list(f->s, NULL, 4, list, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(list[0].name, "Zed");
    assert_int_equal(store_apikey_list(f->s, "Zed", 1, list, &n), 0);
    assert_string_equal(list[0].name, "backend1");
}

static void test_accounts(void **state)
{
    static const char H1[] = "$argon2id$v=19$m=65536,t=3,p=1$c2FsdHNhbHRzYWx0$aGFzaA";
    static const char H2[] = "$argon2id$v=19$m=65536,t=3,p=1$b3RoZXJzYWx0$b3RoZXI";
    struct fx *f = *state;
    struct store_account a, list[3];
    int created = -1, n = -1;

    memset(&a, 0, sizeof(a));
    snprintf(a.name, sizeof(a.name), "alice");
    snprintf(a.password_hash, sizeof(a.password_hash), "%s", H1);
    a.created_ms = a.updated_ms = 100;
    assert_int_equal(store_account_upsert(f->s, &a, &created), 0);
    assert_int_equal(created, 1);
    snprintf(a.password_hash, sizeof(a.password_hash), "%s", H2);
    a.created_ms = a.updated_ms = 200;
    assert_int_equal(store_account_upsert(f->s, &a, &created), 0);
    assert_int_equal(created, 0);
    memset(&a, 0, sizeof(a));
    assert_int_equal(store_account_get(f->s, "alice", &a), 0);
    assert_string_equal(a.password_hash, H2);
    assert_true(a.created_ms == 100 && a.updated_ms == 200);

    snprintf(a.name, sizeof(a.name), "bob");
    assert_int_equal(store_account_upsert(f->s, &a, NULL), 0);
    a.password_hash[0] = '\0';
    assert_int_equal(store_account_upsert(f->s, &a, NULL), TV_ERR_INVALID);
    assert_int_equal(store_account_list(f->s, NULL, 3, list, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "alice");
    assert_string_equal(list[1].name, "bob");
    /* Byte order, as for API keys. */
    snprintf(a.name, sizeof(a.name), "Zed");
    snprintf(a.password_hash, sizeof(a.password_hash), "%s", H1);
    assert_int_equal(store_account_upsert(f->s, &a, NULL), 0);
    assert_int_equal(store_account_list(f->s, NULL, 3, list, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(list[0].name, "Zed");
    assert_string_equal(list[1].name, "alice");
    assert_int_equal(store_account_delete(f->s, "alice"), 0);
    assert_int_equal(store_account_delete(f->s, "alice"), TV_ERR_NOT_FOUND);
    assert_int_equal(store_account_get(f->s, "alice", &a), TV_ERR_NOT_FOUND);
    assert_int_equal(store_account_get(f->s, "", &a), TV_ERR_INVALID);
}

/* Session epochs: new on add, on passwd and on an add that replaces; kept by a rehash. */
static void test_account_epochs(void **state)
{
    static const char H1[] = "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaA";
    static const char H2[] = "$argon2id$v=19$m=65536,t=3,p=1$b3RoZXJzYWx0$b3RoZXI";
    struct fx *f = *state;
    struct store_account a;
    int64_t e1 = 0, e2 = 0, e3 = 0, e4 = 0;

    memset(&a, 0, sizeof(a));
    snprintf(a.name, sizeof(a.name), "carol");
    snprintf(a.password_hash, sizeof(a.password_hash), "%s", H1);
    assert_int_equal(store_account_epoch(f->s, "carol", &e1), TV_ERR_NOT_FOUND);
    assert_int_equal(store_account_upsert(f->s, &a, NULL), 0);
    assert_int_equal(store_account_epoch(f->s, "carol", &e1), 0);
    assert_int_equal(store_account_get(f->s, "carol", &a), 0);
    assert_true(a.session_epoch == e1);
    /* A rehash keeps the epoch and needs the old hash. */
    assert_int_equal(store_account_rehash(f->s, "carol", H2, H2), TV_ERR_CONFLICT);
    assert_int_equal(store_account_rehash(f->s, "carol", H1, H2), 0);
    assert_int_equal(store_account_epoch(f->s, "carol", &e2), 0);
    assert_true(e2 == e1);
    assert_int_equal(store_account_get(f->s, "carol", &a), 0);
    assert_string_equal(a.password_hash, H2);
    /* passwd: a new epoch. */
    assert_int_equal(store_account_passwd(f->s, "carol", H1, 500), 0);
    assert_int_equal(store_account_epoch(f->s, "carol", &e3), 0);
    assert_true(e3 != e2);
    assert_int_equal(store_account_passwd(f->s, "nobody", H1, 500), TV_ERR_NOT_FOUND);
    assert_int_equal(store_account_rehash(f->s, "nobody", H1, H2), TV_ERR_CONFLICT);
    /* Replacing with add: a new epoch too. */
    assert_int_equal(store_account_upsert(f->s, &a, NULL), 0);
    assert_int_equal(store_account_epoch(f->s, "carol", &e4), 0);
    assert_true(e4 != e3);
}

/* Failed-login rows: counted under the limit, pruned once full again, normalized after a
 * clock jump. */
static void test_login_failures(void **state)
{
    struct fx *f = *state;
    struct ratelimit rl;
    int64_t tat = -1, n = -1;
    int removed = -1;

    assert_int_equal(ratelimit_parse("2/10s", &rl, NULL, 0), 0);
    assert_int_equal(store_login_failure_get(f->s, "dave", &tat), 0);
    assert_true(tat == 0);
    assert_int_equal(store_login_failure_add(f->s, "dave", &rl, 100000, &tat), 0);
    assert_true(tat == 105000);
    assert_int_equal(store_login_failure_add(f->s, "dave", &rl, 100000, &tat), 0);
    assert_true(tat == 110000);
    assert_false(ratelimit_fits(&rl, tat, 100000, NULL));
    /* A full bucket refuses the next count in the same transaction, and keeps its state. */
    tat = -1;
    assert_int_equal(store_login_failure_add(f->s, "dave", &rl, 100000, &tat), TV_ERR_RATE_LIMITED);
    assert_true(tat == 110000);
    assert_int_equal(store_login_failure_get(f->s, "dave", &tat), 0);
    assert_true(tat == 110000);
    assert_int_equal(store_login_failure_add(f->s, "erin", &rl, 100000, NULL), 0);
    assert_int_equal(store_login_failure_count(f->s, &n), 0);
    assert_true(n == 2);
    /* Another name's failure later prunes the rows whose bucket is full again. */
    assert_int_equal(store_login_failure_add(f->s, "frank", &rl, 200000, NULL), 0);
    assert_int_equal(store_login_failure_count(f->s, &n), 0);
    assert_true(n == 1);
    assert_int_equal(store_login_failure_get(f->s, "dave", &tat), 0);
    assert_true(tat == 0);
    /* A clock jump backwards: the stored state comes back to one window ahead. */
    assert_int_equal(store_login_failure_normalize(f->s, "frank", &rl, 100000), 0);
    assert_int_equal(store_login_failure_get(f->s, "frank", &tat), 0);
    assert_true(tat == 110000);
    assert_int_equal(store_login_failure_prune(f->s, 110000, &removed), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(store_login_failure_add(f->s, "", &rl, 1, NULL), TV_ERR_INVALID);
}

#define RACERS 8

/* One racer of the tests below: a store handle (two handles are two processes or replicas). */
struct racer {
    struct store *s;
    pthread_barrier_t *start;
    const struct ratelimit *rl;
    int rc;
    int created;
};

static void *race_login_failure(void *arg)
{
    struct racer *r = arg;

    pthread_barrier_wait(r->start);
    r->rc = store_login_failure_add(r->s, "mallory", r->rl, 100000, NULL);
    return NULL;
}

/* Concurrent failed logins for one name through two handles: the read, test and take of the
 * name's state is one atomic step, so a bucket of 2 counts exactly 2 of them. */
static void test_login_failures_race(void **state)
{
    struct fx *f = *state;
    struct store *other = NULL;
    struct ratelimit rl;
    pthread_t th[RACERS];
    struct racer r[RACERS];
    pthread_barrier_t start;
    int64_t tat = 0;
    int ok = 0, limited = 0;

    assert_int_equal(ratelimit_parse("2/10s", &rl, NULL, 0), 0);
    assert_int_equal(store_fx_open(&f->sx, 0, &other), 0);
    pthread_barrier_init(&start, NULL, RACERS);
    for (int i = 0; i < RACERS; i++) {
        r[i] = (struct racer){i % 2 ? other : f->s, &start, &rl, -1, 0};
        assert_int_equal(pthread_create(&th[i], NULL, race_login_failure, &r[i]), 0);
    }
    for (int i = 0; i < RACERS; i++) {
        pthread_join(th[i], NULL);
        ok += r[i].rc == 0;
        limited += r[i].rc == TV_ERR_RATE_LIMITED;
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(ok, 2);
    assert_int_equal(limited, RACERS - 2);
    assert_int_equal(store_login_failure_get(other, "mallory", &tat), 0);
    assert_true(tat == 110000);
    store_close(other);
}

static void *race_account_add(void *arg)
{
    struct racer *r = arg;
    struct store_account a;

    memset(&a, 0, sizeof(a));
    snprintf(a.name, sizeof(a.name), "trent");
    snprintf(a.password_hash, sizeof(a.password_hash), "$argon2id$v=19$m=1024,t=1,p=1$x$y");
    a.created_ms = a.updated_ms = 1;
    pthread_barrier_wait(r->start);
    r->rc = store_account_upsert(r->s, &a, &r->created);
    return NULL;
}

/* Concurrent adds of one new account through two handles: all succeed, exactly one reports
 * that it created the account. */
static void test_account_upsert_race(void **state)
{
    struct fx *f = *state;
    struct store *other = NULL;
    pthread_t th[RACERS];
    struct racer r[RACERS];
    pthread_barrier_t start;
    int created = 0;

    assert_int_equal(store_fx_open(&f->sx, 0, &other), 0);
    pthread_barrier_init(&start, NULL, RACERS);
    for (int i = 0; i < RACERS; i++) {
        r[i] = (struct racer){i % 2 ? other : f->s, &start, NULL, -1, 0};
        assert_int_equal(pthread_create(&th[i], NULL, race_account_add, &r[i]), 0);
    }
    for (int i = 0; i < RACERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(r[i].rc, 0);
        created += r[i].created;
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(created, 1);
    store_close(other);
}

static struct store_audit make_audit(int64_t ts, const char *action, const char *app,
                                     const char *acs, const char *outcome)
{
    struct store_audit a;

    memset(&a, 0, sizeof(a));
    a.ts_ms = ts;
    snprintf(a.request_id, sizeof(a.request_id), "req-%lld", (long long)ts);
    snprintf(a.caller, sizeof(a.caller), "user:%s", app);
    snprintf(a.action, sizeof(a.action), "%s", action);
    snprintf(a.app_user_id, sizeof(a.app_user_id), "%s", app);
    snprintf(a.acs_id, sizeof(a.acs_id), "%s", acs);
    snprintf(a.outcome, sizeof(a.outcome), "%s", outcome);
    return a;
}

static void test_audit(void **state)
{
    static const struct {
        int64_t ts;
        const char *action, *app, *acs, *outcome;
    } rows[] = {
        {10, "create", "alice", "8:acs:a", "ok"},
        {20, "issue", "alice", "8:acs:a", "ok"},
        {30, "issue", "bob", "8:acs:b", "acs_unavailable"},
        {40, "revoke", "alice", "8:acs:a", "ok"},
        {50, "delete", "alice", "8:acs:a", "ok"},
        {60, "login", "carol", "", "unauthorized"},
    };
    struct fx *f = *state;
    struct store_audit a, out[8];
    struct store_audit_filter flt;
    int64_t deleted = -1;
    int n = -1;
    size_t i;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        a = make_audit(rows[i].ts, rows[i].action, rows[i].app, rows[i].acs, rows[i].outcome);
        assert_int_equal(store_audit_add(f->s, &a), 0);
    }
    assert_int_equal(store_audit_list(f->s, NULL, 8, out, &n), 0);
    assert_int_equal(n, 6);
    assert_string_equal(out[0].action, "login"); /* newest first */
    assert_string_equal(out[0].outcome, "unauthorized");
    assert_string_equal(out[5].action, "create");
    assert_string_equal(out[5].request_id, "req-10");
    assert_string_equal(out[5].caller, "user:alice");
    assert_true(out[5].ts_ms == 10);

    memset(&flt, 0, sizeof(flt));
    flt.app_user_id = "alice";
    assert_int_equal(store_audit_list(f->s, &flt, 8, out, &n), 0);
    assert_int_equal(n, 4);
    flt.action = "issue";
    assert_int_equal(store_audit_list(f->s, &flt, 8, out, &n), 0);
    assert_int_equal(n, 1);
    assert_true(out[0].ts_ms == 20);
    memset(&flt, 0, sizeof(flt));
    flt.acs_id = "8:acs:b";
    assert_int_equal(store_audit_list(f->s, &flt, 8, out, &n), 0);
    assert_int_equal(n, 1);

    /* Paging backwards by id. */
    memset(&flt, 0, sizeof(flt));
    assert_int_equal(store_audit_list(f->s, &flt, 4, out, &n), 0);
    assert_int_equal(n, 4);
    flt.before_id = out[3].id;
    assert_int_equal(store_audit_list(f->s, &flt, 4, out, &n), 0);
    assert_int_equal(n, 2);
    assert_true(out[1].ts_ms == 10);

    a = make_audit(70, "", "x", "", "ok");
    assert_int_equal(store_audit_add(f->s, &a), TV_ERR_INVALID);
    assert_int_equal(store_audit_prune(f->s, 35, 100, &deleted), 0);
    assert_true(deleted == 3);
    assert_int_equal(store_audit_list(f->s, NULL, 8, out, &n), 0);
    assert_int_equal(n, 3);
}

static void test_meta_and_ping(void **state)
{
    struct fx *f = *state;
    unsigned char key[48], buf[64];
    size_t len = 0;
    int inserted = -1;

    memset(key, 0x5a, sizeof(key));
    key[7] = 0; /* binary-safe */
    assert_int_equal(store_meta_get(f->s, "session_key", buf, sizeof(buf), &len), TV_ERR_NOT_FOUND);
    assert_int_equal(store_meta_put_if_absent(f->s, "session_key", key, sizeof(key), &inserted), 0);
    assert_int_equal(inserted, 1);
    key[0] = 1;
    assert_int_equal(store_meta_put_if_absent(f->s, "session_key", key, sizeof(key), &inserted), 0);
    assert_int_equal(inserted, 0);
    assert_int_equal(store_meta_get(f->s, "session_key", buf, sizeof(buf), &len), 0);
    assert_int_equal(len, sizeof(key));
    assert_int_equal(buf[0], 0x5a); /* the first value won */
    assert_int_equal(buf[7], 0);
    assert_int_equal(store_meta_get(f->s, "session_key", buf, 10, &len), TV_ERR_TOO_LARGE);
    assert_int_equal(len, sizeof(key));

    assert_int_equal(store_meta_put(f->s, "session_key", key, sizeof(key)), 0);
    assert_int_equal(store_meta_get(f->s, "session_key", buf, sizeof(buf), &len), 0);
    assert_int_equal(buf[0], 1);
    assert_int_equal(store_meta_put(f->s, "empty", NULL, 0), 0);
    assert_int_equal(store_meta_get(f->s, "empty", buf, sizeof(buf), &len), 0);
    assert_int_equal(len, 0);
    assert_int_equal(store_meta_delete(f->s, "empty"), 0);
    assert_int_equal(store_meta_delete(f->s, "empty"), TV_ERR_NOT_FOUND);
    assert_int_equal(store_meta_put(f->s, "", key, 1), TV_ERR_INVALID);

    /* The probe writes and rolls back: nothing stays behind. */
    assert_int_equal(store_ping_write(f->s), 0);
    assert_int_equal(store_ping_write(f->s), 0);
    assert_int_equal(store_meta_get(f->s, "tokenvend.ping", buf, sizeof(buf), &len),
                     TV_ERR_NOT_FOUND);
}

#define OB_ROWS 240
#define OB_TAKERS 8
#define OB_RES "acs.example.com"

/* One thread taking outbox rows through its handle until none is due. */
struct taker {
    struct store *s;
    pthread_barrier_t *start;
    pthread_mutex_t *mu;
    int *taken;    /* per row (id - first): how many takes handed it out */
    int64_t first; /* the first row's id */
    int limit;
    int rc; /* 0, a store error, or -1 for a row not leased to this handle */
};

static void *take_worker(void *arg)
{
    struct taker *t = arg;
    struct store_outbox_row rows[4];
    int n = 0;

    pthread_barrier_wait(t->start);
    do {
        t->rc = store_outbox_take(t->s, 100, 600000, t->limit, rows, &n);
        for (int i = 0; t->rc == 0 && i < n; i++) {
            int64_t k = rows[i].id - t->first;

            if (k < 0 || k >= OB_ROWS || strcmp(rows[i].leased_by, store_instance(t->s)) != 0 ||
                rows[i].next_attempt_ms != 600100) {
                t->rc = -1;
                break;
            }
            pthread_mutex_lock(t->mu);
            t->taken[k]++;
            pthread_mutex_unlock(t->mu);
            /* Half the rows finish at once: the holder of a lease may. */
            if (k % 2 == 0)
                t->rc = store_outbox_done(t->s, rows[i].id);
        }
    } while (t->rc == 0 && n > 0);
    return NULL;
}

/* Two handles on one database (two replicas) and many threads taking due rows at once: every
 * row is handed out exactly once, leased to the handle that took it. */
static void test_outbox_take_concurrent(void **state)
{
    struct fx *f = *state;
    struct store *other = NULL;
    struct store_outbox_row rows[4];
    pthread_t th[OB_TAKERS];
    struct taker tk[OB_TAKERS];
    pthread_barrier_t start;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    int taken[OB_ROWS];
    int64_t id = 0, first = 0, cnt = -1;
    int n = -1;

    assert_int_equal(store_fx_open(&f->sx, 0, &other), 0);
    for (int i = 0; i < OB_ROWS; i++) {
        char acs[32];

        snprintf(acs, sizeof(acs), "8:acs:ob%03d", i);
        assert_int_equal(store_outbox_add(f->s, acs, OB_RES, "delete", 10, &id), 0);
        if (i == 0)
            first = id;
        assert_true(id == first + i);
    }
    memset(taken, 0, sizeof(taken));
    pthread_barrier_init(&start, NULL, OB_TAKERS);
    for (int i = 0; i < OB_TAKERS; i++) {
        tk[i] = (struct taker){i % 2 ? other : f->s, &start, &mu, taken, first, 1 + i % 4, 0};
        assert_int_equal(pthread_create(&th[i], NULL, take_worker, &tk[i]), 0);
    }
    for (int i = 0; i < OB_TAKERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(tk[i].rc, 0);
    }
    pthread_barrier_destroy(&start);
    for (int i = 0; i < OB_ROWS; i++)
        assert_int_equal(taken[i], 1);
    /* The odd rows stay, leased: nobody may take them again before the lease ends. */
    assert_int_equal(store_outbox_count(other, &cnt), 0);
    assert_true(cnt == OB_ROWS / 2);
    assert_int_equal(store_outbox_take(other, 600099, 1000, 4, rows, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_outbox_take(f->s, 600100, 1000, 4, rows, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(store_outbox_take(f->s, 100, 0, 4, rows, &n), TV_ERR_INVALID);
    assert_int_equal(store_outbox_take(f->s, 100, 1000, 0, rows, &n), TV_ERR_INVALID);
    store_close(other);
}

/* A lease that ran out (its holder died or stalled) is taken over by another handle; from then
 * on only the new holder can finish, reschedule, renew or give back the row. */
static void test_outbox_lease_takeover(void **state)
{
    struct fx *f = *state;
    struct store *a = f->s, *b = NULL;
    struct store_outbox_row rows[2];
    int64_t id = 0, id2 = 0, cnt = -1;
    int n = -1;

    assert_int_equal(store_fx_open(&f->sx, 0, &b), 0);
    assert_int_equal(store_outbox_add(a, "8:acs:lease1", OB_RES, "delete", 10, &id), 0);
    assert_int_equal(store_outbox_due(a, 10, 2, rows, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].leased_by, ""); /* nobody's until taken */

    assert_int_equal(store_outbox_take(a, 100, 1000, 2, rows, &n), 0);
    assert_int_equal(n, 1);
    assert_true(rows[0].id == id && rows[0].next_attempt_ms == 1100);
    assert_string_equal(rows[0].leased_by, store_instance(a));
    /* Current lease: not due for b, and not b's to change. */
    assert_int_equal(store_outbox_take(b, 1099, 1000, 2, rows, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_outbox_done(b, id), TV_ERR_NOT_FOUND);
    assert_int_equal(store_outbox_retry_later(b, id, 1, "x"), TV_ERR_NOT_FOUND);
    assert_int_equal(store_outbox_lease(b, id, 1), TV_ERR_NOT_FOUND);
    assert_int_equal(store_outbox_release(b, id, 1), TV_ERR_NOT_FOUND);

    /* a's lease runs out: b takes the row over. */
    assert_int_equal(store_outbox_take(b, 1100, 1000, 2, rows, &n), 0);
    assert_int_equal(n, 1);
    assert_true(rows[0].id == id && rows[0].next_attempt_ms == 2100 && rows[0].attempts == 0);
    assert_string_equal(rows[0].leased_by, store_instance(b));
    /* The old holder's late outcome changes nothing. */
    assert_int_equal(store_outbox_done(a, id), TV_ERR_NOT_FOUND);
    assert_int_equal(store_outbox_retry_later(a, id, 5, "late"), TV_ERR_NOT_FOUND);
    assert_int_equal(store_outbox_lease(a, id, 99999), TV_ERR_NOT_FOUND);
    assert_int_equal(store_outbox_release(a, id, 5), TV_ERR_NOT_FOUND);
    assert_int_equal(store_outbox_due(a, 2100, 2, rows, &n), 0);
    assert_int_equal(n, 1);
    assert_true(rows[0].next_attempt_ms == 2100 && rows[0].attempts == 0);
    assert_string_equal(rows[0].last_error, "");

    /* The new holder reschedules: the lease ends, whoever is alive at 5000 takes it. */
    assert_int_equal(store_outbox_retry_later(b, id, 5000, "acs_unavailable"), 0);
    assert_int_equal(store_outbox_due(a, 5000, 2, rows, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].leased_by, "");
    assert_int_equal(rows[0].attempts, 1);
    assert_int_equal(store_outbox_take(a, 4999, 1000, 2, rows, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_outbox_take(a, 5000, 1000, 2, rows, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].leased_by, store_instance(a));
    assert_int_equal(store_outbox_done(b, id), TV_ERR_NOT_FOUND);
    assert_int_equal(store_outbox_done(a, id), 0);
    assert_int_equal(store_outbox_count(b, &cnt), 0);
    assert_true(cnt == 0);

    /* A row its writer sends at once (a request's own delete): written not due and nobody's,
     * then leased; a renewal by the holder works, the other handle cannot lease it; given back,
     * it is due for anyone. */
    assert_int_equal(store_outbox_add(a, "8:acs:lease2", OB_RES, "delete", 10, &id2), 0);
    assert_int_equal(store_outbox_lease(a, id2, 8000), 0);
    assert_int_equal(store_outbox_lease(a, id2, 9000), 0);
    assert_int_equal(store_outbox_lease(b, id2, 9000), TV_ERR_NOT_FOUND);
    assert_int_equal(store_outbox_take(b, 8999, 1000, 2, rows, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_outbox_release(a, id2, 20), 0);
    assert_int_equal(store_outbox_take(b, 20, 1000, 2, rows, &n), 0);
    assert_int_equal(n, 1);
    assert_true(rows[0].id == id2 && rows[0].attempts == 0);
    assert_int_equal(store_outbox_done(b, id2), 0);
    /* A row nobody leases can be finished by whoever holds its id (the admin CLI's). */
    assert_int_equal(store_outbox_add(a, "8:acs:lease3", OB_RES, "delete", 10, &id2), 0);
    assert_int_equal(store_outbox_retry_later(b, id2, 30, NULL), 0);
    assert_int_equal(store_outbox_done(a, id2), 0);
    assert_int_equal(store_outbox_lease(a, id2, 1), TV_ERR_NOT_FOUND);
    store_close(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_apikeys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_accounts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_account_epochs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_login_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_login_failures_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_account_upsert_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_and_ping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_take_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_lease_takeover, setup, teardown),
    };

    return cmocka_run_group_tests(tests, store_fx_group_setup, store_fx_group_teardown);
}
