/* Configuration: one table of settings, layered as built-in defaults < config file < environment
 * (TOKENVEND_*) < flags, with *_FILE variants that read a value (typically a secret) from a file.
 * Loading is not thread-safe (it reads the environment); a loaded struct config is read-only. */
#ifndef TV_CORE_CONFIG_H
#define TV_CORE_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "core/log.h"

#define CONFIG_DEFAULT_PATH "config/tokenvend.conf"
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

struct config_overrides {
    const char *config_path;  /* --config FILE: must exist. NULL: default_path if it exists */
    const char *default_path; /* NULL: CONFIG_DEFAULT_PATH; "" reads no default file */
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
