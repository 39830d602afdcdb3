/* The start-up check of the ACS credential (README "/readyz"): one harmless call, a revoke of a
 * made-up but well-formed identity, sent through the service's own ACS client on a thread of its
 * own (never an HTTP thread). ACS answers 404 when it accepted the credential and 401/403 when
 * it did not; anything else (unreachable, throttled, breaker open, no Entra token yet) leaves the
 * credential unchecked and the call is repeated with backoff until one of the two answers comes.
 * A rejected credential is checked again every backoff_max_ms (a role assignment may take
 * minutes to reach ACS); an accepted one never again.
 * Thread-safe: the state is read by /readyz while the check runs. */
#ifndef TV_SERVICE_CREDCHECK_H
#define TV_SERVICE_CREDCHECK_H

#include <stddef.h>
#include <stdint.h>

struct acs_client;
struct credcheck;
struct store;

#define CREDCHECK_TEXT_MAX 256 /* credcheck_get's text, NUL included */

enum credcheck_state {
    CREDCHECK_UNCHECKED, /* no verdict yet: the first call is on its way, or ACS gave none */
    CREDCHECK_OK,        /* ACS accepted the credential (404 for the made-up identity) */
    CREDCHECK_REJECTED,  /* ACS answered 401 or 403: the key (or the Entra role) is wrong */
};

struct credcheck_opts {
    struct acs_client *acs; /* borrowed; must outlive credcheck_stop */
    /* Where a mapping of this resource may name ACS's resource id (the part of "8:acs:<id>_..."
     * before '_'), so the made-up identity looks like one of the resource's own; NULL or none
     * found: a random id in its place. Borrowed; read once, on the check's thread. */
    struct store *store;
    int64_t backoff_min_ms; /* first wait after an answer without a verdict; 0: 1000 */
    int64_t backoff_max_ms; /* the wait doubles up to this; 0: 60000 */
};

/* Starts the check's thread, which sends the first call at once. 0, TV_ERR_INVALID (no client)
 * or TV_ERR_NOMEM. */
int credcheck_new(const struct credcheck_opts *o, struct credcheck **out);
/* Stops the thread (joins it; it never waits on the network): no call is sent after this. A
 * call already sent may still complete later, on the ACS client's engine thread, so the ACS
 * client must be freed (or have completed the call) before credcheck_free. NULL is a no-op. */
void credcheck_stop(struct credcheck *c);
/* credcheck_stop, then frees. Call only after acs_client_free of the client in the options.
 * NULL is a no-op. */
void credcheck_free(struct credcheck *c);
/* The verdict now, and its words for /readyz in text (cap bytes, may be NULL): "ok",
 * "rejected (401)", or "unchecked: <reason>" ("unchecked: the first check is under way",
 * "unchecked: could not reach ACS; next check in 4 s"). Never blocks. */
enum credcheck_state credcheck_get(struct credcheck *c, char *text, size_t cap);

#endif
