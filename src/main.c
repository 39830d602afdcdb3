/* tokenvend entry point: argv -> subcommand. Each subcommand loads the configuration, sets up
 * logging (JSON lines on stderr) from its log_level and runs to completion: the service
 * (`serve`), the ACS client commands (`acs ...`), the store admin commands (`migrate`, `apikey`,
 * `account`, `identity`), `config check`, `quickstart` and `version` (README "Two commands").
 * One table names the commands: dispatch, `help CMD` and the usage text all come from it. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "cli/cli.h"
#include "core/log.h"

struct command {
    const char *name;
    int (*main_fn)(int argc, char **argv); /* the words after the name; NULL: built in */
    void (*usage_fn)(FILE *f);             /* `help NAME`; NULL: the overall usage */
    const char *summary; /* its lines in the overall usage, each "  words   what it does\n" */
};

static int version_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("tokenvend %s\n", TOKENVEND_VERSION);
    return CLI_EXIT_OK;
}

static int help_main(int argc, char **argv);

/* In the order of the usage text. */
static const struct command commands[] = {
    {"acs", cli_acs_main, cli_acs_usage_print,
     "  acs create-user                          create an ACS identity\n"
     "  acs issue ID --scopes LIST [--minutes N] issue a token for identity ID\n"
     "  acs create-user-and-token --scopes LIST [--minutes N]\n"
     "                                           create an identity and a token in one call\n"
     "  acs revoke ID                            revoke all tokens of identity ID\n"
     "  acs delete ID                            delete identity ID\n"
     "  acs teams-exchange (--token T | --token-file PATH) --app-id A --user-id U\n"
     "                                           exchange a Teams user's Entra token\n"},
    {"quickstart", cli_quickstart_main, NULL,
     "  quickstart                               run the ACS access-tokens quickstart\n"},
    {"config", cli_config_main, cli_config_usage_print,
     "  config check                             validate and print the configuration\n"},
    {"version", version_main, NULL,
     "  version                                  print the version\n"},
    {"help", help_main, NULL, "  help                                     show this text\n"},
    {"migrate", cli_migrate_main, cli_migrate_usage_print,
     "  migrate                                  create the database / apply migrations\n"},
    {"apikey", cli_apikey_main, cli_apikey_usage_print,
     "  apikey create NAME | list | revoke NAME | rotate NAME\n"
     "                                           API keys for the internal listener\n"},
    {"account", cli_account_main, cli_account_usage_print,
     "  account add NAME | list | remove NAME    local accounts (password on stdin)\n"},
    {"identity", cli_identity_main, cli_identity_usage_print,
     "  identity list | show ID | delete ID | revoke ID\n"
     "                                           app user -> ACS identity mappings\n"},
    {"outbox", cli_outbox_main, cli_outbox_usage_print,
     "  outbox list | retry ID|--all             pending ACS deletes, and retrying them now\n"},
    {"store", cli_store_main, cli_store_usage_print,
     "  store copy FROM TO                       copy every table to another store\n"},
    {"backup", cli_backup_main, cli_backup_usage_print,
     "  backup FILE [--force]                    online backup of the SQLite database\n"},
    {"healthcheck", cli_healthcheck_main, cli_healthcheck_usage_print,
     "  healthcheck [--internal | --url URL]     GET /readyz: exit 0 on 2xx (for HEALTHCHECK)\n"},
    {"serve", cli_serve_main, cli_serve_usage_print,
     "  serve                                    run the service (public and internal "
     "listeners)\n"},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

/* The command called name, allowing the usual spellings of help and version; NULL if none. */
static const struct command *command_find(const char *name)
{
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
        name = "help";
    else if (strcmp(name, "--version") == 0)
        name = "version";
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(name, commands[i].name) == 0)
            return &commands[i];
    }
    return NULL;
}

static void usage_print(FILE *f)
{
    fputs("Usage: tokenvend COMMAND [ARGS] [FLAGS]\n"
          "\n"
          "tokenvend vends Azure Communication Services (ACS) access tokens.\n"
          "\n"
          "Commands:\n",
          f);
    for (size_t i = 0; i < NCOMMANDS; i++)
        fputs(commands[i].summary, f);
    fputs("\n", f);
    cli_common_flags_print(f);
    fputs("\n"
          "The ACS connection string comes from COMMUNICATION_SERVICES_CONNECTION_STRING (or\n"
          "TOKENVEND_ACS_CONNECTION_STRING, which wins; *_FILE variants read it from a file),\n"
          "or from acs_connection_string in the config file.\n"
          "Results go to stdout as JSON; errors to stderr as {\"error\":{...}}.\n"
          "Exit status: 0 success, 1 ACS or network failure, 2 usage or configuration error.\n",
          f);
}

/* `help [CMD]`: the command's own usage when it has one, else the overall usage. */
static int help_main(int argc, char **argv)
{
    const struct command *c = argc > 0 ? command_find(argv[0]) : NULL;

    if (c != NULL && c->usage_fn != NULL)
        c->usage_fn(stdout);
    else
        usage_print(stdout);
    return CLI_EXIT_OK;
}

int main(int argc, char **argv)
{
    const struct command *c;

    /* Logging until a command's configuration says otherwise. */
    log_setup(LOGL_INFO, 2);
    /* A peer closing a socket must produce an error, not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    /* No core files: a dump would hold the session key, API key hashes' inputs, access keys and
     * every token in flight, written wherever the system puts cores. Secrets are wiped after use,
     * but a crash comes in the middle of one. (Debuggers attach to a running process instead.) */
    (void)setrlimit(RLIMIT_CORE, &(struct rlimit){0, 0});

    if (argc < 2) {
        usage_print(stderr);
        return CLI_EXIT_USAGE;
    }
    if ((c = command_find(argv[1])) == NULL)
        return cli_usage_error("unknown command '%s' (see 'tokenvend help')", argv[1]);
    return c->main_fn(argc - 2, argv + 2);
}
