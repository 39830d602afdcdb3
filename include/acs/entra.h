/* Microsoft Entra ID credential for reaching ACS without the access key (SPEC section 11).
 *
 * This first part is the credential selection: a pure function from a snapshot of the
 * environment (the Azure Identity libraries' variable names) to a description of the one token
 * request to send. First match wins, as DefaultAzureCredential does:
 *   1. client secret:      AZURE_TENANT_ID + AZURE_CLIENT_ID + AZURE_CLIENT_SECRET
 *   2. workload identity:  AZURE_FEDERATED_TOKEN_FILE + AZURE_TENANT_ID + AZURE_CLIENT_ID
 *   3. managed identity:   IDENTITY_ENDPOINT + IDENTITY_HEADER (App Service, Container Apps)
 *   4. managed identity:   the instance metadata endpoint (IMDS; its address is a setting)
 * AZURE_AUTHORITY_HOST replaces https://login.microsoftonline.com for kinds 1 and 2.
 *
 * A description holds the secret (client secret, identity header) in fields marked secret;
 * entra_desc_describe never prints those, and entra_desc_clear wipes them. The workload
 * identity's assertion is not in the description: the file is re-read on every fetch, because
 * the platform rotates it. */
#ifndef TV_ACS_ENTRA_H
#define TV_ACS_ENTRA_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* The scope every token is asked for, and the resource the managed-identity endpoints want
 * (the scope without "/.default", as the Azure Identity libraries derive it). */
#define ENTRA_SCOPE "https://communication.azure.com//.default"
#define ENTRA_RESOURCE "https://communication.azure.com/"
#define ENTRA_AUTHORITY_DEFAULT "https://login.microsoftonline.com"
#define ENTRA_IMDS_DEFAULT "http://169.254.169.254"
#define ENTRA_CLIENT_ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
/* api-versions of the two managed-identity protocols (App Service 2019 and IMDS). */
#define ENTRA_APPSVC_API_VERSION "2019-08-01"
#define ENTRA_IMDS_API_VERSION "2018-02-01"

#define ENTRA_URL_MAX 2048
#define ENTRA_NAME_MAX 32
#define ENTRA_VALUE_MAX 1024 /* one environment value; longer ones are refused */
#define ENTRA_PATH_MAX 1024
#define ENTRA_FIELDS_MAX 6
#define ENTRA_HEADERS_MAX 2
#define ENTRA_DESCRIBE_MAX (ENTRA_URL_MAX + 256)

enum entra_kind {
    ENTRA_NONE = 0,
    ENTRA_CLIENT_SECRET,
    ENTRA_WORKLOAD_IDENTITY,
    ENTRA_MANAGED_APPSVC, /* IDENTITY_ENDPOINT + IDENTITY_HEADER */
    ENTRA_MANAGED_IMDS,
};

/* The variables the selection reads; NULL or "" both mean unset. Borrowed, never freed. */
struct entra_env {
    const char *tenant_id;            /* AZURE_TENANT_ID */
    const char *client_id;            /* AZURE_CLIENT_ID */
    const char *client_secret;        /* AZURE_CLIENT_SECRET */
    const char *federated_token_file; /* AZURE_FEDERATED_TOKEN_FILE */
    const char *authority_host;       /* AZURE_AUTHORITY_HOST */
    const char *identity_endpoint;    /* IDENTITY_ENDPOINT */
    const char *identity_header;      /* IDENTITY_HEADER */
    /* The name of the first variable set that belongs to a credential tokenvend does not
     * support (a certificate, a username, the older MSI_ENDPOINT, Azure Arc's IMDS_ENDPOINT,
     * Service Fabric's IDENTITY_SERVER_THUMBPRINT), or NULL: an operator who set one expects it
     * to be used, so the description says it is ignored. */
    const char *unsupported;
};

/* One name=value pair: a form field (kinds 1, 2) or a request header (kinds 3, 4). */
struct entra_field {
    char name[ENTRA_NAME_MAX];
    char value[ENTRA_VALUE_MAX];
    int secret; /* never logged; wiped by entra_desc_clear */
};

/* The token request to send. POST with an application/x-www-form-urlencoded body of `fields`
 * (plus client_assertion read from `assertion_file` for workload identity), or GET of `url`
 * (query already in it) with `headers`. */
struct entra_desc {
    enum entra_kind kind;
    int post;
    char url[ENTRA_URL_MAX];
    struct entra_field fields[ENTRA_FIELDS_MAX];
    size_t n_fields;
    struct entra_field headers[ENTRA_HEADERS_MAX];
    size_t n_headers;
    char assertion_file[ENTRA_PATH_MAX]; /* workload identity only */
    /* Which answer field gives the lifetime: expires_in (seconds from now) for Entra's token
     * endpoint and IMDS, expires_on (Unix seconds) for the App Service protocol. Either may come
     * as a JSON number or a string of digits. */
    int expires_on;
    const char *ignored; /* entra_env.unsupported, shown by entra_desc_describe; or NULL */
};

/* Fills env from the process environment (getenv; the pointers stay valid while the environment
 * is unchanged). Not thread-safe, as getenv is not: call at start. */
void entra_env_from_process(struct entra_env *env);

/* Chooses the credential from env (first match wins, see above) and describes its request.
 * imds_endpoint: the IMDS base address (scheme://host[:port], e.g. ENTRA_IMDS_DEFAULT); NULL or
 * "" for the default. 0 on success (out->kind is never ENTRA_NONE then: IMDS is the last
 * resort); TV_ERR_CONFIG when a variable is malformed (a tenant with characters outside
 * [A-Za-z0-9.-], an authority host that is not https:// or http:// to loopback, a value longer
 * than ENTRA_VALUE_MAX), with a message in err naming the variable, never its value. out is
 * wiped on failure. Pure: reads nothing but its arguments. */
int entra_select(const struct entra_env *env, const char *imds_endpoint, struct entra_desc *out,
                 char *err, size_t errlen);

/* Stable lower-case name of a kind ("client_secret", "workload_identity", "managed_identity",
 * "managed_identity_imds", "none"). */
const char *entra_kind_name(enum entra_kind kind);

/* One line for the start-up log and `config check`: kind, method, URL and field/header names,
 * secret values replaced by "***". Never fails; truncates to cap. */
void entra_desc_describe(const struct entra_desc *d, char *out, size_t cap);

/* Wipes every secret in d (OPENSSL_cleanse) and zeroes it. NULL is ignored. */
void entra_desc_clear(struct entra_desc *d);

/* --- One token fetch (entra_fetch.c) -------------------------------------------------------- */

#define ENTRA_TOKEN_MAX 16384     /* longest access token accepted */
#define ENTRA_RESPONSE_MAX 65536  /* longest answer read */
#define ENTRA_ASSERTION_MAX 16384 /* longest federated token file read */
#define ENTRA_ERR_MAX 256

/* A token and when it stops being valid. access_token is a secret: entra_token_clear it. */
struct entra_token {
    char access_token[ENTRA_TOKEN_MAX];
    int64_t expires_at; /* Unix seconds */
    int64_t lifetime_s; /* expires_at - the fetch's start */
};

/* Sends d's request once (no retry: the cache owns the schedule) and parses the answer, all
 * within timeout_ms. now_s is the Unix time at the start, for expires_in answers. Workload
 * identity reads its assertion file here, each time. 0 with *out filled, or TV_ERR_UNAVAILABLE
 * (endpoint unreachable, timed out, or answered other than 200: err says which, with Entra's
 * `error` code when it sent one) or TV_ERR_UPSTREAM_PROTOCOL (a 200 without a usable token:
 * not JSON, no access_token, a token_type other than Bearer, no or a past expiry) or
 * TV_ERR_IO (the assertion file unreadable or empty). err never holds a secret. Every copy of a
 * secret made here (form body, headers, answer) is wiped before returning. Thread-safe. */
int entra_fetch(const struct entra_desc *d, long timeout_ms, int64_t now_s, struct entra_token *out,
                char *err, size_t errlen);

/* entra_fetch that also ends early, with TV_ERR_UNAVAILABLE, once *cancel becomes non-zero
 * (checked by libcurl's progress callback, at least once a second): the cache's stop does not
 * wait out a hung identity endpoint. cancel NULL is entra_fetch. */
int entra_fetch_cancelable(const struct entra_desc *d, long timeout_ms, int64_t now_s,
                           const atomic_int *cancel, struct entra_token *out, char *err,
                           size_t errlen);

/* Wipes t (OPENSSL_cleanse). NULL is ignored. */
void entra_token_clear(struct entra_token *t);

/* --- The token cache (entra_cache.c) -------------------------------------------------------- */

/* One background thread fetches the token, keeps it, and fetches the next one when 5 minutes or
 * a tenth of its life (whichever is less; a tenth for a token that lives over an hour, such as a
 * managed identity's 24 h one) remain before the expiry margin below; a failed fetch
 * is retried with doubling, jittered backoff while the old token, if any, is still served.
 * Readers never wait on a fetch, except for the very first token (entra_token_get; the ACS
 * engine uses entra_token_try, which never waits). */
struct entra_cache;

/* Expiry margin: a token is not handed out in its last ENTRA_EXPIRY_MARGIN_S seconds (30 s), or
 * the cache's fetch_timeout_ms (the ACS attempt timeout, when the configuration starts the cache)
 * if that is longer, so that ACS never receives a token that expires while a request attempt is
 * on its way; never more than the last quarter of the token's life (a token that lives under
 * 2 minutes, in tests). A fetch that brings a token already inside its margin counts as a failed
 * fetch. */
#define ENTRA_EXPIRY_MARGIN_S 30
#define ENTRA_EXPIRY_LIFE_DIV 4
#define ENTRA_LISTENERS_MAX 4

struct entra_cache_opts {
    long fetch_timeout_ms; /* deadline of one fetch */
    long backoff_base_ms;  /* first retry after a failure (doubled each time) */
    long backoff_max_ms;   /* cap on one retry wait */
    long first_wait_ms;    /* how long entra_token_get waits for the very first fetch */
};

/* Copies d (so the caller may clear its own) and starts the thread, which fetches at once.
 * Logs the credential at info (entra_desc_describe: never a secret). 0, TV_ERR_NOMEM or
 * TV_ERR_INTERNAL (thread start failed). */
int entra_cache_start(const struct entra_desc *d, const struct entra_cache_opts *o,
                      struct entra_cache **out);

/* Copies the current token into out[cap]. Waits (up to first_wait_ms) only while the first fetch
 * is under way. 0; TV_ERR_UNAVAILABLE when no unexpired token is held (the first fetch failed or
 * is still running, or the token expired while refreshes failed), with *retry_after_s (if not
 * NULL) set to the seconds until the next fetch attempt (at least 1) and err (if not NULL) saying
 * why, secret-free; TV_ERR_TOO_LARGE when cap is too small. Thread-safe. */
int entra_token_get(struct entra_cache *c, char *out, size_t cap, long *retry_after_s, char *err,
                    size_t errlen);

/* entra_token_get without any wait: holds the cache's lock only to copy. While the very first
 * fetch is under way, for at most first_wait_ms from the cache's start, it answers
 * TV_ERR_UNAVAILABLE with *first_pending = 1 (try again when an entra_cache_listen callback
 * fires); otherwise exactly as entra_token_get, with *first_pending = 0. Thread-safe. */
int entra_token_try(struct entra_cache *c, char *out, size_t cap, int *first_pending,
                    long *retry_after_s, char *err, size_t errlen);

/* Called after every fetch ends (a token arrived or the fetch failed), on the cache's thread with
 * its lock held: fn must not block and must not call into the cache (curl_multi_wakeup is the
 * intended use). */
typedef void (*entra_notify_fn)(void *arg);
/* Registers fn(arg). 0, or TV_ERR_TOO_LARGE when ENTRA_LISTENERS_MAX are registered. */
int entra_cache_listen(struct entra_cache *c, entra_notify_fn fn, void *arg);
/* Removes fn(arg); once this returns, fn is not running for arg and is never called again. */
void entra_cache_unlisten(struct entra_cache *c, entra_notify_fn fn, void *arg);

/* Counters and state for tests, /readyz and metrics. */
struct entra_cache_stats {
    long fetches;         /* fetch attempts made */
    long failures;        /* of which failed */
    int consecutive_fail; /* failures since the last success */
    int have_token;       /* a token is held and outside its expiry margin (it is handed out) */
    enum entra_kind kind; /* the credential in use */
    long expires_in_s;    /* seconds until the held token expires; 0 without one */
    long retry_after_s;   /* seconds until the next fetch attempt, at least 1 */
    char last_err[ENTRA_ERR_MAX]; /* why the last fetch failed, secret-free; "" after a success */
};
void entra_cache_stats(struct entra_cache *c, struct entra_cache_stats *out);
/* The credential kind the cache fetches with (fixed at start). */
enum entra_kind entra_cache_kind(const struct entra_cache *c);

/* Stops the thread (an in-flight fetch is abandoned within about a second, not waited out to
 * its deadline), wipes the token and the description, frees c. NULL is ignored. No reader may
 * use c during or after the call: the ACS client that reads it is freed first. */
void entra_cache_stop(struct entra_cache *c);

struct config;

/* The keyless mode from the configuration: with acs_endpoint set and no acs_connection_string,
 * selects the credential from the process environment (entra_env_from_process, so call at start)
 * and starts its cache, fetch deadline acs_attempt_timeout_ms; *out NULL in the other mode.
 * 0, TV_ERR_CONFIG (logged: which variable is malformed) or what entra_cache_start returns. */
int entra_cache_from_config(const struct config *cfg, struct entra_cache **out);

#endif
