/* The create claim of an app user across the processes sharing the store (include/store/
 * claims.h), for the create single-flight's leader (reqflow.c): it takes the claim before
 * asking ACS, or, while another process holds it, waits for that process's mapping without
 * holding a thread (re-checks from the delay line with a backoff), takes a claim left to expire,
 * and gives up at its deadline. Knows nothing of flows: the owner embeds a struct claim and
 * hears the outcome through a callback. */
#ifndef TV_SERVICE_CLAIM_INT_H
#define TV_SERVICE_CLAIM_INT_H

#include <stdint.h>

#include "delayq_int.h"
#include "service/service.h"

struct claim;

enum claim_outcome {
    CLAIM_WON,    /* this process holds the claim and there is no mapping: create it */
    CLAIM_FOUND,  /* the mapping is there (made by another process): the owner's user is filled */
    CLAIM_FAILED, /* rc: a store error; TV_ERR_UNAVAILABLE when another process still held the
                   * claim at the deadline (retry_after_s set); TV_ERR_SHUTDOWN */
};

/* Called exactly once per claim_start, on a service worker; c may be freed from then on. */
typedef void (*claim_done_fn)(struct claim *c, enum claim_outcome o, int rc);

/* Embedded in its owner; the fields are the claim's own. */
struct claim {
    struct delay_item wake; /* each attempt runs from here, on a service worker */
    struct service *s;
    const char *app_user_id; /* borrowed from the owner */
    struct store_user *user; /* the owner's; filled for CLAIM_FOUND */
    const char *request_id;  /* borrowed, for the log */
    claim_done_fn done;
    int64_t deadline_ms; /* monotonic: stop waiting then */
    int64_t backoff_ms;  /* the next re-check's delay */
    long retry_after_s;  /* CLAIM_FAILED with TV_ERR_UNAVAILABLE: until the holder's expiry */
};

/* How long a claim is taken for: s's ACS deadline plus a margin for the store writes around
 * the ACS call. A process that dies holding a claim blocks the user no longer. */
int64_t claim_lifetime_ms(const struct service *s);

/* Starts taking app_user_id's claim for s (the strings and user must outlive the claim): the
 * first attempt runs on a service worker, never on the caller's thread (a take is a write that
 * may wait for another process's transaction). done reports the outcome. */
void claim_start(struct claim *c, struct service *s, const char *app_user_id,
                 struct store_user *user, const char *request_id, claim_done_fn done);

/* Gives this process's claim on app_user_id up (its create failed, or was not needed), so the
 * next taker does not wait for the expiry. A failure is logged: the claim then just expires. */
void claim_release(struct service *s, const char *app_user_id, const char *request_id);

#endif
