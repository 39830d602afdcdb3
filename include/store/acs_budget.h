/* The upstream budget's slots in the store (migrations 0007; core/budget.h has the rules): N
 * slots per ACS operation, shared by every process on the database, so that together they
 * make at most N calls of that operation in any W. Transient state, not copied by `store
 * copy`. Thread-safe; every call blocks on the store (the budget calls it from a thread of
 * its own, never from a server or ACS engine thread). */
#ifndef TV_STORE_ACS_BUDGET_H
#define TV_STORE_ACS_BUDGET_H

#include <stdint.h>

#include "store/store.h"

#define STORE_BUDGET_OP_MAX 32
#define STORE_BUDGET_SLOTS_MAX 1000000 /* RATELIMIT_BURST_MAX */
#define STORE_BUDGET_TAKE_MAX 1024     /* slots one transaction may take */

/* A clock in ms since the epoch, read inside the transaction (tests: a fake timeline). */
typedef int64_t (*store_budget_clock_fn)(void *arg);

/* One take: its inputs, then what it did (set on success, also when it took nothing). */
struct store_budget_take {
    const char *op;    /* 1..STORE_BUDGET_OP_MAX bytes: "create", "issue", ... */
    int64_t slots;     /* N: this process uses slots 0..N-1 (1..STORE_BUDGET_SLOTS_MAX) */
    int64_t window_ms; /* W (>= 1) */
    int64_t hold_ms;   /* stamp = now + hold (>= 0) */
    int64_t want;      /* slots wanted (0..STORE_BUDGET_TAKE_MAX; 0 only reads) */
    int ensure;        /* make any of the N slots that are missing, whatever was seen */
    /* The stamps use the STORE's clock, read inside the transaction (a grant's stamp is never
     * older than the moment it is made, however long the take waited for its lock): SQLite,
     * the host's wall clock, the same for every process on the file; PostgreSQL, the database
     * server's clock_timestamp(), the same for every replica whatever their own clocks say.
     * clock is the caller's own clock and is used instead only with fake_clock set (tests of
     * the arithmetic on a fake timeline). */
    store_budget_clock_fn clock;
    void *clock_arg;
    int fake_clock;
    /* out */
    int64_t now_ms;       /* the time the transaction read (the store's clock) */
    int64_t got;          /* slots taken, oldest first: 0..want */
    int64_t next_free_ms; /* got < want: when the oldest of the N frees (wall ms); else 0 */
    int64_t in_use;       /* of the N, those used within the last W (the new ones included) */
};

/* In one transaction: any of the N slot rows missing (a first use, a larger N, or rows an
 * operator or a restore removed) made again, stamps brought back after a backward clock jump
 * (budget_slot_normalize), then up to want of the N slots free at now (budget_slot_free),
 * oldest first, stamped now + hold. SQLite: one writer transaction (every process on the
 * file waits its turn); PostgreSQL: the slots are locked FOR UPDATE SKIP LOCKED, so replicas
 * take different ones at once and never wait for each other. 0, TV_ERR_INVALID (bad
 * arguments) or a store error (nothing taken). */
int store_acs_budget_take(struct store *s, struct store_budget_take *t);

#endif
