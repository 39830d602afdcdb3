/* Helpers shared by the store admin commands (migrate, apikey, account, identity): opening the
 * store from the configuration, reporting store failures with the CLI's exit codes, and JSON
 * output. Single-threaded. */
#ifndef TV_CLI_ADMIN_H
#define TV_CLI_ADMIN_H

#include <stdint.h>
#include <stdio.h>

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

/* Subcommand usage texts. */
void cli_migrate_usage_print(FILE *f);
void cli_apikey_usage_print(FILE *f);
void cli_account_usage_print(FILE *f);
void cli_identity_usage_print(FILE *f);

#endif
