/* Unit tests for JWKS fetching against a tiny HTTP server on 127.0.0.1 (a thread in this test):
 * background fetch at creation, unknown-kid refetch limited by the interval, key rotation,
 * periodic refresh, last good keys kept on failure, discovery via openid-configuration (issuer
 * must match), body ceiling, many threads verifying while the set is refetched, and a JWKS
 * server that accepts and never answers: verification still answers at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "auth/jwks.h"
#include "auth/jwt.h"
#include "core/b64.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"

#define ISS "https://issuer.example/"
#define AUD "api://tokenvend"

struct srv {
    int fd, port;
    pthread_t th;
    pthread_mutex_t mu;
    char jwks[16384];
    int jwks_status;
    char oidc[1024];
    int hits_jwks, hits_oidc, hits_big;
    int stop;
};

static struct srv S;

/* A JWKS server that accepts connections and never answers: each fetch hangs until curl's
 * timeout (or jwks_free's abort). Records when each connection came. */
#define HANG_MAX 64
struct hang {
    int fd, port;
    pthread_t th;
    pthread_mutex_t mu;
    int conns[HANG_MAX];
    int64_t at_ms[HANG_MAX];
    int n, stop;
};

static struct hang H;
static EVP_PKEY *k1, *k2;
static char *jwk1, *jwk2;
static const struct jwt_expect expect = {.issuer = ISS, .audience = AUD};

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void serve_one(int c)
{
    char req[8192] = "", path[256] = "", head[256];
    size_t got = 0;
    char *body = NULL;
    int status = 404, stop;

    while (got < sizeof req - 1 && !strstr(req, "\r\n\r\n")) {
        ssize_t r = recv(c, req + got, sizeof req - 1 - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
        req[got] = '\0';
    }
    req[got] = '\0';
    sscanf(req, "GET %255s ", path);
    pthread_mutex_lock(&S.mu);
    stop = S.stop;
    if (strcmp(path, "/jwks") == 0) {
        S.hits_jwks++;
        status = S.jwks_status;
        body = strdup(S.jwks);
    } else if (strcmp(path, "/.well-known/openid-configuration") == 0) {
        S.hits_oidc++;
        status = 200;
        body = strdup(S.oidc);
    } else if (strcmp(path, "/big") == 0) {
        S.hits_big++;
        status = 200;
        body = malloc(JWKS_MAX_BODY + 4096);
        memset(body, ' ', JWKS_MAX_BODY + 4095);
        body[JWKS_MAX_BODY + 4095] = '\0';
        memcpy(body, "{\"keys\":[]}", 11);
    }
    pthread_mutex_unlock(&S.mu);
    if (!stop) {
        if (!body)
            body = strdup("{}");
        snprintf(head, sizeof head,
                 "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n\r\n",
                 status, strlen(body));
        send_all(c, head, strlen(head));
        send_all(c, body, strlen(body));
    }
    free(body);
    close(c);
}

static void *srv_main(void *arg)
{
    (void)arg;
    for (;;) {
        struct pollfd p = {.fd = S.fd, .events = POLLIN};
        int stop;
        pthread_mutex_lock(&S.mu);
        stop = S.stop;
        pthread_mutex_unlock(&S.mu);
        if (stop)
            break;
        if (poll(&p, 1, 50) > 0) {
            int c = accept(S.fd, NULL, NULL);
            if (c >= 0)
                serve_one(c);
        }
    }
    return NULL;
}

static char *b64u_bn(const BIGNUM *bn, int pad)
{
    uint8_t buf[600];
    int n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    char *s = malloc(b64_encoded_size((size_t)n));
    b64url_encode(buf, (size_t)n, s);
    return s;
}

static char *jwk_of(EVP_PKEY *pkey, const char *kid)
{
    BIGNUM *n = NULL, *e = NULL;
    char *out = malloc(2048), *a, *b;

    assert_true(EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n));
    assert_true(EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e));
    a = b64u_bn(n, 0);
    b = b64u_bn(e, 0);
    snprintf(out, 2048,
             "{\"kty\":\"RSA\",\"kid\":\"%s\",\"alg\":\"RS256\",\"n\":\"%s\",\"e\":\"%s\"}", kid, a,
             b);
    free(a);
    free(b);
    BN_free(n);
    BN_free(e);
    return out;
}

static void serve_keys(const char *a, const char *b, int status)
{
    pthread_mutex_lock(&S.mu);
    snprintf(S.jwks, sizeof S.jwks, "{\"keys\":[%s%s%s]}", a ? a : "", a && b ? "," : "",
             b ? b : "");
    S.jwks_status = status;
    pthread_mutex_unlock(&S.mu);
}

static int hits(int *counter)
{
    int n;
    pthread_mutex_lock(&S.mu);
    n = *counter;
    pthread_mutex_unlock(&S.mu);
    return n;
}

static void reset_hits(void)
{
    pthread_mutex_lock(&S.mu);
    S.hits_jwks = S.hits_oidc = S.hits_big = 0;
    pthread_mutex_unlock(&S.mu);
}

static char *token(EVP_PKEY *k, const char *kid)
{
    char payload[256], *t = NULL;
    snprintf(payload, sizeof payload,
             "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"u1\",\"exp\":%lld}",
             (long long)time(NULL) + 600);
    assert_int_equal(jwt_sign(k, JWT_ALG_RS256, kid, payload, &t), 0);
    return t;
}

static int check(struct jwks *s, const char *tok)
{
    struct jwt_claims c;
    const char *why = NULL;
    int rc = jwks_verify_ex(s, tok, strlen(tok), &expect, &c, &why);
    if (rc == 0)
        jwt_claims_release(&c);
    else if (getenv("TV_TEST_LOG"))
        fprintf(stderr, "verify: %s\n", why);
    return rc;
}

static struct jwks *make_set_opts(int port, const char *path, int discovery, struct jwks_opts o)
{
    char url[128];
    struct jwks *s = NULL;

    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    if (discovery)
        o.issuer = url;
    else
        o.jwks_url = url;
    assert_int_equal(jwks_new(&o, &s), 0);
    return s;
}

static struct jwks *make_set(const char *path, int discovery)
{
    return make_set_opts(S.port, path, discovery, (struct jwks_opts){0});
}

/* A set whose background fetcher has loaded the keys served now. */
static struct jwks *make_loaded_set(const char *path, int discovery)
{
    struct jwks *s = make_set(path, discovery);

    assert_int_equal(jwks_wait(s, 10000), 0);
    return s;
}

/* Verifies until the result is want or 10 s passed (the fetcher works in the background). */
static int check_until(struct jwks *s, const char *tok, int want)
{
    int64_t deadline = clock_mono_ms() + 10000;
    int rc;

    while ((rc = check(s, tok)) != want && clock_mono_ms() < deadline)
        clock_sleep_ms(10);
    return rc;
}

/* check() and how long it took, in ms. */
static int check_timed(struct jwks *s, const char *tok, int64_t *ms)
{
    int64_t t0 = clock_mono_ms();
    int rc = check(s, tok);

    *ms = clock_mono_ms() - t0;
    return rc;
}

static void *hang_main(void *arg)
{
    (void)arg;
    for (;;) {
        struct pollfd p = {.fd = H.fd, .events = POLLIN};
        int stop;
        pthread_mutex_lock(&H.mu);
        stop = H.stop;
        pthread_mutex_unlock(&H.mu);
        if (stop)
            break;
        if (poll(&p, 1, 20) > 0) {
            int c = accept(H.fd, NULL, NULL);
            pthread_mutex_lock(&H.mu);
            if (c >= 0 && H.n < HANG_MAX) {
                H.at_ms[H.n] = clock_mono_ms();
                H.conns[H.n++] = c;
            } else if (c >= 0) {
                close(c);
            }
            pthread_mutex_unlock(&H.mu);
        }
    }
    return NULL;
}

static int listen_loopback(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 64), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static int hang_conns(void)
{
    int n;
    pthread_mutex_lock(&H.mu);
    n = H.n;
    pthread_mutex_unlock(&H.mu);
    return n;
}

/* Closes the hanging connections and forgets them. */
static void hang_reset(void)
{
    pthread_mutex_lock(&H.mu);
    for (int i = 0; i < H.n; i++)
        close(H.conns[i]);
    H.n = 0;
    pthread_mutex_unlock(&H.mu);
}

static void wait_hang_conns(int n)
{
    int64_t deadline = clock_mono_ms() + 10000;

    while (hang_conns() < n && clock_mono_ms() < deadline)
        clock_sleep_ms(5);
    assert_true(hang_conns() >= n);
}

static int setup(void **state)
{
    (void)state;
    k1 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    k2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    jwk1 = jwk_of(k1, "r1");
    jwk2 = jwk_of(k2, "r2");
    pthread_mutex_init(&S.mu, NULL);
    S.fd = listen_loopback(&S.port);
    serve_keys(jwk1, NULL, 200);
    assert_int_equal(pthread_create(&S.th, NULL, srv_main, NULL), 0);
    pthread_mutex_init(&H.mu, NULL);
    H.fd = listen_loopback(&H.port);
    assert_int_equal(pthread_create(&H.th, NULL, hang_main, NULL), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pthread_mutex_lock(&S.mu);
    S.stop = 1;
    pthread_mutex_unlock(&S.mu);
    pthread_join(S.th, NULL);
    close(S.fd);
    pthread_mutex_lock(&H.mu);
    H.stop = 1;
    pthread_mutex_unlock(&H.mu);
    pthread_join(H.th, NULL);
    hang_reset();
    close(H.fd);
    free(jwk1);
    free(jwk2);
    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
    return 0;
}

static void test_fetch_and_refetch(void **state)
{
    struct jwks *s;
    char *t1 = token(k1, "r1"), *t2 = token(k2, "r2");

    (void)state;
    reset_hits();
    serve_keys(jwk1, NULL, 200);
    /* Fetched in the background at creation, then served from the cache. */
    s = make_loaded_set("/jwks", 0);
    assert_int_equal(check(s, t1), 0);
    assert_int_equal(check(s, t1), 0);
    assert_int_equal(hits(&S.hits_jwks), 1);
    /* An unknown kid right after a fetch does not refetch (interval 60 s). */
    serve_keys(jwk1, jwk2, 200);
    assert_int_equal(check(s, t2), TV_ERR_UNAUTHORIZED);
    assert_int_equal(check(s, t2), TV_ERR_UNAUTHORIZED);
    clock_sleep_ms(200);
    assert_int_equal(hits(&S.hits_jwks), 1);
    /* With the test hook the next unknown kid asks for a refetch: that request is answered at
     * once with the keys held (401), and the rotation is accepted once the refetch ended. */
    jwks_set_refetch_interval_ms(s, 0);
    assert_int_equal(check(s, t2), TV_ERR_UNAUTHORIZED);
    assert_int_equal(check_until(s, t2, 0), 0);
    assert_int_equal(hits(&S.hits_jwks), 2);
    assert_int_equal(jwks_key_count(s), 2);
    /* Failed fetches keep the last good keys. */
    serve_keys(jwk1, jwk2, 500);
    assert_int_equal(jwks_refresh(s), TV_ERR_UNAVAILABLE);
    serve_keys(NULL, NULL, 200); /* {"keys":[]} */
    assert_int_equal(jwks_refresh(s), TV_ERR_PARSE);
    assert_int_equal(check(s, t1), 0);
    assert_int_equal(check(s, t2), 0);
    /* A successful fetch replaces the set: r2 retired. */
    serve_keys(jwk1, NULL, 200);
    assert_int_equal(jwks_refresh(s), 0);
    assert_int_equal(check(s, t2), TV_ERR_UNAUTHORIZED);
    assert_int_equal(check(s, t1), 0);
    jwks_free(s);
    free(t1);
    free(t2);
}

static void test_discovery(void **state)
{
    char *t1 = token(k1, "r1");
    struct jwks *s;

    (void)state;
    reset_hits();
    serve_keys(jwk1, NULL, 200);
    pthread_mutex_lock(&S.mu);
    snprintf(S.oidc, sizeof S.oidc,
             "{\"issuer\":\"http://127.0.0.1:%d/\",\"jwks_uri\":\"http://127.0.0.1:%d/jwks\"}",
             S.port, S.port);
    pthread_mutex_unlock(&S.mu);
    s = make_loaded_set("/", 1);
    assert_int_equal(check(s, t1), 0);
    assert_int_equal(hits(&S.hits_oidc), 1);
    assert_int_equal(hits(&S.hits_jwks), 1);
    jwks_free(s);
    /* A discovery document naming another issuer is not trusted. */
    pthread_mutex_lock(&S.mu);
    snprintf(S.oidc, sizeof S.oidc,
             "{\"issuer\":\"https://evil.example/\",\"jwks_uri\":\"http://127.0.0.1:%d/jwks\"}",
             S.port);
    pthread_mutex_unlock(&S.mu);
    s = make_set("/", 1);
    assert_int_equal(jwks_wait(s, 10000), TV_ERR_UNAVAILABLE);
    assert_int_equal(check(s, t1), TV_ERR_UNAVAILABLE);
    jwks_free(s);
    free(t1);
}

/* A jwks_uri found by discovery obeys the configured URLs' rule: https://, or http:// to a host
 * written as loopback. "127.1" reaches this machine (curl reads it as 127.0.0.1) but is not
 * written as loopback, so plain http to it is refused unless allow_insecure_http is set. */
static void test_discovery_http_rule(void **state)
{
    char *t1 = token(k1, "r1");
    struct jwks *s;

    (void)state;
    reset_hits();
    serve_keys(jwk1, NULL, 200);
    pthread_mutex_lock(&S.mu);
    snprintf(S.oidc, sizeof S.oidc,
             "{\"issuer\":\"http://127.0.0.1:%d/\",\"jwks_uri\":\"http://127.1:%d/jwks\"}", S.port,
             S.port);
    pthread_mutex_unlock(&S.mu);
    s = make_set("/", 1);
    assert_int_equal(jwks_refresh(s), TV_ERR_UNAVAILABLE);
    assert_int_equal(check(s, t1), TV_ERR_UNAVAILABLE);
    assert_true(hits(&S.hits_oidc) >= 1);
    assert_int_equal(hits(&S.hits_jwks), 0);
    jwks_free(s);
    /* The explicit test setting lets it through. */
    s = make_set_opts(S.port, "/", 1, (struct jwks_opts){.allow_insecure_http = 1});
    assert_int_equal(jwks_wait(s, 10000), 0);
    assert_int_equal(check(s, t1), 0);
    assert_true(hits(&S.hits_jwks) >= 1);
    jwks_free(s);
    /* Configured URLs follow the same rule. */
    struct jwks_opts o = {.jwks_url = "http://idp.example/jwks"};
    assert_int_equal(jwks_new(&o, &s), TV_ERR_INVALID);
    o.jwks_url = "https://idp.example/jwks";
    o.connect_timeout_ms = 1;
    o.timeout_ms = 1;
    assert_int_equal(jwks_new(&o, &s), 0);
    jwks_free(s);
    free(t1);
}

/* jwks_opts_check: what jwks_new refuses, with the setting and the limit named, so start-up can
 * refuse it before the database is opened. An issuer longer than JWKS_URL_MAX is refused even
 * with a key set URL (it could never equal a discovered issuer). */
static void test_opts_check(void **state)
{
    static char long_url[JWKS_URL_MAX + 64];
    char why[300];
    struct jwks *s = NULL;
    struct jwks_opts o = {.issuer = "https://idp.example/"};

    (void)state;
    assert_int_equal(jwks_opts_check(&o, why, sizeof why), 0);
    snprintf(long_url, sizeof long_url, "https://idp.example/%0*d", JWKS_URL_MAX, 0);
    o.issuer = long_url;
    assert_int_equal(jwks_opts_check(&o, why, sizeof why), TV_ERR_INVALID);
    assert_non_null(strstr(why, "oidc_issuer"));
    assert_non_null(strstr(why, "at most 2048"));
    assert_int_equal(jwks_new(&o, &s), TV_ERR_INVALID);
    o.jwks_url = "https://idp.example/jwks";
    assert_int_equal(jwks_opts_check(&o, why, sizeof why), TV_ERR_INVALID);
    assert_non_null(strstr(why, "oidc_issuer"));
    o.issuer = "https://idp.example/";
    o.jwks_url = long_url;
    assert_int_equal(jwks_opts_check(&o, why, sizeof why), TV_ERR_INVALID);
    assert_non_null(strstr(why, "oidc_jwks_url"));
    o.jwks_url = "http://idp.example/jwks";
    assert_int_equal(jwks_opts_check(&o, why, sizeof why), TV_ERR_INVALID);
    assert_non_null(strstr(why, "https://"));
    assert_null(s);
}

static void test_limits_and_failures(void **state)
{
    char *t1 = token(k1, "r1");
    struct jwks *s;
    struct jwks_opts o = {.jwks_url = "file:///etc/passwd"};

    (void)state;
    assert_int_equal(jwks_new(&o, &s), TV_ERR_INVALID);
    o.jwks_url = "gopher://x/";
    assert_int_equal(jwks_new(&o, &s), TV_ERR_INVALID);
    /* Bodies above the ceiling are refused. */
    s = make_set("/big", 0);
    assert_int_equal(jwks_refresh(s), TV_ERR_UNAVAILABLE);
    assert_int_equal(check(s, t1), TV_ERR_UNAVAILABLE);
    jwks_free(s);
    /* Nothing listening: unavailable, not a crash or a hang. */
    o.jwks_url = "http://127.0.0.1:1/jwks";
    assert_int_equal(jwks_new(&o, &s), 0);
    assert_int_equal(check(s, t1), TV_ERR_UNAVAILABLE);
    jwks_free(s);
    free(t1);
}

struct worker {
    struct jwks *s;
    const char *good, *unknown;
    int ok, bad;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 200; i++) {
        if (check(w->s, w->good) == 0)
            w->ok++;
        else
            w->bad++;
        if (i % 20 == 0 && check(w->s, w->unknown) == 0)
            w->bad++;
    }
    return NULL;
}

static void *refresher_main(void *arg)
{
    for (int i = 0; i < 20; i++) {
        serve_keys(i % 2 ? jwk1 : jwk2, i % 2 ? jwk2 : jwk1, 200); /* r1 always present */
        jwks_refresh(arg);
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    struct jwks *s;
    char *t1 = token(k1, "r1"), *tx = token(k2, "unknown");
    struct worker w[6];
    pthread_t th[7];

    (void)state;
    serve_keys(jwk1, jwk2, 200);
    s = make_loaded_set("/jwks", 0);
    jwks_set_refetch_interval_ms(s, 0);
    for (int i = 0; i < 6; i++) {
        w[i] = (struct worker){.s = s, .good = t1, .unknown = tx};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    assert_int_equal(pthread_create(&th[6], NULL, refresher_main, s), 0);
    for (int i = 0; i < 7; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(w[i].ok, 200);
        assert_int_equal(w[i].bad, 0);
    }
    jwks_free(s);
    free(t1);
    free(tx);
}

static void test_periodic_refresh(void **state)
{
    struct jwks_opts o = {.refresh_every_ms = 300};
    struct jwks *s;
    char *t1 = token(k1, "r1"), *t2 = token(k2, "r2");

    (void)state;
    serve_keys(jwk1, NULL, 200);
    s = make_set_opts(S.port, "/jwks", 0, o);
    assert_int_equal(jwks_wait(s, 10000), 0);
    assert_int_equal(check(s, t1), 0);
    /* Rotation with no unknown kid to prompt it (the 60 s wish interval has not passed either):
     * the periodic refresh retires r1 and brings r2. */
    serve_keys(jwk2, NULL, 200);
    assert_int_equal(check_until(s, t1, TV_ERR_UNAUTHORIZED), TV_ERR_UNAUTHORIZED);
    assert_int_equal(check(s, t2), 0);
    jwks_free(s);
    serve_keys(jwk1, NULL, 200);
    free(t1);
    free(t2);
}

struct hang_worker {
    struct jwks *s;
    const char *good, *unknown;
    int ok, unauthorized, other;
    int64_t slowest_ms;
};

static void *hang_worker_main(void *arg)
{
    struct hang_worker *w = arg;

    for (int i = 0; i < 50; i++) {
        int64_t ms;
        int rc = check_timed(w->s, i % 5 == 0 ? w->unknown : w->good, &ms);
        if (i % 5 == 0)
            rc == TV_ERR_UNAUTHORIZED ? w->unauthorized++ : w->other++;
        else
            rc == 0 ? w->ok++ : w->other++;
        if (ms > w->slowest_ms)
            w->slowest_ms = ms;
    }
    return NULL;
}

/* The JWKS server accepts and never answers (the review's reproduction). With a 30 s transfer
 * timeout, a verification that waited for the fetch would take 30 s; "within 1 s" is generous. */
static void test_hanging_server(void **state)
{
    struct jwks_opts o = {.timeout_ms = 30000};
    struct jwks *s;
    char *t1 = token(k1, "r1"), *tx = token(k2, "unknown");
    struct hang_worker w[4];
    pthread_t th[4];
    int64_t ms, t0;

    (void)state;
    hang_reset();
    s = make_set_opts(H.port, "/jwks", 0, o);
    wait_hang_conns(1); /* the initial fetch is now stuck */
    /* Nothing loaded: 503-style "unavailable", at once. */
    assert_int_equal(check_timed(s, t1, &ms), TV_ERR_UNAVAILABLE);
    assert_true(ms < 1000);
    assert_int_equal(check_timed(s, tx, &ms), TV_ERR_UNAVAILABLE);
    assert_true(ms < 1000);
    /* Keys arrive by other means while the fetch still hangs: known kids verify, unknown kids
     * are refused, all at once and from several threads. */
    assert_int_equal(jwks_load_json(s, jwk1, strlen(jwk1)), 0);
    for (int i = 0; i < 4; i++) {
        w[i] = (struct hang_worker){.s = s, .good = t1, .unknown = tx};
        assert_int_equal(pthread_create(&th[i], NULL, hang_worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].ok, 40);
        assert_int_equal(w[i].unauthorized, 10);
        assert_int_equal(w[i].other, 0);
        assert_true(w[i].slowest_ms < 1000);
    }
    /* Every miss during the hanging fetch joined it: still one connection. */
    assert_int_equal(hang_conns(), 1);
    /* Shutdown aborts the stuck transfer instead of waiting out its 30 s. */
    t0 = clock_mono_ms();
    jwks_free(s);
    ms = clock_mono_ms() - t0;
    if (getenv("TV_TEST_LOG"))
        fprintf(stderr, "hanging: slowest verification %lld ms, jwks_free %lld ms\n",
                (long long)w[0].slowest_ms, (long long)ms);
    assert_true(ms < 5000);
    hang_reset();
    free(t1);
    free(tx);
}

/* The state /readyz reports: loading while the first fetch is under way, failed with the cause
 * once it failed, ok from the first key set on, also while later refreshes fail. */
static void test_state_for_readyz(void **state)
{
    struct jwks_opts o = {.timeout_ms = 30000};
    struct jwks *s;
    char why[JWKS_ERR_MAX];

    (void)state;
    /* The first fetch hangs: loading, with no reason. */
    hang_reset();
    s = make_set_opts(H.port, "/jwks", 0, o);
    wait_hang_conns(1);
    assert_int_equal(jwks_state_get(s, why, sizeof why), JWKS_STATE_LOADING);
    assert_string_equal(why, "");
    jwks_free(s);
    hang_reset();

    /* The first fetch fails: failed, naming the URL and the status. */
    serve_keys(jwk1, NULL, 500);
    s = make_set("/jwks", 0);
    assert_int_equal(jwks_wait(s, 10000), TV_ERR_UNAVAILABLE);
    assert_int_equal(jwks_state_get(s, why, sizeof why), JWKS_STATE_FAILED);
    assert_non_null(strstr(why, "/jwks: HTTP 500"));
    assert_non_null(strstr(why, "GET http://127.0.0.1:"));
    /* Keys arrive: ok; a later failed refresh keeps it ok (the last good set still verifies). */
    serve_keys(jwk1, NULL, 200);
    assert_int_equal(jwks_refresh(s), 0);
    assert_int_equal(jwks_state_get(s, why, sizeof why), JWKS_STATE_OK);
    serve_keys(jwk1, NULL, 503);
    assert_int_equal(jwks_refresh(s), TV_ERR_UNAVAILABLE);
    assert_int_equal(jwks_state_get(s, NULL, 0), JWKS_STATE_OK);
    jwks_free(s);

    /* A document without a usable key says so. */
    serve_keys(NULL, NULL, 200);
    s = make_set("/jwks", 0);
    assert_int_equal(jwks_wait(s, 10000), TV_ERR_UNAVAILABLE);
    assert_int_equal(jwks_state_get(s, why, sizeof why), JWKS_STATE_FAILED);
    assert_non_null(strstr(why, "holds no usable key"));
    jwks_free(s);

    /* A static set without keys can never load. */
    assert_int_equal(jwks_new(&(struct jwks_opts){0}, &s), 0);
    assert_int_equal(jwks_state_get(s, why, sizeof why), JWKS_STATE_FAILED);
    assert_int_equal(jwks_load_json(s, jwk1, strlen(jwk1)), 0);
    assert_int_equal(jwks_state_get(s, why, sizeof why), JWKS_STATE_OK);
    jwks_free(s);
    serve_keys(jwk1, NULL, 200);
}

/* Refetch wishes are rate-limited from the END of the last fetch: a 1.5 s hanging fetch with a
 * 1 s interval must not be followed at once by another one. */
static void test_rate_limit_from_fetch_end(void **state)
{
    struct jwks_opts o = {.timeout_ms = 1500};
    struct jwks *s;
    char *t1 = token(k1, "r1"), *tx = token(k2, "unknown");
    int64_t at0, at1, deadline;

    (void)state;
    hang_reset();
    s = make_set_opts(H.port, "/jwks", 0, o);
    assert_int_equal(jwks_load_json(s, jwk1, strlen(jwk1)), 0);
    jwks_set_refetch_interval_ms(s, 1000);
    wait_hang_conns(1);
    /* Unknown kids keep asking; the first fetch gives up after 1.5 s. */
    deadline = clock_mono_ms() + 10000;
    while (hang_conns() < 2 && clock_mono_ms() < deadline) {
        assert_int_equal(check(s, tx), TV_ERR_UNAUTHORIZED);
        assert_int_equal(check(s, t1), 0);
        clock_sleep_ms(10);
    }
    assert_int_equal(hang_conns(), 2);
    pthread_mutex_lock(&H.mu);
    at0 = H.at_ms[0];
    at1 = H.at_ms[1];
    pthread_mutex_unlock(&H.mu);
    /* 1.5 s of fetch plus 1 s of interval, with some slack for the accept loop. */
    if (getenv("TV_TEST_LOG"))
        fprintf(stderr, "rate limit: second fetch %lld ms after the first\n",
                (long long)(at1 - at0));
    assert_true(at1 - at0 >= 2300);
    jwks_free(s);
    hang_reset();
    free(t1);
    free(tx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fetch_and_refetch),
        cmocka_unit_test(test_discovery),
        cmocka_unit_test(test_discovery_http_rule),
        cmocka_unit_test(test_limits_and_failures),
        cmocka_unit_test(test_opts_check),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_periodic_refresh),
        cmocka_unit_test(test_hanging_server),
        cmocka_unit_test(test_rate_limit_from_fetch_end),
        cmocka_unit_test(test_state_for_readyz),
    };

    log_setup(getenv("TV_TEST_LOG") ? LOGL_DEBUG : LOGL_OFF, 2);
    return cmocka_run_group_tests(tests, setup, teardown);
}
