/* The end of an identity's delete, settled in one place for the request's own attempt (delete.c)
 * and the outbox worker's (outbox.c), and the in-flight set that keeps one outbox row from being
 * sent twice at once in this process. Thread-safe. */
#ifndef TV_SERVICE_SETTLE_INT_H
#define TV_SERVICE_SETTLE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "service/service.h"

/* One attempt at an outbox row's ACS delete. Strings borrowed. */
struct delete_attempt {
    const struct service_call *call;
    int64_t outbox_id;
    const char *acs_id;
    const char *app_user_id; /* audited; "" for a standalone identity */
    int attempts;            /* failed attempts of the row before this one */
    int from_outbox;         /* the outbox worker's attempt (else a request's own) */
};

/* Settles attempt d whose ACS outcome is rc: wipes the identity's cached tokens; ACS success or
 * 404 marks the row done (counted, audited), anything else schedules its retry with backoff.
 * The store is updated before the in-flight mark is dropped, so nobody can take a row that is
 * finished but still looks due. 0 when the delete is done, 1 when the outbox still owes it. */
int delete_settle(struct service *s, const struct delete_attempt *d, int rc);

/* Marks row id in flight: 0, TV_ERR_CONFLICT (already in flight: someone else is sending its
 * delete, which is not an error) or TV_ERR_UNAVAILABLE (the set is full). Whoever added the mark
 * removes it, and only after the row's store update (done or retry_later). */
int outbox_inflight_add(struct service *s, int64_t id);
void outbox_inflight_remove(struct service *s, int64_t id);
/* How many more rows the in-flight set has room for now. */
size_t outbox_inflight_room(struct service *s);
/* Next retry delay after `attempts` failures: base * 2^attempts, capped, with jitter. */
int64_t outbox_backoff_ms(const struct service *s, int attempts);

#endif
