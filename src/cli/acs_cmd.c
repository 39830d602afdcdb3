/* `tokenvend acs ...`: one ACS identity operation per invocation through the blocking client
 * wrapper, the result as one JSON object on stdout. Also the helpers quickstart.c shares:
 * client set-up from the configuration and ACS error reporting. Single-threaded. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "acs/client.h"
#include "acs/connstr.h"
#include "acs/entra.h"
#include "acs_cmd_int.h"
#include "cli/cli.h"
#include "core/acsnames.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/ident.h"
#include "core/jsonx.h"

#define TEAMS_TOKEN_MAX (16 * 1024)

enum { OPT_SCOPES, OPT_MINUTES, OPT_TOKEN, OPT_TOKEN_FILE, OPT_APP_ID, OPT_USER_ID };

static const struct cli_opt acs_opts[] = {
    {"scopes", "LIST", "comma-separated scopes: " ACS_SCOPE_LIST},
    {"minutes", "N", "token lifetime in minutes, 60..1440 (default: ACS's 1440)"},
    {"token", "T", "teams-exchange: the Teams user's Entra ID access token"},
    {"token-file", "PATH", "teams-exchange: read the Entra token from PATH instead"},
    {"app-id", "A", "teams-exchange: the Entra application (client) id"},
    {"user-id", "U", "teams-exchange: the Teams user's object id (oid)"},
};

void cli_acs_usage_print(FILE *f)
{
    fputs("Usage: tokenvend acs SUBCOMMAND [ARGS] [FLAGS]\n"
          "\n"
          "Subcommands:\n"
          "  create-user                              -> {\"communicationUserId\"}\n"
          "  issue ID --scopes LIST [--minutes N]     -> {\"token\",\"expiresOn\",\"user\"}\n"
          "  create-user-and-token --scopes LIST [--minutes N]\n"
          "                                           -> {\"token\",\"expiresOn\",\"user\"}\n"
          "  revoke ID                                -> {\"communicationUserId\",\"revoked\"}\n"
          "  delete ID                                -> {\"communicationUserId\",\"deleted\"}\n"
          "  teams-exchange (--token T | --token-file PATH) --app-id A --user-id U\n"
          "                                           -> {\"token\",\"expiresOn\"}\n"
          "\n"
          "Flags:\n",
          f);
    cli_opts_print(f, acs_opts, sizeof acs_opts / sizeof acs_opts[0]);
    cli_common_flags_print(f);
    fputs("\nExit status: 0 success, 1 ACS or network failure, 2 usage or configuration error.\n",
          f);
}

int cli_acs_client_open(const struct config *cfg, struct acs_client **out)
{
    struct acs_client_opts o;
    struct entra_cache *cache = NULL;
    int rc;

    acs_client_opts_from_config(cfg, &o);
    /* One call at a time: a few connections are plenty. */
    o.max_connections = 4;

    if ((cfg->acs_connection_string == NULL || cfg->acs_connection_string[0] == '\0') &&
        cfg->acs_endpoint[0] == '\0') {
        cli_print_error("config_error",
                        "no ACS connection string: set COMMUNICATION_SERVICES_CONNECTION_STRING "
                        "(endpoint=https://...;accesskey=...), or TOKENVEND_ACS_CONNECTION_STRING"
                        ", a *_FILE variant, or acs_connection_string in the config file; or "
                        "COMMUNICATION_SERVICES_ENDPOINT for the keyless mode (Microsoft Entra ID)",
                        0, NULL);
        return CLI_EXIT_USAGE;
    }
    /* Keyless mode: the endpoint is checked before the credential fetches anything. */
    if ((cfg->acs_connection_string == NULL || cfg->acs_connection_string[0] == '\0') &&
        acs_endpoint_check(cfg->acs_endpoint) != 0) {
        cli_print_error("config_error", ACS_ENDPOINT_KEYLESS_HELP, 0, NULL);
        return CLI_EXIT_USAGE;
    }
    /* Keyless mode: the client owns the token cache, so callers free one thing as before. */
    rc = entra_cache_from_config(cfg, &cache);
    if (rc != 0) {
        cli_print_error("config_error",
                        "keyless mode: the AZURE_* / IDENTITY_* environment is malformed (see the "
                        "log line above)",
                        0, NULL);
        return CLI_EXIT_USAGE;
    }
    o.entra = cache;
    o.entra_owned = 1;
    rc = acs_client_new(&o, out);
    if (rc != 0)
        entra_cache_stop(cache);
    if (rc == TV_ERR_CONFIG || rc == TV_ERR_PARSE || rc == TV_ERR_INVALID) {
        cli_print_error("config_error",
                        "the ACS connection string is malformed: expected "
                        "endpoint=https://HOST/;accesskey=BASE64KEY",
                        0, NULL);
        return CLI_EXIT_USAGE;
    }
    if (rc != 0) {
        cli_print_error(err_name(rc), "could not start the ACS client", 0, NULL);
        return CLI_EXIT_UPSTREAM;
    }
    return CLI_EXIT_OK;
}

int cli_acs_report_failure(const struct acs_result *res)
{
    const char *msg = res->message[0] ? res->message : err_message(res->rc);
    char line[ACS_MESSAGE_MAX + 128];

    snprintf(line, sizeof line, "%s failed: %s", acs_op_name(res->op), msg);
    if (res->rc == TV_ERR_INVALID) {
        /* The client refused the request before sending it: a usage problem. */
        cli_print_error("usage_error", line, 0, NULL);
        return CLI_EXIT_USAGE;
    }
    cli_print_error(err_name(res->rc), line, res->http_status, res->acs_code);
    return CLI_EXIT_UPSTREAM;
}

void cli_acs_expiry(const struct acs_result *res, char out[CLOCK_ISO_LEN + 8])
{
    if (res->expires_on[0] != '\0')
        buf_copy_str(out, CLOCK_ISO_LEN + 8, res->expires_on);
    else
        clock_iso8601(res->expires_on_ms, out);
}

/* Prints one JSON object and a newline on stdout. 0 or CLI_EXIT_UPSTREAM (out of memory). */
static int print_json(struct json_object *o)
{
    if (o == NULL) {
        cli_print_error("out_of_memory", "out of memory", 0, NULL);
        return CLI_EXIT_UPSTREAM;
    }
    printf("%s\n", jsonx_compact(o));
    fflush(stdout);
    return CLI_EXIT_OK;
}

static struct json_object *user_object(const char *id)
{
    struct json_object *u = json_object_new_object();
    if (u != NULL)
        json_object_object_add(u, "communicationUserId", json_object_new_string(id));
    return u;
}

static int print_token(const struct acs_result *res, int with_user)
{
    char exp[CLOCK_ISO_LEN + 8];
    struct json_object *o = json_object_new_object();
    int rc;

    if (o == NULL)
        return print_json(NULL);
    cli_acs_expiry(res, exp);
    json_object_object_add(o, "token", json_object_new_string(res->token ? res->token : ""));
    json_object_object_add(o, "expiresOn", json_object_new_string(exp));
    if (with_user)
        json_object_object_add(o, "user", user_object(res->identity_id));
    rc = print_json(o);
    /* The serialised text lives inside o; json-c frees it without wiping, so clear it here. */
    const char *text = jsonx_compact(o);
    buf_wipe_const(text, strlen(text));
    json_object_put(o);
    return rc;
}

static int print_id(const char *id, const char *flag)
{
    struct json_object *o = json_object_new_object();
    int rc;

    if (o == NULL)
        return print_json(NULL);
    json_object_object_add(o, "communicationUserId", json_object_new_string(id));
    if (flag != NULL)
        json_object_object_add(o, flag, json_object_new_boolean(1));
    rc = print_json(o);
    json_object_put(o);
    return rc;
}

int cli_minutes_parse(const char *s, int *out)
{
    char *end;
    long n;

    if (s == NULL) {
        *out = 0;
        return CLI_EXIT_OK;
    }
    errno = 0;
    n = strtol(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || n < 60 || n > 1440)
        return cli_usage_error("--minutes must be a whole number of minutes in 60..1440, got '%s'",
                               s);
    *out = (int)n;
    return CLI_EXIT_OK;
}

/* Fills req's scopes from --scopes (required). */
static int scopes_from_flag(const char *sub, const char *s, struct acs_request *req)
{
    struct config_scopes sc;
    char why[256];

    if (s == NULL)
        return cli_usage_error("acs %s: --scopes is required (e.g. --scopes chat,voip)", sub);
    if (config_scopes_parse(s, &sc, why, sizeof why) != 0)
        return cli_usage_error("acs %s: --scopes: %s", sub, why);
    for (size_t i = 0; i < sc.n && i < ACS_MAX_SCOPES; i++)
        req->scopes[i] = sc.items[i];
    req->nscopes = sc.n < ACS_MAX_SCOPES ? sc.n : ACS_MAX_SCOPES;
    return CLI_EXIT_OK;
}

/* Which flags each subcommand accepts, and how many positional words (the identity id). */
struct acs_sub {
    const char *name;
    size_t npos;
    unsigned flags; /* bit i: acs_opts[i] allowed */
};

static const struct acs_sub subs[] = {
    {"create-user", 0, 0},
    {"issue", 1, 1u << OPT_SCOPES | 1u << OPT_MINUTES},
    {"create-user-and-token", 0, 1u << OPT_SCOPES | 1u << OPT_MINUTES},
    {"revoke", 1, 0},
    {"delete", 1, 0},
    {"teams-exchange", 0,
     1u << OPT_TOKEN | 1u << OPT_TOKEN_FILE | 1u << OPT_APP_ID | 1u << OPT_USER_ID},
};

/* Builds the request from the command line. CLI_EXIT_OK or CLI_EXIT_USAGE (reported).
 * *teams_secret receives a token read from --token-file (wipe and free it). */
static int request_build(const struct acs_sub *sub, const struct cli_args *a,
                         struct acs_request *req, char **teams_secret)
{
    char why[256];
    int rc;

    for (size_t i = 0; i < sizeof acs_opts / sizeof acs_opts[0]; i++) {
        if (a->values[i] != NULL && !(sub->flags & (1u << i)))
            return cli_usage_error("acs %s: flag --%s does not apply (see 'tokenvend acs --help')",
                                   sub->name, acs_opts[i].name);
    }
    if (a->npos != sub->npos)
        return cli_usage_error("acs %s: %s", sub->name,
                               sub->npos ? "expects one identity ID (8:acs:...)"
                                         : "takes no positional arguments");
    if (sub->npos == 1) {
        enum ident_fault f = ident_check_str(a->pos[0], ACS_ID_MAX - 1);
        if (f != IDENT_OK)
            return cli_usage_error(
                "acs %s: %s", sub->name,
                ident_explain(f, "the identity ID", ACS_ID_MAX - 1, why, sizeof why));
        req->identity_id = a->pos[0];
    }
    if (sub->flags & (1u << OPT_SCOPES)) {
        if ((rc = scopes_from_flag(sub->name, a->values[OPT_SCOPES], req)) != CLI_EXIT_OK)
            return rc;
        if ((rc = cli_minutes_parse(a->values[OPT_MINUTES], &req->expires_in_minutes)) != 0)
            return rc;
    }
    if (req->op == ACS_OP_TEAMS_EXCHANGE) {
        const char *tok = a->values[OPT_TOKEN], *tfile = a->values[OPT_TOKEN_FILE];
        if ((tok == NULL) == (tfile == NULL))
            return cli_usage_error("acs teams-exchange: give exactly one of --token and "
                                   "--token-file");
        if (a->values[OPT_APP_ID] == NULL || a->values[OPT_USER_ID] == NULL ||
            a->values[OPT_APP_ID][0] == '\0' || a->values[OPT_USER_ID][0] == '\0')
            return cli_usage_error("acs teams-exchange: --app-id and --user-id are required");
        if (ident_check_str(a->values[OPT_APP_ID], IDENT_MAX) != IDENT_OK ||
            ident_check_str(a->values[OPT_USER_ID], IDENT_MAX) != IDENT_OK)
            return cli_usage_error("acs teams-exchange: --app-id and --user-id must be 1..%d "
                                   "bytes of UTF-8 without control characters",
                                   IDENT_MAX);
        if (tfile != NULL) {
            if (config_read_value_file(tfile, TEAMS_TOKEN_MAX, teams_secret, why, sizeof why) != 0)
                return cli_usage_error("acs teams-exchange: --token-file: %s", why);
            tok = *teams_secret;
        }
        if (tok[0] == '\0')
            return cli_usage_error("acs teams-exchange: the Entra token is empty");
        req->teams_token = tok;
        req->teams_app_id = a->values[OPT_APP_ID];
        req->teams_user_id = a->values[OPT_USER_ID];
    }
    return CLI_EXIT_OK;
}

int cli_acs_main(int argc, char **argv)
{
    static const enum acs_op ops[] = {ACS_OP_CREATE, ACS_OP_ISSUE,  ACS_OP_CREATE,
                                      ACS_OP_REVOKE, ACS_OP_DELETE, ACS_OP_TEAMS_EXCHANGE};
    struct cli_args a;
    struct config cfg = {0};
    struct acs_request req = {0};
    struct acs_result res = {0};
    struct acs_client *client = NULL;
    const struct acs_sub *sub = NULL;
    char *teams_secret = NULL;
    char cmd[64];
    int rc;

    if (cli_help_asked(argc, argv, cli_acs_usage_print, &rc))
        return rc;
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        if (strcmp(argv[0], subs[i].name) == 0) {
            sub = &subs[i];
            req.op = ops[i];
        }
    }
    if (sub == NULL)
        return cli_usage_error("acs: unknown subcommand '%s' (see 'tokenvend acs --help')",
                               argv[0]);
    snprintf(cmd, sizeof cmd, "acs %s", sub->name);
    rc = cli_args_parse(cmd, argc - 1, argv + 1, acs_opts, sizeof acs_opts / sizeof acs_opts[0], 1,
                        &a);
    if (rc != CLI_EXIT_OK)
        goto done;
    if (a.help) {
        cli_acs_usage_print(stdout);
        goto done;
    }
    if ((rc = request_build(sub, &a, &req, &teams_secret)) != CLI_EXIT_OK)
        goto done;
    if ((rc = cli_config_load(&a, &cfg)) != CLI_EXIT_OK)
        goto done;
    if ((rc = cli_acs_client_open(&cfg, &client)) != CLI_EXIT_OK)
        goto done;

    if (acs_client_call_sync(client, &req, &res) != 0) {
        rc = cli_acs_report_failure(&res);
        goto done;
    }
    switch (req.op) {
    case ACS_OP_CREATE:
        rc = req.nscopes ? print_token(&res, 1) : print_id(res.identity_id, NULL);
        break;
    case ACS_OP_ISSUE:
        rc = print_token(&res, 1);
        break;
    case ACS_OP_REVOKE:
        rc = print_id(req.identity_id, "revoked");
        break;
    case ACS_OP_DELETE:
        rc = print_id(req.identity_id, "deleted");
        break;
    case ACS_OP_TEAMS_EXCHANGE:
        rc = print_token(&res, 0);
        break;
    }
done:
    acs_result_release(&res);
    acs_client_free(client);
    config_release(&cfg);
    if (teams_secret != NULL) {
        OPENSSL_cleanse(teams_secret, strlen(teams_secret));
        free(teams_secret);
    }
    return rc;
}
