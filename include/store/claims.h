/* Create claims: which of the processes sharing the store asks ACS to create an app user's
 * identity. A process that finds no mapping takes the user's claim before its ACS create; the
 * others see the claim held and wait for the mapping instead of creating a second identity. A
 * claim carries an expiry (wall-clock ms), so one whose holder died blocks the user only until
 * then: the next taker takes it over. The holder is this opening's store_instance. Thread-safe;
 * every call blocks on the database. */
#ifndef TV_STORE_CLAIMS_H
#define TV_STORE_CLAIMS_H

#include <stdint.h>

#include "store/store.h"
#include "store/users.h"

/* What store_claim_take found. */
struct store_claim {
    int won;            /* 1: this opening holds the claim now (inserted, renewed or taken over) */
    int64_t expires_ms; /* won: the expiry just written; lost: the holder's, 0 when the holder's
                         * row was gone by the time it was read (its mapping is likely there) */
};

/* Takes app_user_id's claim until expires_ms when nobody holds it, its holder's expiry is
 * before now_ms, or this opening already holds it (the caller's own in-process single-flight
 * makes that the same create). 0 with *out filled, TV_ERR_INVALID for a bad id or
 * expires_ms <= now_ms, or a store error. */
int store_claim_take(struct store *s, const char *app_user_id, int64_t now_ms, int64_t expires_ms,
                     struct store_claim *out);

/* Gives app_user_id's claim up when this opening holds it (a create that failed, so the next
 * taker need not wait for the expiry). Another holder's claim is left alone. 0 (also when there
 * was nothing of ours to remove) or a store error. */
int store_claim_release(struct store *s, const char *app_user_id);

/* Inserts the mapping u of a claimed create (as store_user_insert: same checks, same
 * TV_ERR_CONFLICT) and, in the same transaction, removes this opening's claim on
 * u->app_user_id, so that no moment shows neither the claim nor the mapping. A failed insert
 * leaves the claim as it was. */
int store_claim_commit(struct store *s, const struct store_user *u);

#endif
