/* `tokenvend serve`: configuration -> app -> serve until SIGTERM/SIGINT -> graceful drain ->
 * store closed. The signals are blocked before any thread starts, so every thread inherits the
 * mask and only the main thread's sigwait() sees them. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "cli/cli.h"
#include "core/err.h"
#include "core/log.h"

void cli_serve_usage_print(FILE *f)
{
    fputs("Usage: tokenvend serve [--config FILE] [--set NAME=VALUE ...] [--log-level L]\n"
          "\n"
          "Runs the token service: the public API on public_addr (TOKENVEND_PUBLIC_ADDR), the\n"
          "internal API on internal_addr (TOKENVEND_INTERNAL_ADDR), both with /healthz, /readyz\n"
          "and /metrics. Applies pending database migrations at start. Logs one \"listening\"\n"
          "line with both bound addresses once it serves. SIGTERM or SIGINT: stop accepting,\n"
          "let in-flight requests finish (shutdown_drain_ms), close the database, exit 0.\n"
          "\n",
          f);
    cli_common_flags_print(f);
}

int cli_serve_main(int argc, char **argv)
{
    struct cli_args a;
    struct config cfg = {0};
    struct app *app = NULL;
    sigset_t set;
    int rc, sig = 0;

    if ((rc = cli_args_parse("serve", argc, argv, NULL, 0, 0, &a)) != CLI_EXIT_OK)
        return rc;
    if (a.help) {
        cli_serve_usage_print(stdout);
        return CLI_EXIT_OK;
    }
    if ((rc = cli_config_load(&a, &cfg)) != CLI_EXIT_OK)
        return rc;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    if ((rc = app_new(&cfg, &app)) != 0) {
        cli_print_error(err_name(rc), "tokenvend serve could not start (see the log above)", 0,
                        NULL);
        rc = rc == TV_ERR_CONFIG ? CLI_EXIT_USAGE : CLI_EXIT_UPSTREAM;
        goto done;
    }
    if ((rc = app_start(app)) != 0) {
        cli_print_error(err_name(rc), "tokenvend serve could not start (see the log above)", 0,
                        NULL);
        rc = CLI_EXIT_UPSTREAM;
        goto done;
    }
    while (sigwait(&set, &sig) != 0)
        ;
    log_msg(LOGL_INFO, NULL, "received %s: draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    rc = CLI_EXIT_OK;
done:
    app_free(app);
    if (rc == CLI_EXIT_OK)
        log_msg(LOGL_INFO, NULL, "shut down cleanly");
    config_release(&cfg);
    return rc;
}
