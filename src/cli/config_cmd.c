/* `tokenvend config check`: loads and validates the configuration the way every command does,
 * and prints the effective values with their sources, secrets redacted. Single-threaded. */
#include <stdio.h>
#include <string.h>

#include "acs/connstr.h"
#include "acs/entra.h"
#include "cli/cli.h"
#include "core/err.h"
#include "core/fsperm.h"
#include "store/store.h"

void cli_config_usage_print(FILE *f)
{
    fputs("Usage: tokenvend config check [--config FILE] [--set NAME=VALUE ...]\n"
          "\n"
          "Loads the configuration (defaults < config file < TOKENVEND_* environment < flags),\n"
          "validates it and prints one `name = value  # source` line per setting, secrets shown\n"
          "as <redacted> or <unset>. Exit 0 when valid, 2 with the error on stderr otherwise.\n"
          "A file a secret comes from (a *_file, or the config file when it sets a secret\n"
          "inline) that group or others may read draws a warning on stderr, as at start.\n"
          "\n",
          f);
    cli_common_flags_print(f);
}

int cli_config_main(int argc, char **argv)
{
    struct cli_args a;
    struct config cfg = {0};
    struct acs_connstr cs = {0};
    static struct entra_desc entra; /* ~12 KiB: static, the CLI runs this once */
    char credential[ENTRA_DESCRIBE_MAX] = "";
    int rc;

    if (cli_help_asked(argc, argv, cli_config_usage_print, &rc))
        return rc;
    if (strcmp(argv[0], "check") != 0)
        return cli_usage_error("config: unknown subcommand '%s' (see 'tokenvend config --help')",
                               argv[0]);
    if ((rc = cli_args_parse("config check", argc - 1, argv + 1, NULL, 0, 0, &a)) != CLI_EXIT_OK)
        return rc;
    if (a.help) {
        cli_config_usage_print(stdout);
        return CLI_EXIT_OK;
    }
    if ((rc = cli_config_load(&a, &cfg)) != CLI_EXIT_OK)
        return rc;
    /* The configuration module cannot parse ACS connection strings (core depends on nothing of
     * ours), so that check lives here. */
    if (cfg.acs_connection_string[0] != '\0' &&
        acs_connstr_parse(cfg.acs_connection_string, &cs) != 0) {
        char msg[CONFIG_SOURCE_MAX + 128];
        snprintf(msg, sizeof msg,
                 "%s: acs_connection_string: malformed; expected "
                 "endpoint=https://HOST/;accesskey=BASE64KEY",
                 config_source(&cfg, "acs_connection_string"));
        cli_print_error("config_error", msg, 0, NULL);
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    {
        char why[512];
        if (store_db_check(cfg.db, why, sizeof why) != 0) {
            char msg[CONFIG_SOURCE_MAX + 600];
            snprintf(msg, sizeof msg, "%s: db: %s", config_source(&cfg, "db"), why);
            cli_print_error("config_error", msg, 0, NULL);
            rc = CLI_EXIT_USAGE;
            goto done;
        }
    }
    /* Keyless mode: which credential the environment picks, as serve would (never a secret). */
    if (cfg.acs_connection_string[0] == '\0' && cfg.acs_endpoint[0] != '\0') {
        struct entra_env env;
        char why[ENTRA_ERR_MAX];
        if (acs_endpoint_check(cfg.acs_endpoint) != 0) {
            cli_print_error("config_error", ACS_ENDPOINT_KEYLESS_HELP, 0, NULL);
            rc = CLI_EXIT_USAGE;
            goto done;
        }
        entra_env_from_process(&env);
        if (entra_select(&env, cfg.imds_endpoint, &entra, why, sizeof why) != 0) {
            cli_print_error("config_error", why, 0, NULL);
            rc = CLI_EXIT_USAGE;
            goto done;
        }
        entra_desc_describe(&entra, credential, sizeof credential);
    }
    /* The files secrets come from (the config file too when it holds one inline): the same
     * warnings as at start, before the service is ever run with them. */
    (void)fsperm_warn_secrets(&cfg);
    config_print(&cfg, stdout, 1);
    if (credential[0] != '\0')
        printf("# keyless mode (Microsoft Entra ID): %s\n", credential);
    fflush(stdout);
    rc = CLI_EXIT_OK;
done:
    entra_desc_clear(&entra);
    acs_connstr_release(&cs);
    config_release(&cfg);
    return rc;
}
