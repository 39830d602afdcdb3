/* `tokenvend migrate`: applies the SQL migrations compiled into the binary to the database named
 * by the `db` setting and prints what it applied (nothing when up to date). Single-threaded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "admin_int.h"
#include "cli/cli.h"
#include "core/config.h"
#include "core/dburi.h"
#include "store/migrations.h"
#include "store/store.h"

void cli_migrate_usage_print(FILE *f)
{
    fputs(
        "Usage: tokenvend migrate [FLAGS]\n"
        "\n"
        "Creates the database named by the db setting (TOKENVEND_DB) if needed and applies the\n"
        "pending schema migrations (every version it lacks, in order), each in its own\n"
        "transaction. Prints\n"
        "{\"database\",\"from\",\"to\",\"applied\":[names]}; \"applied\" is empty when the schema\n"
        "is up to date. Fails (exit 2) when the database was written by a newer tokenvend.\n"
        "\n",
        f);
    cli_common_flags_print(f);
}

int cli_migrate_main(int argc, char **argv)
{
    struct cli_args a;
    struct config cfg = {0};
    struct store *st = NULL;
    struct json_object *o = NULL, *names = NULL;
    unsigned char *had = NULL; /* per compiled-in migration: recorded before this run */
    int before = 0, after = 0, latest = 0, applied = 0;
    int rc;

    if ((rc = cli_args_parse("migrate", argc, argv, NULL, 0, 0, &a)) != CLI_EXIT_OK)
        return rc;
    if (a.help) {
        cli_migrate_usage_print(stdout);
        return CLI_EXIT_OK;
    }
    if ((rc = cli_config_load(&a, &cfg)) != CLI_EXIT_OK)
        goto done;
    if ((rc = cli_store_open(&cfg, STORE_MIGRATE_DEFER, &st)) != CLI_EXIT_OK)
        goto done;
    if ((rc = store_schema_version(st, &before, &latest)) != 0) {
        rc = cli_store_failure(rc, "cannot read the schema version");
        goto done;
    }
    if ((had = calloc(store_migrations_count + 1, 1)) == NULL) {
        rc = cli_json_print(NULL);
        goto done;
    }
    for (size_t i = 0; i < store_migrations_count; i++) {
        int h = 0;
        if ((rc = store_schema_has(st, store_migrations[i].version, &h)) != 0) {
            rc = cli_store_failure(rc, "cannot read the schema version");
            goto done;
        }
        had[i] = (unsigned char)h;
    }
    if ((rc = store_migrate(st, &applied)) != 0) {
        rc = cli_store_failure(rc, "migration failed (see the log above)");
        goto done;
    }
    if ((rc = store_schema_version(st, &after, NULL)) != 0) {
        rc = cli_store_failure(rc, "cannot read the schema version");
        goto done;
    }
    o = json_object_new_object();
    names = json_object_new_array();
    if (o == NULL || names == NULL) {
        json_object_put(names);
        rc = cli_json_print(NULL);
        goto done;
    }
    /* Name what this run applied: the versions recorded now and not before it, which may be
     * below `from` when the database lacked one under its highest (another process migrating
     * at the same moment may have applied some of them; `applied` counts ours). */
    for (size_t i = 0; i < store_migrations_count && applied > 0; i++) {
        int h = 0;
        if (!had[i] && store_schema_has(st, store_migrations[i].version, &h) == 0 && h)
            json_object_array_add(names, json_object_new_string(store_migrations[i].name));
    }
    {
        char shown[CONFIG_VALUE_MAX + 16];
        dburi_display(cfg.db, shown, sizeof shown);
        json_object_object_add(o, "database", json_object_new_string(shown));
    }
    json_object_object_add(o, "from", json_object_new_int(before));
    json_object_object_add(o, "to", json_object_new_int(after));
    json_object_object_add(o, "latest", json_object_new_int(latest));
    json_object_object_add(o, "applied", names);
    rc = cli_json_print(o);
    o = NULL;
done:
    free(had);
    json_object_put(o);
    store_close(st);
    config_release(&cfg);
    return rc;
}
