/* The start-up ACS credential check (service/credcheck.h) against a stand-in ACS that answers
 * what each case needs (tests/lib/fake_idp.c) and a port where nothing listens: the call is a
 * revoke of a made-up identity of ACS's form; 404 is "ok" (and final), 401/403 "rejected (N)"
 * and checked again until ACS accepts, anything else "unchecked: <reason>" retried with backoff.
 * Waits are bounded polls; nothing asserts on time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acs/client.h"
#include "core/clock.h"
#include "core/err.h"
#include "emu.h"
#include "fake_idp.h"
#include "service/credcheck.h"
#include "store/store.h"
#include "store/users.h"

#define WAIT_MS 20000 /* only stops a hung run */
#define KEY "bm90LWEtcmVhbC1rZXktYnV0LWJhc2U2NC1lbmNvZGVk"

static struct acs_client *client_to(int port)
{
    char cs[160];
    struct acs_client *c = NULL;
    struct acs_client_opts o = {.connection_string = cs,
                                .max_retries = 0,
                                .connect_timeout_ms = 1000,
                                .attempt_timeout_ms = 2000,
                                .deadline_ms = 3000};

    snprintf(cs, sizeof cs, "endpoint=http://127.0.0.1:%d/;accesskey=" KEY, port);
    assert_int_equal(acs_client_new(&o, &c), 0);
    return c;
}

static struct credcheck *check_new(struct acs_client *c)
{
    struct credcheck_opts o = {.acs = c, .backoff_min_ms = 50, .backoff_max_ms = 200};
    struct credcheck *k = NULL;

    assert_int_equal(credcheck_new(&o, &k), 0);
    return k;
}

/* Polls until the state is want and the text starts with prefix; fails with the last text. */
static void wait_state(struct credcheck *k, enum credcheck_state want, const char *prefix)
{
    int64_t deadline = clock_mono_ms() + WAIT_MS;
    char text[CREDCHECK_TEXT_MAX] = "";

    for (;;) {
        enum credcheck_state st = credcheck_get(k, text, sizeof text);
        if (st == want && strncmp(text, prefix, strlen(prefix)) == 0)
            return;
        if (clock_mono_ms() > deadline)
            fail_msg("credential check: want state %d \"%s...\", have %d \"%s\"", (int)want, prefix,
                     (int)st, text);
        clock_sleep_ms(10);
    }
}

static int requests(void)
{
    int n;

    pthread_mutex_lock(&fake_idp.mu);
    n = fake_idp.requests;
    pthread_mutex_unlock(&fake_idp.mu);
    return n;
}

static void test_rejected_then_accepted(void **state)
{
    struct acs_client *c;
    struct credcheck *k;
    char path[256], text[CREDCHECK_TEXT_MAX];
    int n;

    (void)state;
    assert_int_equal(fake_idp_start(), 0);
    fake_idp_answer(401, "{\"error\":{\"code\":\"Denied\",\"message\":\"Denied.\"}}");
    c = client_to(fake_idp.port);
    k = check_new(c);
    wait_state(k, CREDCHECK_REJECTED, "rejected (401)");
    /* One revoke of an identity of ACS's form, with a random UUID. */
    pthread_mutex_lock(&fake_idp.mu);
    snprintf(path, sizeof path, "%s", fake_idp.path);
    pthread_mutex_unlock(&fake_idp.mu);
    assert_int_equal(strncmp(path, "/identities/8:acs:", 18), 0);
    assert_non_null(strstr(path, "/:revokeAccessTokens"));
    assert_non_null(strchr(path + 18, '_'));
    /* Checked again while rejected (a role assignment may arrive later); 403 is a refusal too. */
    n = requests();
    fake_idp_answer(403, "{\"error\":{\"code\":\"Forbidden\",\"message\":\"No role.\"}}");
    wait_state(k, CREDCHECK_REJECTED, "rejected (403)");
    assert_true(requests() > n);
    /* An answer without a verdict keeps the refusal. */
    fake_idp_answer(503, "{\"error\":{\"code\":\"ServiceUnavailable\",\"message\":\"Busy.\"}}");
    n = requests();
    for (int64_t end = clock_mono_ms() + WAIT_MS; requests() < n + 2 && clock_mono_ms() < end;)
        clock_sleep_ms(10);
    assert_true(requests() >= n + 2);
    assert_int_equal(credcheck_get(k, text, sizeof text), CREDCHECK_REJECTED);
    assert_string_equal(text, "rejected (403)");
    /* ACS accepts: ok, and never asked again. */
    fake_idp_answer(404, "{\"error\":{\"code\":\"IdentityNotFound\",\"message\":\"No.\"}}");
    wait_state(k, CREDCHECK_OK, "ok");
    n = requests();
    clock_sleep_ms(600); /* several backoff periods: no further call may come */
    assert_int_equal(requests(), n);
    credcheck_stop(k);
    acs_client_free(c);
    credcheck_free(k);
    fake_idp_stop();
}

static void test_no_verdict_retried(void **state)
{
    struct acs_client *c;
    struct acs_client_stats st0, st1;
    struct credcheck *k;
    int port = temu_closed_port();

    (void)state;
    assert_true(port > 0);
    c = client_to(port);
    k = check_new(c);
    /* Nothing listens: unchecked with the reason, and tried again and again. */
    wait_state(k, CREDCHECK_UNCHECKED, "unchecked: could not reach ACS");
    acs_client_stats_get(c, &st0);
    for (int64_t end = clock_mono_ms() + WAIT_MS; clock_mono_ms() < end;) {
        acs_client_stats_get(c, &st1);
        if (st1.calls >= st0.calls + 2)
            break;
        clock_sleep_ms(10);
    }
    assert_true(st1.calls >= st0.calls + 2);
    credcheck_stop(k);
    acs_client_free(c);
    credcheck_free(k);

    /* A 5xx is no verdict either; the 404 that follows is. The expected 404 is no failure in
     * the client's counters (operators alert on those). */
    assert_int_equal(fake_idp_start(), 0);
    fake_idp_answer(500, "{\"error\":{\"code\":\"InternalError\",\"message\":\"Oops.\"}}");
    c = client_to(fake_idp.port);
    k = check_new(c);
    wait_state(k, CREDCHECK_UNCHECKED, "unchecked: ACS answered 500");
    fake_idp_answer(404, "{\"error\":{\"code\":\"IdentityNotFound\",\"message\":\"No.\"}}");
    wait_state(k, CREDCHECK_OK, "ok");
    /* Every call but the last (the 404) was a 500: exactly one call is not a failure. */
    acs_client_stats_get(c, &st1);
    assert_true(st1.calls >= 2);
    assert_int_equal(st1.calls - st1.failures, 1);
    credcheck_stop(k);
    acs_client_free(c);
    credcheck_free(k);
    fake_idp_stop();
}

/* With a store, the made-up identity carries the resource id of one of this resource's own
 * mappings (a mapping of another resource is passed over), so it has exactly ACS's form. */
static void test_resource_id_from_a_mapping(void **state)
{
    char dir[] = "/tmp/tv-credcheck-XXXXXX", db[64], path[256];
    struct store *st = NULL;
    struct acs_client *c;
    struct credcheck *k;
    struct store_user other = {.app_user_id = "a-other",
                               .acs_id = "8:acs:0ther000-0000-4000-8000-000000000000_u1",
                               .resource = "elsewhere.example:443",
                               .created_ms = 1};
    struct store_user mine = {.app_user_id = "b-mine",
                              .acs_id = "8:acs:5eed0000-0000-4000-8000-00000000abcd_u2",
                              .created_ms = 1};

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(db, sizeof db, "%s/t.db", dir);
    assert_int_equal(store_open(db, STORE_MIGRATE_YES, &st), 0);
    assert_int_equal(fake_idp_start(), 0);
    fake_idp_answer(404, "{\"error\":{\"code\":\"IdentityNotFound\",\"message\":\"No.\"}}");
    c = client_to(fake_idp.port);
    snprintf(mine.resource, sizeof mine.resource, "%s", acs_client_resource(c));
    assert_int_equal(store_user_insert(st, &other), 0);
    assert_int_equal(store_user_insert(st, &mine), 0);
    {
        struct credcheck_opts o = {.acs = c, .store = st};
        assert_int_equal(credcheck_new(&o, &k), 0);
    }
    wait_state(k, CREDCHECK_OK, "ok");
    pthread_mutex_lock(&fake_idp.mu);
    snprintf(path, sizeof path, "%s", fake_idp.path);
    pthread_mutex_unlock(&fake_idp.mu);
    assert_int_equal(strncmp(path, "/identities/8:acs:5eed0000-0000-4000-8000-00000000abcd_", 55),
                     0);
    /* ... followed by a fresh UUID, not the mapping's own identity. */
    assert_null(strstr(path, "_u2"));
    credcheck_stop(k);
    acs_client_free(c);
    credcheck_free(k);
    fake_idp_stop();
    store_close(st);
    (void)unlink(db);
    {
        char f[80];
        snprintf(f, sizeof f, "%s-wal", db);
        (void)unlink(f);
        snprintf(f, sizeof f, "%s-shm", db);
        (void)unlink(f);
    }
    (void)rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rejected_then_accepted),
        cmocka_unit_test(test_no_verdict_retried),
        cmocka_unit_test(test_resource_id_from_a_mapping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
