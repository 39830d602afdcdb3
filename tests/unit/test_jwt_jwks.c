/* Unit tests for JWKS fetching against a tiny HTTP server on 127.0.0.1 (a thread in this test):
 * fetch on first use, unknown-kid refetch limited by the interval, key rotation, last good keys
 * kept on failure, discovery via openid-configuration (issuer must match), body ceiling, and
 * many threads verifying while the set is refetched. */
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

static struct jwks *make_set(const char *path, int discovery)
{
    char url[128];
    struct jwks *s = NULL;
    struct jwks_opts o = {0};

    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", S.port, path);
    if (discovery)
        o.issuer = url;
    else
        o.jwks_url = url;
    assert_int_equal(jwks_new(&o, &s), 0);
    return s;
}

static int setup(void **state)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;

    (void)state;
    k1 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    k2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    jwk1 = jwk_of(k1, "r1");
    jwk2 = jwk_of(k2, "r2");
    pthread_mutex_init(&S.mu, NULL);
    S.fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(S.fd >= 0);
    assert_int_equal(bind(S.fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(S.fd, 64), 0);
    assert_int_equal(getsockname(S.fd, (struct sockaddr *)&a, &len), 0);
    S.port = ntohs(a.sin_port);
    serve_keys(jwk1, NULL, 200);
    assert_int_equal(pthread_create(&S.th, NULL, srv_main, NULL), 0);
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
    free(jwk1);
    free(jwk2);
    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
    return 0;
}

static void test_fetch_and_refetch(void **state)
{
    struct jwks *s = make_set("/jwks", 0);
    char *t1 = token(k1, "r1"), *t2 = token(k2, "r2");

    (void)state;
    reset_hits();
    serve_keys(jwk1, NULL, 200);
    /* Fetched on first use, then served from the cache. */
    assert_int_equal(check(s, t1), 0);
    assert_int_equal(check(s, t1), 0);
    assert_int_equal(hits(&S.hits_jwks), 1);
    /* An unknown kid right after a fetch does not refetch (interval 60 s). */
    serve_keys(jwk1, jwk2, 200);
    assert_int_equal(check(s, t2), TV_ERR_UNAUTHORIZED);
    assert_int_equal(check(s, t2), TV_ERR_UNAUTHORIZED);
    assert_int_equal(hits(&S.hits_jwks), 1);
    /* With the test hook the rotation is picked up on the next unknown kid. */
    jwks_set_refetch_interval_ms(s, 0);
    assert_int_equal(check(s, t2), 0);
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
    s = make_set("/", 1);
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
    assert_int_equal(check(s, t1), TV_ERR_UNAVAILABLE);
    jwks_free(s);
    free(t1);
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
    struct jwks *s = make_set("/jwks", 0);
    char *t1 = token(k1, "r1"), *tx = token(k2, "unknown");
    struct worker w[6];
    pthread_t th[7];

    (void)state;
    serve_keys(jwk1, jwk2, 200);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fetch_and_refetch),
        cmocka_unit_test(test_discovery),
        cmocka_unit_test(test_limits_and_failures),
        cmocka_unit_test(test_concurrent),
    };

    log_setup(getenv("TV_TEST_LOG") ? LOGL_DEBUG : LOGL_OFF, 2);
    return cmocka_run_group_tests(tests, setup, teardown);
}
