/* Token cache: shards chosen by a hash of the identity, each a mutex, a chained hash table whose
 * bucket is picked by the identity alone (so one identity's entries share one short chain and
 * invalidation walks only that chain), an LRU list and a table of epoch counters. Each entry
 * is one allocation (key strings and token inline) that is wiped whole when it goes. */
#include "tcache_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/err.h"

#define SHARDS_DEFAULT 64
#define SHARDS_MAX 1024
#define MAX_ENTRIES_DEFAULT 20000
#define MIN_REMAINING_DEFAULT_MS (30 * 60 * 1000LL)
#define EPOCH_SLOTS 64 /* per shard; power of two */
#define SHARD_ALIGN 64 /* one shard's lock and counters never share a cache line with another's */

struct tc_entry {
    struct tc_entry *hnext;       /* bucket chain */
    struct tc_entry *prev, *next; /* LRU list: head most recent */
    uint64_t hash;                /* of the identity */
    uint64_t tick;                /* last use, for the per-identity bound */
    int64_t expires_on_ms, issued_ms;
    int minutes;
    size_t id_len, scopes_len, token_len, size;
    char expires_on[TCACHE_EXPIRES_MAX];
    char data[]; /* acs_id NUL scopes NUL token NUL */
};

struct tc_shard {
    _Alignas(SHARD_ALIGN) pthread_mutex_t lock;
    struct tc_entry **buckets;
    size_t bmask;
    struct tc_entry *head, *tail;
    size_t n, cap;
    uint64_t tick;
    uint64_t epochs[EPOCH_SLOTS];
    uint64_t hits, misses, stale, inserts, refused, evictions, invalidated;
};

struct tcache {
    struct tc_shard *shards;
    unsigned nshards; /* power of two */
    int64_t min_remaining_ms;
};

/* FNV-1a, 64 bits: cheap, and identities are not attacker-chosen (ACS mints them). */
static uint64_t hash_id(const char *s, size_t *len)
{
    uint64_t h = 14695981039346656037ull;
    size_t n = 0;
    for (; s[n] != '\0'; n++)
        h = (h ^ (unsigned char)s[n]) * 1099511628211ull;
    *len = n;
    return h;
}

static struct tc_shard *shard_of(struct tcache *c, uint64_t h)
{
    return &c->shards[h & (c->nshards - 1)];
}

static size_t bucket_of(const struct tc_shard *sh, uint64_t h)
{
    return (size_t)(h >> 20) & sh->bmask;
}

static uint64_t *epoch_of(struct tc_shard *sh, uint64_t h)
{
    return &sh->epochs[(h >> 48) & (EPOCH_SLOTS - 1)];
}

static const char *entry_id(const struct tc_entry *e)
{
    return e->data;
}

static const char *entry_scopes(const struct tc_entry *e)
{
    return e->data + e->id_len + 1;
}

static const char *entry_token(const struct tc_entry *e)
{
    return e->data + e->id_len + 1 + e->scopes_len + 1;
}

static int entry_is_id(const struct tc_entry *e, uint64_t h, const char *id, size_t id_len)
{
    return e->hash == h && e->id_len == id_len && memcmp(entry_id(e), id, id_len) == 0;
}

static void entry_wipe_free(struct tc_entry *e)
{
    OPENSSL_cleanse(e, e->size);
    free(e);
}

static void lru_unlink(struct tc_shard *sh, struct tc_entry *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        sh->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        sh->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_head(struct tc_shard *sh, struct tc_entry *e)
{
    e->prev = NULL;
    e->next = sh->head;
    if (sh->head != NULL)
        sh->head->prev = e;
    sh->head = e;
    if (sh->tail == NULL)
        sh->tail = e;
    e->tick = ++sh->tick;
}

/* Unlinks e from its chain (pp points at the link to it) and the LRU list, then wipes it. */
static void entry_remove(struct tc_shard *sh, struct tc_entry **pp)
{
    struct tc_entry *e = *pp;
    *pp = e->hnext;
    lru_unlink(sh, e);
    sh->n--;
    entry_wipe_free(e);
}

/* The link pointing at e in its bucket chain (e must be in the table). */
static struct tc_entry **link_of(struct tc_shard *sh, const struct tc_entry *e)
{
    struct tc_entry **pp = &sh->buckets[bucket_of(sh, e->hash)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    return pp;
}

static unsigned round_down_pow2(size_t v)
{
    unsigned p = 1;
    while ((size_t)p * 2 <= v && p * 2 <= SHARDS_MAX)
        p *= 2;
    return p;
}

static size_t round_up_pow2(size_t v)
{
    size_t p = 1;
    while (p < v)
        p *= 2;
    return p;
}

int tcache_new(const struct tcache_opts *o, struct tcache **out)
{
    static const struct tcache_opts none = {0};
    struct tcache *c;
    size_t max;
    unsigned want;

    if (o == NULL)
        o = &none;
    if (o->min_remaining_ms != 0 && o->min_remaining_ms < TCACHE_MIN_REMAINING_FLOOR_MS)
        return TV_ERR_INVALID;
    if ((c = calloc(1, sizeof *c)) == NULL)
        return TV_ERR_NOMEM;
    max = o->max_entries > 0 ? o->max_entries : MAX_ENTRIES_DEFAULT;
    want = o->shards > 0 ? o->shards : SHARDS_DEFAULT;
    /* Every shard holds at least one entry, so that the bound is exact. */
    c->nshards = round_down_pow2(want < max ? want : max);
    c->min_remaining_ms = o->min_remaining_ms > 0 ? o->min_remaining_ms : MIN_REMAINING_DEFAULT_MS;
    c->shards = aligned_alloc(SHARD_ALIGN, c->nshards * sizeof *c->shards);
    if (c->shards == NULL) {
        free(c);
        return TV_ERR_NOMEM;
    }
    memset(c->shards, 0, c->nshards * sizeof *c->shards);
    for (unsigned i = 0; i < c->nshards; i++) {
        struct tc_shard *sh = &c->shards[i];
        size_t nb;
        /* The remainder goes to the first shards: the capacities add up to max exactly. */
        sh->cap = max / c->nshards + (i < max % c->nshards ? 1 : 0);
        nb = round_up_pow2(sh->cap < 8 ? 8 : sh->cap);
        sh->bmask = nb - 1;
        pthread_mutex_init(&sh->lock, NULL);
        if ((sh->buckets = calloc(nb, sizeof *sh->buckets)) == NULL) {
            c->nshards = i + 1;
            tcache_free(c);
            return TV_ERR_NOMEM;
        }
    }
    *out = c;
    return 0;
}

void tcache_free(struct tcache *c)
{
    if (c == NULL)
        return;
    for (unsigned i = 0; i < c->nshards; i++) {
        struct tc_shard *sh = &c->shards[i];
        struct tc_entry *e = sh->head;
        while (e != NULL) {
            struct tc_entry *next = e->next;
            entry_wipe_free(e);
            e = next;
        }
        free(sh->buckets);
        pthread_mutex_destroy(&sh->lock);
    }
    free(c->shards);
    free(c);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int tcache_scopes_key(const char *const *scopes, size_t n, char *out, size_t cap)
{
    const char *sorted[16];
    size_t len = 0;

    if (cap == 0 || n > sizeof sorted / sizeof sorted[0])
        return TV_ERR_TOO_LARGE;
    memcpy(sorted, scopes, n * sizeof *scopes);
    qsort(sorted, n, sizeof *sorted, cmp_str);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t sl = strlen(sorted[i]);
        if (len + (i > 0) + sl + 1 > cap) {
            out[0] = '\0';
            return TV_ERR_TOO_LARGE;
        }
        if (i > 0)
            out[len++] = ',';
        memcpy(out + len, sorted[i], sl + 1);
        len += sl;
    }
    return 0;
}

uint64_t tcache_epoch(struct tcache *c, const char *acs_id)
{
    size_t len;
    uint64_t h = hash_id(acs_id, &len), v;
    struct tc_shard *sh = shard_of(c, h);

    pthread_mutex_lock(&sh->lock);
    v = *epoch_of(sh, h);
    pthread_mutex_unlock(&sh->lock);
    return v;
}

/* The link to k's entry in its chain, or to the chain's terminating NULL. */
static struct tc_entry **find(struct tc_shard *sh, uint64_t h, const struct tcache_key *k,
                              size_t id_len, size_t scopes_len)
{
    struct tc_entry **pp = &sh->buckets[bucket_of(sh, h)];
    for (; *pp != NULL; pp = &(*pp)->hnext) {
        const struct tc_entry *e = *pp;
        if (entry_is_id(e, h, k->acs_id, id_len) && e->minutes == k->minutes &&
            e->scopes_len == scopes_len && memcmp(entry_scopes(e), k->scopes, scopes_len) == 0)
            break;
    }
    return pp;
}

int tcache_get(struct tcache *c, const struct tcache_key *k, int64_t now_ms, int64_t not_before_ms,
               struct tcache_hit *out)
{
    size_t id_len, scopes_len = strlen(k->scopes);
    uint64_t h = hash_id(k->acs_id, &id_len);
    struct tc_shard *sh = shard_of(c, h);
    struct tc_entry **pp, *e;
    int rc = TV_ERR_NOT_FOUND;

    pthread_mutex_lock(&sh->lock);
    pp = find(sh, h, k, id_len, scopes_len);
    if ((e = *pp) == NULL)
        goto miss;
    if (e->expires_on_ms - now_ms < c->min_remaining_ms || e->issued_ms <= not_before_ms) {
        sh->stale++;
        entry_remove(sh, pp);
        goto miss;
    }
    if ((out->token = malloc(e->token_len + 1)) == NULL) {
        rc = TV_ERR_NOMEM;
        goto unlock;
    }
    memcpy(out->token, entry_token(e), e->token_len + 1);
    out->token_len = e->token_len;
    memcpy(out->expires_on, e->expires_on, sizeof out->expires_on);
    out->expires_on_ms = e->expires_on_ms;
    out->issued_ms = e->issued_ms;
    lru_unlink(sh, e);
    lru_push_head(sh, e);
    sh->hits++;
    rc = 0;
    goto unlock;
miss:
    sh->misses++;
unlock:
    pthread_mutex_unlock(&sh->lock);
    return rc;
}

/* Makes room for one more entry of identity (h, id): first the identity's own bound, then the
 * shard's. */
static void make_room(struct tc_shard *sh, uint64_t h, const char *id, size_t id_len)
{
    struct tc_entry **pp, **oldest = NULL;
    size_t mine = 0;

    for (pp = &sh->buckets[bucket_of(sh, h)]; *pp != NULL; pp = &(*pp)->hnext) {
        if (!entry_is_id(*pp, h, id, id_len))
            continue;
        mine++;
        if (oldest == NULL || (*pp)->tick < (*oldest)->tick)
            oldest = pp;
    }
    if (mine >= TCACHE_PER_IDENTITY_MAX) {
        sh->evictions++;
        entry_remove(sh, oldest);
    }
    while (sh->n >= sh->cap && sh->tail != NULL) {
        sh->evictions++;
        entry_remove(sh, link_of(sh, sh->tail));
    }
}

int tcache_put(struct tcache *c, const struct tcache_key *k, uint64_t epoch, const char *token,
               const char *expires_on, int64_t expires_on_ms, int64_t issued_ms, int64_t now_ms)
{
    size_t id_len, scopes_len, token_len, size;
    uint64_t h;
    struct tc_shard *sh;
    struct tc_entry **pp, *e;
    int rc;

    if (k->acs_id == NULL || k->scopes == NULL || token == NULL)
        return TV_ERR_INVALID;
    h = hash_id(k->acs_id, &id_len);
    sh = shard_of(c, h);
    scopes_len = strnlen(k->scopes, TCACHE_SCOPES_MAX);
    token_len = strnlen(token, TCACHE_TOKEN_MAX + 1);
    if (id_len == 0 || id_len > TCACHE_ID_MAX || scopes_len >= TCACHE_SCOPES_MAX ||
        token_len == 0 || token_len > TCACHE_TOKEN_MAX ||
        expires_on_ms - now_ms < c->min_remaining_ms) {
        rc = TV_ERR_INVALID;
        pthread_mutex_lock(&sh->lock);
        goto refused;
    }
    /* Built before taking the lock; wiped if it is not kept. */
    size = sizeof *e + id_len + 1 + scopes_len + 1 + token_len + 1;
    if ((e = calloc(1, size)) == NULL)
        return TV_ERR_NOMEM;
    e->size = size;
    e->hash = h;
    e->expires_on_ms = expires_on_ms;
    e->issued_ms = issued_ms;
    e->minutes = k->minutes;
    e->id_len = id_len;
    e->scopes_len = scopes_len;
    e->token_len = token_len;
    if (expires_on != NULL)
        memcpy(e->expires_on, expires_on, strnlen(expires_on, sizeof e->expires_on - 1));
    memcpy(e->data, k->acs_id, id_len);
    memcpy(e->data + id_len + 1, k->scopes, scopes_len);
    memcpy(e->data + id_len + 1 + scopes_len + 1, token, token_len);

    pthread_mutex_lock(&sh->lock);
    /* Checked under the same lock that tcache_invalidate holds while it moves the epoch: either
     * the revoke ran first (refused here) or it runs after and wipes this entry. */
    if (*epoch_of(sh, h) != epoch) {
        entry_wipe_free(e);
        rc = TV_ERR_CONFLICT;
        goto refused;
    }
    pp = find(sh, h, k, id_len, scopes_len);
    if (*pp != NULL)
        entry_remove(sh, pp);
    make_room(sh, h, k->acs_id, id_len);
    e->hnext = sh->buckets[bucket_of(sh, h)];
    sh->buckets[bucket_of(sh, h)] = e;
    lru_push_head(sh, e);
    sh->n++;
    sh->inserts++;
    pthread_mutex_unlock(&sh->lock);
    return 0;
refused:
    sh->refused++;
    pthread_mutex_unlock(&sh->lock);
    return rc;
}

size_t tcache_invalidate(struct tcache *c, const char *acs_id)
{
    size_t id_len, n = 0;
    uint64_t h = hash_id(acs_id, &id_len);
    struct tc_shard *sh = shard_of(c, h);
    struct tc_entry **pp;

    pthread_mutex_lock(&sh->lock);
    (*epoch_of(sh, h))++;
    pp = &sh->buckets[bucket_of(sh, h)];
    while (*pp != NULL) {
        if (entry_is_id(*pp, h, acs_id, id_len)) {
            entry_remove(sh, pp);
            n++;
        } else {
            pp = &(*pp)->hnext;
        }
    }
    sh->invalidated += n;
    pthread_mutex_unlock(&sh->lock);
    return n;
}

size_t tcache_invalidate_all(struct tcache *c)
{
    size_t total = 0;

    for (unsigned i = 0; i < c->nshards; i++) {
        struct tc_shard *sh = &c->shards[i];
        size_t n = 0;
        pthread_mutex_lock(&sh->lock);
        /* Every epoch moves on, so no token of an ACS call in flight enters afterwards. */
        for (size_t k = 0; k < EPOCH_SLOTS; k++)
            sh->epochs[k]++;
        while (sh->head != NULL) {
            entry_remove(sh, link_of(sh, sh->head));
            n++;
        }
        sh->invalidated += n;
        pthread_mutex_unlock(&sh->lock);
        total += n;
    }
    return total;
}

void tcache_hit_release(struct tcache_hit *h)
{
    if (h == NULL || h->token == NULL)
        return;
    OPENSSL_cleanse(h->token, h->token_len);
    free(h->token);
    h->token = NULL;
    h->token_len = 0;
}

void tcache_stats_get(struct tcache *c, struct tcache_stats *out)
{
    memset(out, 0, sizeof *out);
    for (unsigned i = 0; i < c->nshards; i++) {
        struct tc_shard *sh = &c->shards[i];
        pthread_mutex_lock(&sh->lock);
        out->hits += sh->hits;
        out->misses += sh->misses;
        out->stale += sh->stale;
        out->inserts += sh->inserts;
        out->refused += sh->refused;
        out->evictions += sh->evictions;
        out->invalidated += sh->invalidated;
        out->entries += sh->n;
        pthread_mutex_unlock(&sh->lock);
    }
}
