/* Single-flight maps: one entry per key for work in flight (a create for an app user, an issue
 * for an identity, scope set, lifetime and cache epoch), holding the requests that wait for
 * it. Knows nothing of flows: a waiter is an sf_link embedded in its owner. Thread-safe. */
#ifndef TV_SERVICE_SFLIGHT_INT_H
#define TV_SERVICE_SFLIGHT_INT_H

#include <pthread.h>

#define SF_BUCKETS 256

struct sf_link {
    struct sf_link *next;
};

struct sf_entry;

/* Embedded in its owner. */
struct sfmap {
    pthread_mutex_t lock;
    struct sf_entry *b[SF_BUCKETS];
};

enum sf_role { SF_LEAD, SF_JOINED, SF_FOUND };

/* Looks the result up again, under the map's lock, for a caller that found nothing before:
 * 0 when it is there now, TV_ERR_NOT_FOUND when not, another code on failure. */
typedef int (*sf_recheck_fn)(void *ctx);

void sfmap_init(struct sfmap *m);
/* Frees the entries left (their waiters are not touched) and the lock. */
void sfmap_release(struct sfmap *m);
/* Under the map's lock: when work for key is in flight, appends me to its waiters (SF_JOINED);
 * else calls recheck(ctx), so work that finished since the caller's own lookup is seen
 * (SF_FOUND); else, when lead, registers the caller as the leader of new work for key (SF_LEAD).
 * 0, recheck's error, TV_ERR_NOT_FOUND (nothing in flight and not lead) or TV_ERR_NOMEM. The
 * leader must call sfmap_finish(key) exactly once. */
int sfmap_join(struct sfmap *m, const char *key, struct sf_link *me, int lead,
               sf_recheck_fn recheck, void *ctx, enum sf_role *role);
/* Removes key's entry and returns its waiters in the order they joined, NULL if none. Whoever
 * publishes the result does so before this call, so a request arriving in between finds one
 * or the other. */
struct sf_link *sfmap_finish(struct sfmap *m, const char *key);

#endif
