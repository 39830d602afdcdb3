/* `tokenvend serve`: configuration -> app -> serve until SIGTERM/SIGINT -> graceful drain ->
 * store closed. The signals are blocked before any thread starts, so every thread inherits the
 * mask and only the main thread's sigwait() sees them. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "app.h"
#include "cli/cli.h"
#include "core/err.h"
#include "core/log.h"
#include "http/server.h"

/* One listener's operations routes (those outside its API prefix), read from its route table so
 * the help cannot claim a route the listener does not serve. */
static void ops_routes_print(FILE *f, const char *label, const struct http_route *r, size_t n,
                             const char *api_prefix)
{
    size_t plen = strlen(api_prefix);
    int first = 1;

    fprintf(f, "  %-10s", label);
    for (size_t i = 0; i < n; i++) {
        if (strncmp(r[i].pattern, api_prefix, plen) == 0)
            continue;
        fprintf(f, "%s%s %s", first ? "" : ", ", r[i].method, r[i].pattern);
        first = 0;
    }
    fputs("\n", f);
}

void cli_serve_usage_print(FILE *f)
{
    const struct http_route *pub, *in;
    size_t npub = 0, nin = 0;

    pub = api_public_routes(&npub);
    in = api_internal_routes(&nin);
    fputs("Usage: tokenvend serve [--config FILE] [--set NAME=VALUE ...] [--log-level L]\n"
          "\n"
          "Runs the token service: the public API (/api/...) on public_addr\n"
          "(TOKENVEND_PUBLIC_ADDR) and the internal API (/internal/...) on internal_addr\n"
          "(TOKENVEND_INTERNAL_ADDR). Besides its API, each listener serves exactly these:\n",
          f);
    ops_routes_print(f, "public:", pub, npub, "/api/");
    ops_routes_print(f, "internal:", in, nin, "/internal/");
    fputs("Start: runs the checks of `tokenvend config check` (a refusal exits 2), binds both\n"
          "listeners (one that cannot bind exits 2 naming the address and the reason, before\n"
          "the database is created or touched), then applies pending database migrations and\n"
          "logs one \"listening\" line with both bound addresses once it serves. SIGTERM or\n"
          "SIGINT: stop accepting, let in-flight requests finish (shutdown_drain_ms), close the\n"
          "database, exit 0.\n"
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
    {
        char which[CONFIG_DESCRIBE_MAX];
        config_file_describe(&cfg, which, sizeof which);
        log_msg(LOGL_INFO, NULL, "%s", which);
    }

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
