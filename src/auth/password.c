/* Argon2id password hashing for local accounts (libargon2). The cost parameters are settled once
 * (default, then the TOKENVEND_ARGON2 environment variable, or password_params_set); hashing and
 * verification are then thread-safe. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "auth/password.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"

#define SALT_LEN 16
#define TAG_LEN 32
#define ENCODED_PREFIX "$argon2id$"

/* t=3 passes over 32 MiB with one lane takes about 90-110 ms on the 2-core build machine: slow
 * enough to make offline guessing expensive (well above OWASP's Argon2id minimums), fast enough
 * for an interactive login, and 32 MiB per concurrent login keeps the service's memory modest.
 * More lanes do not help: Debian's libargon2 gains little from a second thread on 2 cores. */
static const struct password_params default_params = {3, 32768, 1};

static struct password_params current;
static pthread_once_t current_once = PTHREAD_ONCE_INIT;

void password_params_default(struct password_params *out)
{
    *out = default_params;
}

static int params_check(const struct password_params *p)
{
    if (p->t_cost < 1 || p->t_cost > 10 || p->parallelism < 1 || p->parallelism > 8 ||
        p->m_cost_kib < 8 * p->parallelism || p->m_cost_kib > 1048576)
        return TV_ERR_INVALID;
    return 0;
}

/* Reads one unsigned decimal of at most 7 digits at *s, advancing *s. */
static int parse_u32(const char **s, uint32_t *out)
{
    uint32_t v = 0;
    int digits = 0;

    while (**s >= '0' && **s <= '9' && digits < 8) {
        v = v * 10 + (uint32_t)(**s - '0');
        (*s)++;
        digits++;
    }
    if (digits == 0 || digits > 7)
        return TV_ERR_INVALID;
    *out = v;
    return 0;
}

int password_params_parse(const char *s, struct password_params *inout)
{
    struct password_params p = *inout;

    if (s == NULL || *s == '\0')
        return TV_ERR_INVALID;
    for (;;) {
        char k = s[0];
        uint32_t v;
        if ((k != 't' && k != 'm' && k != 'p') || s[1] != '=')
            return TV_ERR_INVALID;
        s += 2;
        if (parse_u32(&s, &v) != 0)
            return TV_ERR_INVALID;
        if (k == 't')
            p.t_cost = v;
        else if (k == 'm')
            p.m_cost_kib = v;
        else
            p.parallelism = v;
        if (*s == '\0')
            break;
        if (*s != ',')
            return TV_ERR_INVALID;
        s++;
    }
    if (params_check(&p) != 0)
        return TV_ERR_INVALID;
    *inout = p;
    return 0;
}

static void current_init(void)
{
    const char *env = getenv(PASSWORD_ENV_PARAMS);
    struct password_params p = default_params;

    if (env != NULL && env[0] != '\0') {
        if (password_params_parse(env, &p) == 0)
            log_msg(LOGL_INFO, NULL, "argon2id parameters from %s: t=%u m=%u KiB p=%u",
                    PASSWORD_ENV_PARAMS, p.t_cost, p.m_cost_kib, p.parallelism);
        else
            log_msg(LOGL_WARN, NULL, "%s is malformed (want t=N,m=KIB,p=N); using the defaults",
                    PASSWORD_ENV_PARAMS);
    }
    current = p;
}

void password_params_get(struct password_params *out)
{
    pthread_once(&current_once, current_init);
    *out = current;
}

int password_params_set(const struct password_params *p)
{
    if (params_check(p) != 0)
        return TV_ERR_INVALID;
    /* Run the one-time initialisation first so that it cannot overwrite this later. */
    pthread_once(&current_once, current_init);
    current = *p;
    return 0;
}

int password_hash(const char *pw, size_t len, char *out, size_t cap)
{
    struct password_params p;
    uint8_t salt[SALT_LEN];
    char encoded[PASSWORD_HASH_MAX];
    size_t need;
    int arc;
    int rc = TV_ERR_INVALID;

    if (pw == NULL || len < PASSWORD_MIN_LEN || len > PASSWORD_MAX_LEN)
        goto done;
    password_params_get(&p);
    need = argon2_encodedlen(p.t_cost, p.m_cost_kib, p.parallelism, SALT_LEN, TAG_LEN, Argon2_id);
    rc = TV_ERR_TOO_LARGE;
    if (need > sizeof encoded || need > cap)
        goto done;
    rc = TV_ERR_CRYPTO;
    if (RAND_bytes(salt, sizeof salt) != 1)
        goto done;
    arc = argon2id_hash_encoded(p.t_cost, p.m_cost_kib, p.parallelism, pw, len, salt, sizeof salt,
                                TAG_LEN, encoded, sizeof encoded);
    if (arc != ARGON2_OK) {
        rc = arc == ARGON2_MEMORY_ALLOCATION_ERROR ? TV_ERR_NOMEM : TV_ERR_CRYPTO;
        log_msg(LOGL_ERROR, NULL, "argon2id hashing failed: %s", argon2_error_message(arc));
        goto done;
    }
    memcpy(out, encoded, strlen(encoded) + 1);
    rc = 0;
done:
    OPENSSL_cleanse(salt, sizeof salt);
    return rc;
}

int password_verify(const char *encoded, const char *pw, size_t len)
{
    int arc;

    if (encoded == NULL || pw == NULL || len < PASSWORD_MIN_LEN || len > PASSWORD_MAX_LEN)
        return TV_ERR_UNAUTHORIZED;
    /* Only Argon2id hashes are ours; anything else in the store is treated as no password. */
    if (strncmp(encoded, ENCODED_PREFIX, strlen(ENCODED_PREFIX)) != 0 ||
        strnlen(encoded, PASSWORD_HASH_MAX) >= PASSWORD_HASH_MAX)
        return TV_ERR_UNAUTHORIZED;
    /* libargon2 recomputes the tag and compares it in constant time. */
    arc = argon2id_verify(encoded, pw, len);
    if (arc == ARGON2_OK)
        return 0;
    if (arc != ARGON2_VERIFY_MISMATCH)
        log_msg(LOGL_WARN, NULL, "argon2id verification failed: %s", argon2_error_message(arc));
    return TV_ERR_UNAUTHORIZED;
}

/* What one check at the current parameters took, last measured (ms; 0 before the first): the
 * time a failure against a hash of other parameters is padded to. Hashing and verifying cost
 * the same Argon2 work, so the dummy hash's making is the first measure. */
static atomic_llong current_cost_ms;

static void cost_note(int64_t ms)
{
    atomic_store(&current_cost_ms, ms > 0 ? ms : 1);
}

/* The dummy hash and the parameters it was made with; remade when they change. */
static pthread_mutex_t dummy_lock = PTHREAD_MUTEX_INITIALIZER;
static char dummy_hash[PASSWORD_HASH_MAX];
static struct password_params dummy_params;

/* Copies the dummy hash for the current parameters into out, making it first if needed. */
static int dummy_get(char out[PASSWORD_HASH_MAX])
{
    struct password_params p;
    uint8_t secret[32];
    int rc = 0;

    password_params_get(&p);
    pthread_mutex_lock(&dummy_lock);
    if (dummy_hash[0] == '\0' || memcmp(&p, &dummy_params, sizeof p) != 0) {
        /* A password nobody knows: the verification always fails, at the real cost. */
        rc = RAND_bytes(secret, sizeof secret) == 1 ? 0 : TV_ERR_CRYPTO;
        if (rc == 0) {
            char pw[65];
            for (size_t i = 0; i < sizeof secret; i++)
                snprintf(pw + 2 * i, 3, "%02x", secret[i]);
            int64_t t0 = clock_mono_ms();

            rc = password_hash(pw, 64, dummy_hash, sizeof dummy_hash);
            cost_note(clock_mono_ms() - t0);
            OPENSSL_cleanse(pw, sizeof pw);
        }
        if (rc == 0)
            dummy_params = p;
        else
            dummy_hash[0] = '\0';
    }
    if (rc == 0)
        memcpy(out, dummy_hash, sizeof dummy_hash);
    pthread_mutex_unlock(&dummy_lock);
    OPENSSL_cleanse(secret, sizeof secret);
    return rc;
}

int password_dummy_prepare(void)
{
    char h[PASSWORD_HASH_MAX];

    return dummy_get(h);
}

/* Dummy verifications run (tests count them instead of timing logins). */
static atomic_ullong dummy_runs;

int password_verify_dummy(const char *pw, size_t len)
{
    char h[PASSWORD_HASH_MAX];

    /* The same call a real check makes, on a hash of the same parameters: decoding, memory
     * and passes all match. */
    if (pw != NULL && len >= PASSWORD_MIN_LEN && len <= PASSWORD_MAX_LEN && dummy_get(h) == 0) {
        int64_t t0 = clock_mono_ms();

        (void)argon2id_verify(h, pw, len);
        cost_note(clock_mono_ms() - t0);
        atomic_fetch_add(&dummy_runs, 1);
    }
    return TV_ERR_UNAUTHORIZED;
}

unsigned long long password_dummy_count(void)
{
    return atomic_load(&dummy_runs);
}

/* Reads the Argon2 version and cost out of an encoded argon2id hash. 0 or TV_ERR_INVALID. */
static int encoded_params(const char *encoded, unsigned *version, struct password_params *out)
{
    unsigned v = 0, m = 0, t = 0, par = 0;
    int n = 0;

    if (encoded == NULL ||
        sscanf(encoded, "$argon2id$v=%u$m=%u,t=%u,p=%u$%n", &v, &m, &t, &par, &n) != 4 || n == 0)
        return TV_ERR_INVALID;
    *version = v;
    out->m_cost_kib = m;
    out->t_cost = t;
    out->parallelism = par;
    return 0;
}

int password_needs_rehash(const char *encoded)
{
    struct password_params p, h;
    unsigned v = 0;

    if (encoded_params(encoded, &v, &h) != 0)
        return 1;
    password_params_get(&p);
    return v != ARGON2_VERSION_13 || h.m_cost_kib != p.m_cost_kib || h.t_cost != p.t_cost ||
           h.parallelism != p.parallelism;
}

/* Failures padded by password_pad_failure (tests count them instead of timing logins). */
static atomic_ullong pad_runs;

void password_pad_failure(const char *encoded, int64_t started_ms)
{
    char h[PASSWORD_HASH_MAX];
    int64_t cost, left;

    if (!password_needs_rehash(encoded))
        return;
    /* No measure yet: making the dummy hash takes one (and the time it takes is padding too). */
    if (atomic_load(&current_cost_ms) == 0)
        (void)dummy_get(h);
    cost = atomic_load(&current_cost_ms);
    left = started_ms + cost - clock_mono_ms();
    if (left > 0)
        clock_sleep_ms(left);
    atomic_fetch_add(&pad_runs, 1);
}

unsigned long long password_pad_count(void)
{
    return atomic_load(&pad_runs);
}

size_t password_length_chars(const char *pw, size_t len)
{
    size_t chars = 0, i = 0;

    while (i < len) {
        unsigned char c = (unsigned char)pw[i];
        size_t need = c < 0x80             ? 0
                      : (c & 0xE0) == 0xC0 ? 1
                      : (c & 0xF0) == 0xE0 ? 2
                      : (c & 0xF8) == 0xF0 ? 3
                                           : 9;
        uint32_t cp = need == 0   ? c
                      : need == 1 ? (c & 0x1Fu)
                      : need == 2 ? (c & 0x0Fu)
                                  : (c & 0x07u);
        if (need == 9 || need >= len - i)
            return len; /* not UTF-8: bytes */
        for (size_t k = 1; k <= need; k++) {
            unsigned char cc = (unsigned char)pw[i + k];
            if ((cc & 0xC0) != 0x80)
                return len;
            cp = (cp << 6) | (cc & 0x3Fu);
        }
        /* Overlong forms, surrogates and values past U+10FFFF are not valid UTF-8. */
        if ((need == 1 && cp < 0x80) || (need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return len;
        i += need + 1;
        chars++;
    }
    return chars;
}
