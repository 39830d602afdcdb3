/* Shared pieces of the store admin commands: store set-up from the configuration, uniform
 * reporting of store failures, JSON output helpers. Single-threaded. */
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "admin_int.h"
#include "cli/cli.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/fsperm.h"
#include "core/jsonx.h"
#include "store/audit.h"
#include "store/store.h"

int cli_store_failure(int rc, const char *what)
{
    long status = 0;

    if (rc == TV_ERR_NOT_FOUND || rc == TV_ERR_CONFLICT)
        status = err_http_status(rc);
    cli_print_error(err_name(rc), what, status, NULL);
    return rc == TV_ERR_CONFIG || rc == TV_ERR_INVALID ? CLI_EXIT_USAGE : CLI_EXIT_UPSTREAM;
}

int cli_store_open(const struct config *cfg, int migrate, struct store **out)
{
    struct store_opts so;
    char msg[512];
    int rc;

    store_opts_from_config(cfg, &so);
    rc = store_open_opts(&so, migrate, out, msg, sizeof msg);
    if (rc == 0)
        return CLI_EXIT_OK;
    return cli_store_failure(rc, msg);
}

int cli_json_print(struct json_object *o)
{
    if (o == NULL) {
        cli_print_error("out_of_memory", "out of memory", 0, NULL);
        return CLI_EXIT_UPSTREAM;
    }
    printf("%s\n", jsonx_compact(o));
    fflush(stdout);
    json_object_put(o);
    return CLI_EXIT_OK;
}

void cli_json_add_time(struct json_object *o, const char *key, int64_t ms)
{
    char iso[CLOCK_ISO_LEN];

    if (ms == 0) {
        json_object_object_add(o, key, NULL);
        return;
    }
    clock_iso8601(ms, iso);
    json_object_object_add(o, key, json_object_new_string(iso));
}

int cli_name_valid(const char *name, int allow_at)
{
    size_t n = 0;

    if (name == NULL)
        return 0;
    for (; name[n] != '\0'; n++) {
        char c = name[n];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-' || (allow_at && c == '@');
        if (!ok || n >= 64)
            return 0;
    }
    return n > 0;
}

int cli_admin_parse(const struct cli_admin_spec *spec, int argc, char **argv, struct cli_args *a,
                    char *cmd, size_t cmdcap, const char **sub)
{
    int rc = CLI_EXIT_OK;

    *sub = NULL;
    if (cli_help_asked(argc, argv, spec->usage_fn, &rc))
        return rc;
    for (size_t i = 0; i < sizeof spec->subs / sizeof spec->subs[0]; i++) {
        if (spec->subs[i] != NULL && strcmp(argv[0], spec->subs[i]) == 0)
            *sub = spec->subs[i];
    }
    if (*sub == NULL)
        return cli_usage_error("%s: unknown subcommand '%.64s' (see 'tokenvend %s --help')",
                               spec->name, argv[0], spec->name);
    snprintf(cmd, cmdcap, "%s %s", spec->name, *sub);
    rc = cli_args_parse(cmd, argc - 1, argv + 1, spec->opts, spec->nopts, 1, a);
    if (rc != CLI_EXIT_OK || a->help) {
        if (rc == CLI_EXIT_OK)
            spec->usage_fn(stdout);
        *sub = NULL;
    }
    return rc;
}

int cli_admin_store_open(const struct cli_args *a, struct config *cfg, struct store **st)
{
    int rc = cli_config_load(a, cfg);

    if (rc == CLI_EXIT_OK)
        rc = cli_store_open(cfg, STORE_MIGRATE_YES, st);
    if (rc == CLI_EXIT_OK)
        (void)fsperm_warn_config(cfg); /* a few stat calls: the operator sees it here too */
    return rc;
}

void cli_audit_add(struct store *st, const char *action, const char *app_user_id,
                   const char *acs_id, const char *outcome, const char *detail)
{
    struct store_audit au;

    memset(&au, 0, sizeof au);
    au.ts_ms = clock_wall_ms();
    snprintf(au.caller, sizeof au.caller, "cli");
    buf_copy_str(au.action, sizeof au.action, action);
    buf_copy_str(au.app_user_id, sizeof au.app_user_id, app_user_id);
    buf_copy_str(au.acs_id, sizeof au.acs_id, acs_id);
    buf_copy_str(au.outcome, sizeof au.outcome, outcome);
    buf_copy_str(au.detail, sizeof au.detail, detail);
    (void)store_audit_add(st, &au);
}

struct json_object *cli_json_list_new(const char *key, struct json_object **arr)
{
    struct json_object *o = json_object_new_object();
    struct json_object *a = json_object_new_array();

    if (o == NULL || a == NULL) {
        json_object_put(a);
        json_object_put(o);
        return NULL;
    }
    json_object_object_add(o, key, a);
    *arr = a;
    return o;
}
