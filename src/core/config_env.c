/* What surrounds the settings: which configuration file was read, and the TOKENVEND_* variables
 * of the environment that no setting reads (a misspelt name would otherwise be ignored without a
 * word, and the default it leaves in place found out in production). Reads environ: call at start,
 * from one thread. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_int.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"

extern char **environ;

/* Variables read outside the settings table; the modules that read them name them too. */
static const char *const env_extra[] = {
    CONFIG_ENV_FILE,
    CONFIG_ENV_DIR,
    "TOKENVEND_ARGON2", /* auth/password.h PASSWORD_ENV_PARAMS: the password hashing cost */
    /* Read by compose.replicas.yaml (the published port), not by tokenvend: an operator who
     * exports it for compose is not warned by every tokenvend command in that shell. */
    "TOKENVEND_PORT",
};

#define NEXTRA (sizeof env_extra / sizeof env_extra[0])
#define FILE_SUFFIX "_FILE"
#define PREFIX_LEN (sizeof CONFIG_ENV_PREFIX - 1)

/* Whether a default configuration path holds a file: 1 a regular file (through symlinks), 0
 * nothing at all. Anything else there (a dangling symlink: a configuration mount that did not
 * come up; a directory; a file stat cannot reach) is -1 with the path in err: going on to the
 * next candidate would read another file without a word. */
static int config_file_present(const char *p, char *err, size_t errlen)
{
    struct stat lsb, sb;

    if (lstat(p, &lsb) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        if (errlen > 0)
            snprintf(err, errlen, "configuration file %s: %s", p, strerror(errno));
        return -1;
    }
    if (stat(p, &sb) != 0) {
        if (errlen > 0)
            snprintf(err, errlen, "configuration file %s: %s%s", p, strerror(errno),
                     S_ISLNK(lsb.st_mode) ? " (a symbolic link to nothing)" : "");
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) {
        if (errlen > 0)
            snprintf(err, errlen, "configuration file %s: not a regular file", p);
        return -1;
    }
    return 1;
}

int config_file_pick(const struct config_overrides *ov, char *sys, size_t syscap, const char **path,
                     const char **via, char *err, size_t errlen)
{
    const char *env = ov->default_path == NULL ? getenv(CONFIG_ENV_FILE) : NULL;
    int rc;

    *path = NULL;
    *via = "";
    if (ov->config_path != NULL || (env != NULL && env[0] != '\0')) {
        const char *p = ov->config_path != NULL ? ov->config_path : env;
        const char *name = ov->config_path != NULL ? "--config" : CONFIG_ENV_FILE;
        /* A file asked for by name that is missing is a mistake, never "no file". */
        if (access(p, R_OK) != 0) {
            if (errlen > 0)
                snprintf(err, errlen, "%s %s: %s", name, p, strerror(errno));
            return TV_ERR_CONFIG;
        }
        *path = p;
        *via = ov->config_path != NULL ? "--config" : "env " CONFIG_ENV_FILE;
        return 0;
    }
    if (ov->default_path != NULL) {
        if (ov->default_path[0] != '\0') {
            if ((rc = config_file_present(ov->default_path, err, errlen)) < 0)
                return TV_ERR_CONFIG;
            if (rc == 1)
                *path = ov->default_path;
        }
    } else {
        /* The system file first: an installed service (the image's /etc/tokenvend) reads it
         * whatever its working directory; a checkout's config/ serves `make run`. */
        const char *dir = getenv(CONFIG_ENV_DIR);
        if (dir == NULL || dir[0] == '\0')
            dir = CONFIG_SYSTEM_DIR;
        int n = snprintf(sys, syscap, "%s/%s", dir, CONFIG_FILE_NAME);
        if (n > 0 && (size_t)n < syscap && (rc = config_file_present(sys, err, errlen)) != 0) {
            if (rc < 0)
                return TV_ERR_CONFIG;
            *path = sys;
        } else {
            if ((rc = config_file_present(CONFIG_DEFAULT_PATH, err, errlen)) < 0)
                return TV_ERR_CONFIG;
            if (rc == 1)
                *path = CONFIG_DEFAULT_PATH;
        }
    }
    if (*path != NULL)
        *via = "default";
    return 0;
}

void config_file_describe(const struct config *cfg, char *out, size_t cap)
{
    if (cfg->config_file == NULL || cfg->config_file[0] == '\0') {
        buf_copy_str(out, cap, "no configuration file; environment and defaults only");
        return;
    }
    snprintf(out, cap, "configuration file %s (%s)", cfg->config_file,
             cfg->config_file_via != NULL && cfg->config_file_via[0] != '\0' ? cfg->config_file_via
                                                                             : "default");
}

/* Whether name (len bytes) is exactly a known variable: a setting's, its _FILE form, or an extra.
 */
static int env_known(const char *name, size_t len)
{
    for (size_t i = 0; i < NEXTRA; i++) {
        if (strlen(env_extra[i]) == len && memcmp(env_extra[i], name, len) == 0)
            return 1;
    }
    for (size_t i = 0; i < config_setting_count(); i++) {
        const char *e = config_setting_env(i);
        size_t el = strlen(e);
        if (el == len && memcmp(e, name, len) == 0)
            return 1;
        if (el + sizeof FILE_SUFFIX - 1 == len && memcmp(e, name, el) == 0 &&
            memcmp(name + el, FILE_SUFFIX, sizeof FILE_SUFFIX - 1) == 0)
            return 1;
    }
    return 0;
}

/* Edit distance between a[0..al) and b[0..bl) without regard to case, where inserting, deleting
 * or replacing a character or swapping two neighbours costs one (the optimal string alignment
 * distance). Both at most CONFIG_ENV_NAME_MAX - 1 bytes. */
static size_t env_distance(const char *a, size_t al, const char *b, size_t bl)
{
    size_t rows[3][CONFIG_ENV_NAME_MAX];
    size_t *prev2 = rows[0], *prev = rows[1], *cur = rows[2];

    for (size_t j = 0; j <= bl; j++)
        prev[j] = j;
    for (size_t i = 1; i <= al; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= bl; j++) {
            int same = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]);
            size_t best = prev[j - 1] + (same ? 0 : 1);
            if (prev[j] + 1 < best)
                best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (i > 1 && j > 1 &&
                tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == tolower((unsigned char)b[j - 1]) &&
                prev2[j - 2] + 1 < best)
                best = prev2[j - 2] + 1;
            cur[j] = best;
        }
        size_t *t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    return prev[bl];
}

/* Keeps candidate in out when it is closer to name than the best so far. */
static void env_consider(const char *name, size_t len, const char *candidate, size_t *best,
                         char *out, size_t cap)
{
    size_t cl = strlen(candidate);
    size_t d;

    if (cl >= CONFIG_ENV_NAME_MAX)
        return;
    d = env_distance(name, len, candidate, cl);
    if (d < *best) {
        *best = d;
        buf_copy_str(out, cap, candidate);
    }
}

void config_env_suggest(const char *name, char *out, size_t cap)
{
    size_t len = strlen(name);
    /* What still reads as a slip of the fingers: about one error in four letters of the part
     * after the prefix, at most three. */
    size_t tail = len > PREFIX_LEN ? len - PREFIX_LEN : len;
    size_t limit = tail <= 4 ? 1 : tail <= 12 ? 2 : 3;
    size_t best = limit + 1;
    char file_form[CONFIG_ENV_NAME_MAX];

    if (cap > 0)
        out[0] = '\0';
    if (len >= CONFIG_ENV_NAME_MAX)
        return;
    for (size_t i = 0; i < NEXTRA; i++)
        env_consider(name, len, env_extra[i], &best, out, cap);
    for (size_t i = 0; i < config_setting_count(); i++) {
        const char *e = config_setting_env(i);
        env_consider(name, len, e, &best, out, cap);
        if (snprintf(file_form, sizeof file_form, "%s%s", e, FILE_SUFFIX) < (int)sizeof file_form)
            env_consider(name, len, file_form, &best, out, cap);
    }
    if (best > limit && cap > 0)
        out[0] = '\0';
}

size_t config_env_unknown(config_env_unknown_fn fn, void *ctx)
{
    size_t n = 0;

    for (char **e = environ; e != NULL && *e != NULL; e++) {
        const char *eq = strchr(*e, '=');
        size_t len = eq != NULL ? (size_t)(eq - *e) : strlen(*e);
        char name[CONFIG_ENV_NAME_MAX], suggestion[CONFIG_ENV_NAME_MAX];

        /* Any case: tokenvend_db is as surely meant for us as TOKENVEND_DB. */
        if (len < PREFIX_LEN || strncasecmp(*e, CONFIG_ENV_PREFIX, PREFIX_LEN) != 0 ||
            env_known(*e, len))
            continue;
        n++;
        if (fn == NULL)
            continue;
        /* Only the name is copied: the value may be a secret. */
        size_t shown = len < sizeof name ? len : sizeof name - 1;
        memcpy(name, *e, shown);
        name[shown] = '\0';
        if (len < sizeof name)
            config_env_suggest(name, suggestion, sizeof suggestion);
        else
            suggestion[0] = '\0';
        fn(ctx, name, suggestion);
    }
    return n;
}
