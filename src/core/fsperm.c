/* Mode checks with stat(2). A database or a secret file readable by group or others hands
 * the session signing key, password hashes and API key hashes to every local account that
 * can reach it; a config file with a secret written inline (the ACS access key, the secret key)
 * is a secret file too. */
#include "core/dburi.h"
#include "core/fsperm.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"

int fsperm_warn_readable(const char *path, const char *what)
{
    struct stat sb;

    if (path == NULL || path[0] == '\0' || stat(path, &sb) != 0)
        return 0;
    if ((sb.st_mode & (S_IRGRP | S_IROTH)) == 0)
        return 0;
    log_msg(LOGL_WARN, NULL, "%s %s is readable by %s (mode %04o); make it private (chmod %s)",
            what, path,
            (sb.st_mode & S_IROTH) && (sb.st_mode & S_IRGRP) ? "group and others"
            : (sb.st_mode & S_IROTH)                         ? "others"
                                                             : "group",
            (unsigned)(sb.st_mode & 07777), S_ISDIR(sb.st_mode) ? "700" : "600");
    return 1;
}

/* One WARN line when path exists and group or others may write it. A directory with the sticky
 * bit (/tmp) is spared: there nobody but the owner may rename or remove the file in it. */
static int fsperm_warn_writable(const char *path, const char *what)
{
    struct stat sb;

    if (path == NULL || path[0] == '\0' || stat(path, &sb) != 0)
        return 0;
    if ((sb.st_mode & (S_IWGRP | S_IWOTH)) == 0 || (S_ISDIR(sb.st_mode) && (sb.st_mode & S_ISVTX)))
        return 0;
    log_msg(LOGL_WARN, NULL,
            "%s %s is writable by %s (mode %04o): whoever can write it decides which OIDC issuer "
            "and keys are trusted; make it writable by its owner only (chmod go-w)",
            what, path,
            (sb.st_mode & S_IWOTH) && (sb.st_mode & S_IWGRP) ? "group and others"
            : (sb.st_mode & S_IWOTH)                         ? "others"
                                                             : "group",
            (unsigned)(sb.st_mode & 07777));
    return 1;
}

int fsperm_warn_config_file(const struct config *cfg)
{
    char dir[PATH_MAX];
    const char *f = cfg->config_file, *slash;
    int n;

    if (f == NULL || f[0] == '\0')
        return 0;
    n = fsperm_warn_writable(f, "configuration file");
    slash = strrchr(f, '/');
    if (slash == NULL)
        n += fsperm_warn_writable(".", "configuration directory");
    else if (slash == f)
        n += fsperm_warn_writable("/", "configuration directory");
    else if (snprintf(dir, sizeof dir, "%.*s", (int)(slash - f), f) < (int)sizeof dir)
        n += fsperm_warn_writable(dir, "configuration directory");
    return n;
}

int fsperm_warn_config(const struct config *cfg)
{
    char p[PATH_MAX];
    const char *slash;
    int n = 0;

    /* A PostgreSQL database's files are the server's business. */
    if (cfg->db != NULL && cfg->db[0] != '\0' && !dburi_is_pg(cfg->db)) {
        n += fsperm_warn_readable(cfg->db, "database");
        if (snprintf(p, sizeof p, "%s-wal", cfg->db) < (int)sizeof p)
            n += fsperm_warn_readable(p, "database file");
        if (snprintf(p, sizeof p, "%s-shm", cfg->db) < (int)sizeof p)
            n += fsperm_warn_readable(p, "database file");
        slash = strrchr(cfg->db, '/');
        if (slash == NULL)
            n += fsperm_warn_readable(".", "database directory");
        else if (slash == cfg->db)
            n += fsperm_warn_readable("/", "database directory");
        else if (snprintf(p, sizeof p, "%.*s", (int)(slash - cfg->db), cfg->db) < (int)sizeof p)
            n += fsperm_warn_readable(p, "database directory");
    }
    return n + fsperm_warn_secrets(cfg);
}

int fsperm_warn_secrets(const struct config *cfg)
{
    int n = 0;

    for (size_t i = 0; i < cfg->secret_files.n; i++) {
        const char *p = cfg->secret_files.items[i];
        int is_config = cfg->config_file != NULL && strcmp(p, cfg->config_file) == 0;
        n += fsperm_warn_readable(p, is_config ? "config file holding secrets" : "secret file");
    }
    return n;
}
