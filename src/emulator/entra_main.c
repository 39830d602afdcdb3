/* `acs-emulator entra ...` (or `acs-emulator --entra ...`): argv -> options -> stand-in Entra
 * endpoint; prints its authority URL, then waits for SIGTERM or SIGINT. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "entra.h"
#include "server.h"

#define ENTRA_DEFAULT_TENANT "00000000-0000-0000-0000-0000000e4a11"
#define ENTRA_DEFAULT_TTL_S 3600

static void entra_usage(FILE *f)
{
    fputs("usage: acs-emulator entra [--listen HOST:PORT] [--tenant ID] [--client-id ID]\n"
          "  [--client-secret S] [--federated-issuer URL] [--identity-header VALUE]\n"
          "  [--token-ttl-s N] [--fault none|error|hang|slow] [--fault-delay-ms N]\n"
          "  [--log-level debug|info|warn|error|off]\n"
          "A stand-in Microsoft Entra ID endpoint for tests (\"--entra\" anywhere works too).\n"
          "Prints \"authority=http://HOST:PORT/\" on stdout once listening. Routes:\n"
          "  POST /{tenant}/oauth2/v2.0/token, GET /{tenant}/discovery/v2.0/keys,\n"
          "  GET /{tenant}/v2.0/.well-known/openid-configuration, GET /msi/token (App Service),\n"
          "  GET /metadata/identity/oauth2/token (IMDS), GET|DELETE /entra/requests,\n"
          "  PUT|DELETE /entra/faults.\n"
          "ACS_EMULATOR_ENTRA_CLIENT_SECRET and ACS_EMULATOR_ENTRA_IDENTITY_HEADER in the\n"
          "environment give the secrets without putting them on the command line.\n",
          f);
}

static int entra_int(const char *flag, const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        fprintf(stderr, "acs-emulator entra: %s needs an integer in %lld..%lld\n", flag,
                (long long)min, (long long)max);
        return TV_ERR_INVALID;
    }
    *out = v;
    return 0;
}

/* 0, 1 for --help, or TV_ERR_INVALID. */
static int entra_args(int argc, char **argv, struct emu_entra_opts *o, enum log_level *level)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;

        if (strcmp(a, "entra") == 0 || strcmp(a, "--entra") == 0)
            continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            entra_usage(stdout);
            return 1;
        }
        if (!val || !*val) {
            fprintf(stderr, "acs-emulator entra: unknown option or missing value: %s\n", a);
            return TV_ERR_INVALID;
        }
        if (strcmp(a, "--listen") == 0)
            o->listen = val;
        else if (strcmp(a, "--tenant") == 0)
            o->tenant = val;
        else if (strcmp(a, "--client-id") == 0)
            o->client_id = val;
        else if (strcmp(a, "--client-secret") == 0)
            o->client_secret = val;
        else if (strcmp(a, "--federated-issuer") == 0)
            o->federated_issuer = val;
        else if (strcmp(a, "--identity-header") == 0)
            o->identity_header = val;
        else if (strcmp(a, "--token-ttl-s") == 0)
            rc = entra_int(a, val, 1, 7 * 24 * 3600, &o->ttl_s);
        else if (strcmp(a, "--fault") == 0)
            o->fault = val;
        else if (strcmp(a, "--fault-delay-ms") == 0)
            rc = entra_int(a, val, 0, 120000, &o->fault_delay_ms);
        else if (strcmp(a, "--log-level") == 0) {
            if (log_level_parse(val, level) != 0) {
                fprintf(stderr,
                        "acs-emulator entra: --log-level is debug, info, warn, error or off\n");
                rc = TV_ERR_INVALID;
            }
        } else {
            fprintf(stderr, "acs-emulator entra: unknown option: %s\n", a);
            return TV_ERR_INVALID;
        }
        if (rc != 0)
            return rc;
        i++;
    }
    /* A tenant is a path segment of every route: keep it to a plain id. */
    if (strspn(o->tenant, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") !=
            strlen(o->tenant) ||
        strlen(o->tenant) > 128) {
        fprintf(stderr, "acs-emulator entra: --tenant is 1..128 of [A-Za-z0-9.-]\n");
        return TV_ERR_INVALID;
    }
    return 0;
}

int emu_entra_main(int argc, char **argv)
{
    int status = 2;
    struct emu_entra_opts o = {
        .listen = "127.0.0.1:0",
        .tenant = ENTRA_DEFAULT_TENANT,
        .ttl_s = ENTRA_DEFAULT_TTL_S,
    };
    struct emu_entra *e = NULL;
    enum log_level level = LOGL_INFO;
    sigset_t set;
    int sig = 0;
    int rc;

    /* The secrets may come from the environment instead of the command line, which every
     * user of the host can read in /proc (make run passes them so). */
    o.client_secret = getenv("ACS_EMULATOR_ENTRA_CLIENT_SECRET");
    o.identity_header = getenv("ACS_EMULATOR_ENTRA_IDENTITY_HEADER");
    if (o.client_secret != NULL && o.client_secret[0] == '\0')
        o.client_secret = NULL;
    if (o.identity_header != NULL && o.identity_header[0] == '\0')
        o.identity_header = NULL;
    rc = entra_args(argc, argv, &o, &level);
    if (rc == 1) {
        status = 0;
        goto out;
    }
    if (rc != 0) {
        entra_usage(stderr);
        goto out;
    }
    log_setup(level, 2);
    emu_signals_block(&set);
    status = 1;
    if (emu_entra_start(&o, &e) != 0)
        goto out;
    printf("authority=%s/\n", emu_entra_base(e));
    fflush(stdout);
    log_msg(LOGL_INFO, NULL, "acs-emulator entra stand-in on %s (tenant %s)", emu_entra_base(e),
            o.tenant);
    sig = emu_signals_wait(&set);
    log_msg(LOGL_INFO, NULL, "acs-emulator entra stopping on signal %d", sig);
    status = 0;
out:
    emu_entra_stop(e);
    return status;
}
