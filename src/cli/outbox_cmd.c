/* `tokenvend outbox list|retry`: the delete outbox seen and pushed from the command line. The
 * CLI never calls ACS for a queued row itself: retry only makes rows due now, and the outbox
 * worker of a running `tokenvend serve` (any replica) takes them at its next pass, under the
 * same leases and backoff as every other attempt, so there is one path that finishes a delete.
 * Single-threaded. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "admin_int.h"
#include "cli/cli.h"
#include "core/clock.h"
#include "core/err.h"
#include "store/audit.h"
#include "store/outbox.h"

#define LIST_DEFAULT 100

enum { OPT_LIMIT, OPT_ALL };

static const struct cli_opt outbox_opts[] = {
    {"limit", "N", "list: at most N rows (1..1000, default 100), the soonest due first"},
    {"all", NULL, "retry: every pending row instead of one ID"},
};

void cli_outbox_usage_print(FILE *f)
{
    fputs("Usage: tokenvend outbox SUBCOMMAND [ARGS] [FLAGS]\n"
          "\n"
          "The delete outbox: ACS identity deletes that failed (ACS down, throttled) and that\n"
          "`tokenvend serve` retries with backoff until ACS confirms them.\n"
          "\n"
          "Subcommands:\n"
          "  list [--limit N]\n"
          "                 {\"outbox\":[{\"id\",\"op\",\"appUserId\",\"acsUserIdentity\",\n"
          "                 "
          "\"resource\",\"attempts\",\"nextAttemptAt\",\"lastError\",\"createdAt\",\n"
          "                 \"leasedBy\",\"leased\"}],\"total\"}: pending rows, the soonest due\n"
          "                 first; total counts every pending row. leased: an instance is\n"
          "                 working on the row now (leasedBy names it, until nextAttemptAt)\n"
          "  retry ID | --all\n"
          "                 make the row (or every row) due now: the outbox worker of a\n"
          "                 running `tokenvend serve` sends it at its next pass (within\n"
          "                 outbox_interval_ms). A leased row is left to its holder and\n"
          "                 reported (\"result\":\"leased\"); a row already due stays as it is.\n"
          "                 Prints the row with \"result\" (made_due, already_due, leased), or\n"
          "                 {\"matched\",\"madeDue\",\"alreadyDue\",\"leased\"} for --all.\n"
          "\n"
          "Flags:\n",
          f);
    cli_opts_print(f, outbox_opts, sizeof outbox_opts / sizeof outbox_opts[0]);
    cli_common_flags_print(f);
    fputs("\nExit status: 0 success, 1 unknown ID / database failure, 2 usage or configuration\n"
          "error.\n",
          f);
}

/* An empty column as JSON null, else the string. */
static struct json_object *str_or_null(const char *s)
{
    return s[0] != '\0' ? json_object_new_string(s) : NULL;
}

static struct json_object *row_object(const struct store_outbox_row *r, int64_t now_ms)
{
    struct json_object *o = json_object_new_object();
    /* A lease is current while its row is not due (store/outbox.h). */
    int leased = r->leased_by[0] != '\0' && r->next_attempt_ms > now_ms;

    if (o == NULL)
        return NULL;
    json_object_object_add(o, "id", json_object_new_int64(r->id));
    json_object_object_add(o, "op", json_object_new_string(r->op));
    json_object_object_add(o, "appUserId", str_or_null(r->app_user_id));
    json_object_object_add(o, "acsUserIdentity", json_object_new_string(r->acs_id));
    json_object_object_add(o, "resource", json_object_new_string(r->resource));
    json_object_object_add(o, "attempts", json_object_new_int(r->attempts));
    cli_json_add_time(o, "nextAttemptAt", r->next_attempt_ms);
    json_object_object_add(o, "lastError", str_or_null(r->last_error));
    cli_json_add_time(o, "createdAt", r->created_ms);
    json_object_object_add(o, "leasedBy", leased ? json_object_new_string(r->leased_by) : NULL);
    json_object_object_add(o, "leased", json_object_new_boolean(leased));
    return o;
}

/* Parses a positive decimal within [1, max] into *out; -1 when it is not one. */
static int parse_pos(const char *s, int64_t max, int64_t *out)
{
    char *end;
    long long n;

    errno = 0;
    n = strtoll(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || n < 1 || n > max)
        return -1;
    *out = n;
    return 0;
}

static int outbox_list(struct store *st, const char *limit_arg)
{
    struct store_outbox_row *rows = NULL;
    struct json_object *o = NULL, *arr = NULL;
    int64_t limit = LIST_DEFAULT, total = 0;
    int64_t now = clock_wall_ms();
    int n = 0;
    int rc;

    if (limit_arg != NULL && parse_pos(limit_arg, STORE_LIST_MAX, &limit) != 0)
        return cli_usage_error("outbox list: --limit must be 1..%d, got '%.32s'", STORE_LIST_MAX,
                               limit_arg);
    rows = calloc((size_t)limit, sizeof *rows);
    o = cli_json_list_new("outbox", &arr);
    if (rows == NULL || o == NULL) {
        rc = cli_json_print(NULL);
        goto done;
    }
    /* Every row is due by INT64_MAX: the listing in the order the worker takes them. */
    if ((rc = store_outbox_due(st, INT64_MAX, (int)limit, rows, &n)) != 0 ||
        (rc = store_outbox_count(st, &total)) != 0) {
        rc = cli_store_failure(rc, "could not read the outbox");
        goto done;
    }
    for (int i = 0; i < n; i++)
        json_object_array_add(arr, row_object(&rows[i], now));
    json_object_object_add(o, "total", json_object_new_int64(total));
    rc = cli_json_print(o);
    o = NULL;
done:
    json_object_put(o);
    free(rows);
    return rc;
}

static int retry_one(struct store *st, int64_t id)
{
    struct store_outbox_retry r;
    struct store_outbox_row row;
    struct json_object *o;
    const char *result;
    char detail[STORE_AUDIT_DETAIL_MAX + 1];
    char msg[160];
    int64_t now = clock_wall_ms();
    int rc;

    if ((rc = store_outbox_retry_now(st, id, now, &r)) != 0)
        return cli_store_failure(rc, "could not update the outbox");
    if (r.matched == 0) {
        snprintf(msg, sizeof msg,
                 "no pending outbox row %" PRId64
                 " (finished, or never queued; see `tokenvend outbox list`)",
                 id);
        return cli_store_failure(TV_ERR_NOT_FOUND, msg);
    }
    result = r.leased ? "leased" : r.made_due ? "made_due" : "already_due";
    /* Read back for the output; a row finished meanwhile is still reported by its id. */
    rc = store_outbox_get(st, id, &row);
    if (rc != 0 && rc != TV_ERR_NOT_FOUND)
        return cli_store_failure(rc, "could not read the outbox row back");
    snprintf(detail, sizeof detail, "id=%" PRId64 " result=%s", id, result);
    cli_audit_add(st, "outbox_retry", rc == 0 ? row.app_user_id : "", rc == 0 ? row.acs_id : "",
                  "ok", detail);
    if (rc == 0) {
        o = row_object(&row, now);
    } else {
        o = json_object_new_object();
        if (o != NULL)
            json_object_object_add(o, "id", json_object_new_int64(id));
    }
    if (o != NULL)
        json_object_object_add(o, "result", json_object_new_string(result));
    if (r.leased) {
        char until[CLOCK_ISO_LEN] = "the lease's end";
        if (rc == 0)
            clock_iso8601(row.next_attempt_ms, until);
        fprintf(stderr,
                "outbox row %" PRId64 " is leased by %s, which is attempting it now: left to it "
                "(due again for anyone at %s if that attempt never reports)\n",
                id, rc == 0 ? row.leased_by : "another instance", until);
    }
    return cli_json_print(o);
}

static int retry_all(struct store *st)
{
    struct store_outbox_retry r;
    struct json_object *o;
    char detail[STORE_AUDIT_DETAIL_MAX + 1];
    int rc;

    if ((rc = store_outbox_retry_now(st, 0, clock_wall_ms(), &r)) != 0)
        return cli_store_failure(rc, "could not update the outbox");
    snprintf(detail, sizeof detail, "all: matched=%" PRId64 " made_due=%" PRId64 " leased=%" PRId64,
             r.matched, r.made_due, r.leased);
    cli_audit_add(st, "outbox_retry", "", "", "ok", detail);
    o = json_object_new_object();
    if (o != NULL) {
        json_object_object_add(o, "matched", json_object_new_int64(r.matched));
        json_object_object_add(o, "madeDue", json_object_new_int64(r.made_due));
        json_object_object_add(o, "alreadyDue",
                               json_object_new_int64(r.matched - r.made_due - r.leased));
        json_object_object_add(o, "leased", json_object_new_int64(r.leased));
    }
    if (r.leased > 0)
        fprintf(stderr, "%" PRId64 " leased row(s) left to the instances attempting them now\n",
                r.leased);
    return cli_json_print(o);
}

static const struct cli_admin_spec outbox_spec = {
    "outbox",
    {"list", "retry"},
    outbox_opts,
    sizeof outbox_opts / sizeof outbox_opts[0],
    cli_outbox_usage_print,
};

int cli_outbox_main(int argc, char **argv)
{
    struct cli_args a;
    struct config cfg = {0};
    struct store *st = NULL;
    const char *sub;
    char cmd[32];
    int64_t id = 0;
    int rc;

    rc = cli_admin_parse(&outbox_spec, argc, argv, &a, cmd, sizeof cmd, &sub);
    if (rc != CLI_EXIT_OK || sub == NULL)
        return rc;
    if (strcmp(sub, "list") == 0) {
        if (a.npos != 0 || a.values[OPT_ALL] != NULL)
            return cli_usage_error("outbox list takes no arguments but --limit N");
    } else {
        if (a.values[OPT_LIMIT] != NULL)
            return cli_usage_error("outbox retry: --limit applies to 'outbox list' only");
        if ((a.values[OPT_ALL] != NULL) == (a.npos == 1))
            return cli_usage_error("outbox retry: expects one row ID or --all");
        if (a.npos == 1 && parse_pos(a.pos[0], INT64_MAX, &id) != 0)
            return cli_usage_error("outbox retry: ID must be a row id (a positive number from "
                                   "`tokenvend outbox list`), got '%.32s'",
                                   a.pos[0]);
    }
    if ((rc = cli_admin_store_open(&a, &cfg, &st)) != CLI_EXIT_OK)
        goto done;
    if (strcmp(sub, "list") == 0)
        rc = outbox_list(st, a.values[OPT_LIMIT]);
    else if (id > 0)
        rc = retry_one(st, id);
    else
        rc = retry_all(st);
done:
    store_close(st);
    config_release(&cfg);
    return rc;
}
