/* `tokenvend backup FILE [--force]`: an online backup of the SQLite store (store/backup.h) while
 * the service may be serving, with a JSON summary and an audit row. A PostgreSQL store is
 * refused with a pointer to the README's pg_dump recipe. Single-threaded. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "admin_int.h"
#include "cli/cli.h"
#include "core/config.h"
#include "core/dburi.h"
#include "core/err.h"
#include "store/backup.h"
#include "store/store.h"

/* Most words the command takes: FILE, --force and the common flags with their values. */
#define BACKUP_MAX_ARGS 64

void cli_backup_usage_print(FILE *f)
{
    fputs("Usage: tokenvend backup FILE [--force] [FLAGS]\n"
          "\n"
          "Writes a consistent copy of the SQLite database named by the db setting\n"
          "(TOKENVEND_DB) to FILE, also while `tokenvend serve` runs and writes: SQLite's online\n"
          "backup reads one snapshot of the database, without stopping the service's writes.\n"
          "The copy goes to FILE.tmp (mode 0600), is checked (PRAGMA quick_check) and synced to\n"
          "disk, then renamed to FILE, so FILE is either a whole backup or absent. FILE is a\n"
          "standalone database (no -wal file beside it). An existing FILE is refused unless\n"
          "--force is given. Prints {\"file\",\"bytes\",\"pages\"} and records an audit row.\n"
          "\n"
          "Restore: stop the service, copy FILE over the database path (remove its -wal and\n"
          "-shm files), run `tokenvend migrate`, start the service (README \"Backup and\n"
          "restore\"). A PostgreSQL store (a postgresql:// db) is backed up with pg_dump\n"
          "instead; this command refuses it (exit 2) and the README gives the recipe.\n"
          "\n"
          "Flags:\n"
          "  --force                replace FILE if it exists\n"
          "\n",
          f);
    cli_common_flags_print(f);
    fputs("\nExit status: 0 success, 1 a database or file failure, 2 usage or configuration\n"
          "error (FILE exists, FILE is the database, no database, a PostgreSQL store).\n",
          f);
}

/* Removes --force from argv into words (the shared parser's flags all take a value). */
static int backup_split_args(int argc, char **argv, char **words, int *nwords, int *force)
{
    *nwords = 0;
    *force = 0;
    if (argc > BACKUP_MAX_ARGS)
        return cli_usage_error("backup: too many arguments");
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            for (; i < argc; i++)
                words[(*nwords)++] = argv[i];
            break;
        }
        if (strcmp(argv[i], "--force") == 0)
            *force = 1;
        else
            words[(*nwords)++] = argv[i];
    }
    return CLI_EXIT_OK;
}

/* The SQLite database must already exist: opening a missing path would create an empty one and
 * back that up. */
static int backup_check_source(const struct config *cfg)
{
    struct stat st;

    if (cfg->db == NULL || cfg->db[0] == '\0')
        return cli_usage_error("backup: no database: set TOKENVEND_DB (or db in the config file)");
    if (dburi_is_pg(cfg->db)) {
        cli_print_error("config_error",
                        "backup: the store is PostgreSQL: back it up with pg_dump -Fc and restore "
                        "with pg_restore (README \"Backup and restore\")",
                        0, NULL);
        return CLI_EXIT_USAGE;
    }
    if (stat(cfg->db, &st) != 0 || !S_ISREG(st.st_mode))
        return cli_usage_error("backup: no SQLite database at %.300s", cfg->db);
    return CLI_EXIT_OK;
}

static int backup_print(const char *file, const struct store_backup_result *res)
{
    struct json_object *o = json_object_new_object();

    if (o != NULL) {
        json_object_object_add(o, "file", json_object_new_string(file));
        json_object_object_add(o, "bytes", json_object_new_int64(res->bytes));
        json_object_object_add(o, "pages", json_object_new_int64(res->pages));
    }
    return cli_json_print(o);
}

int cli_backup_main(int argc, char **argv)
{
    char *words[BACKUP_MAX_ARGS];
    struct cli_args a;
    struct config cfg = {0};
    struct store *st = NULL;
    struct store_backup_result res = {0, 0};
    char err[512], detail[256];
    int nwords = 0, force = 0;
    int rc = CLI_EXIT_OK;

    if (cli_help_asked(argc, argv, cli_backup_usage_print, &rc))
        return rc;
    if ((rc = backup_split_args(argc, argv, words, &nwords, &force)) != CLI_EXIT_OK)
        return rc;
    if ((rc = cli_args_parse("backup", nwords, words, NULL, 0, 1, &a)) != CLI_EXIT_OK)
        return rc;
    if (a.help) {
        cli_backup_usage_print(stdout);
        return CLI_EXIT_OK;
    }
    if (a.npos != 1 || a.pos[0][0] == '\0')
        return cli_usage_error("backup: FILE is missing (see 'tokenvend backup --help')");
    if ((rc = cli_config_load(&a, &cfg)) != CLI_EXIT_OK)
        goto done;
    if ((rc = backup_check_source(&cfg)) != CLI_EXIT_OK)
        goto done;
    /* DEFER: a database whose migrations are pending is backed up as it is, untouched. */
    if ((rc = cli_store_open(&cfg, STORE_MIGRATE_DEFER, &st)) != CLI_EXIT_OK)
        goto done;
    rc = store_backup(st, a.pos[0], force ? STORE_BACKUP_FORCE : 0, &res, err, sizeof err);
    snprintf(detail, sizeof detail, "file=%.200s pages=%lld", a.pos[0],
             (long long)(rc == 0 ? res.pages : 0));
    cli_audit_add(st, "backup", "", "", rc == 0 ? "ok" : err_name(rc), detail);
    if (rc != 0) {
        cli_print_error(err_name(rc), err, 0, NULL);
        rc = rc == TV_ERR_CONFLICT || rc == TV_ERR_INVALID || rc == TV_ERR_CONFIG
                 ? CLI_EXIT_USAGE
                 : CLI_EXIT_UPSTREAM;
        goto done;
    }
    rc = backup_print(a.pos[0], &res);
done:
    store_close(st);
    config_release(&cfg);
    return rc;
}
