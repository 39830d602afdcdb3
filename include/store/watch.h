/* Change notifications from the store, so that per-process caches never outlive a revoke or a
 * delete committed by another process (docs/design-store.md, "Revoke and delete honoured
 * everywhere within 1 s").
 *
 * On PostgreSQL every statement that must end cached state elsewhere (a mapping revoked or
 * deleted, an account's session epoch renewed or the account removed) also runs
 * pg_notify('tokenvend_invalidate', ...) and advances the sequence invalidation_seq in the same
 * transaction; PostgreSQL delivers the notification only on commit. A watch keeps one
 * dedicated connection outside the pool that LISTENs on a thread of its own and calls
 * on_event for each notification. While that connection is down, and until it has LISTENed
 * again and compared invalidation_seq with the notifications it received, the watch is not
 * current: callers must then bypass their caches (a missed notification must never serve a
 * revoked token). When the counter shows that something may have been missed, on_reset is
 * called before the watch becomes current again: drop everything.
 *
 * On SQLite (one node, one file) there is nothing to listen to: the watch starts no thread, is
 * always current and never calls back; store_watch_pushes says so, and callers keep reading
 * the store for what other processes (the admin CLI) may have changed. */
#ifndef TV_STORE_WATCH_H
#define TV_STORE_WATCH_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct store_watch;

/* The LISTEN connection's application_name (pg_stat_activity). */
#define STORE_WATCH_APP_NAME "tokenvend-listen"

/* What a notification is about. */
enum store_watch_kind {
    STORE_WATCH_MAPPING = 1, /* id: the ACS id; app_user_id: its app user ("" for none) */
    STORE_WATCH_ACCOUNT = 2, /* id: the account name; app_user_id "" */
};

struct store_watch_event {
    enum store_watch_kind kind;
    const char *id;          /* 1..STORE_ID_MAX bytes */
    const char *app_user_id; /* never NULL */
};

/* Called on the watch's own thread, one call at a time (store_watch_stop waits for a call in
 * progress). They must not block for long or call back into the watch. */
struct store_watch_cb {
    void (*on_event)(void *arg, const struct store_watch_event *ev);
    void (*on_reset)(void *arg); /* something may have been missed: drop every cached item */
    void *arg;
};

struct store_watch_stats {
    uint64_t events;     /* notifications delivered to on_event */
    uint64_t resets;     /* on_reset calls */
    uint64_t reconnects; /* LISTEN connections made after the first */
    uint64_t syncs;      /* times the watch became current */
};

/* Starts watching s (borrowed; must outlive the watch). PostgreSQL: starts the listener
 * thread, which connects in the background (the watch is not current until it has); SQLite:
 * a watch that is always current. 0, TV_ERR_INVALID or TV_ERR_NOMEM / TV_ERR_INTERNAL. */
int store_watch_start(struct store *s, const struct store_watch_cb *cb, struct store_watch **out);
/* Stops the thread (at once, also while it connects or waits to reconnect), closes the
 * connection and frees w. NULL is a no-op. */
void store_watch_stop(struct store_watch *w);

/* 1 when caches may be used: the listener is connected, LISTENing, has compared the counter,
 * and its connection answered a recent liveness check; 0 otherwise. Cheap (one atomic load);
 * any thread. */
int store_watch_current(const struct store_watch *w);
/* 1 when the backend pushes notifications (PostgreSQL), 0 for SQLite. */
int store_watch_pushes(const struct store_watch *w);
/* Counters (zeros for NULL w). */
void store_watch_stats_get(const struct store_watch *w, struct store_watch_stats *out);

#endif
