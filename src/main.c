/* tokenvend entry point: argv -> subcommand. Each subcommand loads the configuration, sets up
 * logging (JSON lines on stderr) from its log_level and runs to completion: the service
 * (`serve`), the ACS client commands (`acs ...`), the store admin commands (`migrate`, `apikey`,
 * `account`, `identity`), `config check`, `quickstart` and `version` (README "Two commands"). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/log.h"

int main(int argc, char **argv)
{
    const char *cmd;
    int rc;

    /* Logging until a command's configuration says otherwise. */
    log_setup(LOGL_INFO, 2);
    /* A peer closing a socket must produce an error, not kill the process. */
    signal(SIGPIPE, SIG_IGN);

    if (argc < 2) {
        cli_usage_print(stderr);
        return CLI_EXIT_USAGE;
    }
    cmd = argv[1];
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        if (argc > 2 && strcmp(argv[2], "acs") == 0)
            cli_acs_usage_print(stdout);
        else if (argc > 2 && strcmp(argv[2], "config") == 0)
            cli_config_usage_print(stdout);
        else if (argc > 2 && strcmp(argv[2], "serve") == 0)
            cli_serve_usage_print(stdout);
        else if (argc > 2 && cli_admin_usage_print(argv[2], stdout) == 0)
            return CLI_EXIT_OK;
        else
            cli_usage_print(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("tokenvend %s\n", TOKENVEND_VERSION);
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "serve") == 0)
        return cli_serve_main(argc - 2, argv + 2);
    if (cli_admin_dispatch(cmd, argc - 2, argv + 2, &rc) == 0)
        return rc;
    if (strcmp(cmd, "acs") != 0 && strcmp(cmd, "quickstart") != 0 && strcmp(cmd, "config") != 0)
        return cli_usage_error("unknown command '%s' (see 'tokenvend help')", cmd);
    if (strcmp(cmd, "acs") == 0)
        rc = cli_acs_main(argc - 2, argv + 2);
    else if (strcmp(cmd, "quickstart") == 0)
        rc = cli_quickstart_main(argc - 2, argv + 2);
    else
        rc = cli_config_main(argc - 2, argv + 2);
    return rc;
}
