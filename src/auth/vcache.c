/* Verified-token cache: up to 16 shards, each a mutex-guarded hash table of entries on an LRU
 * list. Only successes are stored, so a failing token always takes the full (constant) path
 * and there is no negative cache to poison; a hit re-applies the verifier's time rules. */
#include "auth/vcache.h"
#include "auth/jwk.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "core/err.h"

#define VCACHE_SHARDS 16

struct vc_ent {
    uint8_t key[VCACHE_KEY_LEN];
    struct vc_ent *hnext;       /* bucket chain */
    struct vc_ent *prev, *next; /* LRU list: head most recent */
    int64_t deadline;           /* inserted + TTL: refused from this second on */
    int64_t exp_limit;          /* exp + leeway: refused from this second on */
    int64_t nbf_limit;          /* nbf - leeway: refused before it (INT64_MIN: no nbf) */
    uint64_t generation;
    enum vcache_source source;
    int64_t session_epoch;
    size_t size; /* bytes allocated, for the wipe */
    size_t user_len, oid_len;
    char data[]; /* user NUL oid NUL */
};

struct vc_shard {
    pthread_mutex_t mu;
    struct vc_ent **buckets;
    size_t mask; /* buckets - 1 (a power of two) */
    size_t count, cap;
    struct vc_ent *head, *tail;
    char pad[64]; /* keeps two shards' locks off one cache line */
};

struct vcache {
    struct vc_shard *shards;
    size_t nshards;
    int64_t ttl_s;
};

void vcache_key(const char *token, size_t len, uint8_t key[VCACHE_KEY_LEN])
{
    jwk_sha256(token, len, key);
}

static uint64_t vc_load64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof v);
    return v;
}

int vcache_new(size_t max_entries, int64_t ttl_s, struct vcache **out)
{
    struct vcache *c;
    size_t i;

    if (!out || max_entries == 0 || max_entries > (SIZE_MAX >> 8))
        return TV_ERR_INVALID;
    c = calloc(1, sizeof *c);
    if (!c)
        return TV_ERR_NOMEM;
    c->ttl_s = ttl_s > 0 ? ttl_s : VCACHE_TTL_S;
    c->nshards = max_entries < VCACHE_SHARDS ? max_entries : VCACHE_SHARDS;
    c->shards = calloc(c->nshards, sizeof *c->shards);
    if (!c->shards) {
        free(c);
        return TV_ERR_NOMEM;
    }
    for (i = 0; i < c->nshards; i++) {
        struct vc_shard *s = &c->shards[i];
        size_t nb = 1;

        /* The shards' caps add up to max_entries exactly, so the bound is the setting. */
        s->cap = max_entries / c->nshards + (i < max_entries % c->nshards ? 1 : 0);
        while (nb < s->cap)
            nb <<= 1;
        s->mask = nb - 1;
        s->buckets = calloc(nb, sizeof *s->buckets);
        if (!s->buckets || pthread_mutex_init(&s->mu, NULL) != 0) {
            free(s->buckets);
            s->buckets = NULL;
            c->nshards = i;
            vcache_free(c);
            return TV_ERR_NOMEM;
        }
    }
    *out = c;
    return 0;
}

static void vc_ent_free(struct vc_ent *e)
{
    OPENSSL_cleanse(e, e->size);
    free(e);
}

void vcache_free(struct vcache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nshards; i++) {
        struct vc_shard *s = &c->shards[i];
        struct vc_ent *e = s->head;

        while (e) {
            struct vc_ent *next = e->next;
            vc_ent_free(e);
            e = next;
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->mu);
    }
    free(c->shards);
    free(c);
}

static struct vc_shard *vc_shard_of(struct vcache *c, const uint8_t *key)
{
    return &c->shards[vc_load64(key) % c->nshards];
}

static struct vc_ent **vc_bucket(struct vc_shard *s, const uint8_t *key)
{
    return &s->buckets[vc_load64(key + 8) & s->mask];
}

/* Takes e off the LRU list only (caller holds s->mu). */
static void vc_lru_del(struct vc_shard *s, struct vc_ent *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        s->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        s->tail = e->prev;
}

/* Unlinks e from its bucket and the LRU list (caller holds s->mu). */
static void vc_unlink(struct vc_shard *s, struct vc_ent *e)
{
    struct vc_ent **pp = vc_bucket(s, e->key);

    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    vc_lru_del(s, e);
    s->count--;
}

static void vc_push_front(struct vc_shard *s, struct vc_ent *e)
{
    e->prev = NULL;
    e->next = s->head;
    if (s->head)
        s->head->prev = e;
    s->head = e;
    if (!s->tail)
        s->tail = e;
}

static struct vc_ent *vc_find(struct vc_shard *s, const uint8_t *key)
{
    for (struct vc_ent *e = *vc_bucket(s, key); e; e = e->hnext)
        if (CRYPTO_memcmp(e->key, key, VCACHE_KEY_LEN) == 0)
            return e;
    return NULL;
}

/* The verifier's rules, re-applied: the same comparisons jwt_claims_check makes. */
static int vc_ent_valid(const struct vc_ent *e, int64_t now_s, uint64_t generation, int session_ok)
{
    if (now_s >= e->deadline || now_s >= e->exp_limit || now_s < e->nbf_limit)
        return 0;
    if (e->source == VCACHE_SRC_OIDC)
        return e->generation == generation;
    return e->source == VCACHE_SRC_SESSION && session_ok;
}

int vcache_lookup(struct vcache *c, const uint8_t key[VCACHE_KEY_LEN], int64_t now_s,
                  uint64_t oidc_generation, int session_ok, struct vcache_claims *out)
{
    struct vc_shard *s;
    struct vc_ent *e, *stale = NULL;
    int rc = TV_ERR_NOT_FOUND;

    if (!c || !key || !out)
        return TV_ERR_INVALID;
    s = vc_shard_of(c, key);
    pthread_mutex_lock(&s->mu);
    e = vc_find(s, key);
    if (e && !vc_ent_valid(e, now_s, oidc_generation, session_ok)) {
        vc_unlink(s, e);
        stale = e;
    } else if (e) {
        if (s->head != e) {
            vc_lru_del(s, e);
            vc_push_front(s, e);
        }
        memcpy(out->user, e->data, e->user_len + 1);
        memcpy(out->oid, e->data + e->user_len + 1, e->oid_len + 1);
        out->session = e->source == VCACHE_SRC_SESSION;
        out->session_epoch = e->session_epoch;
        rc = 0;
    }
    pthread_mutex_unlock(&s->mu);
    if (stale)
        vc_ent_free(stale);
    return rc;
}

int vcache_insert(struct vcache *c, const uint8_t key[VCACHE_KEY_LEN], int64_t now_s,
                  const struct vcache_verdict *v, const struct vcache_claims *claims)
{
    struct vc_shard *s;
    struct vc_ent *e, *old, *evicted = NULL;
    size_t ulen, olen, size;
    int64_t leeway;

    if (!c || !key || !v || !claims ||
        (v->source != VCACHE_SRC_OIDC && v->source != VCACHE_SRC_SESSION))
        return TV_ERR_INVALID;
    ulen = strnlen(claims->user, sizeof claims->user);
    olen = strnlen(claims->oid, sizeof claims->oid);
    if (ulen == 0 || ulen >= sizeof claims->user || olen >= sizeof claims->oid)
        return TV_ERR_INVALID;
    size = sizeof *e + ulen + olen + 2;
    e = malloc(size);
    if (!e)
        return TV_ERR_NOMEM;
    memset(e, 0, sizeof *e);
    memcpy(e->key, key, VCACHE_KEY_LEN);
    leeway = v->leeway_s > 0 ? v->leeway_s : 0;
    e->deadline = now_s + c->ttl_s;
    e->exp_limit = v->exp + leeway;
    e->nbf_limit = v->nbf != 0 ? v->nbf - leeway : INT64_MIN;
    e->generation = v->generation;
    e->source = v->source;
    e->session_epoch = claims->session_epoch;
    e->size = size;
    e->user_len = ulen;
    e->oid_len = olen;
    memcpy(e->data, claims->user, ulen + 1);
    memcpy(e->data + ulen + 1, claims->oid, olen + 1);

    s = vc_shard_of(c, key);
    pthread_mutex_lock(&s->mu);
    old = vc_find(s, key);
    if (old)
        vc_unlink(s, old);
    else if (s->count >= s->cap && s->tail)
        vc_unlink(s, evicted = s->tail);
    e->hnext = *vc_bucket(s, key);
    *vc_bucket(s, key) = e;
    vc_push_front(s, e);
    s->count++;
    pthread_mutex_unlock(&s->mu);
    if (old)
        vc_ent_free(old);
    if (evicted)
        vc_ent_free(evicted);
    return 0;
}

size_t vcache_count(struct vcache *c)
{
    size_t n = 0;

    if (!c)
        return 0;
    for (size_t i = 0; i < c->nshards; i++) {
        pthread_mutex_lock(&c->shards[i].mu);
        n += c->shards[i].count;
        pthread_mutex_unlock(&c->shards[i].mu);
    }
    return n;
}
