/* `tokenvend store copy|check FROM TO`: every table from one store to another (store/copy.h),
 * with a JSON summary. FROM and TO are SQLite paths or PostgreSQL URIs, given on the command
 * line or read from files (a URI with a password stays off the command line and out of `ps`).
 * Single-threaded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "admin_int.h"
#include "cli/cli.h"
#include "core/config.h"
#include "core/dburi.h"
#include "core/err.h"
#include "core/fsperm.h"
#include "store/copy.h"
#include "store/store.h"

enum { OPT_FROM_FILE, OPT_TO_FILE };

static const struct cli_opt store_opts[] = {
    {"from-file", "FILE", "read FROM (a path or URI) from FILE instead of the command line"},
    {"to-file", "FILE", "read TO from FILE instead of the command line"},
};
#define NOPTS (sizeof store_opts / sizeof store_opts[0])

void cli_store_usage_print(FILE *f)
{
    fputs(
        "Usage: tokenvend store copy FROM TO [--from-file FILE] [--to-file FILE] [FLAGS]\n"
        "       tokenvend store check FROM TO [...]\n"
        "\n"
        "Copies every table from one store to another: a SQLite file into a PostgreSQL\n"
        "database when a node grows into replicas, and back. FROM and TO are each a SQLite\n"
        "file's path or a postgresql:// (postgres://) URI. --from-file / --to-file read one from\n"
        "a file instead, as TOKENVEND_DB_FILE does: give a URI with a password that way, not on\n"
        "the command line. Passwords are never printed. The db setting is not used; db_pool_size\n"
        "and the db_*_timeout_ms settings apply to a PostgreSQL side.\n"
        "\n"
        "Stop the services on both stores first. The destination is created if it is a new\n"
        "SQLite file (a PostgreSQL database must exist) and migrated to the latest schema; the\n"
        "source is only read, and must already be at the latest schema: if it is not, run\n"
        "'tokenvend migrate' on it (TOKENVEND_DB=FROM) and copy again.\n"
        "\n"
        "Rows are kept as they are: ids, times, hashes, session epochs, revoked marks, outbox\n"
        "attempts, audit rows, failed-login counters and meta, which holds the session signing\n"
        "key encrypted with secret_key: give the destination's services the same secret_key and\n"
        "sessions, passwords and API keys keep working. Create claims are not copied (they\n"
        "belong to running processes). PostgreSQL's id sequences are moved past the copied ids.\n"
        "\n"
        "First every source row is looked up in the destination: an identical row counts as\n"
        "already present; a row whose key is taken by one with other values stops the copy\n"
        "before anything is written, naming the table and the key (exit 1). Then the missing\n"
        "rows are written in one transaction. A re-run after a completed copy writes nothing\n"
        "and says so (\"result\":\"up_to_date\"). `check` stops after the look-up (it still\n"
        "creates and migrates the destination) and reports what a copy would write.\n"
        "\n"
        "Prints {\"from\",\"to\",\"result\":\"copied\"|\"up_to_date\"|\"checked\",\"copied\":N,\n"
        "\"present\":N,\"tables\":{\"mappings\":{\"copied\",\"present\"},...}}.\n"
        "\n"
        "Flags:\n",
        f);
    cli_opts_print(f, store_opts, NOPTS);
    fputs("\n", f);
    cli_common_flags_print(f);
    fputs("\nExit status: 0 success, 1 conflicting rows or a database failure, 2 usage or\n"
          "configuration error (a bad URI, refused credentials, a schema to migrate).\n",
          f);
}

/* One side of the copy: its db value, from the command line or a file. */
struct side {
    const char *name; /* "FROM", "TO" */
    const char *db;   /* borrows from argv or file */
    char *file;       /* read from a file: malloc'd, wiped on release */
};

static void side_release(struct side *s)
{
    if (s->file != NULL) {
        OPENSSL_cleanse(s->file, strlen(s->file));
        free(s->file);
    }
    s->file = NULL;
    s->db = NULL;
}

/* Fills sd from --NAME-file when given, else from the next positional word. */
static int side_get(struct side *sd, const char *path, const struct cli_args *a, size_t *next)
{
    char err[CONFIG_ERR_MAX];
    int rc;

    if (path == NULL) {
        if (*next >= a->npos)
            return cli_usage_error("store: %s is missing (see 'tokenvend store --help')", sd->name);
        sd->db = a->pos[(*next)++];
    } else {
        rc = config_read_value_file(path, CONFIG_VALUE_MAX, &sd->file, err, sizeof err);
        if (rc != 0)
            return cli_usage_error("store: %s: %s", sd->name, err);
        (void)fsperm_warn_readable(path, "secret file");
        sd->db = sd->file;
    }
    if (sd->db[0] == '\0')
        return cli_usage_error("store: %s is empty", sd->name);
    return store_db_check(sd->db, err, sizeof err) != 0
               ? cli_usage_error("store: %s: %s", sd->name, err)
               : CLI_EXIT_OK;
}

/* The source must exist: opening a missing SQLite path would make an empty database. A copy
 * onto itself is refused too (same text, or the same file under two paths). */
static int sides_check(const struct side *from, const struct side *to)
{
    struct stat a, b;
    char shown[CONFIG_VALUE_MAX + 16];

    if (from->db == NULL || to->db == NULL)
        return cli_usage_error("store: FROM and TO are both needed");
    if (strcmp(from->db, to->db) == 0)
        return cli_usage_error("store: FROM and TO are the same store");
    if (dburi_is_pg(from->db))
        return CLI_EXIT_OK;
    if (stat(from->db, &a) != 0 || !S_ISREG(a.st_mode)) {
        dburi_display(from->db, shown, sizeof shown);
        return cli_usage_error("store: FROM: no SQLite database at %.300s", shown);
    }
    if (!dburi_is_pg(to->db) && stat(to->db, &b) == 0 && a.st_dev == b.st_dev &&
        a.st_ino == b.st_ino)
        return cli_usage_error("store: FROM and TO are the same file");
    return CLI_EXIT_OK;
}

static int open_side(const struct config *cfg, const struct side *sd, int migrate,
                     struct store **out)
{
    struct store_opts so;
    char msg[512], line[600];
    int rc;

    store_opts_from_config(cfg, &so);
    so.db = sd->db;
    rc = store_open_opts(&so, migrate, out, msg, sizeof msg);
    if (rc == 0)
        return CLI_EXIT_OK;
    snprintf(line, sizeof line, "%s: %s", sd->name, msg);
    return cli_store_failure(rc, line);
}

static int summary_print(const struct side *from, const struct side *to, int check,
                         const struct store_copy_report *rep)
{
    struct json_object *o = json_object_new_object();
    struct json_object *tabs = json_object_new_object();
    char shown[CONFIG_VALUE_MAX + 16];
    const char *result = check ? "checked" : rep->copied > 0 ? "copied" : "up_to_date";

    if (o == NULL || tabs == NULL) {
        json_object_put(tabs);
        json_object_put(o);
        return cli_json_print(NULL);
    }
    dburi_display(from->db, shown, sizeof shown);
    json_object_object_add(o, "from", json_object_new_string(shown));
    dburi_display(to->db, shown, sizeof shown);
    json_object_object_add(o, "to", json_object_new_string(shown));
    json_object_object_add(o, "result", json_object_new_string(result));
    json_object_object_add(o, "copied", json_object_new_int64(rep->copied));
    json_object_object_add(o, "present", json_object_new_int64(rep->present));
    json_object_object_add(o, "repaired", json_object_new_int64(rep->repaired));
    for (int i = 0; i < rep->ntables; i++) {
        struct json_object *t = json_object_new_object();
        if (t == NULL)
            continue;
        json_object_object_add(t, "copied", json_object_new_int64(rep->tables[i].copied));
        json_object_object_add(t, "present", json_object_new_int64(rep->tables[i].present));
        json_object_object_add(tabs, rep->tables[i].table, t);
    }
    json_object_object_add(o, "tables", tabs);
    return cli_json_print(o);
}

int cli_store_main(int argc, char **argv)
{
    struct cli_args a;
    struct config cfg = {0};
    struct side from = {"FROM", NULL, NULL}, to = {"TO", NULL, NULL};
    struct store *src = NULL, *dst = NULL;
    struct store_copy_report rep;
    char err[512];
    size_t next = 0;
    int check = 0;
    int rc = CLI_EXIT_OK;

    if (cli_help_asked(argc, argv, cli_store_usage_print, &rc))
        return rc;
    if (strcmp(argv[0], "check") == 0)
        check = 1;
    else if (strcmp(argv[0], "copy") != 0)
        return cli_usage_error("store: unknown subcommand '%.64s' (see 'tokenvend store --help')",
                               argv[0]);
    rc = cli_args_parse(check ? "store check" : "store copy", argc - 1, argv + 1, store_opts, NOPTS,
                        2, &a);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (a.help) {
        cli_store_usage_print(stdout);
        return CLI_EXIT_OK;
    }
    if ((rc = side_get(&from, a.values[OPT_FROM_FILE], &a, &next)) != CLI_EXIT_OK ||
        (rc = side_get(&to, a.values[OPT_TO_FILE], &a, &next)) != CLI_EXIT_OK)
        goto done;
    if (next < a.npos) {
        rc = cli_usage_error("store: unexpected argument '%.64s'", a.pos[next]);
        goto done;
    }
    if ((rc = sides_check(&from, &to)) != CLI_EXIT_OK ||
        (rc = cli_config_load(&a, &cfg)) != CLI_EXIT_OK)
        goto done;
    /* The source as it is (store_copy refuses one behind the latest schema); the destination
     * created and migrated. */
    if ((rc = open_side(&cfg, &from, STORE_MIGRATE_DEFER, &src)) != CLI_EXIT_OK ||
        (rc = open_side(&cfg, &to, STORE_MIGRATE_YES, &dst)) != CLI_EXIT_OK)
        goto done;
    rc = store_copy(src, dst, check ? STORE_COPY_CHECK : STORE_COPY_WRITE, &rep, err, sizeof err);
    if (rc != 0) {
        rc = cli_store_failure(rc, err);
        goto done;
    }
    rc = summary_print(&from, &to, check, &rep);
done:
    store_close(dst);
    store_close(src);
    config_release(&cfg);
    side_release(&from);
    side_release(&to);
    return rc;
}
