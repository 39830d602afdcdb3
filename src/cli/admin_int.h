/* Helpers shared by the store admin commands (migrate, apikey, account, identity): opening the
 * store from the configuration, reporting store failures with the CLI's exit codes, and JSON
 * output. Single-threaded. */
#ifndef TV_CLI_ADMIN_INT_H
#define TV_CLI_ADMIN_INT_H

#include <stdint.h>
#include <stdio.h>

#include "cli/cli.h"
#include "core/config.h"

struct json_object;
struct store;

/* Opens the database named by cfg->db. migrate is an enum store_migrate_mode: the admin
 * commands pass STORE_MIGRATE_YES so that they work on a fresh file; `migrate` defers.
 * CLI_EXIT_OK, or after printing the error CLI_EXIT_USAGE (the schema is newer than this binary,
 * or behind) / CLI_EXIT_UPSTREAM (the file cannot be opened). Close *out with store_close. */
int cli_store_open(const struct config *cfg, int migrate, struct store **out);
/* Prints the JSON error line for a failed store call (code err_name(rc), the HTTP-style status
 * for not_found and conflict) with message `what`, and returns the exit code: CLI_EXIT_USAGE
 * for TV_ERR_CONFIG and TV_ERR_INVALID, CLI_EXIT_UPSTREAM otherwise. */
int cli_store_failure(int rc, const char *what);
/* Prints o as one compact JSON line on stdout and drops the reference. CLI_EXIT_OK, or
 * CLI_EXIT_UPSTREAM (reported) when o is NULL (out of memory). */
int cli_json_print(struct json_object *o);
/* Adds key: ISO 8601 time of ms, or null when ms is 0 ("never"). */
void cli_json_add_time(struct json_object *o, const char *key, int64_t ms);
/* True when name is 1..64 characters of [A-Za-z0-9._@-] (account and API key names; API keys
 * further exclude '@'). */
int cli_name_valid(const char *name, int allow_at);

/* What the argument parsing of an admin command needs to know about it. */
struct cli_admin_spec {
    const char *name;           /* "account" */
    const char *subs[5];        /* its subcommands (NULL-padded) */
    const struct cli_opt *opts; /* its own flags */
    size_t nopts;
    void (*usage_fn)(FILE *f);
};
/* Parses `tokenvend NAME SUBCOMMAND [ARGS] [FLAGS]` (argv: the words after NAME; at most one
 * positional word): help, the subcommand among spec->subs, the flags into *a, and cmd set to
 * "NAME SUBCOMMAND" for messages. CLI_EXIT_OK with *sub set: the command goes on; CLI_EXIT_OK
 * with *sub NULL: help was printed; otherwise a usage error was reported. */
int cli_admin_parse(const struct cli_admin_spec *spec, int argc, char **argv, struct cli_args *a,
                    char *cmd, size_t cmdcap, const char **sub);
/* Loads the configuration from *a and opens its database, migrating it if needed. CLI_EXIT_OK or
 * a reported failure's exit code; release cfg (config_release) and st (store_close) either way. */
int cli_admin_store_open(const struct cli_args *a, struct config *cfg, struct store **st);
/* Appends a best-effort audit row for an admin action (caller "cli"): the action already
 * happened, so a failure to record it is logged by the store and not reported. */
void cli_audit_add(struct store *st, const char *action, const char *app_user_id,
                   const char *acs_id, const char *outcome, const char *detail);
/* A new object {key: []} and, in *arr, its array (owned by the object). NULL when out of
 * memory. */
struct json_object *cli_json_list_new(const char *key, struct json_object **arr);

#endif
