/* The caller-limit table (core/climit.h): a set-associative array of (hash, GCRA state) slots
 * under striped locks, hashed with SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast
 * short-input PRF", 2012), written here from the paper's description. */
#include "core/climit.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "core/err.h"

struct climit_slot {
    uint64_t tag; /* the key's hash, 0 for a free slot (a hash of 0 is kept as 1) */
    int64_t tat;  /* its GCRA state */
};

/* One lock and the counters it guards, alone on its cache line(s), so two cores taking two
 * stripes do not bounce one line between them. */
struct climit_stripe {
    alignas(64) pthread_mutex_t mu;
    uint64_t admitted, refused, evicted_live;
};

struct climit {
    struct ratelimit rl;
    uint8_t key[16]; /* the hash key: secret, random per table */
    size_t nsets;    /* a power of two */
    struct climit_slot *slots;
    struct climit_stripe stripes[CLIMIT_STRIPES];
};

/* ---- SipHash-2-4 ---- */

static uint64_t rotl64(uint64_t x, unsigned b)
{
    return (x << b) | (x >> (64 - b));
}

static uint64_t load_le64(const uint8_t *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* One SipRound over the state v[4]. */
static void sip_round(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = rotl64(v[1], 13) ^ v[0];
    v[0] = rotl64(v[0], 32);
    v[2] += v[3];
    v[3] = rotl64(v[3], 16) ^ v[2];
    v[0] += v[3];
    v[3] = rotl64(v[3], 21) ^ v[0];
    v[2] += v[1];
    v[1] = rotl64(v[1], 17) ^ v[2];
    v[2] = rotl64(v[2], 32);
}

/* Compresses one 64-bit message word: two rounds between the XORs. */
static void sip_word(uint64_t v[4], uint64_t m)
{
    v[3] ^= m;
    sip_round(v);
    sip_round(v);
    v[0] ^= m;
}

uint64_t climit_siphash(const uint8_t k[16], const void *m, size_t n)
{
    const uint8_t *p = m;
    uint64_t k0 = load_le64(k, 8), k1 = load_le64(k + 8, 8);
    /* The initial state: the key XORed with "somepseudorandomlygeneratedbytes". */
    uint64_t v[4] = {k0 ^ 0x736f6d6570736575ull, k1 ^ 0x646f72616e646f6dull,
                     k0 ^ 0x6c7967656e657261ull, k1 ^ 0x7465646279746573ull};
    size_t whole = n - n % 8;

    for (size_t i = 0; i < whole; i += 8)
        sip_word(v, load_le64(p + i, 8));
    /* The last word: the remaining bytes with the length's low byte on top. */
    sip_word(v, load_le64(p + whole, n % 8) | ((uint64_t)(n & 0xff) << 56));
    v[2] ^= 0xff;
    for (int i = 0; i < 4; i++)
        sip_round(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* ---- the table ---- */

int climit_new(const struct ratelimit *rl, size_t capacity, struct climit **out)
{
    struct climit *t = NULL;
    size_t cap = CLIMIT_CAPACITY_MIN;
    int rc = TV_ERR_INVALID;

    if (rl == NULL || rl->off || capacity < CLIMIT_CAPACITY_MIN || capacity > CLIMIT_CAPACITY_MAX)
        goto out;
    while (cap < capacity)
        cap *= 2;
    rc = TV_ERR_NOMEM;
    t = calloc(1, sizeof *t);
    if (t == NULL)
        goto out;
    t->slots = calloc(cap, sizeof *t->slots);
    if (t->slots == NULL)
        goto out;
    rc = TV_ERR_INTERNAL;
    if (RAND_bytes(t->key, (int)sizeof t->key) != 1)
        goto out;
    t->rl = *rl;
    t->nsets = cap / CLIMIT_WAYS;
    for (size_t i = 0; i < CLIMIT_STRIPES; i++)
        pthread_mutex_init(&t->stripes[i].mu, NULL);
    *out = t;
    t = NULL;
    rc = 0;
out:
    if (t != NULL) {
        free(t->slots);
        OPENSSL_cleanse(t->key, sizeof t->key);
        free(t);
    }
    return rc;
}

void climit_free(struct climit *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < CLIMIT_STRIPES; i++)
        pthread_mutex_destroy(&t->stripes[i].mu);
    OPENSSL_cleanse(t->key, sizeof t->key);
    free(t->slots);
    free(t);
}

/* The slot key `tag` keeps in set[0..CLIMIT_WAYS): its own, else a free or forgettable one,
 * else the live one closest to a full bucket (*evicted_live then set). */
static struct climit_slot *slot_for(struct climit_slot *set, uint64_t tag, int64_t now_ms,
                                    int *evicted_live)
{
    struct climit_slot *spare = NULL, *oldest = &set[0];

    *evicted_live = 0;
    for (size_t i = 0; i < CLIMIT_WAYS; i++) {
        if (set[i].tag == tag)
            return &set[i];
        if (spare == NULL && (set[i].tag == 0 || ratelimit_idle(set[i].tat, now_ms)))
            spare = &set[i];
        if (set[i].tat < oldest->tat)
            oldest = &set[i];
    }
    if (spare == NULL) {
        spare = oldest;
        *evicted_live = 1;
    }
    spare->tag = tag;
    spare->tat = 0; /* a full bucket */
    return spare;
}

int climit_take(struct climit *t, const void *key, size_t len, int64_t now_ms,
                int64_t *retry_after_ms)
{
    uint64_t h = climit_siphash(t->key, key, len);
    uint64_t tag = h != 0 ? h : 1;
    size_t set = (size_t)(h & (t->nsets - 1));
    struct climit_stripe *st = &t->stripes[set % CLIMIT_STRIPES];
    struct climit_slot *s;
    int evicted = 0, fits;

    if (now_ms < 0)
        now_ms = 0;
    pthread_mutex_lock(&st->mu);
    s = slot_for(&t->slots[set * CLIMIT_WAYS], tag, now_ms, &evicted);
    st->evicted_live += (uint64_t)evicted;
    fits = ratelimit_fits(&t->rl, s->tat, now_ms, retry_after_ms);
    if (fits) {
        s->tat = ratelimit_take(&t->rl, s->tat, now_ms);
        st->admitted++;
    } else {
        /* Kept normalized, so a clock that went back never holds a key past one window. */
        s->tat = ratelimit_normalize(&t->rl, s->tat, now_ms);
        st->refused++;
    }
    pthread_mutex_unlock(&st->mu);
    return fits;
}

void climit_stats(struct climit *t, struct climit_stats *out)
{
    memset(out, 0, sizeof *out);
    out->capacity = t->nsets * CLIMIT_WAYS;
    for (size_t i = 0; i < CLIMIT_STRIPES; i++) {
        struct climit_stripe *st = &t->stripes[i];
        pthread_mutex_lock(&st->mu);
        out->admitted += st->admitted;
        out->refused += st->refused;
        out->evicted_live += st->evicted_live;
        pthread_mutex_unlock(&st->mu);
    }
}
