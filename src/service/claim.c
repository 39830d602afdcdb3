/* Create claims across processes (claim_int.h). One attempt: take the claim, then look for the
 * mapping. The order matters: a creator inserts its mapping and drops its claim in one
 * transaction (store_claim_commit), so a claim won here with no mapping seen AFTER the win is a
 * create nobody finished; looking first could miss a mapping committed in between and create a
 * second identity. A lost attempt is repeated from the delay line with a doubling delay, never
 * later than the holder's expiry, until the mapping appears, the claim is won or the deadline
 * passes. */
#include "claim_int.h"

#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "service_int.h"
#include "store/claims.h"
#include "store/users.h"

/* The store writes of a create (the claim, the mapping, the audit row) on top of the ACS call. */
#define CLAIM_MARGIN_MS 2000
#define CLAIM_BACKOFF_FIRST_MS 20
#define CLAIM_BACKOFF_MAX_MS 500

int64_t claim_lifetime_ms(const struct service *s)
{
    return (int64_t)s->acs_deadline_ms + CLAIM_MARGIN_MS;
}

void claim_release(struct service *s, const char *app_user_id, const char *request_id)
{
    int rc = store_claim_release(s->store, app_user_id);

    if (rc != 0)
        log_msg(LOGL_WARN, request_id,
                "create claim of %s not released (%s): other processes wait for its expiry",
                app_user_id, err_name(rc));
}

/* Seconds until the holder's expiry, rounded up, at least 1 (0 = unknown expiry). */
static long seconds_until(int64_t expires_ms, int64_t now_ms)
{
    int64_t left = expires_ms - now_ms;

    return left > 0 ? (long)((left + 999) / 1000) : 1;
}

/* A lost attempt: the next one after the backoff, never after the holder's expiry (plus 1 ms:
 * a claim is taken over once its expiry is past) nor the deadline; or the end of the wait. */
static void claim_wait(struct claim *c, int64_t holder_expires_ms, int64_t now_ms)
{
    int64_t left = c->deadline_ms - clock_mono_ms();
    int64_t delay = c->backoff_ms;
    int rc;

    if (left <= 0) {
        c->retry_after_s = seconds_until(holder_expires_ms, now_ms);
        log_msg(LOGL_INFO, c->request_id,
                "create of %s: another process still holds its claim at the deadline; retry in "
                "%ld s",
                c->app_user_id, c->retry_after_s);
        c->done(c, CLAIM_FAILED, TV_ERR_UNAVAILABLE);
        return;
    }
    if (holder_expires_ms > now_ms && holder_expires_ms - now_ms + 1 < delay)
        delay = holder_expires_ms - now_ms + 1;
    if (delay > left)
        delay = left;
    c->backoff_ms =
        c->backoff_ms * 2 > CLAIM_BACKOFF_MAX_MS ? CLAIM_BACKOFF_MAX_MS : c->backoff_ms * 2;
    if ((rc = delayq_add(&c->s->delay, &c->wake, delay)) != 0)
        c->done(c, CLAIM_FAILED, rc);
}

/* One attempt, on a service worker. */
static void claim_attempt(struct jobq_item *it)
{
    struct claim *c = (struct claim *)(void *)it; /* wake.job is c's first member */
    struct service *s = c->s;
    struct store_claim cl = {0, 0};
    int64_t now = clock_wall_ms();
    int rc = store_claim_take(s->store, c->app_user_id, now, now + claim_lifetime_ms(s), &cl);

    if (rc != 0) {
        c->done(c, CLAIM_FAILED, rc);
        return;
    }
    rc = store_user_get(s->store, c->app_user_id, c->user);
    if (rc != TV_ERR_NOT_FOUND) {
        if (cl.won)
            claim_release(s, c->app_user_id, c->request_id);
        c->done(c, rc == 0 ? CLAIM_FOUND : CLAIM_FAILED, rc);
        return;
    }
    if (cl.won) {
        c->done(c, CLAIM_WON, 0);
        return;
    }
    claim_wait(c, cl.expires_ms, now);
}

void claim_start(struct claim *c, struct service *s, const char *app_user_id,
                 struct store_user *user, const char *request_id, claim_done_fn done)
{
    memset(c, 0, sizeof *c);
    c->s = s;
    c->app_user_id = app_user_id;
    c->user = user;
    c->request_id = request_id;
    c->done = done;
    /* As long as a claim lives: a request that arrives just after a holder died still sees
     * the claim expire and takes it over, rather than giving up just before. */
    c->deadline_ms = clock_mono_ms() + claim_lifetime_ms(s);
    c->backoff_ms = CLAIM_BACKOFF_FIRST_MS;
    c->wake.job.run = claim_attempt;
    jobq_push(&s->fast, &c->wake.job);
}
