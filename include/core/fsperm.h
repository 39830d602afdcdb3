/* Start-up checks of who else may read the service's files: the database (and its -wal and
 * -shm files and its directory) and the files secrets were read from (a config file with a
 * secret inline among them), and who else may write the configuration file. Warnings only: the
 * service still starts, since the operator may have reasons (a shared group, a container that
 * runs as root). Not thread-safe (run before the threads start). */
#ifndef TV_CORE_FSPERM_H
#define TV_CORE_FSPERM_H

#include "core/config.h"

/* Logs one WARN line naming the path and its mode when path exists and group or others may
 * read it (what says what it is: "database", "secret file"). Returns 1 when it warned. */
int fsperm_warn_readable(const char *path, const char *what);

/* Runs fsperm_warn_readable over cfg's database file, its -wal and -shm files, its directory
 * and fsperm_warn_secrets' files. Returns the number of warnings. */
int fsperm_warn_config(const struct config *cfg);

/* Runs fsperm_warn_readable over every file a secret setting was read from (cfg->secret_files:
 * the *_file paths, and the config file when it sets a secret inline). Returns the number of
 * warnings. */
int fsperm_warn_secrets(const struct config *cfg);

/* Logs one WARN line for the configuration file that was read (cfg->config_file), and one for
 * its directory, when group or others may write it (a sticky directory excepted): the file
 * decides which OIDC issuer and keys are trusted, the database and the ACS resource. Returns
 * the number of warnings (0 when no file was read). */
int fsperm_warn_config_file(const struct config *cfg);

#endif
