/* review10a: reproducer: in keyless mode (Entra bearer tokens) the upstream budget's slot is
 * taken before the request is prepared (client.c call_start: breaker, then call_gate_pass,
 * then call_prepare_attempt). While the very first Entra token is still being fetched the
 * prepare parks the call and the engine tries it again every PARKED_POLL_MS; by then its
 * grant is older than BUDGET_GRANT_TTL_MS, so it asks the budget for another slot, and so on
 * until the token comes. Each parked call spends a slot of the SHARED budget (every replica on
 * the store) about every 250-350 ms without any call reaching ACS: a replica that starts while
 * Entra is slow (a rolling deploy, a reconnect storm) drains the quota of all replicas, whose
 * calls are then refused 503 "no slot of the ACS call budget".
 *
 * Here: Entra answers its first token after 3 s; 5 creates are submitted at once under a
 * budget of create=1000/30s. Each create reaches ACS once, so the budget should have granted 5
 * slots; it grants about 5 x 3 s / 0.3 s. No timing is asserted: only counts. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "acs/client.h"
#include "acs/entra.h"
#include "core/budget.h"
#include "core/err.h"
#include "core/log.h"
#include "emu.h"
#include "service/upstream_budget.h"
#include "store/store.h"

#define TENANT "t1"
#define SECRET "kl-S3CR3T-value"

struct job {
    struct acs_client *acs;
    char caller[32];
    int rc;
};

static void *job_run(void *arg)
{
    struct job *j = arg;
    struct acs_request rq = {.op = ACS_OP_CREATE, .caller = j->caller};
    struct acs_result res;

    j->rc = acs_client_call_sync(j->acs, &rq, &res);
    acs_result_release(&res);
    return NULL;
}

static void test_parked_calls_spend_budget(void **state)
{
    const char *entra_args[] = {"--entra", "--tenant", TENANT, "--token-ttl-s", "3600", NULL};
    char jwks[128], iss[128], dir[64], path[128], p[256], err[200];
    const char *acs_args[] = {
        "--no-rate-limits", "--entra-jwks", jwks, "--entra-issuer", iss, NULL};
    struct temu entra, acs_emu;
    struct entra_env env = {
        .tenant_id = TENANT, .client_id = "tokenvend-test", .client_secret = SECRET};
    struct entra_desc d;
    struct entra_cache_opts eo = {.fetch_timeout_ms = 10000,
                                  .backoff_base_ms = 200,
                                  .backoff_max_ms = 1000,
                                  .first_wait_ms = 11000};
    struct entra_cache *cache = NULL;
    struct store *store = NULL;
    struct upstream_budget *budget = NULL;
    struct acs_client *acs = NULL;
    struct upstream_budget_opts bo = {.deadline_ms = 30000};
    struct acs_client_opts ao = {.deadline_ms = 30000, .max_retries = 0};
    struct upstream_budget_stats st;
    pthread_t th[5];
    struct job jobs[5];
    long status = 0, at_acs;

    (void)state;
    log_setup(getenv("TV_TEST_VERBOSE") ? LOGL_DEBUG : LOGL_ERROR, 2);
    assert_int_equal(temu_start(&entra, entra_args), 0);
    snprintf(jwks, sizeof jwks, "%s/%s/discovery/v2.0/keys", entra.base_url, TENANT);
    snprintf(iss, sizeof iss, "%s/%s/v2.0", entra.base_url, TENANT);
    assert_int_equal(temu_start(&acs_emu, acs_args), 0);
    /* Entra is slow: the first token comes after 3 s. */
    assert_int_equal(temu_http(&entra, "PUT", "/entra/faults",
                               "{\"mode\":\"slow\",\"delay_ms\":3000}", &status, NULL),
                     0);
    assert_true(status == 200 || status == 204);
    env.authority_host = entra.base_url;
    assert_int_equal(entra_select(&env, NULL, &d, err, sizeof err), 0);
    assert_int_equal(entra_cache_start(&d, &eo, &cache), 0);
    entra_desc_clear(&d);

    snprintf(dir, sizeof dir, "/tmp/tv-r10a-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/tv.db", dir);
    assert_int_equal(store_open(path, STORE_MIGRATE_YES, &store), 0);
    assert_int_equal(budget_parse("create=1000/30s", &bo.cfg, err, sizeof err), 0);
    bo.store = store;
    assert_int_equal(upstream_budget_new(&bo, &budget), 0);
    ao.gate = upstream_budget_gate(budget);
    ao.endpoint = acs_emu.base_url;
    ao.entra = cache;
    assert_int_equal(acs_client_new(&ao, &acs), 0);
    assert_int_equal(temu_stats_reset(&acs_emu), 0);

    for (int i = 0; i < 5; i++) {
        jobs[i].acs = acs;
        snprintf(jobs[i].caller, sizeof jobs[i].caller, "user:u%d", i);
        assert_int_equal(pthread_create(&th[i], NULL, job_run, &jobs[i]), 0);
    }
    for (int i = 0; i < 5; i++)
        pthread_join(th[i], NULL);
    at_acs = temu_stats_get(&acs_emu, "requests", "create");
    upstream_budget_stats_get(budget, ACS_OP_CREATE, &st);
    fprintf(stderr, "results:");
    for (int i = 0; i < 5; i++)
        fprintf(stderr, " %d", jobs[i].rc);
    fprintf(stderr, "\ncreates at ACS: %ld; budget slots granted: %llu\n", at_acs,
            (unsigned long long)st.granted);
    acs_client_free(acs);
    upstream_budget_free(budget);
    entra_cache_stop(cache);
    store_close(store);
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
    rmdir(dir);
    temu_stop(&acs_emu);
    temu_stop(&entra);
    /* One slot per attempt that reached ACS (max_retries = 0: one attempt per call). */
    assert_int_equal(at_acs, 5);
    assert_true((long)st.granted <= at_acs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parked_calls_spend_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
