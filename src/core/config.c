/* Configuration loading: the settings table, the four layers, value parsing and printing.
 * Every value is parsed as soon as a layer supplies it, so a bad value is reported with the
 * place it came from even when a later layer would override it. */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "config_int.h"
#include "core/acsnames.h"
#include "core/buf.h"
#include "core/b64.h"
#include "core/budget.h"
#include "core/err.h"
#include "core/dburi.h"
#include "core/netaddr.h"
#include "core/proxies.h"
#include "core/ratelimit.h"

#define CONFIG_FILE_MAX (1024 * 1024)
#define CONFIG_HTTPS_RULE                                                                          \
    "must be an https:// URL (plain http:// only to a loopback host: 127.0.0.0/8, [::1], "         \
    "localhost; or set oidc_allow_insecure_http = on)"

enum setting_type {
    ST_STRING,   /* any string; `required` demands non-empty */
    ST_URL,      /* "" or an http(s) URL */
    ST_CHOICE,   /* one of `choices` */
    ST_INT,      /* decimal integer in [min, max] */
    ST_BOOL,     /* on|off */
    ST_ADDR,     /* host:port */
    ST_SCOPES,   /* non-empty list of known ACS scopes */
    ST_LIST,     /* comma-separated list of CORS origins */
    ST_LEVEL,    /* log level */
    ST_DURATION, /* seconds in [min, max]: N followed by s, m, h or d, or a bare 0 */
};

struct setting {
    const char *name;
    const char *env;     /* TOKENVEND_<NAME> */
    const char *env_alt; /* a second, lower-priority variable, or NULL */
    const char *def;
    enum setting_type type;
    long min, max;
    int secret;
    int required;
    size_t offset;
    const char *const *choices;
    const char *help;
};

static const char *const api_versions[] = {ACS_API_VERSIONS(ACS_NAME_ITEM, ) NULL};
static const char *const metrics_auth_modes[] = {"off", "apikey", NULL};

#define OFF(field) offsetof(struct config, field)

static const struct setting settings[] = {
    {"public_addr", "TOKENVEND_PUBLIC_ADDR", NULL, "0.0.0.0:8080", ST_ADDR, 0, 0, 0, 1,
     OFF(public_addr), NULL, "listener for the public API (host:port)"},
    {"internal_addr", "TOKENVEND_INTERNAL_ADDR", NULL, "127.0.0.1:8081", ST_ADDR, 0, 0, 0, 1,
     OFF(internal_addr), NULL, "listener for the internal API and operations endpoints"},
    {"db", "TOKENVEND_DB", NULL, "data/tokenvend.db", ST_STRING, 0, 0, 0, 1, OFF(db), NULL,
     "the store: a SQLite file's path, or a postgresql:// (postgres://) URI for replicas sharing "
     "one PostgreSQL database (a URI with a password is a secret: give it with db_file)"},
    {"db_pool_size", "TOKENVEND_DB_POOL_SIZE", NULL, "8", ST_INT, 1, 256, 0, 1, OFF(db_pool_size),
     NULL, "PostgreSQL only: connections one process keeps to the database"},
    {"db_connect_timeout_ms", "TOKENVEND_DB_CONNECT_TIMEOUT_MS", NULL, "5000", ST_INT, 100, 600000,
     0, 1, OFF(db_connect_timeout_ms), NULL,
     "PostgreSQL only: time one connection attempt may take"},
    {"db_statement_timeout_ms", "TOKENVEND_DB_STATEMENT_TIMEOUT_MS", NULL, "5000", ST_INT, 100,
     3600000, 0, 1, OFF(db_statement_timeout_ms), NULL,
     "PostgreSQL only: the server cancels a statement running longer"},
    {"allowed_scopes", "TOKENVEND_ALLOWED_SCOPES", NULL, "chat,voip", ST_SCOPES, 0, 0, 0, 1,
     OFF(allowed_scopes), NULL, "ACS scopes callers may ask for"},
    {"default_scopes", "TOKENVEND_DEFAULT_SCOPES", NULL, "chat,voip", ST_SCOPES, 0, 0, 0, 1,
     OFF(default_scopes), NULL, "scopes of a token when the caller names none"},
    {"token_minutes", "TOKENVEND_TOKEN_MINUTES", NULL, "1440", ST_INT, 60, 1440, 0, 1,
     OFF(token_minutes), NULL, "default token lifetime in minutes"},
    {"cors_origins", "TOKENVEND_CORS_ORIGINS", NULL, "", ST_LIST, 0, 0, 0, 0, OFF(cors_origins),
     NULL, "browser origins allowed by CORS (comma-separated; empty: none)"},
    {"log_level", "TOKENVEND_LOG_LEVEL", NULL, "info", ST_LEVEL, 0, 0, 0, 1, OFF(log_level), NULL,
     "debug, info, warn, error or off"},
    {"oidc_issuer", "TOKENVEND_OIDC_ISSUER", NULL, "", ST_URL, 0, 0, 0, 0, OFF(oidc_issuer), NULL,
     "OIDC issuer (iss) of caller JWTs"},
    {"oidc_audience", "TOKENVEND_OIDC_AUDIENCE", NULL, "", ST_STRING, 0, 0, 0, 0,
     OFF(oidc_audience), NULL, "required audience (aud) of caller JWTs"},
    {"oidc_jwks_url", "TOKENVEND_OIDC_JWKS_URL", NULL, "", ST_URL, 0, 0, 0, 0, OFF(oidc_jwks_url),
     NULL, "JWKS URL (empty: from the issuer's discovery document)"},
    {"oidc_user_claim", "TOKENVEND_OIDC_USER_CLAIM", NULL, "sub", ST_STRING, 0, 0, 0, 1,
     OFF(oidc_user_claim), NULL, "JWT claim that names the app user"},
    {"oidc_allow_insecure_http", "TOKENVEND_OIDC_ALLOW_INSECURE_HTTP", NULL, "off", ST_BOOL, 0, 0,
     0, 1, OFF(oidc_allow_insecure_http), NULL,
     "accept plain http:// OIDC issuer and JWKS URLs on non-loopback hosts (tests only; on|off)"},
    {"auth_cache_max_entries", "TOKENVEND_AUTH_CACHE_MAX_ENTRIES", NULL, "16384", ST_INT, 0,
     1000000, 0, 1, OFF(auth_cache_max_entries), NULL,
     "verified bearer tokens remembered for up to 5 minutes (0: verify every request)"},
    {"local_accounts", "TOKENVEND_LOCAL_ACCOUNTS", NULL, "off", ST_BOOL, 0, 0, 0, 1,
     OFF(local_accounts), NULL, "enable local accounts and /api/login (on|off)"},
    {"cache", "TOKENVEND_CACHE", NULL, "on", ST_BOOL, 0, 0, 0, 1, OFF(cache), NULL,
     "serve still-fresh tokens from the token cache (on|off)"},
    {"cache_min_remaining_minutes", "TOKENVEND_CACHE_MIN_REMAINING_MINUTES", NULL, "30", ST_INT, 11,
     1439, 0, 1, OFF(cache_min_remaining_minutes), NULL,
     "minimum lifetime left for a cached token to be served"},
    {"cache_max_entries", "TOKENVEND_CACHE_MAX_ENTRIES", NULL, "20000", ST_INT, 16, 10000000, 0, 1,
     OFF(cache_max_entries), NULL,
     "most tokens the cache holds (about 1.3 KB each); the least recently used go first"},
    {"cache_key", "TOKENVEND_CACHE_KEY", NULL, "", ST_STRING, 0, 0, 1, 0, OFF(cache_key), NULL,
     "base64 of 32 random bytes: issued tokens are also kept in the store, sealed with it, and "
     "served after a restart or by another replica (secret; \"\": not kept)"},
    {"acs_connection_string", "TOKENVEND_ACS_CONNECTION_STRING",
     "COMMUNICATION_SERVICES_CONNECTION_STRING", "", ST_STRING, 0, 0, 1, 0,
     OFF(acs_connection_string), NULL, "ACS connection string endpoint=...;accesskey=... (secret)"},
    {"acs_endpoint", "TOKENVEND_ACS_ENDPOINT", "COMMUNICATION_SERVICES_ENDPOINT", "", ST_URL, 0, 0,
     0, 0, OFF(acs_endpoint), NULL,
     "ACS endpoint for the keyless mode (Microsoft Entra ID), used without a connection string"},
    {"acs_api_version", "TOKENVEND_ACS_API_VERSION", NULL, ACS_API_VERSION_DEFAULT, ST_CHOICE, 0, 0,
     0, 1, OFF(acs_api_version), api_versions, "ACS identity api-version"},
    {"acs_custom_id", "TOKENVEND_ACS_CUSTOM_ID", NULL, "off", ST_BOOL, 0, 0, 0, 1,
     OFF(acs_custom_id), NULL,
     "creates carry a customId hashed from resource and app user, so a create whose answer was "
     "lost is retried safely (on|off; needs acs_api_version " ACS_API_VERSION_CUSTOM_ID ")"},
    {"acs_connect_timeout_ms", "TOKENVEND_ACS_CONNECT_TIMEOUT_MS", NULL, "3000", ST_INT, 1, 600000,
     0, 1, OFF(acs_connect_timeout_ms), NULL, "TCP/TLS connect timeout per attempt"},
    {"acs_attempt_timeout_ms", "TOKENVEND_ACS_ATTEMPT_TIMEOUT_MS", NULL, "10000", ST_INT, 1, 600000,
     0, 1, OFF(acs_attempt_timeout_ms), NULL, "timeout of one HTTP attempt"},
    {"acs_deadline_ms", "TOKENVEND_ACS_DEADLINE_MS", NULL, "30000", ST_INT, 1, 3600000, 0, 1,
     OFF(acs_deadline_ms), NULL, "deadline of one ACS call, retries included"},
    {"acs_max_retries", "TOKENVEND_ACS_MAX_RETRIES", NULL, "3", ST_INT, 0, 20, 0, 1,
     OFF(acs_max_retries), NULL, "retries after the first attempt"},
    {"acs_backoff_base_ms", "TOKENVEND_ACS_BACKOFF_BASE_MS", NULL, "200", ST_INT, 1, 600000, 0, 1,
     OFF(acs_backoff_base_ms), NULL, "first retry backoff (doubled each retry, jittered)"},
    {"acs_backoff_max_ms", "TOKENVEND_ACS_BACKOFF_MAX_MS", NULL, "5000", ST_INT, 1, 600000, 0, 1,
     OFF(acs_backoff_max_ms), NULL,
     "cap on one jittered backoff (a server's Retry-After is honoured in full)"},
    {"acs_max_connections", "TOKENVEND_ACS_MAX_CONNECTIONS", NULL, "256", ST_INT, 1, 65536, 0, 1,
     OFF(acs_max_connections), NULL,
     "connections to ACS kept open and used at once (calls beyond it queue)"},
    {"acs_budget", "TOKENVEND_ACS_BUDGET", NULL, BUDGET_DEFAULT, ST_STRING, 0, 0, 0, 1,
     OFF(acs_budget), NULL,
     "upstream ACS calls (retries included) per operation in any W seconds, shared by every "
     "process on the store: op=N/Ws,... (ops: create, issue, revoke, delete, teams; one not "
     "named keeps its default), or off"},
    {"imds_endpoint", "TOKENVEND_IMDS_ENDPOINT", NULL, "http://169.254.169.254", ST_URL, 0, 0, 0, 1,
     OFF(imds_endpoint), NULL,
     "Azure instance metadata endpoint, the last Entra credential tried (tests: loopback)"},
    {"breaker", "TOKENVEND_BREAKER", NULL, "5/30s", ST_STRING, 0, 0, 0, 1, OFF(breaker), NULL,
     "circuit breaker on ACS calls, per process: after N consecutive failures (5xx, timeouts, "
     "network errors; not 429 or other 4xx) calls fail fast with 503 for W seconds, then one "
     "probe decides (N/Ws), or off"},
    {"auto_create", "TOKENVEND_AUTO_CREATE", NULL, "on", ST_BOOL, 0, 0, 0, 1, OFF(auto_create),
     NULL, "create a user's ACS identity on the first GET/POST /api/token (on|off)"},
    {"token_min_minutes", "TOKENVEND_TOKEN_MIN_MINUTES", NULL, "60", ST_INT, 60, 1440, 0, 1,
     OFF(token_min_minutes), NULL, "shortest token lifetime a caller may ask for"},
    {"token_max_minutes", "TOKENVEND_TOKEN_MAX_MINUTES", NULL, "1440", ST_INT, 60, 1440, 0, 1,
     OFF(token_max_minutes), NULL, "longest token lifetime a caller may ask for"},
    {"body_limit", "TOKENVEND_BODY_LIMIT", NULL, "65536", ST_INT, 1024, 16777216, 0, 1,
     OFF(body_limit), NULL, "largest request body in bytes (413 above)"},
    {"header_limit", "TOKENVEND_HEADER_LIMIT", NULL, "16384", ST_INT, 8192, 1048576, 0, 1,
     OFF(header_limit), NULL,
     "memory per connection for the request line and headers (431 above); costs RSS per "
     "keep-alive connection"},
    {"max_connections", "TOKENVEND_MAX_CONNECTIONS", NULL, "10000", ST_INT, 16, 1000000, 0, 1,
     OFF(max_connections), NULL, "open connections per listener; more are refused"},
    {"max_connections_per_ip", "TOKENVEND_MAX_CONNECTIONS_PER_IP", NULL, "625", ST_INT, 0, 1000000,
     0, 1, OFF(max_connections_per_ip), NULL,
     "open connections per client address, an IPv6 client counted by its /64 (unset: "
     "max(4, max_connections/16); 0: no limit, for use behind a proxy)"},
    {"connection_timeout_s", "TOKENVEND_CONNECTION_TIMEOUT_S", NULL, "60", ST_INT, 1, 86400, 0, 1,
     OFF(connection_timeout_s), NULL, "an idle connection is closed after this many seconds"},
    {"request_timeout_s", "TOKENVEND_REQUEST_TIMEOUT_S", NULL, "30", ST_INT, 1, 3600, 0, 1,
     OFF(request_timeout_s), NULL,
     "a whole request (head and body) must be in this many seconds after it started"},
    {"header_timeout_s", "TOKENVEND_HEADER_TIMEOUT_S", NULL, "10", ST_INT, 1, 3600, 0, 1,
     OFF(header_timeout_s), NULL,
     "a request's line and headers must be in this many seconds after it started (accept, or "
     "its first bytes on a kept-alive connection); at most connection_timeout_s"},
    {"session_minutes", "TOKENVEND_SESSION_MINUTES", NULL, "15", ST_INT, 1, 1440, 0, 1,
     OFF(session_minutes), NULL, "lifetime of the tokens POST /api/login returns"},
    {"session_refresh_ttl", "TOKENVEND_SESSION_REFRESH_TTL", NULL, "12h", ST_DURATION, 0,
     366L * 86400, 0, 1, OFF(session_refresh_ttl_s), NULL,
     "idle lifetime of the refresh token (cookie tv_refresh) POST /api/login sets and POST "
     "/api/session/refresh rotates: N followed by s, m, h or d; 0: no cookie, and both "
     "/api/session routes answer 404"},
    {"session_refresh_max", "TOKENVEND_SESSION_REFRESH_MAX", NULL, "7d", ST_DURATION, 1,
     366L * 86400, 0, 1, OFF(session_refresh_max_s), NULL,
     "absolute lifetime of a login's refresh tokens, however often they are rotated: N "
     "followed by s, m, h or d"},
    {"outbox_interval_ms", "TOKENVEND_OUTBOX_INTERVAL_MS", NULL, "2000", ST_INT, 50, 3600000, 0, 1,
     OFF(outbox_interval_ms), NULL, "how often the delete outbox looks for due work"},
    {"outbox_backoff_max_ms", "TOKENVEND_OUTBOX_BACKOFF_MAX_MS", NULL, "60000", ST_INT, 100,
     86400000, 0, 1, OFF(outbox_backoff_max_ms), NULL,
     "cap on the retry backoff of one outbox row"},
    {"shutdown_drain_ms", "TOKENVEND_SHUTDOWN_DRAIN_MS", NULL, "10000", ST_INT, 0, 600000, 0, 1,
     OFF(shutdown_drain_ms), NULL, "SIGTERM: time in-flight requests get to finish"},
    {"login_limit", "TOKENVEND_LOGIN_LIMIT", NULL, "10/300s", ST_STRING, 0, 0, 0, 1,
     OFF(login_limit), NULL,
     "failed logins per user name: a burst of N refilled over W seconds (N/Ws), or off; past "
     "it every login of the name gets 429"},
    {"limit_user", "TOKENVEND_LIMIT_USER", NULL, "120/60s", ST_STRING, 0, 0, 0, 1, OFF(limit_user),
     NULL, "requests per app user on the public API (N/Ws, or off); per process; past it 429"},
    {"limit_apikey", "TOKENVEND_LIMIT_APIKEY", NULL, "off", ST_STRING, 0, 0, 0, 1,
     OFF(limit_apikey), NULL,
     "requests per API key on the internal API (N/Ws, or off); per process; past it 429"},
    {"limit_ip", "TOKENVEND_LIMIT_IP", NULL, "off", ST_STRING, 0, 0, 0, 1, OFF(limit_ip), NULL,
     "requests per client address (IPv4, or IPv6 /64) on the public API (N/Ws, or off); per "
     "process; counted before the bearer token is checked"},
    {"trusted_proxies", "TOKENVEND_TRUSTED_PROXIES", NULL, "", ST_STRING, 0, 0, 0, 0,
     OFF(trusted_proxies), NULL,
     "proxies (addresses, CIDR prefixes; comma-separated) whose X-Forwarded-For names the "
     "client for limit_ip; empty: the peer address is the client"},
    {"login_per_address", "TOKENVEND_LOGIN_PER_ADDRESS", NULL, "4", ST_INT, 0, 32, 0, 1,
     OFF(login_per_address), NULL,
     "logins one client address may have in progress at once, of 32 (0: no cap; use 0 behind "
     "a proxy, where every client shares its address)"},
    {"password_min_length", "TOKENVEND_PASSWORD_MIN_LENGTH", NULL, "12", ST_INT, 1, 1024, 0, 1,
     OFF(password_min_length), NULL,
     "shortest password account add/passwd accept, in characters (bytes if not UTF-8)"},
    {"secret_key", "TOKENVEND_SECRET_KEY", NULL, "", ST_STRING, 0, 0, 1, 0, OFF(secret_key), NULL,
     "base64 of 32 random bytes that encrypt the stored session signing key (secret)"},
    {"audit_retention_days", "TOKENVEND_AUDIT_RETENTION_DAYS", NULL, "90", ST_INT, 0, 36500, 0, 1,
     OFF(audit_retention_days), NULL,
     "audit rows older than this many days are deleted by the running service (0: keep all)"},
    {"audit_prune_interval_ms", "TOKENVEND_AUDIT_PRUNE_INTERVAL_MS", NULL, "3600000", ST_INT, 100,
     86400000, 0, 1, OFF(audit_prune_interval_ms), NULL,
     "how often the service deletes audit rows past the retention (in small batches)"},
    {"metrics_auth", "TOKENVEND_METRICS_AUTH", NULL, "off", ST_CHOICE, 0, 0, 0, 1,
     OFF(metrics_auth), metrics_auth_modes,
     "what GET /metrics requires: off (nothing) or apikey (Authorization: Bearer <api key>)"},
};

#define NSETTINGS (sizeof settings / sizeof settings[0])

_Static_assert(NSETTINGS <= CONFIG_SETTINGS_MAX, "raise CONFIG_SETTINGS_MAX");

struct loader {
    struct config *cfg;
    char *err;
    size_t errlen;
};

static int fail(struct loader *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct loader *ld, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (ld->errlen > 0)
        vsnprintf(ld->err, ld->errlen, fmt, ap);
    va_end(ap);
    return TV_ERR_CONFIG;
}

static void *field(struct config *cfg, const struct setting *s)
{
    return (char *)cfg + s->offset;
}

static const void *field_const(const struct config *cfg, const struct setting *s)
{
    return (const char *)cfg + s->offset;
}

/* Whether a setting's string is wiped when freed: the secrets, and db, which may be a URI with
 * a password. */
static int wiped(const struct setting *s)
{
    return s->secret || s->offset == OFF(db);
}

/* Whether value, given for setting idx, is a secret: a secret setting's, or a db URI that
 * carries a password (redacting changes it). The file it came from must then be private. */
static int value_secret(size_t idx, const char *value)
{
    if (settings[idx].secret)
        return 1;
    return settings[idx].offset == OFF(db) && dburi_has_secret(value);
}

static void free_string(char **p, int secret)
{
    if (*p != NULL && secret)
        OPENSSL_cleanse(*p, strlen(*p));
    free(*p);
    *p = NULL;
}

/* Refuses a value outside a choice setting's list; the message lists that setting's own
 * choices, whichever setting it is. */
static int check_choice(struct loader *ld, const struct setting *s, const char *value,
                        const char *source)
{
    char list[256];
    size_t at = 0;

    for (size_t i = 0; s->choices[i] != NULL; i++) {
        if (strcmp(s->choices[i], value) == 0)
            return 0;
    }
    list[0] = '\0';
    for (size_t i = 0; s->choices[i] != NULL && at < sizeof list; i++)
        at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", i ? ", " : "", s->choices[i]);
    return fail(ld, "%s: %s: '%s' is not one of %s", source, s->name, value, list);
}

/* ST_STRING, ST_URL and ST_CHOICE: checks the value, then keeps a copy. */
static int assign_string(struct loader *ld, const struct setting *s, const char *value,
                         const char *source)
{
    char **f = field(ld->cfg, s);
    char *copy;
    int rc;

    if (s->type == ST_URL && value[0] != '\0' && !config_url_ok(value))
        return fail(ld, "%s: %s: '%s' is not an http(s) URL", source, s->name, value);
    if (s->type == ST_CHOICE && (rc = check_choice(ld, s, value, source)) != 0)
        return rc;
    if ((copy = strdup(value)) == NULL)
        return TV_ERR_NOMEM;
    free_string(f, wiped(s));
    *f = copy;
    return 0;
}

static int assign_int(struct loader *ld, const struct setting *s, const char *value,
                      const char *source)
{
    /* A secret's value stays out of the message. */
    const char *shown = s->secret ? "" : value;
    const char *q = s->secret ? "" : "'";
    char *end;
    long n;

    errno = 0;
    n = strtol(value, &end, 10);
    if (value[0] == '\0' || isspace((unsigned char)value[0]) || *end != '\0' || errno != 0 ||
        n < s->min || n > s->max)
        return fail(ld, "%s: %s: must be an integer in %ld..%ld, got %s%s%s", source, s->name,
                    s->min, s->max, q, shown, q);
    *(long *)field(ld->cfg, s) = n;
    return 0;
}

/* ST_DURATION: N followed by s, m, h or d (a bare 0 too), in seconds. */
static int assign_duration(struct loader *ld, const struct setting *s, const char *value,
                           const char *source)
{
    static const struct {
        char unit;
        long mult;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
    size_t len = strlen(value), digits = strspn(value, "0123456789");
    long mult = 0, n = 0;

    if (strcmp(value, "0") == 0) {
        mult = 1;
    } else if (digits > 0 && digits <= 9 && len == digits + 1) {
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
            if (value[digits] == units[i].unit)
                mult = units[i].mult;
    }
    for (size_t i = 0; mult != 0 && i < digits; i++)
        n = n * 10 + (value[i] - '0');
    if (mult == 0 || n > s->max / mult || n * mult < s->min || n * mult > s->max)
        return fail(ld, "%s: %s: must be N followed by s, m, h or d (%lds..%lds), got '%s'", source,
                    s->name, s->min, s->max, value);
    *(long *)field(ld->cfg, s) = n * mult;
    return 0;
}

static int assign_list(struct loader *ld, const struct setting *s, const char *value,
                       const char *source)
{
    struct config_list l;
    const char *reason = "";
    char why[256];
    int rc = config_list_parse(value, &l, &reason, why, sizeof why);

    if (rc == TV_ERR_NOMEM)
        return rc;
    if (rc != 0)
        return fail(ld, "%s: %s: '%s' %s", source, s->name, why, reason);
    config_list_release(field(ld->cfg, s));
    *(struct config_list *)field(ld->cfg, s) = l;
    return 0;
}

/* The types parsed in place by one call each: ST_BOOL, ST_ADDR, ST_SCOPES, ST_LEVEL. */
static int assign_simple(struct loader *ld, const struct setting *s, const char *value,
                         const char *source)
{
    void *f = field(ld->cfg, s);
    const char *reason = "";
    char why[256];

    switch (s->type) {
    case ST_BOOL:
        if (config_bool_parse(value, f) != 0)
            return fail(ld, "%s: %s: must be on or off, got '%s'", source, s->name, value);
        return 0;
    case ST_ADDR:
        if (config_addr_parse(value, f, &reason) != 0)
            return fail(ld, "%s: %s: '%s' %s", source, s->name, value, reason);
        return 0;
    case ST_SCOPES:
        if (config_scopes_parse(value, f, why, sizeof why) != 0)
            return fail(ld, "%s: %s: %s", source, s->name, why);
        return 0;
    case ST_LEVEL:
        if (log_level_parse(value, f) != 0)
            return fail(ld, "%s: %s: must be debug, info, warn, error or off, got '%s'", source,
                        s->name, value);
        return 0;
    default:
        return TV_ERR_INTERNAL;
    }
}

/* Parses value for setting s into the config and records its source. */
static int assign(struct loader *ld, size_t idx, const char *value, const char *source)
{
    const struct setting *s = &settings[idx];
    int rc;

    if (strlen(value) > CONFIG_VALUE_MAX)
        return fail(ld, "%s: %s: value longer than %d bytes", source, s->name, CONFIG_VALUE_MAX);
    if (s->required && value[0] == '\0')
        return fail(ld, "%s: %s: must not be empty", source, s->name);
    switch (s->type) {
    case ST_STRING:
    case ST_URL:
    case ST_CHOICE:
        rc = assign_string(ld, s, value, source);
        break;
    case ST_INT:
        rc = assign_int(ld, s, value, source);
        break;
    case ST_DURATION:
        rc = assign_duration(ld, s, value, source);
        break;
    case ST_LIST:
        rc = assign_list(ld, s, value, source);
        break;
    default:
        rc = assign_simple(ld, s, value, source);
        break;
    }
    if (rc == 0)
        buf_copy_str(ld->cfg->sources[idx], CONFIG_SOURCE_MAX, source);
    return rc;
}

/* Remembers a file a secret came from, a *_file or the config file holding one inline
 * (tokenvend serve and `config check` check who else may read it). */
static int secret_file_note(struct config *cfg, const char *path)
{
    struct config_list *l = &cfg->secret_files;
    char **items;
    char *copy;

    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->items[i], path) == 0)
            return 0;
    if ((copy = strdup(path)) == NULL)
        return TV_ERR_NOMEM;
    if ((items = realloc(l->items, (l->n + 1) * sizeof *items)) == NULL) {
        free(copy);
        return TV_ERR_NOMEM;
    }
    items[l->n++] = copy;
    l->items = items;
    return 0;
}

/* Applies one layer's value for setting idx given either directly or as a file path. The caller
 * has already refused "both at one level". */
static int assign_from(struct loader *ld, size_t idx, const char *value, const char *file_path,
                       const char *source)
{
    char why[256];
    char *data = NULL;
    int rc;

    if (file_path == NULL)
        return assign(ld, idx, value, source);
    rc = config_read_value_file(file_path, CONFIG_VALUE_MAX, &data, why, sizeof why);
    if (rc == TV_ERR_NOMEM)
        return rc;
    if (rc != 0)
        return fail(ld, "%s: %s_file: %s", source, settings[idx].name, why);
    rc = assign(ld, idx, data, source);
    if (rc == 0 && value_secret(idx, data))
        rc = secret_file_note(ld->cfg, file_path);
    OPENSSL_cleanse(data, strlen(data));
    free(data);
    return rc;
}

/* Finds a setting by its lower-case name or its `name_file` form. -1 when unknown. */
static int setting_find(const char *name, size_t len, int *is_file)
{
    *is_file = 0;
    if (len > 5 && memcmp(name + len - 5, "_file", 5) == 0) {
        for (size_t i = 0; i < NSETTINGS; i++) {
            if (strlen(settings[i].name) == len - 5 &&
                memcmp(settings[i].name, name, len - 5) == 0) {
                *is_file = 1;
                return (int)i;
            }
        }
    }
    for (size_t i = 0; i < NSETTINGS; i++) {
        if (strlen(settings[i].name) == len && memcmp(settings[i].name, name, len) == 0)
            return (int)i;
    }
    return -1;
}

/* config_skip_blank for a writable line: the same position, without casting the const away. */
static char *skip_blank(char *p)
{
    return p + (config_skip_blank(p) - p);
}

/* Parses the value part of a `name = value` line in place; *out points into line. */
static int file_value(char *p, char **out, const char **why)
{
    p = skip_blank(p);
    if (*p == '"') {
        char *w = p, *r = p + 1;
        *out = p;
        for (;;) {
            if (*r == '\0') {
                *why = "unterminated quoted value";
                return -1;
            }
            if (*r == '"')
                break;
            if (*r == '\\' && (r[1] == '"' || r[1] == '\\'))
                r++;
            *w++ = *r++;
        }
        *w = '\0';
        r = skip_blank(r + 1);
        if (*r != '\0' && *r != '#') {
            *why = "unexpected text after the closing quote";
            return -1;
        }
        return 0;
    }
    *out = p;
    char *end = p;
    /* An unquoted value ends at a '#' that starts the value or follows a blank. */
    while (*end != '\0' && !(*end == '#' && (end == p || end[-1] == ' ' || end[-1] == '\t')))
        end++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *end = '\0';
    return 0;
}

static int load_file(struct loader *ld, const char *path)
{
    char why[256];
    char *data = NULL;
    size_t datalen = 0;
    int rc, lineno = 0;
    int seen[NSETTINGS][2] = {{0}};

    rc = config_read_value_file(path, CONFIG_FILE_MAX, &data, why, sizeof why);
    if (rc == TV_ERR_NOMEM)
        return rc;
    if (rc != 0)
        return fail(ld, "config file: %s", why);
    /* Lines are cut in place below, so remember the length for the final wipe. */
    datalen = strlen(data);

    for (char *line = data, *next; line != NULL; line = next) {
        char source[CONFIG_SOURCE_MAX];
        const char *reason = "";
        char *value;
        int is_file;

        lineno++;
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        size_t ll = strlen(line);
        if (ll > 0 && line[ll - 1] == '\r')
            line[--ll] = '\0';
        snprintf(source, sizeof source, "%s:%d", path, lineno);
        char *p = skip_blank(line);
        if (*p == '\0' || *p == '#')
            continue;
        char *eq = strchr(p, '=');
        if (eq == NULL) {
            rc = fail(ld, "%s: expected 'name = value'", source);
            goto done;
        }
        char *nend = eq;
        while (nend > p && (nend[-1] == ' ' || nend[-1] == '\t'))
            nend--;
        int idx = setting_find(p, (size_t)(nend - p), &is_file);
        if (idx < 0) {
            rc = fail(ld, "%s: unknown setting '%.*s'", source, (int)(nend - p), p);
            goto done;
        }
        if (seen[idx][is_file]) {
            rc = fail(ld, "%s: %s%s is set twice (first on line %d)", source, settings[idx].name,
                      is_file ? "_file" : "", seen[idx][is_file]);
            goto done;
        }
        if (seen[idx][!is_file]) {
            rc = fail(ld, "%s: both %s and %s_file are set (line %d); use one", source,
                      settings[idx].name, settings[idx].name, seen[idx][!is_file]);
            goto done;
        }
        seen[idx][is_file] = lineno;
        if (file_value(eq + 1, &value, &reason) != 0) {
            rc = fail(ld, "%s: %s: %s", source, settings[idx].name, reason);
            goto done;
        }
        rc = assign_from(ld, (size_t)idx, value, is_file ? value : NULL, source);
        /* A secret written inline makes the config file itself a secret file: start-up and
         * `config check` then check who else may read it, as for a *_file. */
        if (rc == 0 && !is_file && value[0] != '\0' && value_secret((size_t)idx, value))
            rc = secret_file_note(ld->cfg, path);
        if (rc != 0)
            goto done;
    }
    rc = 0;
done:
    if (data != NULL) {
        OPENSSL_cleanse(data, datalen);
        free(data);
    }
    return rc;
}

/* One environment pair: NAME and NAME_FILE. */
static int load_env_pair(struct loader *ld, size_t idx, const char *var)
{
    char file_var[128], source[CONFIG_SOURCE_MAX];
    const char *v = getenv(var);
    const char *fv;

    snprintf(file_var, sizeof file_var, "%s_FILE", var);
    fv = getenv(file_var);
    if (v != NULL && fv != NULL)
        return fail(ld, "environment: both %s and %s are set; use one", var, file_var);
    if (v == NULL && fv == NULL)
        return 0;
    snprintf(source, sizeof source, "env %s", v != NULL ? var : file_var);
    return assign_from(ld, idx, v, fv, source);
}

static int load_env(struct loader *ld)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        int rc;
        /* The alternative name comes first so the TOKENVEND_ one wins when both are set. */
        if (settings[i].env_alt != NULL && (rc = load_env_pair(ld, i, settings[i].env_alt)) != 0)
            return rc;
        if ((rc = load_env_pair(ld, i, settings[i].env)) != 0)
            return rc;
    }
    return 0;
}

static int load_flags(struct loader *ld, const struct config_flag *flags, size_t n)
{
    int given[NSETTINGS][2] = {{0}};

    for (size_t i = 0; i < n; i++) {
        char source[CONFIG_SOURCE_MAX];
        int is_file, rc;
        const char *name = flags[i].name ? flags[i].name : "";
        const char *flag = flags[i].flag ? flags[i].flag : "--set";
        int idx = setting_find(name, strlen(name), &is_file);
        if (idx < 0)
            return fail(ld, "flag %s: unknown setting '%s'", flag, name);
        if (given[idx][!is_file])
            return fail(ld, "flags: both %s and %s_file are given; use one", settings[idx].name,
                        settings[idx].name);
        given[idx][is_file] = 1;
        snprintf(source, sizeof source, "flag %s", flag);
        const char *v = flags[i].value ? flags[i].value : "";
        if ((rc = assign_from(ld, (size_t)idx, v, is_file ? v : NULL, source)) != 0)
            return rc;
    }
    return 0;
}

static int scopes_has(const struct config_scopes *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->items[i] == name)
            return 1;
    }
    return 0;
}

static size_t setting_index(const char *name)
{
    int is_file;
    int idx = setting_find(name, strlen(name), &is_file);
    return idx < 0 ? 0 : (size_t)idx;
}

/* Defaults that follow other settings, applied when no layer set them: one client may hold a
 * sixteenth of the connections (at least 4), so a handful of addresses cannot hold them all. */
static void derive_defaults(struct config *c)
{
    size_t i = setting_index("max_connections_per_ip");

    if (strcmp(c->sources[i], "default") == 0)
        c->max_connections_per_ip = config_per_ip_default(c->max_connections);
}

long config_per_ip_default(long max_connections)
{
    return max_connections / 16 > 4 ? max_connections / 16 : 4;
}

/* A secret key setting: the base64 of exactly 32 bytes. The decoded bytes are wiped at once;
 * only their length matters here. 0 or TV_ERR_CONFIG (message in ld). */
static int check_key32(struct loader *ld, const struct config *c, const char *name,
                       const char *value)
{
    uint8_t *key = NULL;
    size_t n = 0;
    int bad = b64_decode(value, strlen(value), &key, &n) != 0 || n != 32;

    if (key != NULL) {
        OPENSSL_cleanse(key, n);
        free(key);
    }
    if (!bad)
        return 0;
    return fail(ld,
                "%s: %s: must be the base64 of exactly 32 bytes (e.g. from 'openssl rand "
                "-base64 32')",
                c->sources[setting_index(name)], name);
}

/* Rules that tie settings together. */
static int check_cross(struct loader *ld)
{
    const struct config *c = ld->cfg;
    /* A URI-looking value that is not one (postgresql:/x, postgres:x) must not become a SQLite
     * file named after it, password and all, nor be echoed. */
    if (!dburi_is_pg(c->db) &&
        (strncmp(c->db, "postgresql:", 11) == 0 || strncmp(c->db, "postgres:", 9) == 0))
        return fail(ld,
                    "%s: db: not a PostgreSQL URI (postgresql://user:password@host:port/database) "
                    "nor a SQLite path",
                    c->sources[setting_index("db")]);
    if (dburi_is_conninfo(c->db))
        return fail(
            ld,
            "%s: db: a libpq key=value connection string is not taken (it would name a "
            "SQLite file); write it as a URI: postgresql://user:password@host:port/database",
            c->sources[setting_index("db")]);
    for (size_t i = 0; i < c->default_scopes.n; i++) {
        if (!scopes_has(&c->allowed_scopes, c->default_scopes.items[i]))
            return fail(ld, "%s: default_scopes: '%s' is not in allowed_scopes",
                        c->sources[setting_index("default_scopes")], c->default_scopes.items[i]);
    }
    if (c->acs_custom_id && strcmp(c->acs_api_version, ACS_API_VERSION_CUSTOM_ID) != 0)
        return fail(ld,
                    "%s: acs_custom_id: needs acs_api_version %s (the only ACS api-version whose "
                    "create takes a customId), not %s",
                    c->sources[setting_index("acs_custom_id")], ACS_API_VERSION_CUSTOM_ID,
                    c->acs_api_version);
    if (c->acs_connect_timeout_ms > c->acs_attempt_timeout_ms)
        return fail(ld, "acs_connect_timeout_ms (%ld) must not exceed acs_attempt_timeout_ms (%ld)",
                    c->acs_connect_timeout_ms, c->acs_attempt_timeout_ms);
    if (c->acs_attempt_timeout_ms > c->acs_deadline_ms)
        return fail(ld, "acs_attempt_timeout_ms (%ld) must not exceed acs_deadline_ms (%ld)",
                    c->acs_attempt_timeout_ms, c->acs_deadline_ms);
    if (c->acs_backoff_base_ms > c->acs_backoff_max_ms)
        return fail(ld, "acs_backoff_base_ms (%ld) must not exceed acs_backoff_max_ms (%ld)",
                    c->acs_backoff_base_ms, c->acs_backoff_max_ms);
    if (c->token_min_minutes > c->token_max_minutes)
        return fail(ld, "token_min_minutes (%ld) must not exceed token_max_minutes (%ld)",
                    c->token_min_minutes, c->token_max_minutes);
    if (c->token_minutes < c->token_min_minutes || c->token_minutes > c->token_max_minutes)
        return fail(ld,
                    "token_minutes (%ld) must lie within token_min_minutes..token_max_minutes "
                    "(%ld..%ld)",
                    c->token_minutes, c->token_min_minutes, c->token_max_minutes);
    /* Keys fetched over plain http can be swapped by anyone on the path, who could then sign
     * tokens for any user: http only where the path cannot leave the machine. */
    if (c->oidc_issuer[0] != '\0' &&
        !netaddr_url_transport_ok(c->oidc_issuer, c->oidc_allow_insecure_http))
        return fail(ld, "%s: oidc_issuer: %s", c->sources[setting_index("oidc_issuer")],
                    CONFIG_HTTPS_RULE);
    if (c->oidc_jwks_url[0] != '\0' &&
        !netaddr_url_transport_ok(c->oidc_jwks_url, c->oidc_allow_insecure_http))
        return fail(ld, "%s: oidc_jwks_url: %s", c->sources[setting_index("oidc_jwks_url")],
                    CONFIG_HTTPS_RULE);
    if (c->cache && c->cache_min_remaining_minutes >= c->token_minutes)
        return fail(ld,
                    "cache_min_remaining_minutes (%ld) must be below token_minutes (%ld), or no "
                    "token would ever be served from the cache",
                    c->cache_min_remaining_minutes, c->token_minutes);
    if (c->cache_key[0] != '\0') {
        if (check_key32(ld, c, "cache_key", c->cache_key) != 0)
            return TV_ERR_CONFIG;
        if (!c->cache)
            return fail(ld, "%s: cache_key: needs cache on (the kept tokens go through it)",
                        c->sources[setting_index("cache_key")]);
    }
    {
        /* The settings written N/Ws, and the proxies a client address is read through. */
        static const char *const limits[] = {"login_limit", "limit_user", "limit_apikey",
                                             "limit_ip", "breaker"};
        const char *const values[] = {c->login_limit, c->limit_user, c->limit_apikey, c->limit_ip,
                                      c->breaker};
        struct ratelimit rl;
        struct proxies *px = NULL;
        char why[160] = "out of memory";
        for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++)
            if (ratelimit_parse(values[i], &rl, why, sizeof why) != 0)
                return fail(ld, "%s: %s: '%s': %s", c->sources[setting_index(limits[i])], limits[i],
                            values[i], why);
        if (proxies_parse(c->trusted_proxies, &px, why, sizeof why) != 0)
            return fail(ld, "%s: trusted_proxies: %s", c->sources[setting_index("trusted_proxies")],
                        why);
        proxies_free(px);
    }
    {
        struct budget_cfg bc;
        char why[300];
        if (budget_parse(c->acs_budget, &bc, why, sizeof why) != 0)
            return fail(ld, "%s: acs_budget: '%.100s': %s", c->sources[setting_index("acs_budget")],
                        c->acs_budget, why);
    }
    if (c->secret_key[0] != '\0' && check_key32(ld, c, "secret_key", c->secret_key) != 0)
        return TV_ERR_CONFIG;
    return 0;
}

size_t config_setting_count(void)
{
    return NSETTINGS;
}

const char *config_setting_env(size_t i)
{
    return i < NSETTINGS ? settings[i].env : NULL;
}

int config_load(const struct config_overrides *ov, struct config *out, char *err, size_t errlen)
{
    static const struct config_overrides none = {0};
    struct config cfg;
    struct loader ld = {&cfg, err, errlen};
    int rc;

    memset(&cfg, 0, sizeof cfg);
    if (ov == NULL)
        ov = &none;
    if (errlen > 0)
        err[0] = '\0';
    for (size_t i = 0; i < NSETTINGS; i++) {
        if ((rc = assign(&ld, i, settings[i].def, "default")) != 0)
            goto fail;
    }

    char sys_path[CONFIG_VALUE_MAX];
    const char *path = NULL;
    if ((rc = config_file_pick(ov, sys_path, sizeof sys_path, &path, &cfg.config_file_via, err,
                               errlen)) != 0)
        goto fail;
    if ((cfg.config_file = strdup(path ? path : "")) == NULL) {
        rc = TV_ERR_NOMEM;
        goto fail;
    }
    if (path != NULL && (rc = load_file(&ld, path)) != 0)
        goto fail;
    if ((rc = load_env(&ld)) != 0)
        goto fail;
    if ((rc = load_flags(&ld, ov->flags, ov->nflags)) != 0)
        goto fail;
    derive_defaults(&cfg);
    if ((rc = check_cross(&ld)) != 0)
        goto fail;
    *out = cfg;
    return 0;
fail:
    if (rc == TV_ERR_NOMEM && errlen > 0)
        snprintf(err, errlen, "out of memory while loading the configuration");
    config_release(&cfg);
    memset(out, 0, sizeof *out);
    return rc;
}

void config_release(struct config *cfg)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        if (s->type == ST_STRING || s->type == ST_URL || s->type == ST_CHOICE)
            free_string(field(cfg, s), wiped(s));
        else if (s->type == ST_LIST)
            config_list_release(field(cfg, s));
    }
    free(cfg->config_file);
    config_list_release(&cfg->secret_files);
    memset(cfg, 0, sizeof *cfg);
}

/* Prints a string value, quoted when it would not read back unquoted. */
static void print_string(FILE *f, const char *v)
{
    int quote = v[0] == '\0' || v[0] == '"' || strpbrk(v, "#") != NULL ||
                isspace((unsigned char)v[0]) || isspace((unsigned char)v[strlen(v) - 1]);
    if (!quote) {
        fputs(v, f);
        return;
    }
    fputc('"', f);
    for (const char *p = v; *p; p++) {
        if (*p == '"' || *p == '\\')
            fputc('\\', f);
        fputc(*p, f);
    }
    fputc('"', f);
}

static void print_scopes(FILE *f, const struct config_scopes *s)
{
    for (size_t i = 0; i < s->n; i++)
        fprintf(f, "%s%s", i ? "," : "", s->items[i]);
}

void config_print(const struct config *cfg, FILE *f, int redact)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        const void *v = field_const(cfg, s);
        fprintf(f, "%s = ", s->name);
        switch (s->type) {
        case ST_STRING:
        case ST_URL:
        case ST_CHOICE: {
            const char *str = *(char *const *)v ? *(char *const *)v : "";
            if (s->secret && redact) {
                fputs(str[0] ? "<redacted>" : "<unset>", f);
            } else if (s->offset == OFF(db) && redact) {
                char shown[CONFIG_VALUE_MAX + 16];
                dburi_display(str, shown, sizeof shown);
                print_string(f, shown);
            } else
                print_string(f, str);
            break;
        }
        case ST_INT:
            fprintf(f, "%ld", *(const long *)v);
            break;
        case ST_DURATION:
            fprintf(f, "%lds", *(const long *)v);
            break;
        case ST_BOOL:
            fputs(*(const int *)v ? "on" : "off", f);
            break;
        case ST_ADDR: {
            const struct config_addr *a = v;
            char text[CONFIG_HOST_MAX + 16];
            (void)netaddr_format(a->host, a->port, text, sizeof text);
            fputs(text, f);
            break;
        }
        case ST_SCOPES:
            print_scopes(f, v);
            break;
        case ST_LIST: {
            const struct config_list *l = v;
            if (l->n == 0)
                fputs("\"\"", f);
            for (size_t j = 0; j < l->n; j++)
                fprintf(f, "%s%s", j ? "," : "", l->items[j]);
            break;
        }
        case ST_LEVEL:
            fputs(log_level_name(*(const enum log_level *)v), f);
            break;
        }
        fprintf(f, "  # %s\n", cfg->sources[i][0] ? cfg->sources[i] : "default");
    }
}

const char *config_source(const struct config *cfg, const char *name)
{
    int is_file;
    int idx = setting_find(name, strlen(name), &is_file);
    return idx < 0 || is_file ? "" : cfg->sources[idx];
}
