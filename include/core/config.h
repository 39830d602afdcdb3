/* Configuration: one table of settings, layered as built-in defaults < config file < environment
 * (TOKENVEND_*) < flags, with *_FILE variants that read a value (typically a secret) from a file.
 * Loading is not thread-safe (it reads the environment); a loaded struct config is read-only. */
#ifndef TV_CORE_CONFIG_H
#define TV_CORE_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "core/log.h"

#define CONFIG_DEFAULT_PATH "config/tokenvend.conf" /* under the working directory */
/* The system-wide configuration directory, searched before CONFIG_DEFAULT_PATH (the image copies
 * config/ there); a build may define another. */
#ifndef CONFIG_SYSTEM_DIR
#define CONFIG_SYSTEM_DIR "/etc/tokenvend"
#endif
#define CONFIG_FILE_NAME "tokenvend.conf"
#define CONFIG_ENV_FILE "TOKENVEND_CONFIG"    /* a configuration file, as --config (which wins) */
#define CONFIG_ENV_DIR "TOKENVEND_CONFIG_DIR" /* replaces CONFIG_SYSTEM_DIR (tests, packagers) */
#define CONFIG_ENV_PREFIX "TOKENVEND_"
#define CONFIG_DESCRIBE_MAX (CONFIG_VALUE_MAX + 64)
#define CONFIG_HOST_MAX 256
#define CONFIG_MAX_SCOPES 8
#define CONFIG_SETTINGS_MAX 128
#define CONFIG_SOURCE_MAX 160
#define CONFIG_VALUE_MAX 8192 /* one value, from any source */
#define CONFIG_ERR_MAX 512    /* a comfortable size for config_load's err buffer */

/* "host:port" or "[v6addr]:port"; host is stored without brackets. */
struct config_addr {
    char host[CONFIG_HOST_MAX];
    int port; /* 0..65535; 0 lets the system pick */
};

/* A set of ACS scopes; items point at static names (see config_scope_names), never freed. */
struct config_scopes {
    const char *items[CONFIG_MAX_SCOPES];
    size_t n;
};

/* A comma-separated list of strings, each owned by the list. */
struct config_list {
    char **items;
    size_t n;
};

/* The effective configuration. Strings are owned by the struct (NUL-terminated, never NULL after
 * a successful load; "" when unset) and freed by config_release. */
struct config {
    struct config_addr public_addr;
    struct config_addr internal_addr;
    char *db;
    /* PostgreSQL only (store/pg_pool.h); the backend cannot be selected yet. */
    long db_pool_size;            /* connections one process keeps */
    long db_connect_timeout_ms;   /* one connection attempt, TCP and authentication */
    long db_statement_timeout_ms; /* statement_timeout of every connection */
    struct config_scopes allowed_scopes;
    struct config_scopes default_scopes;
    long token_minutes;
    struct config_list cors_origins;
    enum log_level log_level;
    char *oidc_issuer;
    char *oidc_audience;
    char *oidc_jwks_url;
    char *oidc_user_claim;
    /* bool: plain http:// OIDC URLs to non-loopback hosts (tests only) */
    int oidc_allow_insecure_http;
    long auth_cache_max_entries; /* verified bearer tokens remembered; 0: verify every request */
    int local_accounts;          /* bool */
    int cache;                   /* bool */
    long cache_min_remaining_minutes;
    long cache_max_entries;      /* bound on cached tokens (LRU) */
    char *cache_key;             /* secret: base64 of 32 bytes sealing kept tokens, or "" */
    char *acs_connection_string; /* secret: wiped by config_release */
    char *acs_endpoint;          /* keyless mode (acs/entra.h): "" unless set */
    char *acs_api_version;
    long acs_connect_timeout_ms;
    long acs_attempt_timeout_ms;
    long acs_deadline_ms;
    long acs_max_retries;
    long acs_backoff_base_ms;
    long acs_backoff_max_ms;
    long acs_max_connections;
    char *acs_budget;  /* upstream calls per op in any W s, "op=N/Ws,..." or off (core/budget.h) */
    int acs_custom_id; /* bool: creates carry a customId (needs ACS_API_VERSION_CUSTOM_ID) */
    char *imds_endpoint; /* Entra managed identity via IMDS (acs/entra.h) */
    char *breaker;       /* ACS circuit breaker, "N/Ws" or "off" (acs/breaker.h) */
    /* Service (tokenvend serve) settings. */
    int auto_create;        /* bool: create an identity on a user's first token request */
    long token_min_minutes; /* lifetime bounds a caller may ask for, within 60..1440 */
    long token_max_minutes;
    long body_limit;             /* request body ceiling in bytes */
    long header_limit;           /* per-connection memory for request line and headers */
    long max_connections;        /* per listener */
    long max_connections_per_ip; /* 0: no limit; unset: max(4, max_connections / 16) */
    long connection_timeout_s;   /* idle connections are closed after this */
    long request_timeout_s;      /* head and body must be complete this long after the start */
    long header_timeout_s;       /* the head must be complete this long after the start */
    long session_minutes;        /* lifetime of /api/login tokens */
    long session_refresh_ttl_s;  /* idle lifetime of a refresh token; 0: no refresh cookie */
    long session_refresh_max_s;  /* absolute lifetime of a refresh token family from its login */
    long outbox_interval_ms;     /* how often the delete outbox worker looks for due rows */
    long outbox_backoff_max_ms;  /* cap on the per-row retry backoff of the outbox */
    long shutdown_drain_ms;      /* SIGTERM: how long in-flight requests may take to finish */
    char *login_limit;           /* failed logins per user name, "N/Ws" or "off" (ratelimit.h) */
    char *limit_user;            /* requests per app user on the public API, "N/Ws" or "off" */
    char *limit_apikey;          /* requests per API key on the internal API, "N/Ws" or "off" */
    char *limit_ip;        /* requests per client address on the public API, "N/Ws" or "off" */
    char *trusted_proxies; /* proxies whose X-Forwarded-For is believed (core/proxies.h), or "" */
    long password_min_length; /* characters (UTF-8 code points) a new password needs */
    long login_per_address;   /* password checks in progress per client address (0: any) */
    char *secret_key;         /* secret: base64 of 32 bytes that encrypt stored secrets, or "" */
    /* Paths of the files secret settings were read from (*_FILE), for permission checks. */
    struct config_list secret_files;

    /* Audit retention (the maintenance thread) and what GET /metrics requires. */
    long audit_retention_days;    /* audit rows older than this are pruned; 0: kept forever */
    long audit_prune_interval_ms; /* how often the running service prunes the audit table */
    char *metrics_auth;           /* "off" or "apikey": the credential GET /metrics requires */

    char *config_file; /* the file that was read, or "" */
    /* How config_file was chosen: "--config", "env TOKENVEND_CONFIG" or "default"; static, "" when
     * no file was read. */
    const char *config_file_via;
    /* Where each setting's value came from ("default", "FILE:LINE", "env NAME", "flag --set"),
     * indexed in the order config_print lists them. */
    char sources[CONFIG_SETTINGS_MAX][CONFIG_SOURCE_MAX];
};

/* One value given on the command line: `--set name=value` arrives as {name, value, "--set"},
 * `--log-level debug` as {"log_level", "debug", "--log-level"}. name may end in "_file". */
struct config_flag {
    const char *name;
    const char *value;
    const char *flag;
};

/* Which file is read: config_path (--config) if given, which must exist; else, when default_path
 * is NULL, the file TOKENVEND_CONFIG names (must exist), else the first that exists of
 * $TOKENVEND_CONFIG_DIR/tokenvend.conf (CONFIG_SYSTEM_DIR/tokenvend.conf when that variable is
 * unset or empty) and CONFIG_DEFAULT_PATH; else none. A non-NULL default_path replaces that whole
 * search, environment included: that file if it exists ("" reads none), as tests need. */
struct config_overrides {
    const char *config_path; /* --config FILE */
    const char *default_path;
    const struct config_flag *flags;
    size_t nflags;
};

/* Loads the configuration into *out (ov may be NULL). On failure returns TV_ERR_CONFIG (or
 * TV_ERR_NOMEM), writes one line naming the setting and its source into err (never a secret
 * value) and leaves *out zeroed. On success release *out with config_release. */
int config_load(const struct config_overrides *ov, struct config *out, char *err, size_t errlen);
/* Frees what config_load allocated, wiping secrets, and zeroes *cfg. Safe on a zeroed struct. */
void config_release(struct config *cfg);
/* Writes one `name = value  # source` line per setting. With redact, secrets print as
 * <redacted> (or <unset> when empty). */
void config_print(const struct config *cfg, FILE *f, int redact);

/* One line saying which configuration file was read and how it was chosen ("configuration file
 * /etc/tokenvend/tokenvend.conf (default)"), or that none was ("no configuration file;
 * environment and defaults only"), into out[cap] (cut to fit). */
void config_file_describe(const struct config *cfg, char *out, size_t cap);

/* Called once per unknown variable by config_env_unknown: its name (cut to CONFIG_ENV_NAME_MAX - 1
 * bytes; never its value, which may be a secret) and the known name it most likely misspells,
 * "" when none is close. */
#define CONFIG_ENV_NAME_MAX 128
typedef void (*config_env_unknown_fn)(void *ctx, const char *name, const char *suggestion);
/* Calls fn for every environment variable whose name starts with TOKENVEND_ (in any case) and is
 * neither a setting's variable nor its _FILE form nor one read outside the settings table
 * (TOKENVEND_CONFIG, TOKENVEND_CONFIG_DIR, TOKENVEND_ARGON2; TOKENVEND_PORT, compose's).
 * Returns how many. Reads environ:
 * not thread-safe, call at start. fn may be NULL (count only). */
size_t config_env_unknown(config_env_unknown_fn fn, void *ctx);
/* The known variable closest to name by edit distance (letters compared without case; a swap
 * of two neighbours counts one), if within a distance that suits a misspelling, into
 * out[cap]; else "". Exposed for tests. */
void config_env_suggest(const char *name, char *out, size_t cap);

/* Where setting `name` got its value ("default", "FILE:LINE", "env VAR", "flag --set"); ""
 * for an unknown name. The string borrows from cfg. */
const char *config_source(const struct config *cfg, const char *name);
/* The per-address connection cap used when max_connections_per_ip is not set:
 * max(4, max_connections / 16). */
long config_per_ip_default(long max_connections);

/* Parses a comma-separated scope list ("chat,voip"; blanks around items ignored) against the
 * known ACS scopes. Duplicates are dropped. 0, or TV_ERR_INVALID with a message in err. */
int config_scopes_parse(const char *s, struct config_scopes *out, char *err, size_t errlen);
/* Comma-separated list of the known ACS scopes, for help texts. */
const char *config_scope_names(void);
/* Reads a small file holding one value (e.g. a secret): at most max bytes, trailing CR/LF
 * stripped, no NUL bytes. *out is malloc'd (wipe and free it). 0, TV_ERR_IO (err says why),
 * TV_ERR_TOO_LARGE, TV_ERR_PARSE or TV_ERR_NOMEM. */
int config_read_value_file(const char *path, size_t max, char **out, char *err, size_t errlen);

#endif
