/* Request handling of acs-emulator, independent of the HTTP library: routing, HMAC check,
 * api-version, statistics, rate limits, fault decisions and the ACS and /emulator operations.
 * A request runs in two steps so that injected latency can be waited for without a thread:
 * emu_routes_begin decides, the caller waits ctx->fault.latency_ms, emu_routes_finish answers.
 * Thread-safe for distinct requests. */
#ifndef TV_EMULATOR_ROUTES_H
#define TV_EMULATOR_ROUTES_H

#include <stddef.h>
#include <stdint.h>

#include "emu.h"
#include "faults.h"

struct emu_app;

/* One received request; all strings borrowed for the duration of the calls. */
struct emu_http_req {
    const char *method;
    const char *target; /* raw request target: path and query as received */
    const char *host;
    const char *x_ms_date;
    const char *date;
    const char *content_sha256;
    const char *authorization;
    const char *body;
    size_t body_len;
    int body_too_large; /* the body exceeded EMU_BODY_MAX and was discarded */
};

enum emu_route {
    EMU_ROUTE_NONE,
    EMU_ROUTE_CREATE,
    EMU_ROUTE_DELETE,
    EMU_ROUTE_ISSUE,
    EMU_ROUTE_REVOKE,
    EMU_ROUTE_TEAMS,
    EMU_ROUTE_TEAMS_EXTENSION,
    EMU_ROUTE_JWKS,
    EMU_ROUTE_VALIDATE,
    EMU_ROUTE_STATS,
    EMU_ROUTE_STATS_RESET,
    EMU_ROUTE_FAULTS
};

/* State carried from emu_routes_begin to emu_routes_finish. */
struct emu_route_ctx {
    enum emu_route route;
    int has_op; /* an ACS operation that passed authentication */
    enum emu_op op;
    enum emu_apiver apiver;
    char id[EMU_ID_MAX]; /* decoded identity of /identities/{id} */
    struct emu_fault_decision fault;
};

/* What to send. body is malloc'd (NULL for none) and owned by the reply. */
struct emu_reply {
    int status;
    char *body;
    int64_t retry_after_ms; /* > 0: add Retry-After and retry-after-ms */
    int drop;               /* close the connection without answering */
};

/* First step. Returns 1 when *rep is final, or 0 when the caller must wait
 * ctx->fault.latency_ms milliseconds (without holding a thread) and then call finish. */
int emu_routes_begin(struct emu_app *app, const struct emu_http_req *req, struct emu_route_ctx *ctx,
                     struct emu_reply *rep);
/* Second step: applies the decided fault or performs the operation and fills *rep. */
void emu_routes_finish(struct emu_app *app, const struct emu_http_req *req,
                       struct emu_route_ctx *ctx, struct emu_reply *rep);
/* Frees rep->body. */
void emu_reply_release(struct emu_reply *rep);

#endif
