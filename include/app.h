/* tokenvend serve's object graph: owns the store, the ACS client, the caller key sets, the
 * service and the HTTP server, wires them from the configuration and tears them down in
 * reverse. One app per process; start/stop from one thread. */
#ifndef TV_APP_H
#define TV_APP_H

#include <stddef.h>

#include "acs/entra.h"

struct config;
struct app;

#define APP_CHECK_WHY_MAX 1024

/* What app_config_check found. */
struct app_check {
    char why[APP_CHECK_WHY_MAX]; /* the refusal: one line naming the setting, never a secret */
    /* Keyless mode: the credential the environment picks (entra_desc_describe, no secret); ""
     * otherwise. */
    char credential[ENTRA_DESCRIBE_MAX];
    unsigned warnings; /* warnings logged (log_msg, LOGL_WARN) */
};

/* Every check `tokenvend serve` makes of a loaded configuration before it binds, opens the store
 * or calls anyone; `tokenvend config check` runs the same one, so the two cannot disagree.
 * Listener host names are resolved, as serve resolves them, and each address is bound on port 0
 * by a throw-away socket (closed at once) to learn it is this machine's; the two listeners must
 * not claim one address and port; the OIDC URLs must pass jwks_opts_check; an existing SQLite
 * database is read read-only (store_peek: never created, migrated or written) for a schema this
 * binary does not know and, with local accounts, a sealed session key the secret key does not
 * open. PostgreSQL is not contacted; nothing is sent. Refusals come first: on the first one
 * returns TV_ERR_CONFIG with it in out->why and logs nothing. Then logs the warnings (no way to
 * log in, plain-http OIDC allowed, a configuration file or directory others may write, each
 * TOKENVEND_* environment variable that no setting reads, with the likely intended name) and
 * returns 0. */
int app_config_check(const struct config *cfg, struct app_check *out);

/* Builds everything from cfg (borrowed; must outlive the app): runs app_config_check (a refusal
 * is logged), binds both listeners (no request is served before app_start; a failure is logged
 * with the listener, the address and the system's reason and returns TV_ERR_CONFIG, before the
 * store is touched), then opens and migrates the store,
 * creates the ACS client, the OIDC key set (when an issuer is configured) and the session key
 * (when local accounts are on), the service and the HTTP server. Starts no thread that serves
 * requests. 0, TV_ERR_CONFIG (message logged), TV_ERR_IO or another error. */
int app_new(const struct config *cfg, struct app **out);
/* Starts the service workers (the outbox worker finishes deletes left by an earlier run), the
 * maintenance thread (audit retention) and serves on both listeners app_new bound; logs one
 * "listening" line with both addresses. 0 or an error. */
int app_start(struct app *a);
/* The port a started listener is bound to (which: 0 public, 1 internal), e.g. after
 * configuring port 0. 0 before app_start. */
unsigned app_port(const struct app *a, int which);
/* Graceful stop: stops accepting, lets in-flight requests finish within shutdown_drain_ms,
 * stops the maintenance thread, the outbox worker and the ACS client, then closes the store
 * cleanly. Idempotent. */
void app_stop(struct app *a);
/* app_stop, then frees. NULL is a no-op. */
void app_free(struct app *a);

#endif
