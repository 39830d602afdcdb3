/* tokenvend serve's object graph: owns the store, the ACS client, the caller key sets, the
 * service and the HTTP server, wires them from the configuration and tears them down in
 * reverse. One app per process; start/stop from one thread. */
#ifndef TV_APP_H
#define TV_APP_H

struct config;
struct app;

/* Builds everything from cfg (borrowed; must outlive the app): opens and migrates the store,
 * creates the ACS client, the OIDC key set (when an issuer is configured) and the session key
 * (when local accounts are on), the service and the HTTP server. Starts no thread that serves
 * requests. 0, TV_ERR_CONFIG (message logged), TV_ERR_IO or another error. */
int app_new(const struct config *cfg, struct app **out);
/* Starts the service workers (the outbox worker finishes deletes left by an earlier run), the
 * maintenance thread (audit retention) and binds both listeners; logs one "listening" line with
 * both addresses. 0 or an error. */
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
