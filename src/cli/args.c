/* The CLI's shared pieces: the flag parser every subcommand uses, configuration loading for a
 * command, JSON error lines and the top-level usage text. Single-threaded. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"

void cli_print_error(const char *code, const char *message, long status, const char *acs_code)
{
    struct json_object *root = json_object_new_object();
    struct json_object *e = json_object_new_object();

    if (root == NULL || e == NULL) {
        fprintf(stderr, "{\"error\":{\"code\":\"out_of_memory\"}}\n");
        json_object_put(root);
        json_object_put(e);
        return;
    }
    json_object_object_add(e, "code", json_object_new_string(code));
    json_object_object_add(e, "message", json_object_new_string(message));
    json_object_object_add(e, "status", status > 0 ? json_object_new_int64(status) : NULL);
    json_object_object_add(e, "acsCode",
                           acs_code && acs_code[0] ? json_object_new_string(acs_code) : NULL);
    json_object_object_add(root, "error", e);
    fprintf(stderr, "%s\n", jsonx_compact(root));
    fflush(stderr);
    json_object_put(root);
}

int cli_usage_error(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cli_print_error("usage_error", msg, 0, NULL);
    return CLI_EXIT_USAGE;
}

static int add_cfg_flag(const char *cmd, struct cli_args *a, const char *name, size_t namelen,
                        const char *value, const char *flag)
{
    if (a->ncfg_flags == CLI_MAX_CONFIG_FLAGS)
        return cli_usage_error("%s: too many --set flags (at most %d)", cmd, CLI_MAX_CONFIG_FLAGS);
    if (namelen == 0 || namelen >= CLI_NAME_MAX)
        return cli_usage_error("%s: %s needs NAME=VALUE with a setting name", cmd, flag);
    char *dst = a->cfg_names[a->ncfg_flags];
    memcpy(dst, name, namelen);
    dst[namelen] = '\0';
    a->cfg_flags[a->ncfg_flags].name = dst;
    a->cfg_flags[a->ncfg_flags].value = value;
    a->cfg_flags[a->ncfg_flags].flag = flag;
    a->ncfg_flags++;
    return CLI_EXIT_OK;
}

int cli_args_parse(const char *cmd, int argc, char **argv, const struct cli_opt *opts, size_t nopts,
                   size_t max_pos, struct cli_args *out)
{
    int flags_done = 0;

    memset(out, 0, sizeof *out);
    for (int i = 0; i < argc; i++) {
        const char *w = argv[i];
        if (flags_done || w[0] != '-' || strcmp(w, "-") == 0) {
            if (out->npos >= max_pos || out->npos >= CLI_MAX_POS)
                return cli_usage_error("%s: unexpected argument '%s'", cmd, w);
            out->pos[out->npos++] = w;
            continue;
        }
        if (strcmp(w, "--") == 0) {
            flags_done = 1;
            continue;
        }
        if (strcmp(w, "-h") == 0 || strcmp(w, "--help") == 0) {
            out->help = 1;
            continue;
        }
        if (w[1] != '-')
            return cli_usage_error("%s: unknown flag '%s'", cmd, w);

        /* --name VALUE or --name=VALUE; every flag but --help and a command's switches takes a
         * value. */
        const char *name = w + 2;
        const char *eq = strchr(name, '=');
        size_t namelen = eq ? (size_t)(eq - name) : strlen(name);
        const char *value = eq ? eq + 1 : NULL;
        char shown[CLI_NAME_MAX];
        snprintf(shown, sizeof shown, "--%.*s", (int)(namelen < 40 ? namelen : 40), name);

        int idx = -1;
        int common = 0;
        if (namelen == 6 && memcmp(name, "config", 6) == 0)
            common = 1;
        else if (namelen == 3 && memcmp(name, "set", 3) == 0)
            common = 2;
        else if (namelen == 9 && memcmp(name, "log-level", 9) == 0)
            common = 3;
        for (size_t j = 0; common == 0 && j < nopts && j < CLI_MAX_OPTS; j++) {
            if (strlen(opts[j].name) == namelen && memcmp(opts[j].name, name, namelen) == 0)
                idx = (int)j;
        }
        if (common == 0 && idx < 0)
            return cli_usage_error("%s: unknown flag '%s' (see 'tokenvend %s --help')", cmd, shown,
                                   cmd);
        if (idx >= 0 && opts[idx].arg == NULL) {
            /* A switch (its table entry has no ARG): present or absent, never a value. */
            if (value != NULL)
                return cli_usage_error("%s: flag %s takes no value", cmd, shown);
            out->values[idx] = "1";
            continue;
        }
        if (value == NULL) {
            if (i + 1 >= argc)
                return cli_usage_error("%s: flag %s needs a value", cmd, shown);
            value = argv[++i];
        }
        int rc = CLI_EXIT_OK;
        if (common == 1) {
            out->config_path = value;
        } else if (common == 2) {
            const char *veq = strchr(value, '=');
            if (veq == NULL)
                return cli_usage_error("%s: --set needs NAME=VALUE, got '%s'", cmd, value);
            rc = add_cfg_flag(cmd, out, value, (size_t)(veq - value), veq + 1, "--set");
        } else if (common == 3) {
            rc = add_cfg_flag(cmd, out, "log_level", 9, value, "--log-level");
        } else {
            out->values[idx] = value;
        }
        if (rc != CLI_EXIT_OK)
            return rc;
    }
    return CLI_EXIT_OK;
}

int cli_config_load(const struct cli_args *a, struct config *cfg)
{
    char err[CONFIG_ERR_MAX];
    struct config_overrides ov = {
        .config_path = a->config_path,
        .flags = a->cfg_flags,
        .nflags = a->ncfg_flags,
    };

    if (config_load(&ov, cfg, err, sizeof err) != 0) {
        cli_print_error("config_error", err, 0, NULL);
        return CLI_EXIT_USAGE;
    }
    log_setup(cfg->log_level, 2);
    return CLI_EXIT_OK;
}

int cli_help_asked(int argc, char **argv, void (*usage_fn)(FILE *f), int *rc)
{
    if (argc < 1 || strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "--help") == 0 ||
        strcmp(argv[0], "help") == 0) {
        usage_fn(argc < 1 ? stderr : stdout);
        *rc = argc < 1 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
        return 1;
    }
    return 0;
}

void cli_opts_print(FILE *f, const struct cli_opt *opts, size_t nopts)
{
    for (size_t i = 0; i < nopts; i++) {
        char left[40];
        snprintf(left, sizeof left, "--%s%s%s", opts[i].name, opts[i].arg ? " " : "",
                 opts[i].arg ? opts[i].arg : "");
        fprintf(f, "  %-22s %s\n", left, opts[i].help);
    }
}

void cli_common_flags_print(FILE *f)
{
    fputs(
        "Common flags (every command):\n"
        "  --config FILE          read settings from FILE (else the file TOKENVEND_CONFIG names,\n"
        "                         else the first present of " CONFIG_SYSTEM_DIR "/" CONFIG_FILE_NAME
        "\n"
        "                         (or $TOKENVEND_CONFIG_DIR/" CONFIG_FILE_NAME ") and "
        "config/tokenvend.conf)\n"
        "  --set NAME=VALUE       override one setting (repeatable; NAME_file=PATH reads it "
        "from a file)\n"
        "  --log-level LEVEL      debug, info, warn, error or off (logs go to stderr)\n"
        "  -h, --help             show help\n",
        f);
}
