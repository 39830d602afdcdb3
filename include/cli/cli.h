/* The `tokenvend` command-line interface: subcommands, their shared argument parser, and the
 * uniform output rules (one JSON object on stdout per result, JSON errors on stderr, exit codes
 * CLI_EXIT_*). Single-threaded; each command blocks until done. */
#ifndef TV_CLI_CLI_H
#define TV_CLI_CLI_H

#include <stddef.h>

#include "core/config.h"

#define TOKENVEND_VERSION "0.1.0"

enum cli_exit {
    CLI_EXIT_OK = 0,       /* success */
    CLI_EXIT_UPSTREAM = 1, /* ACS (or the network to it) failed */
    CLI_EXIT_USAGE = 2,    /* bad command line or configuration */
};

#define CLI_MAX_POS 4
#define CLI_MAX_OPTS 8
#define CLI_MAX_CONFIG_FLAGS 32
#define CLI_NAME_MAX 64

/* A command-specific flag: `--name VALUE` (or `--name=VALUE`), or a switch `--name`. */
struct cli_opt {
    const char *name; /* without the dashes */
    const char *arg;  /* placeholder shown in help, e.g. "LIST"; NULL: a switch (value "1") */
    const char *help;
};

/* Parsed command line of one subcommand. Values borrow from argv. */
struct cli_args {
    const char *pos[CLI_MAX_POS];
    size_t npos;
    const char *values[CLI_MAX_OPTS]; /* by index into the command's cli_opt table; NULL: absent */
    int help;                         /* -h or --help given */
    const char *config_path;          /* --config FILE */
    struct config_flag cfg_flags[CLI_MAX_CONFIG_FLAGS]; /* --set name=value, --log-level L */
    char cfg_names[CLI_MAX_CONFIG_FLAGS][CLI_NAME_MAX];
    size_t ncfg_flags;
};

/* Parses argv[0..argc) (the words after the subcommand) against opts (nopts <= CLI_MAX_OPTS)
 * plus the common flags --config, --set, --log-level, -h/--help. At most max_pos positional
 * words. On error prints a usage error naming `cmd` to stderr and returns CLI_EXIT_USAGE. */
int cli_args_parse(const char *cmd, int argc, char **argv, const struct cli_opt *opts, size_t nopts,
                   size_t max_pos, struct cli_args *out);
/* True when a command's words (argv[0..argc), after the command name) are empty or ask for help
 * (-h, --help, help): then usage_fn has printed the usage (on stderr when empty) and *rc holds
 * the exit code (CLI_EXIT_USAGE when empty, else CLI_EXIT_OK). */
int cli_help_asked(int argc, char **argv, void (*usage_fn)(FILE *f), int *rc);
/* Prints a command's own flags, one "  --name ARG   help" line each. */
void cli_opts_print(FILE *f, const struct cli_opt *opts, size_t nopts);
/* Loads the configuration from the parsed common flags and sets up logging from it.
 * CLI_EXIT_OK, or CLI_EXIT_USAGE after printing the error; release cfg with config_release. */
int cli_config_load(const struct cli_args *a, struct config *cfg);

/* Prints {"error":{"code","message","status","acsCode"}} as one line on stderr. status 0 and
 * acs_code NULL are printed as null. */
void cli_print_error(const char *code, const char *message, long status, const char *acs_code);
/* Prints a usage error (code "usage_error") and returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Subcommands. argv holds the words after the command name ("acs", "quickstart", ...). Each
 * returns a CLI_EXIT_* code. */
int cli_acs_main(int argc, char **argv);
int cli_quickstart_main(int argc, char **argv);
int cli_config_main(int argc, char **argv);
/* `tokenvend serve` (src/cli/serve.c): runs the service until SIGTERM/SIGINT. */
int cli_serve_main(int argc, char **argv);
void cli_serve_usage_print(FILE *f);
/* The store admin commands (src/cli/migrate.c, apikey_cmd.c, account_cmd.c, identity_cmd.c). */
int cli_migrate_main(int argc, char **argv);
int cli_apikey_main(int argc, char **argv);
int cli_account_main(int argc, char **argv);
int cli_identity_main(int argc, char **argv);
/* `tokenvend outbox list|retry` (src/cli/outbox_cmd.c). */
int cli_outbox_main(int argc, char **argv);
void cli_outbox_usage_print(FILE *f);
/* `tokenvend store copy|check FROM TO` (src/cli/store_cmd.c). */
int cli_store_main(int argc, char **argv);
void cli_store_usage_print(FILE *f);
/* `tokenvend backup FILE [--force]` (src/cli/backup_cmd.c). */
int cli_backup_main(int argc, char **argv);
void cli_backup_usage_print(FILE *f);
/* `tokenvend healthcheck` (src/cli/healthcheck.c): one GET to this instance's /readyz (or
 * --url) for a container HEALTHCHECK; 0 on 2xx, 1 otherwise (never 2, which Docker reserves). */
int cli_healthcheck_main(int argc, char **argv);
void cli_healthcheck_usage_print(FILE *f);
/* Usage texts on f (the overall usage is main.c's, from its command table). */
void cli_acs_usage_print(FILE *f);
void cli_config_usage_print(FILE *f);
void cli_migrate_usage_print(FILE *f);
void cli_apikey_usage_print(FILE *f);
void cli_account_usage_print(FILE *f);
void cli_identity_usage_print(FILE *f);
void cli_common_flags_print(FILE *f);

#endif
