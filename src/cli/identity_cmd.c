/* `tokenvend identity list|show|delete|revoke`: admin views over the app-user -> ACS identity
 * mappings. delete takes the same path as the API: the mapping goes and an outbox row is queued
 * in one transaction, then the ACS delete is tried once (with the client's retries); if ACS
 * fails, the row stays for the service's outbox worker. revoke too: ACS's revoke, then the
 * store's revoke time, which every process reading the mapping compares its cached tokens with
 * (PostgreSQL also notifies the replicas). Single-threaded; delete and revoke block on ACS. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "acs/client.h"
#include "acs_cmd_int.h"
#include "admin_int.h"
#include "cli/cli.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/ident.h"
#include "core/log.h"
#include "store/tokens.h"
#include "store/audit.h"
#include "store/outbox.h"
#include "store/users.h"

#define LIST_PAGE 200
/* When the CLI's ACS delete fails, the outbox row becomes due again this much later (the
 * service's worker then owns the retries and their backoff). */
#define RETRY_AFTER_MS 30000

enum { OPT_LIMIT, OPT_AFTER };

static const struct cli_opt identity_opts[] = {
    {"limit", "N", "list: at most N mappings (1..1000) and a \"next\" cursor"},
    {"after", "USER", "list: start after app user id USER (a previous \"next\")"},
};

void cli_identity_usage_print(FILE *f)
{
    fputs(
        "Usage: tokenvend identity SUBCOMMAND [ARGS] [FLAGS]\n"
        "\n"
        "Admin views over the mappings from app users to ACS identities.\n"
        "\n"
        "Subcommands:\n"
        "  list [--limit N] [--after USER]\n"
        "                 {\"identities\":[{\"appUserId\",\"acsUserIdentity\",\"resource\",\n"
        "                 \"createdAt\",\"lastIssuedAt\",\"revokedAt\"}],\"next\"} ordered by\n"
        "                 app user id; without --limit every mapping (next is null)\n"
        "  show ID        one mapping, by app user id (an OIDC user's claim value, or\n"
        "                 local:NAME for local account NAME) or ACS id (8:acs:...), with\n"
        "                 \"pendingDelete\"; \"appUserIdInvalid\":true marks an id stored before\n"
        "                 ids were checked (shown with U+FFFD for its bad bytes)\n"
        "  delete ID      remove the mapping (it stops issuing at once) and delete the ACS\n"
        "                 identity; if ACS fails, the delete stays queued and `tokenvend serve`\n"
        "                 finishes it (exit 1, \"queued\":true). Needs the ACS connection string.\n"
        "  revoke ID      revoke every ACS token of the identity, as POST .../revoke does:\n"
        "                 ACS's revoke, then the revoke time recorded in the store, so a\n"
        "                 running `tokenvend serve` (every replica) stops serving the tokens\n"
        "                 it cached and issues new ones; prints {\"appUserId\",\n"
        "                 \"acsUserIdentity\",\"revokedAt\"}. When ACS's outcome is unknown\n"
        "                 (no answer, 500/502/504) the revoke time is recorded anyway and the\n"
        "                 exit status is 1: run it again. Needs the ACS connection string.\n"
        "\n"
        "Flags:\n",
        f);
    cli_opts_print(f, identity_opts, sizeof identity_opts / sizeof identity_opts[0]);
    cli_common_flags_print(f);
    fputs("\nExit status: 0 success, 1 not found / ACS or database failure, 2 usage or\n"
          "configuration error.\n",
          f);
}

/* appUserId of a mapping as JSON: NULL for a standalone identity; an id stored before ids were
 * checked that breaks the rule is shown with U+FFFD for what cannot be shown, so the output
 * stays valid JSON, and *invalid is set. */
static struct json_object *app_user_json(const char *id, int *invalid)
{
    char shown[STORE_ID_MAX * 3 + 1];

    *invalid = 0;
    if (id[0] == '\0')
        return NULL;
    if (ident_check_str(id, STORE_ID_MAX) == IDENT_OK)
        return json_object_new_string(id);
    *invalid = 1;
    (void)ident_sanitize(id, shown, sizeof shown);
    return json_object_new_string(shown);
}

static struct json_object *user_object(const struct store_user *u)
{
    struct json_object *o = json_object_new_object();
    int invalid = 0;

    if (o == NULL)
        return NULL;
    json_object_object_add(o, "appUserId", app_user_json(u->app_user_id, &invalid));
    if (invalid)
        json_object_object_add(o, "appUserIdInvalid", json_object_new_boolean(1));
    json_object_object_add(o, "acsUserIdentity", json_object_new_string(u->acs_id));
    json_object_object_add(o, "resource", json_object_new_string(u->resource));
    cli_json_add_time(o, "createdAt", u->created_ms);
    cli_json_add_time(o, "lastIssuedAt", u->last_issued_ms);
    cli_json_add_time(o, "revokedAt", u->revoked_ms);
    return o;
}

/* Finds the mapping of id, read as an ACS id first when it looks like one ("8:..."), else as an
 * app user id first; the other reading is the fallback. 0, TV_ERR_NOT_FOUND or a store error. */
static int mapping_find(struct store *st, const char *id, struct store_user *out)
{
    int acs_first = strncmp(id, "8:", 2) == 0;
    int rc;

    rc = acs_first ? store_user_get_by_acs(st, id, out) : store_user_get(st, id, out);
    if (rc == TV_ERR_NOT_FOUND)
        rc = acs_first ? store_user_get(st, id, out) : store_user_get_by_acs(st, id, out);
    return rc;
}

static int not_found(struct store *st, const char *id)
{
    char msg[STORE_ID_MAX + 128];
    int pending = 0;

    if (store_outbox_pending_for(st, id, &pending) != 0)
        pending = 0;
    snprintf(msg, sizeof msg, "no mapping for '%s'%s", id,
             pending ? " (a delete of that ACS identity is already queued)" : "");
    return cli_store_failure(TV_ERR_NOT_FOUND, msg);
}

/* mapping_find with its failures reported: CLI_EXIT_OK, or the exit code. */
static int mapping_load(struct store *st, const char *id, struct store_user *out)
{
    int rc = mapping_find(st, id, out);

    if (rc == TV_ERR_NOT_FOUND)
        return not_found(st, id);
    if (rc != 0)
        return cli_store_failure(rc, "could not read the mapping");
    return CLI_EXIT_OK;
}

static int parse_limit(const char *s, int *out)
{
    char *end;
    long n;

    errno = 0;
    n = strtol(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || n < 1 || n > STORE_LIST_MAX)
        return cli_usage_error("identity list: --limit must be 1..%d, got '%.32s'", STORE_LIST_MAX,
                               s);
    *out = (int)n;
    return CLI_EXIT_OK;
}

/* A store_user_keep_fn for the list: mappings whose app user id passes the id rule. The others
 * (stored before ids were checked) cannot be named by a cursor or on the command line, so
 * they are left out with a warning naming their ACS identity, which show and delete take. */
static int keep_listable(const struct store_user *u, void *ctx)
{
    int *skipped = ctx;

    if (ident_check_str(u->app_user_id, STORE_ID_MAX) == IDENT_OK)
        return 1;
    (*skipped)++;
    log_msg(LOGL_WARN, NULL,
            "identity list: left out the mapping of %s: its app user id is not valid UTF-8 or "
            "holds control characters (stored before ids were checked); see `tokenvend identity "
            "show %s`, and delete it with `tokenvend identity delete %s`",
            u->acs_id, u->acs_id, u->acs_id);
    return 0;
}

static int identity_list(struct store *st, const struct cli_args *a)
{
    struct store_user *rows = NULL;
    struct json_object *o = NULL, *arr = NULL;
    char after[STORE_ID_MAX + 1] = "";
    int limit = 0, page, n = 0, total = 0, skipped = 0;
    int rc;

    if (a->values[OPT_LIMIT] != NULL &&
        (rc = parse_limit(a->values[OPT_LIMIT], &limit)) != CLI_EXIT_OK)
        return rc;
    if (a->values[OPT_AFTER] != NULL && a->values[OPT_AFTER][0] != '\0') {
        enum ident_fault f = ident_check_str(a->values[OPT_AFTER], STORE_ID_MAX);
        char why[96];
        if (f != IDENT_OK)
            return cli_usage_error("identity list: %s",
                                   ident_explain(f, "--after", STORE_ID_MAX, why, sizeof why));
        buf_copy_str(after, sizeof after, a->values[OPT_AFTER]);
    }
    page = limit ? limit : LIST_PAGE;
    rows = calloc((size_t)page, sizeof *rows);
    o = cli_json_list_new("identities", &arr);
    if (rows == NULL || o == NULL) {
        rc = cli_json_print(NULL);
        goto done;
    }
    do {
        if ((rc = store_user_list_kept(st, after, page, keep_listable, &skipped, rows, &n)) != 0) {
            rc = cli_store_failure(rc, "could not list the mappings");
            goto done;
        }
        for (int i = 0; i < n; i++)
            json_object_array_add(arr, user_object(&rows[i]));
        if (n > 0)
            buf_copy_str(after, sizeof after, rows[n - 1].app_user_id);
        total += n;
    } while (limit == 0 && n == page);
    /* A full page may be followed by more: hand out the cursor. */
    json_object_object_add(o, "next", limit && n == limit ? json_object_new_string(after) : NULL);
    rc = cli_json_print(o);
    o = NULL;
    log_msg(LOGL_DEBUG, NULL, "identity list: %d mappings (%d left out)", total, skipped);
done:
    json_object_put(o);
    free(rows);
    return rc;
}

static int identity_show(struct store *st, const char *id)
{
    struct store_user u;
    struct json_object *o;
    int pending = 0;
    int rc;

    if ((rc = mapping_load(st, id, &u)) != CLI_EXIT_OK)
        return rc;
    if ((rc = store_outbox_pending_for(st, u.acs_id, &pending)) != 0)
        return cli_store_failure(rc, "could not read the outbox");
    o = user_object(&u);
    if (o != NULL)
        json_object_object_add(o, "pendingDelete", json_object_new_boolean(pending));
    return cli_json_print(o);
}

static int identity_client(const struct config *cfg, const struct store_user *u,
                           struct acs_client **client);

static int identity_delete(struct store *st, const struct config *cfg, const char *id)
{
    struct store_user u;
    struct acs_client *client = NULL;
    struct acs_request req = {0};
    struct acs_result res = {0};
    struct json_object *o;
    char msg[STORE_ID_MAX * 2 + 160];
    int64_t outbox_id = 0;
    int rc;

    if ((rc = mapping_load(st, id, &u)) != CLI_EXIT_OK)
        return rc;
    /* The client is needed before anything changes: without credentials nothing happens;
     * deleting with another resource's credentials would get a 404 that looks like success. */
    if ((rc = identity_client(cfg, &u, &client)) != CLI_EXIT_OK)
        goto done;
    rc = store_user_delete_begin(st, u.acs_id, clock_wall_ms(), &outbox_id);
    if (rc == TV_ERR_NOT_FOUND) {
        rc = not_found(st, id); /* deleted concurrently */
        goto done;
    }
    if (rc != 0) {
        rc = cli_store_failure(rc, "could not remove the mapping");
        goto done;
    }
    /* The tokens the services kept for the identity go with its mapping (none kept: no rows). */
    if (store_token_purge(st, u.acs_id, NULL) != 0)
        log_msg(LOGL_WARN, NULL,
                "could not remove the identity's kept tokens; nothing serves "
                "them any more (the mapping is gone), they expire");
    req.op = ACS_OP_DELETE;
    req.identity_id = u.acs_id;
    int arc = acs_client_call_sync(client, &req, &res);
    int deleted = arc == 0 || arc == TV_ERR_ACS_NOT_FOUND; /* ACS 404: already gone */
    if (deleted) {
        if (store_outbox_done(st, outbox_id) != 0)
            log_msg(LOGL_WARN, NULL,
                    "ACS identity deleted, but its outbox row stays; the "
                    "service will repeat the (idempotent) delete");
        cli_audit_add(st, "delete", u.app_user_id, u.acs_id, "ok",
                      arc == 0 ? "via cli" : "via cli; ACS already had none");
    } else {
        if (store_outbox_retry_later(st, outbox_id, clock_wall_ms() + RETRY_AFTER_MS,
                                     err_name(arc)) != 0)
            log_msg(LOGL_WARN, NULL, "could not record the failed attempt in the outbox");
        cli_audit_add(st, "delete", u.app_user_id, u.acs_id, err_name(arc),
                      "via cli; queued in the outbox");
    }
    o = json_object_new_object();
    if (o != NULL) {
        int invalid = 0;
        json_object_object_add(o, "appUserId", app_user_json(u.app_user_id, &invalid));
        if (invalid)
            json_object_object_add(o, "appUserIdInvalid", json_object_new_boolean(1));
        json_object_object_add(o, "acsUserIdentity", json_object_new_string(u.acs_id));
        json_object_object_add(o, "deleted", json_object_new_boolean(deleted));
        json_object_object_add(o, "queued", json_object_new_boolean(!deleted));
    }
    if ((rc = cli_json_print(o)) != CLI_EXIT_OK)
        goto done;
    if (!deleted) {
        snprintf(msg, sizeof msg,
                 "the mapping is removed, but the ACS delete failed (%.200s); it is queued and "
                 "`tokenvend serve` will retry it",
                 res.message[0] ? res.message : err_message(arc));
        cli_print_error(err_name(arc), msg, res.http_status, res.acs_code);
        rc = CLI_EXIT_UPSTREAM;
    }
done:
    acs_result_release(&res);
    acs_client_free(client);
    return rc;
}

/* The mapping's identity for the ACS client: the client must sign for its resource, or ACS
 * (another resource) would answer 404 for what is not its identity. CLI_EXIT_OK or reported. */
static int identity_client(const struct config *cfg, const struct store_user *u,
                           struct acs_client **client)
{
    char msg[STORE_ID_MAX * 2 + 160];
    int rc;

    if ((rc = cli_acs_client_open(cfg, client)) != CLI_EXIT_OK)
        return rc;
    if (strcmp(u->resource, acs_client_resource(*client)) != 0) {
        snprintf(msg, sizeof msg,
                 "identity belongs to another ACS resource (%s); this configuration signs for %s",
                 u->resource, acs_client_resource(*client));
        return cli_store_failure(TV_ERR_CONFLICT, msg);
    }
    return CLI_EXIT_OK;
}

/* Whether a failed revoke may still have happened at ACS: no answer, or a malformed one, or a
 * 500/502/504 (which a gateway gives for work it may have passed on: the rule the ACS client
 * applies to a create). Not an answer refusing it (4xx, 503) nor our own refusals before
 * sending (the circuit breaker, the budget, a bad request). */
static int revoke_maybe_done(const struct acs_result *res)
{
    if (res->paused || res->budget_refused)
        return 0;
    switch (res->rc) {
    case TV_ERR_UPSTREAM_NETWORK:
    case TV_ERR_UPSTREAM_TIMEOUT:
    case TV_ERR_UPSTREAM_UNKNOWN:
    case TV_ERR_UPSTREAM_PROTOCOL:
        return 1;
    case TV_ERR_ACS_UNAVAILABLE:
        return res->http_status == 500 || res->http_status == 502 || res->http_status == 504;
    default:
        return 0;
    }
}

/* The revoke of src/service/reqflow.c (revoke_have, revoke_done), from another process: every
 * process's cached tokens are dropped before ACS is asked (PostgreSQL notifies; on SQLite every
 * read of the mapping sees the revoke time), then after ACS's answer the revoke time is recorded
 * (it is what refuses tokens issued before it, everywhere). When the outcome is unknown the
 * revoke time is recorded too: the API then drops the caches of every process, which only a
 * notification (PostgreSQL) can do from here; on SQLite the revoke time is the one thing a
 * running service reads, and a revoke time without a revoke at ACS only costs new tokens. The
 * kept tokens go in every case. */
static int identity_revoke(struct store *st, const struct config *cfg, const char *id)
{
    struct store_user u;
    struct acs_client *client = NULL;
    struct acs_request req = {0};
    struct acs_result res = {0};
    struct json_object *o;
    char msg[ACS_MESSAGE_MAX + 320];
    int64_t now;
    int rc, arc, unknown;

    if ((rc = mapping_load(st, id, &u)) != CLI_EXIT_OK)
        return rc;
    if ((rc = identity_client(cfg, &u, &client)) != CLI_EXIT_OK)
        goto done;
    if (store_user_invalidate(st, u.acs_id) != 0)
        log_msg(LOGL_WARN, NULL, "could not notify the other processes before the revoke");
    req.op = ACS_OP_REVOKE;
    req.identity_id = u.acs_id;
    arc = acs_client_call_sync(client, &req, &res);
    now = clock_wall_ms();
    if (arc == 0 && (rc = store_user_set_revoked(st, u.acs_id, now)) != 0) {
        /* As the API: unrecorded, the other processes would keep serving revoked tokens. */
        (void)store_user_invalidate(st, u.acs_id);
        cli_audit_add(st, "revoke", u.app_user_id, u.acs_id, err_name(rc),
                      "via cli; ACS revoked, the store did not record it");
        rc = cli_store_failure(rc == TV_ERR_NOT_FOUND ? TV_ERR_NOT_FOUND : TV_ERR_UNAVAILABLE,
                               "ACS revoked the tokens but the store could not record it (the "
                               "mapping was deleted meanwhile, or the store failed); retry the "
                               "revoke");
        goto done;
    }
    unknown = arc != 0 && revoke_maybe_done(&res);
    if (unknown && (rc = store_user_set_revoked(st, u.acs_id, now)) != 0)
        log_msg(LOGL_WARN, NULL,
                "could not record the revoke time (%s): a running service on this SQLite "
                "store may go on serving the tokens it cached; run the revoke again",
                err_name(rc));
    if (arc != 0)
        (void)store_user_invalidate(st, u.acs_id); /* the revoke may have happened at ACS */
    if (store_token_purge(st, u.acs_id, NULL) != 0)
        log_msg(LOGL_WARN, NULL,
                "could not remove the identity's kept tokens; the services refuse them by the "
                "revoke time");
    cli_audit_add(st, "revoke", u.app_user_id, u.acs_id, arc == 0 ? "ok" : err_name(arc),
                  unknown ? "via cli; outcome unknown, revoke time recorded" : "via cli");
    if (unknown) {
        snprintf(msg, sizeof msg,
                 "the ACS revoke's outcome is unknown (%.200s): ACS may or may not have revoked "
                 "the tokens. The revoke time is recorded anyway, so the services stop serving "
                 "the tokens they kept and issue new ones; run the revoke again",
                 res.message[0] ? res.message : err_message(arc));
        cli_print_error(err_name(arc), msg, res.http_status, res.acs_code);
        rc = CLI_EXIT_UPSTREAM;
        goto done;
    }
    if (arc != 0) {
        rc = cli_acs_report_failure(&res);
        goto done;
    }
    o = json_object_new_object();
    if (o != NULL) {
        int invalid = 0;
        json_object_object_add(o, "appUserId", app_user_json(u.app_user_id, &invalid));
        if (invalid)
            json_object_object_add(o, "appUserIdInvalid", json_object_new_boolean(1));
        json_object_object_add(o, "acsUserIdentity", json_object_new_string(u.acs_id));
        cli_json_add_time(o, "revokedAt", now);
    }
    rc = cli_json_print(o);
done:
    acs_result_release(&res);
    acs_client_free(client);
    return rc;
}

static const struct cli_admin_spec identity_spec = {
    "identity",
    {"list", "show", "delete", "revoke"},
    identity_opts,
    sizeof identity_opts / sizeof identity_opts[0],
    cli_identity_usage_print,
};

int cli_identity_main(int argc, char **argv)
{
    struct cli_args a;
    struct config cfg = {0};
    struct store *st = NULL;
    const char *sub;
    char cmd[32];
    int rc;

    rc = cli_admin_parse(&identity_spec, argc, argv, &a, cmd, sizeof cmd, &sub);
    if (rc != CLI_EXIT_OK || sub == NULL)
        return rc;
    if (strcmp(sub, "list") == 0) {
        if (a.npos != 0)
            return cli_usage_error("identity list takes no arguments");
    } else {
        if (a.values[OPT_LIMIT] != NULL || a.values[OPT_AFTER] != NULL)
            return cli_usage_error("%s: --limit and --after apply to 'identity list' only", cmd);
        if (a.npos != 1)
            return cli_usage_error("%s: expects one ID (an app user id or 8:acs:...)", cmd);
        enum ident_fault f = ident_check_str(a.pos[0], STORE_ID_MAX);
        char why[96];
        if (f != IDENT_OK)
            return cli_usage_error("%s: %s", cmd,
                                   ident_explain(f, "ID", STORE_ID_MAX, why, sizeof why));
    }
    if ((rc = cli_admin_store_open(&a, &cfg, &st)) != CLI_EXIT_OK)
        goto done;
    if (strcmp(sub, "list") == 0)
        rc = identity_list(st, &a);
    else if (strcmp(sub, "show") == 0)
        rc = identity_show(st, a.pos[0]);
    else if (strcmp(sub, "delete") == 0)
        rc = identity_delete(st, &cfg, a.pos[0]);
    else
        rc = identity_revoke(st, &cfg, a.pos[0]);
done:
    store_close(st);
    config_release(&cfg);
    return rc;
}
