/* `tokenvend config check`: loads the configuration the way every command does, runs serve's
 * start-up checks on it (app_config_check, the one both call), and prints the effective values
 * with their sources, secrets redacted, and the file they came from. Single-threaded. */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "app.h"
#include "cli/cli.h"
#include "core/fsperm.h"

void cli_config_usage_print(FILE *f)
{
    fputs("Usage: tokenvend config check [--strict] [--config FILE] [--set NAME=VALUE ...]\n"
          "\n"
          "Loads the configuration (defaults < config file < TOKENVEND_* environment < flags),\n"
          "runs every check `tokenvend serve` runs before it starts and prints one\n"
          "`name = value  # source` line per setting, secrets shown as <redacted> or <unset>,\n"
          "then which configuration file was read. Exit 0 when valid, 2 with the error on\n"
          "stderr otherwise. It calls nobody (ACS, the identity provider); each listener\n"
          "address is checked with a socket bound on port 0 and closed (whether the port is\n"
          "free shows only when serve binds it); an existing SQLite database is opened\n"
          "read-only for its schema version and whether TOKENVEND_SECRET_KEY opens its session\n"
          "key (never created or migrated); a PostgreSQL database is not contacted.\n"
          "Warnings go to stderr as log lines, as serve logs them at start: a TOKENVEND_*\n"
          "variable no setting reads (with the name it likely misspells), no way for app users\n"
          "to log in, a file a secret comes from (a *_file, or the config file when it sets a\n"
          "secret inline) that group or others may read, a configuration file (or its\n"
          "directory) that group or others may write. --strict: exit 2 when there is any.\n"
          "\n",
          f);
    cli_common_flags_print(f);
}

static const struct cli_opt config_opts[] = {
    {"strict", NULL, "exit 2 when there is any warning"},
};

int cli_config_main(int argc, char **argv)
{
    struct cli_args a;
    struct config cfg = {0};
    static struct app_check chk; /* ~5 KiB: static, the CLI runs this once */
    char which[CONFIG_DESCRIBE_MAX];
    int rc, strict;
    unsigned warnings;

    if (cli_help_asked(argc, argv, cli_config_usage_print, &rc))
        return rc;
    if (strcmp(argv[0], "check") != 0)
        return cli_usage_error("config: unknown subcommand '%s' (see 'tokenvend config --help')",
                               argv[0]);
    if ((rc = cli_args_parse("config check", argc - 1, argv + 1, config_opts,
                             sizeof config_opts / sizeof config_opts[0], 0, &a)) != CLI_EXIT_OK)
        return rc;
    strict = a.values[0] != NULL;
    if (a.help) {
        cli_config_usage_print(stdout);
        return CLI_EXIT_OK;
    }
    if ((rc = cli_config_load(&a, &cfg)) != CLI_EXIT_OK)
        return rc;
    /* serve's own checks, the same function: what passes here passes there. */
    if (app_config_check(&cfg, &chk) != 0) {
        cli_print_error("config_error", chk.why, 0, NULL);
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    /* The files secrets come from (the config file too when it holds one inline): the same
     * warnings as at start, before the service is ever run with them. */
    warnings = chk.warnings + (unsigned)fsperm_warn_secrets(&cfg);
    config_print(&cfg, stdout, 1);
    config_file_describe(&cfg, which, sizeof which);
    printf("# %s\n", which);
    if (chk.credential[0] != '\0')
        printf("# keyless mode (Microsoft Entra ID): %s\n", chk.credential);
    fflush(stdout);
    rc = CLI_EXIT_OK;
    if (strict && warnings > 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "%u warning%s (see above) and --strict was given", warnings,
                 warnings == 1 ? "" : "s");
        cli_print_error("config_error", msg, 0, NULL);
        rc = CLI_EXIT_USAGE;
    }
done:
    OPENSSL_cleanse(&chk, sizeof chk);
    config_release(&cfg);
    return rc;
}
