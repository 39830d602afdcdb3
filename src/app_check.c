/* app_config_check: every check `tokenvend serve` makes of a loaded configuration before it
 * binds for good, opens the store or calls anyone, and the warnings it logs; `tokenvend config
 * check` runs the same function. Start-up runs it once, from one thread. */
#include "app.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "acs/connstr.h"
#include "acs/entra.h"
#include "app_int.h"
#include "auth/jwks.h"
#include "auth/session.h"
#include "core/aead.h"
#include "core/b64.h"
#include "core/config.h"
#include "core/dburi.h"
#include "core/err.h"
#include "core/fsperm.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "store/peek.h"
#include "store/store.h"

/* config_env_unknown's callback: one warning per variable no setting reads. */
static void app_warn_unknown_env(void *ctx, const char *name, const char *suggestion)
{
    unsigned *warnings = ctx;

    (*warnings)++;
    if (suggestion[0] != '\0')
        log_msg(LOGL_WARN, NULL,
                "environment variable %s is not a tokenvend setting and is ignored; did you "
                "mean %s?",
                name, suggestion);
    else
        log_msg(LOGL_WARN, NULL,
                "environment variable %s is not a tokenvend setting and is ignored (see "
                "config/tokenvend.conf for the settings)",
                name);
}

/* The ACS credential: a connection string that parses, or the keyless endpoint with a credential
 * the environment selects (its description kept for `config check`). 0 or TV_ERR_CONFIG. */
static int app_check_acs(const struct config *cfg, struct app_check *out)
{
    int rc = TV_ERR_CONFIG;

    if (cfg->acs_connection_string[0] != '\0') {
        struct acs_connstr cs = {0};
        if (acs_connstr_parse(cfg->acs_connection_string, &cs) != 0)
            snprintf(out->why, sizeof out->why,
                     "%s: acs_connection_string: malformed; expected "
                     "endpoint=https://HOST/;accesskey=BASE64KEY",
                     config_source(cfg, "acs_connection_string"));
        else
            rc = 0;
        acs_connstr_release(&cs);
        return rc;
    }
    if (cfg->acs_endpoint[0] == '\0') {
        snprintf(out->why, sizeof out->why,
                 "no ACS connection string: set COMMUNICATION_SERVICES_CONNECTION_STRING or "
                 "TOKENVEND_ACS_CONNECTION_STRING (or a *_FILE variant), or "
                 "COMMUNICATION_SERVICES_ENDPOINT for the keyless mode (Microsoft Entra ID)");
        return rc;
    }
    /* Keyless mode: the endpoint is checked before the credential starts fetching tokens. */
    if (acs_endpoint_check(cfg->acs_endpoint) != 0) {
        snprintf(out->why, sizeof out->why, "%s", ACS_ENDPOINT_KEYLESS_HELP);
        return rc;
    }
    {
        static struct entra_desc d; /* ~12 KiB; start-up runs this once, from one thread */
        struct entra_env env;
        char why[ENTRA_ERR_MAX];
        entra_env_from_process(&env);
        if (entra_select(&env, cfg->imds_endpoint, &d, why, sizeof why) != 0) {
            snprintf(out->why, sizeof out->why, "keyless mode: %s", why);
        } else {
            entra_desc_describe(&d, out->credential, sizeof out->credential);
            rc = 0;
        }
        entra_desc_clear(&d);
    }
    return rc;
}

/* Whether secret_b64 (config_load checked: the base64 of AEAD_KEY_LEN bytes, or "") opens the
 * session key as stored (len bytes). 0, or TV_ERR_CONFIG with serve's reason in out->why. */
static int app_check_sealed_key(const char *secret_b64, const uint8_t *stored, size_t len,
                                struct app_check *out)
{
    uint8_t *secret = NULL, *plain = NULL;
    size_t n = 0, plen = 0;
    int rc = TV_ERR_CONFIG;

    if (!aead_is_sealed(stored, len))
        return 0; /* a clear key: serve seals it under the secret, if one is set */
    if (secret_b64[0] == '\0') {
        snprintf(out->why, sizeof out->why,
                 "the session signing key in the database is encrypted: set "
                 "TOKENVEND_SECRET_KEY (or TOKENVEND_SECRET_KEY_FILE) to the key it was "
                 "encrypted with");
        return rc;
    }
    if (b64_decode(secret_b64, strlen(secret_b64), &secret, &n) != 0 || n != AEAD_KEY_LEN)
        snprintf(out->why, sizeof out->why, "secret_key: not the base64 of 32 bytes");
    else if (aead_open(secret, SESSION_KEY_AD, stored, len, &plain, &plen) != 0)
        snprintf(out->why, sizeof out->why,
                 "TOKENVEND_SECRET_KEY does not decrypt the session signing key in the "
                 "database (another key?)");
    else
        rc = 0;
    if (secret != NULL)
        OPENSSL_clear_free(secret, n);
    if (plain != NULL)
        OPENSSL_clear_free(plain, plen);
    return rc;
}

/* An existing SQLite database, read-only (never created, never migrated): a schema this binary
 * does not know, and with local accounts a session key TOKENVEND_SECRET_KEY does not open, are
 * refused as serve refuses them. A missing file passes (serve creates it); PostgreSQL is not
 * contacted here (serve's connection says what is wrong there). */
static int app_check_store(const struct config *cfg, struct app_check *out)
{
    static uint8_t buf[SESSION_KEY_MAX + AEAD_OVERHEAD]; /* start-up runs this from one thread */
    struct store_peek pk;
    char why[512];
    int rc;

    if (dburi_is_pg(cfg->db))
        return 0;
    rc = store_peek(cfg->db, cfg->local_accounts ? SESSION_META_KEY : NULL, buf, sizeof buf, &pk,
                    why, sizeof why);
    if (rc == TV_ERR_NOT_FOUND) {
        rc = 0;
        goto done;
    }
    if (rc != 0) {
        snprintf(out->why, sizeof out->why, "%s: db: %s", config_source(cfg, "db"),
                 rc == TV_ERR_TOO_LARGE ? "the stored session signing key is too large" : why);
        rc = TV_ERR_CONFIG;
        goto done;
    }
    if (pk.foreign || pk.version > pk.latest) {
        snprintf(out->why, sizeof out->why,
                 "%s: db: the database's schema version %d is not one this binary knows (it "
                 "knows up to %d): it was written by a newer tokenvend; run that one",
                 config_source(cfg, "db"), pk.version, pk.latest);
        rc = TV_ERR_CONFIG;
        goto done;
    }
    if (pk.has_meta)
        rc = app_check_sealed_key(cfg->secret_key, buf, pk.len, out);
done:
    OPENSSL_cleanse(buf, sizeof buf);
    return rc;
}

/* Whether ss is the wildcard address of its family (0.0.0.0 or ::). */
static int app_addr_is_any(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

/* Whether binding a and b (their ports included) at once fails with "address in use": one port,
 * one family (the server's IPv6 sockets are v6 only, so 0.0.0.0 and :: do not meet), and the
 * same address or a wildcard on either side. Port 0 (the system picks) never collides. */
static int app_addrs_collide(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        if (x->sin_port == 0 || x->sin_port != y->sin_port)
            return 0;
        return x->sin_addr.s_addr == y->sin_addr.s_addr || app_addr_is_any(a) || app_addr_is_any(b);
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    if (x->sin6_port == 0 || x->sin6_port != y->sin6_port)
        return 0;
    return memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0 || app_addr_is_any(a) ||
           app_addr_is_any(b);
}

/* Whether this machine has the address of ss: binds a throw-away socket to it on port 0 (any
 * free port, so a port in use now or later does not matter here) and closes it. 0, or the
 * errno of the failure (EADDRNOTAVAIL for an address of another machine). */
static int app_addr_probe(const struct sockaddr_storage *ss, socklen_t len)
{
    struct sockaddr_storage any = *ss;
    int fd, err = 0, one = 1;

    if (any.ss_family == AF_INET)
        ((struct sockaddr_in *)&any)->sin_port = 0;
    else
        ((struct sockaddr_in6 *)&any)->sin6_port = 0;
    if ((fd = socket(any.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return errno;
    /* As the server binds it, so a v4-mapped or wildcard address is judged the same way. */
    if ((any.ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) ||
        bind(fd, (const struct sockaddr *)&any, len) != 0)
        err = errno;
    close(fd);
    return err;
}

/* Each listener's address must resolve, as the HTTP server resolves it when it binds, be an
 * address of this machine, and the two listeners must not claim the same address and port:
 * serve would bind the first and fail on the second. Binds nothing that stays bound. */
static int app_check_listeners(const struct config *cfg, struct app_check *out)
{
    static const char *const names[] = {"public_addr", "internal_addr"};
    const struct config_addr *addrs[] = {&cfg->public_addr, &cfg->internal_addr};
    struct sockaddr_storage ss[2];
    char text[2][ADDR_MAX];

    for (size_t i = 0; i < 2; i++) {
        socklen_t len = 0;
        int err;
        (void)netaddr_format(addrs[i]->host, addrs[i]->port, text[i], sizeof text[i]);
        if (netaddr_parse(text[i], &ss[i], &len, NULL, 0) != 0) {
            snprintf(out->why, sizeof out->why,
                     "%s: %s: '%s' is not an address of this machine (it does not resolve)",
                     config_source(cfg, names[i]), names[i], text[i]);
            return TV_ERR_CONFIG;
        }
        if ((err = app_addr_probe(&ss[i], len)) != 0) {
            /* The words serve's bind failure uses, so both read alike. */
            snprintf(out->why, sizeof out->why, "%s: %s: cannot listen on %s (%s listener): %s",
                     config_source(cfg, names[i]), names[i], text[i],
                     i == 0 ? "public" : "internal", strerror(err));
            return TV_ERR_CONFIG;
        }
    }
    if (app_addrs_collide(&ss[0], &ss[1])) {
        snprintf(out->why, sizeof out->why,
                 "%s: internal_addr '%s' and public_addr '%s' claim the same address and port: "
                 "give the listeners different ports",
                 config_source(cfg, "internal_addr"), text[1], text[0]);
        return TV_ERR_CONFIG;
    }
    return 0;
}

/* The OIDC settings jwks_new would refuse (jwks_opts_check, the same function), before anything
 * is opened: a long issuer must not stop the start after the database was created. */
static int app_check_oidc(const struct config *cfg, struct app_check *out)
{
    struct jwks_opts jo = {.jwks_url = cfg->oidc_jwks_url,
                           .issuer = cfg->oidc_issuer,
                           .allow_insecure_http = cfg->oidc_allow_insecure_http};
    char why[300];

    if (cfg->oidc_issuer[0] == '\0')
        return 0;
    if (cfg->oidc_audience[0] == '\0') {
        snprintf(out->why, sizeof out->why,
                 "%s: oidc_issuer is set but oidc_audience is not: TOKENVEND_OIDC_AUDIENCE is "
                 "required with TOKENVEND_OIDC_ISSUER",
                 config_source(cfg, "oidc_issuer"));
        return TV_ERR_CONFIG;
    }
    if (jwks_opts_check(&jo, why, sizeof why) != 0) {
        /* why starts with the setting's name: its source is that setting's. */
        snprintf(out->why, sizeof out->why, "%s: %s",
                 config_source(cfg, strncmp(why, "oidc_issuer", 11) == 0 ? "oidc_issuer"
                                                                         : "oidc_jwks_url"),
                 why);
        return TV_ERR_CONFIG;
    }
    return 0;
}

int app_config_check(const struct config *cfg, struct app_check *out)
{
    char why[512];

    memset(out, 0, sizeof *out);
    if (app_check_acs(cfg, out) != 0)
        return TV_ERR_CONFIG;
    if (store_db_check(cfg->db, why, sizeof why) != 0) {
        snprintf(out->why, sizeof out->why, "%s: db: %s", config_source(cfg, "db"), why);
        return TV_ERR_CONFIG;
    }
    if (app_check_listeners(cfg, out) != 0 || app_check_oidc(cfg, out) != 0 ||
        app_check_store(cfg, out) != 0)
        return TV_ERR_CONFIG;
    /* Warnings, once nothing refuses: a refused configuration gets its one line alone. */
    if (cfg->oidc_issuer[0] == '\0' && !cfg->local_accounts) {
        out->warnings++;
        log_msg(LOGL_WARN, NULL,
                "neither TOKENVEND_OIDC_ISSUER nor local accounts are configured: every public "
                "API call will be refused (the internal API still works)");
    }
    if (cfg->oidc_issuer[0] != '\0' && cfg->oidc_allow_insecure_http) {
        out->warnings++;
        log_msg(LOGL_WARN, NULL,
                "oidc_allow_insecure_http is on: OIDC discovery and keys may come over plain "
                "http, where anyone on the path can replace them; use it for tests only");
    }
    /* The file decides which issuer and keys are trusted: say who else may change it. */
    out->warnings += (unsigned)fsperm_warn_config_file(cfg);
    (void)config_env_unknown(app_warn_unknown_env, &out->warnings);
    return 0;
}
