/* POST /api/login (local accounts) and the per-use account check of session tokens. The login
 * itself (account, password check, session token) is the service's (service/login.h); this
 * file parses, admits and replies.
 *
 * A login passes three gates before any Argon2 work: the failed-login limit of its user name
 * (kept in the store, so replicas share it, and applied to names without an account too, so a
 * 429 says nothing about which names exist); then its admission among the password checks in
 * progress, capped per client address and per user name so that no single source can hold
 * all of the deferred queue's slots, with a reserve of slots for addresses that hold none, so
 * that a few addresses cannot hold them all either; then the queue itself. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "api_int.h"
#include "auth/password.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/ident.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/ratelimit.h"
#include "service/login.h"
#include "store/accounts.h"
#include "store/login_failures.h"

#define LOGIN_BODY_MAX 4096
/* Seconds a refused login (no slot) is told to wait: one password check takes about 0.1 s,
 * so slots free up well within it. */
#define LOGIN_RETRY_AFTER_S "1"

/* The members of a login body; any other is a 400 naming it. */
static const char *const login_members[] = {"username", "password", NULL};

/* Room for every key of the admitted logins: each holds one address and one name entry. */
#define GATE_ENTRIES (2 * API_LOGIN_SLOTS)
/* A client address as text (http_req_remote: at most an IPv6 address with its zone). */
#define ADDR_MAX 63
#define GATE_KEY_MAX (2 + (ADDR_MAX > STORE_NAME_MAX ? ADDR_MAX : STORE_NAME_MAX))
/* Account states remembered for the session check, and for how long: a change made by the
 * CLI (another process) is seen within ACCT_TTL_MS. */
#define ACCT_SLOTS 1024
#define ACCT_TTL_MS 500

struct gate_ent {
    char key[GATE_KEY_MAX + 1]; /* "a:<address>" or "u:<name>"; "" = free */
    unsigned n;
};

struct acct_ent {
    char name[STORE_NAME_MAX + 1]; /* "" = free */
    int exists;
    int64_t epoch;
    int64_t fetched_ms; /* monotonic */
};

struct api_login {
    struct store *store;
    struct ratelimit limit;
    unsigned per_addr, per_user;

    pthread_mutex_t gate_mu;
    unsigned in_use;
    struct gate_ent gate[GATE_ENTRIES];

    pthread_mutex_t acct_mu;
    struct acct_ent acct[ACCT_SLOTS];
};

int api_login_new(const struct api_login_opts *o, struct api_login **out)
{
    struct api_login *l;
    char why[160];

    if (o == NULL || o->store == NULL || out == NULL || o->per_user == 0)
        return TV_ERR_INVALID;
    if ((l = calloc(1, sizeof *l)) == NULL)
        return TV_ERR_NOMEM;
    if (ratelimit_parse(o->login_limit != NULL ? o->login_limit : "off", &l->limit, why,
                        sizeof why) != 0) {
        log_msg(LOGL_ERROR, NULL, "login_limit: %s", why);
        free(l);
        return TV_ERR_CONFIG;
    }
    l->store = o->store;
    l->per_addr = o->per_addr;
    l->per_user = o->per_user;
    pthread_mutex_init(&l->gate_mu, NULL);
    pthread_mutex_init(&l->acct_mu, NULL);
    *out = l;
    return 0;
}

void api_login_free(struct api_login *l)
{
    if (l == NULL)
        return;
    pthread_mutex_destroy(&l->gate_mu);
    pthread_mutex_destroy(&l->acct_mu);
    free(l);
}

/* ---- admission: slots in use per address and per name ---- */

/* The client as the per-address cap counts it (api_int.h): an IPv4 address as it is, an IPv6
 * address by its /64 (one subscriber commonly holds a whole /64, so counting single addresses would
 * let one source take every slot). */
void api_login_client_key(const char *addr, char *out, size_t cap)
{
    struct in6_addr a6;
    char text[INET6_ADDRSTRLEN];

    if (strchr(addr, ':') != NULL && inet_pton(AF_INET6, addr, &a6) == 1 &&
        !IN6_IS_ADDR_V4MAPPED(&a6)) {
        memset(a6.s6_addr + 8, 0, 8);
        if (inet_ntop(AF_INET6, &a6, text, sizeof text) != NULL) {
            snprintf(out, cap, "%s/64", text);
            return;
        }
    }
    snprintf(out, cap, "%s", addr);
}

static struct gate_ent *gate_find(struct api_login *l, const char *key, int create)
{
    struct gate_ent *spare = NULL;

    for (size_t i = 0; i < GATE_ENTRIES; i++) {
        if (l->gate[i].key[0] == '\0') {
            if (spare == NULL)
                spare = &l->gate[i];
        } else if (strcmp(l->gate[i].key, key) == 0) {
            return &l->gate[i];
        }
    }
    if (create && spare != NULL) {
        snprintf(spare->key, sizeof spare->key, "%s", key);
        spare->n = 0;
    }
    return create ? spare : NULL;
}

static void gate_put(struct gate_ent *e)
{
    if (e != NULL && e->n > 0 && --e->n == 0)
        e->key[0] = '\0';
}

/* Admits one login from addr for name, or refuses (0 / TV_ERR_UNAVAILABLE). */
static int gate_enter(struct api_login *l, const char *addr, const char *name)
{
    char ka[GATE_KEY_MAX + 1], ku[GATE_KEY_MAX + 1];
    struct gate_ent *ea = NULL, *eu;
    int rc = TV_ERR_UNAVAILABLE;

    snprintf(ka, sizeof ka, "a:%s", addr);
    snprintf(ku, sizeof ku, "u:%s", name);
    pthread_mutex_lock(&l->gate_mu);
    if (l->in_use >= API_LOGIN_SLOTS)
        goto done;
    if (l->per_addr > 0) {
        ea = gate_find(l, ka, 1);
        /* Past the shared part, only an address with no check running gets a slot. */
        if (ea == NULL || ea->n >= l->per_addr ||
            (ea->n > 0 && l->in_use >= API_LOGIN_SLOTS - API_LOGIN_RESERVE)) {
            if (ea != NULL && ea->n == 0)
                ea->key[0] = '\0';
            goto done;
        }
    }
    eu = gate_find(l, ku, 1);
    if (eu == NULL || eu->n >= l->per_user) {
        if (eu != NULL && eu->n == 0)
            eu->key[0] = '\0';
        if (ea != NULL && ea->n == 0)
            ea->key[0] = '\0';
        goto done;
    }
    if (ea != NULL)
        ea->n++;
    eu->n++;
    l->in_use++;
    rc = 0;
done:
    pthread_mutex_unlock(&l->gate_mu);
    return rc;
}

static void gate_leave(struct api_login *l, const char *addr, const char *name)
{
    char ka[GATE_KEY_MAX + 1], ku[GATE_KEY_MAX + 1];

    snprintf(ka, sizeof ka, "a:%s", addr);
    snprintf(ku, sizeof ku, "u:%s", name);
    pthread_mutex_lock(&l->gate_mu);
    if (l->per_addr > 0)
        gate_put(gate_find(l, ka, 0));
    gate_put(gate_find(l, ku, 0));
    l->in_use--;
    pthread_mutex_unlock(&l->gate_mu);
}

/* ---- the account behind a session token ---- */

static size_t acct_slot(const char *name)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (; *name != '\0'; name++)
        h = (h ^ (unsigned char)*name) * 16777619u;
    return h % ACCT_SLOTS;
}

int api_session_account_check(struct api_ctx *ctx, const char *name, int64_t epoch)
{
    struct api_login *l = ctx->login;
    struct acct_ent *e;
    int64_t now = clock_mono_ms(), stored = 0;
    int exists = 0, hit = 0, rc;

    if (l == NULL || strlen(name) > STORE_NAME_MAX)
        return TV_ERR_UNAUTHORIZED;
    e = &l->acct[acct_slot(name)];
    pthread_mutex_lock(&l->acct_mu);
    if (strcmp(e->name, name) == 0 && now - e->fetched_ms < ACCT_TTL_MS) {
        hit = 1;
        exists = e->exists;
        stored = e->epoch;
    }
    pthread_mutex_unlock(&l->acct_mu);
    if (!hit) {
        /* A read on the store's reader pool (a primary-key lookup), at most every ACCT_TTL_MS
         * per active name; two threads racing here both read, which is harmless. */
        rc = store_account_epoch(l->store, name, &stored);
        if (rc != 0 && rc != TV_ERR_NOT_FOUND)
            return TV_ERR_UNAVAILABLE;
        exists = rc == 0;
        pthread_mutex_lock(&l->acct_mu);
        snprintf(e->name, sizeof e->name, "%s", name);
        e->exists = exists;
        e->epoch = stored;
        e->fetched_ms = now;
        pthread_mutex_unlock(&l->acct_mu);
    }
    return exists && stored == epoch ? 0 : TV_ERR_UNAUTHORIZED;
}

/* ---- POST /api/login ---- */

/* A login admitted and handed to the service: what its reply and its release need. */
struct login {
    struct http_req *req;
    struct api_ctx *ctx;
    char username[STORE_NAME_MAX + 1];
    char addr[ADDR_MAX + 1]; /* as api_login_client_key counts it */
};

/* A service_login_done_fn (service thread): the admission slot back, then the reply. In this
 * order, a client sending its next login as soon as it has the answer finds its slot free (else
 * it could still count as holding one, and be refused a slot kept for addresses holding none). */
/* 429 for a name whose failed-login limit is full, with Retry-After from wait_ms. */
static void login_limit_reply(struct http_req *req, int64_t wait_ms)
{
    char secs[24];

    snprintf(secs, sizeof secs, "%lld", (long long)ratelimit_retry_after_s(wait_ms));
    http_reply_header(req, "Retry-After", secs);
    http_reply_error(req, TV_ERR_RATE_LIMITED,
                     "too many failed logins for this user name; try again later");
}

/* The wait before name's failed-login limit has room again (ms; 1 s when the store cannot
 * tell), for a login the service refused once the limit had filled up. */
static int64_t login_limit_wait(struct api_login *g, const char *name)
{
    int64_t tat = 0, wait = 1000;

    if (store_login_failure_get(g->store, name, &tat) == 0 &&
        ratelimit_fits(&g->limit, tat, clock_wall_ms(), &wait))
        wait = 1000;
    return wait;
}

static void login_done(void *arg, int rc, const char *token, const char *refresh,
                       int64_t refresh_expires_in_s)
{
    struct login *l = arg;
    struct json_object *o;

    gate_leave(l->ctx->login, l->addr, l->username);
    if (rc == TV_ERR_UNAUTHORIZED) {
        api_reply_error(l->req, rc, "invalid username or password");
    } else if (rc == TV_ERR_UNAVAILABLE) {
        /* The attempt could not be counted, so it was not checked (service/login.h). */
        http_reply_header(l->req, "Retry-After", LOGIN_RETRY_AFTER_S);
        http_reply_error(l->req, rc, "cannot record the login attempt right now; try again later");
    } else if (rc == TV_ERR_RATE_LIMITED) {
        login_limit_reply(l->req, login_limit_wait(l->ctx->login, l->username));
    } else if (rc != 0) {
        http_reply_error(l->req, rc, NULL);
    } else {
        o = json_object_new_object();
        json_object_object_add(o, "access_token", json_object_new_string(token));
        json_object_object_add(o, "token_type", json_object_new_string("Bearer"));
        json_object_object_add(o, "expires_in",
                               json_object_new_int64(l->ctx->session_minutes * 60));
        if (refresh != NULL) {
            api_session_cookie_set(l->req, refresh, refresh_expires_in_s);
            json_object_object_add(o, "refresh_expires_in",
                                   json_object_new_int64(refresh_expires_in_s));
        }
        http_reply_header(l->req, "Cache-Control", "no-store");
        http_reply_header(l->req, "Pragma", "no-cache");
        http_reply_json(l->req, 200, o);
    }
    free(l);
}

/* The failed-login limit of name, checked before any hashing: 0 when a login may proceed, or
 * non-zero after replying 429 (or 503 when the store cannot tell). */
static int login_limit_check(struct http_req *req, struct api_ctx *ctx, const char *name)
{
    struct api_login *g = ctx->login;
    int64_t now = clock_wall_ms(), tat = 0, wait = 0;
    int rc;

    if (g->limit.off)
        return 0;
    if ((rc = store_login_failure_get(g->store, name, &tat)) != 0) {
        http_reply_error(req, TV_ERR_UNAVAILABLE, "cannot check the login limit right now");
        return rc;
    }
    if (ratelimit_fits(&g->limit, tat, now, &wait))
        return 0;
    /* After the wall clock went backwards, keep the lock to one window from now. */
    if (ratelimit_normalize(&g->limit, tat, now) != tat)
        (void)store_login_failure_normalize(g->store, name, &g->limit, now);
    login_limit_reply(req, wait);
    return TV_ERR_RATE_LIMITED;
}

/* Whether a login may set the tv_refresh cookie. Only a request a page on another origin
 * could not have sent without a CORS preflight: Content-Type application/json (a plain form or
 * text/plain post is a "simple" request any site can make, which would log the victim's
 * browser into the poster's account), from no Origin, our own or a listed one. Other logins
 * (curl -d sends application/x-www-form-urlencoded) still get their session token. */
static int login_cookie_ok(struct http_req *req)
{
    return api_json_type_ok(http_req_header(req, "Content-Type")) && api_session_origin_ok(req);
}

/* Hands an admitted login to the service; replies itself when the service cannot take it. */
static void login_submit(struct http_req *req, struct api_ctx *ctx, struct login *l, const char *pw)
{
    struct service_login_req r = {.username = l->username,
                                  .password = pw,
                                  .pwlen = strlen(pw),
                                  .limit = &ctx->login->limit,
                                  .session = ctx->session,
                                  .session_s = (int64_t)ctx->session_minutes * 60,
                                  .refresh = login_cookie_ok(req) ? ctx->refresh : NULL};
    struct api_caller who = {.kind = "user"};
    struct service_call call;
    char app_user[IDENT_LOCAL_ID_CAP];
    int rc;

    (void)ident_local_user(l->username, app_user, sizeof app_user); /* name checked before */
    (void)ident_local_user(l->username, who.name, sizeof who.name);
    r.app_user_id = app_user;
    api_call_init(&call, req, &who);
    rc = service_login(ctx->svc, &call, &r, login_done, l);
    if (rc == 0)
        return;
    gate_leave(ctx->login, l->addr, l->username);
    free(l);
    if (rc == TV_ERR_UNAVAILABLE) {
        http_reply_header(req, "Retry-After", LOGIN_RETRY_AFTER_S);
        http_reply_error(req, rc, "too many logins in progress; try again shortly");
    } else {
        http_reply_error(req, rc, NULL);
    }
}

void api_login(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    struct json_object *root = NULL;
    const char *user = NULL, *pw = NULL;
    size_t len = 0;
    const char *body = http_req_body(req, &len);
    struct login *l = NULL;
    char client[INET6_ADDRSTRLEN];
    char msg[160];

    if (ctx->session == NULL || ctx->login == NULL) {
        http_reply_error(req, TV_ERR_NOT_FOUND, "local accounts are not enabled");
        return;
    }
    /* The per-address limit of the public API covers logins too, before any parsing. */
    if (api_limit_ip(req, ctx) != 0)
        return;
    /* A browser posting from another origin that is not ours nor listed (a "*" entry allows
     * that origin the CORS answer, not the cookie) is refused outright unless "*" allows it;
     * such a login then gets no cookie (login_submit). */
    if (!api_session_origin_ok(req) && !http_req_origin_allowed(req)) {
        http_reply_error(req, TV_ERR_FORBIDDEN, "origin not allowed");
        return;
    }
    if (jsonx_parse(body, len, LOGIN_BODY_MAX, &root) != 0 ||
        !json_object_is_type(root, json_type_object)) {
        http_reply_error(req, TV_ERR_PARSE, "the body must be a JSON object");
        goto done;
    }
    if (jsonx_check_members(root, login_members, msg, sizeof msg) != 0) {
        http_reply_error(req, TV_ERR_INVALID, msg);
        goto done;
    }
    if (jsonx_get_string(root, "username", STORE_NAME_MAX, &user) != 0 ||
        ident_check_str(user, STORE_NAME_MAX) != IDENT_OK ||
        jsonx_get_string(root, "password", PASSWORD_MAX_LEN, &pw) != 0) {
        http_reply_error(
            req, TV_ERR_INVALID,
            "username (1..64 bytes, no control characters) and password (1..1024 bytes) "
            "are required");
        goto done;
    }
    if (login_limit_check(req, ctx, user) != 0)
        goto done;
    if ((l = calloc(1, sizeof *l)) == NULL) {
        http_reply_error(req, TV_ERR_NOMEM, NULL);
        goto done;
    }
    l->req = req;
    l->ctx = ctx;
    snprintf(l->username, sizeof l->username, "%s", user);
    /* Behind trusted proxies, the client they name (else every client shares their slots). */
    api_client_addr(req, ctx, client, sizeof client);
    api_login_client_key(client, l->addr, sizeof l->addr);
    if (gate_enter(ctx->login, l->addr, l->username) != 0) {
        /* This address or this name already has its share of the password checks running:
         * refuse at once rather than let one source take every slot. */
        free(l);
        http_reply_header(req, "Retry-After", LOGIN_RETRY_AFTER_S);
        http_reply_error(req, TV_ERR_UNAVAILABLE, "too many logins in progress; try again shortly");
        goto done;
    }
    login_submit(req, ctx, l, pw);
done:
    /* Wipe the copies of the password this handler saw: json-c's parsed string and the raw
     * body (both heap buffers nobody reads after this point); the service wipes its own. */
    if (pw != NULL)
        buf_wipe_const(pw, strlen(pw));
    if (len > 0)
        buf_wipe_const(body, len);
    /* Wiped too when the password was never read (an unknown member stopped the parse). */
    jsonx_put_wiped(root);
}
