/* acs-emulator: argv -> config -> app -> server; prints the connection string, then waits for
 * SIGTERM or SIGINT and tears down in reverse. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "acs/connstr.h"
#include "core/b64.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "app.h"
#include "entra.h"
#include "reuse.h"
#include "server.h"

static void main_usage(FILE *f)
{
    fputs(
        "usage: acs-emulator --listen HOST:PORT [--access-key BASE64 | --access-key-from FILE]\n"
        "  [--db FILE]\n"
        "  [--token-ttl-seconds N] [--latency-ms N] [--throttle-rate R] [--retry-after-ms N]\n"
        "  [--error-rate R] [--error-status N] [--drop-rate R] [--rate-limit-create N]\n"
        "  [--rate-limit-issue N] [--rate-limit-revoke N] [--rate-limit-delete N]\n"
        "  [--rate-limit-window-s N] [--no-rate-limits] [--max-clock-skew-s N]\n"
        "  [--threads N] [--log-level debug|info|warn|error|off] [--reuse-signed-token-s N]\n"
        "  [--entra-jwks URL|FILE [--entra-issuer ISS] [--entra-only]]\n"
        "   or: acs-emulator entra --help (the stand-in Entra ID endpoint)\n"
        "--access-key-from FILE: the access key of the ACS connection string in FILE\n"
        "  (endpoint=...;accesskey=BASE64), e.g. the secret tokenvend reads, so the two cannot\n"
        "  differ and the key is not on the command line.\n"
        "--entra-only: refuse the HMAC signature, so that only Entra bearer tokens work (shows\n"
        "  that a client really runs keyless).\n"
        "Prints \"endpoint=http://HOST:PORT/;accesskey=BASE64\" on stdout once listening\n"
        "  (only \"endpoint=http://HOST:PORT/\" with --access-key-from: the file keeps the key).\n"
        "--reuse-signed-token-s N (benchmarks only; default 0 = off): an issue for the same\n"
        "  identity, scopes and expiresInMinutes within the same N-second bucket (1..3600)\n"
        "  returns the token signed first, same exp and expiresOn, instead of signing a new\n"
        "  one; a revoke or delete still ends it, and stats count every request. It makes the\n"
        "  emulator behave like an ACS whose signing cost is not on this machine.\n",
        f);
}

static int main_int(const char *flag, const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        fprintf(stderr, "acs-emulator: %s needs an integer in %lld..%lld\n", flag, (long long)min,
                (long long)max);
        return TV_ERR_INVALID;
    }
    *out = v;
    return 0;
}

static int main_rate(const char *flag, const char *s, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0.0 && v <= 1.0)) {
        fprintf(stderr, "acs-emulator: %s needs a number in 0..1\n", flag);
        return TV_ERR_INVALID;
    }
    *out = v;
    return 0;
}

/* Replaces *key (and cfg's view of it) with a copy of len bytes of k. 0 or TV_ERR_NOMEM. */
static int main_key_set(struct emu_config *cfg, uint8_t **key, const uint8_t *k, size_t len)
{
    uint8_t *copy = malloc(len);

    if (!copy)
        return TV_ERR_NOMEM;
    memcpy(copy, k, len);
    if (*key) {
        OPENSSL_cleanse(*key, cfg->access_key_len);
        free(*key);
    }
    *key = copy;
    cfg->access_key = copy;
    cfg->access_key_len = len;
    return 0;
}

/* --access-key-from FILE: the key of the connection string in FILE, parsed by the same code as
 * tokenvend's, so a compose file can hand both programs one secret file and no shell is needed
 * to cut the key out of it. 0 or TV_ERR_INVALID (said on stderr, never the file's text). */
static int main_key_from_file(const char *path, struct emu_config *cfg, uint8_t **key)
{
    char why[256] = "";
    char *text = NULL;
    struct acs_connstr cs = {0};
    int rc = TV_ERR_INVALID;

    if (config_read_value_file(path, ACS_CONNSTR_MAX, &text, why, sizeof why) != 0) {
        fprintf(stderr, "acs-emulator: --access-key-from: %s\n", why[0] ? why : "out of memory");
        goto done;
    }
    if (acs_connstr_parse(text, &cs) != 0) {
        fprintf(stderr,
                "acs-emulator: --access-key-from %s: not an ACS connection string "
                "(endpoint=URL;accesskey=BASE64)\n",
                path);
        goto done;
    }
    if (cs.key_len == 0 || cs.key_len > EMU_KEY_MAX) {
        fprintf(stderr, "acs-emulator: --access-key-from %s: the access key must be 1..%d bytes\n",
                path, EMU_KEY_MAX);
        goto done;
    }
    if (main_key_set(cfg, key, cs.key, cs.key_len) != 0) {
        fprintf(stderr, "acs-emulator: out of memory\n");
        goto done;
    }
    rc = 0;
done:
    acs_connstr_release(&cs);
    if (text) {
        OPENSSL_cleanse(text, strlen(text));
        free(text);
    }
    return rc;
}

/* Parses argv into cfg. *key receives the decoded --access-key (caller wipes and frees);
 * *key_file the path of --access-key-from when that option gave the key (the last key option
 * wins), else NULL. 0, 1 for --help, or TV_ERR_INVALID. */
static int main_args(int argc, char **argv, struct emu_config *cfg, uint8_t **key,
                     const char **key_file, enum log_level *level)
{
    int64_t v = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        int rc = 0;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            main_usage(stdout);
            return 1;
        } else if (strcmp(a, "--no-rate-limits") == 0) {
            cfg->no_rate_limits = 1;
            takes = 0;
        } else if (strcmp(a, "--entra-only") == 0) {
            cfg->entra_only = 1;
            takes = 0;
        } else if (!val) {
            fprintf(stderr, "acs-emulator: unknown option or missing value: %s\n", a);
            return TV_ERR_INVALID;
        } else if (strcmp(a, "--listen") == 0) {
            cfg->listen = val;
        } else if (strcmp(a, "--access-key") == 0) {
            size_t len = 0;
            if (*key) {
                OPENSSL_cleanse(*key, cfg->access_key_len);
                free(*key);
                *key = NULL;
            }
            if (b64_decode(val, strlen(val), key, &len) != 0 || len == 0 || len > EMU_KEY_MAX) {
                fprintf(stderr, "acs-emulator: --access-key must be base64 of 1..%d bytes\n",
                        EMU_KEY_MAX);
                return TV_ERR_INVALID;
            }
            cfg->access_key = *key;
            cfg->access_key_len = len;
            *key_file = NULL;
        } else if (strcmp(a, "--access-key-from") == 0) {
            rc = main_key_from_file(val, cfg, key);
            *key_file = val;
        } else if (strcmp(a, "--db") == 0) {
            cfg->db_path = val;
        } else if (strcmp(a, "--token-ttl-seconds") == 0) {
            rc = main_int(a, val, 1, 366LL * 24 * 3600, &cfg->token_ttl_s);
        } else if (strcmp(a, "--latency-ms") == 0) {
            rc = main_int(a, val, 0, EMU_FAULT_LATENCY_MAX_MS, &cfg->faults.latency_ms);
        } else if (strcmp(a, "--throttle-rate") == 0) {
            rc = main_rate(a, val, &cfg->faults.throttle_rate);
        } else if (strcmp(a, "--retry-after-ms") == 0) {
            rc = main_int(a, val, 0, 3600 * 1000, &cfg->faults.retry_after_ms);
        } else if (strcmp(a, "--error-rate") == 0) {
            rc = main_rate(a, val, &cfg->faults.error_rate);
        } else if (strcmp(a, "--error-status") == 0) {
            rc = main_int(a, val, 500, 599, &v);
            if (rc == 0)
                cfg->faults.error_status = (int)v;
        } else if (strcmp(a, "--drop-rate") == 0) {
            rc = main_rate(a, val, &cfg->faults.drop_rate);
        } else if (strcmp(a, "--rate-limit-create") == 0) {
            rc = main_int(a, val, 0, INT32_MAX, &cfg->rate_limits[EMU_OP_CREATE]);
        } else if (strcmp(a, "--rate-limit-issue") == 0) {
            rc = main_int(a, val, 0, INT32_MAX, &cfg->rate_limits[EMU_OP_ISSUE]);
        } else if (strcmp(a, "--rate-limit-revoke") == 0) {
            rc = main_int(a, val, 0, INT32_MAX, &cfg->rate_limits[EMU_OP_REVOKE]);
        } else if (strcmp(a, "--rate-limit-delete") == 0) {
            rc = main_int(a, val, 0, INT32_MAX, &cfg->rate_limits[EMU_OP_DELETE]);
        } else if (strcmp(a, "--rate-limit-window-s") == 0) {
            rc = main_int(a, val, 1, 24 * 3600, &cfg->rate_window_s);
        } else if (strcmp(a, "--max-clock-skew-s") == 0) {
            rc = main_int(a, val, 0, 365LL * 24 * 3600, &cfg->max_skew_s);
        } else if (strcmp(a, "--threads") == 0) {
            rc = main_int(a, val, 1, 256, &v);
            if (rc == 0)
                cfg->threads = (unsigned)v;
        } else if (strcmp(a, "--reuse-signed-token-s") == 0) {
            rc = main_int(a, val, 0, EMU_REUSE_MAX_S, &cfg->reuse_signed_token_s);
        } else if (strcmp(a, "--entra-jwks") == 0) {
            cfg->entra_jwks = val;
        } else if (strcmp(a, "--entra-issuer") == 0) {
            cfg->entra_issuer = val;
        } else if (strcmp(a, "--log-level") == 0) {
            if (log_level_parse(val, level) != 0) {
                fprintf(stderr, "acs-emulator: --log-level is debug, info, warn, error or off\n");
                rc = TV_ERR_INVALID;
            }
        } else {
            fprintf(stderr, "acs-emulator: unknown option: %s\n", a);
            return TV_ERR_INVALID;
        }
        if (rc != 0)
            return rc;
        i += takes;
    }
    if (cfg->entra_only && !cfg->entra_jwks) {
        fprintf(stderr, "acs-emulator: --entra-only needs --entra-jwks\n");
        return TV_ERR_INVALID;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int status = 2;
    struct emu_config cfg;
    struct emu_app app;
    struct emu_server *srv = NULL;
    uint8_t *key = NULL;
    const char *key_file = NULL;
    enum log_level level = LOGL_INFO;
    sigset_t set;
    int sig = 0;
    char *enc = NULL;
    int rc;

    /* The stand-in Entra endpoint is a mode of its own: `entra` as the subcommand or `--entra`
     * among the options (so the tests' harness, which puts --listen first, can start it). */
    for (int i = 1; i < argc; i++)
        if ((i == 1 && strcmp(argv[i], "entra") == 0) || strcmp(argv[i], "--entra") == 0)
            return emu_entra_main(argc, argv);
    memset(&app, 0, sizeof(app));
    emu_config_defaults(&cfg);
    rc = main_args(argc, argv, &cfg, &key, &key_file, &level);
    if (rc == 1) {
        status = 0;
        goto out;
    }
    if (rc != 0) {
        main_usage(stderr);
        goto out;
    }
    log_setup(level, 2);
    emu_signals_block(&set);

    status = 1;
    if (emu_app_init(&app, &cfg) != 0)
        goto out;
    if (emu_server_start(&app, &cfg, &srv) != 0)
        goto out;
    if (key_file) {
        /* A key from a file is a secret someone else keeps (a compose secret, maybe the real
         * ACS key): stdout ends up in container logs, so only the endpoint is printed and the
         * reader takes the key from the file it already has. */
        printf("endpoint=http://%s:%u/\n", emu_server_host(srv), (unsigned)emu_server_port(srv));
        log_msg(LOGL_INFO, NULL, "acs-emulator: access key from %s (not printed)", key_file);
    } else {
        /* Generated or given on the command line: the caller has no other way to learn it
         * (make run and the tests read it from here). */
        enc = malloc(b64_encoded_size(app.access_key_len));
        if (!enc)
            goto out;
        b64_encode(app.access_key, app.access_key_len, enc);
        printf("endpoint=http://%s:%u/;accesskey=%s\n", emu_server_host(srv),
               (unsigned)emu_server_port(srv), enc);
        OPENSSL_cleanse(enc, strlen(enc));
    }
    fflush(stdout);
    log_msg(LOGL_INFO, NULL, "acs-emulator listening on %s:%u (resource %s)", emu_server_host(srv),
            (unsigned)emu_server_port(srv), app.resource_id);
    sig = emu_signals_wait(&set);
    log_msg(LOGL_INFO, NULL, "acs-emulator stopping on signal %d", sig);
    status = 0;
out:
    emu_server_stop(srv);
    emu_app_release(&app);
    if (key) {
        OPENSSL_cleanse(key, cfg.access_key_len);
        free(key);
    }
    free(enc);
    return status;
}
