/* Mapping cache (mapcache_int.h): a chained hash table keyed by app user id with a random
 * seed, and an LRU list, under one mutex. */
#include "mapcache_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "core/err.h"

struct mc_entry {
    struct mc_entry *hnext;       /* bucket chain */
    struct mc_entry *prev, *next; /* LRU list: head most recent */
    uint64_t hash;
    struct store_user u;
};

struct mapcache {
    pthread_mutex_t lock;
    struct mc_entry **buckets;
    size_t bmask;
    struct mc_entry *head, *tail;
    size_t n, cap;
    uint64_t seed;
    uint64_t gen;
    uint64_t hits, misses, inserts, refused, dropped, evictions, resets;
};

/* FNV-1a over a random seed: app user ids come from callers, so the chains they land in
 * should not be predictable. */
static uint64_t hash_key(const struct mapcache *c, const char *s)
{
    uint64_t h = 14695981039346656037ull ^ c->seed;

    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h ^ (h >> 29);
}

int mapcache_new(size_t max_entries, struct mapcache **out)
{
    struct mapcache *c;
    size_t nb = 16;

    if (out == NULL)
        return TV_ERR_INVALID;
    if ((c = calloc(1, sizeof *c)) == NULL)
        return TV_ERR_NOMEM;
    c->cap = max_entries > 0 ? max_entries : MAPCACHE_DEFAULT_MAX;
    while (nb < c->cap)
        nb <<= 1;
    if ((c->buckets = calloc(nb, sizeof(struct mc_entry *))) == NULL) {
        free(c);
        return TV_ERR_NOMEM;
    }
    c->bmask = nb - 1;
    if (RAND_bytes((unsigned char *)&c->seed, sizeof c->seed) != 1)
        c->seed = (uint64_t)(uintptr_t)c;
    pthread_mutex_init(&c->lock, NULL);
    *out = c;
    return 0;
}

static void lru_unlink(struct mapcache *c, struct mc_entry *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_head(struct mapcache *c, struct mc_entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head != NULL)
        c->head->prev = e;
    c->head = e;
    if (c->tail == NULL)
        c->tail = e;
}

/* The link that points at key's entry (or the chain's terminating NULL link). */
static struct mc_entry **find(struct mapcache *c, uint64_t h, const char *key)
{
    struct mc_entry **pp = &c->buckets[h & c->bmask];

    while (*pp != NULL && !((*pp)->hash == h && strcmp((*pp)->u.app_user_id, key) == 0))
        pp = &(*pp)->hnext;
    return pp;
}

/* Unlinks and frees the entry *pp points at (none: nothing to do). */
static void remove_at(struct mapcache *c, struct mc_entry **pp)
{
    struct mc_entry *e = *pp;

    if (e == NULL)
        return;
    *pp = e->hnext;
    lru_unlink(c, e);
    free(e);
    c->n--;
}

void mapcache_free(struct mapcache *c)
{
    if (c == NULL)
        return;
    while (c->head != NULL) {
        struct mc_entry *e = c->head;
        c->head = e->next;
        free(e);
    }
    free(c->buckets);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

uint64_t mapcache_gen(struct mapcache *c)
{
    uint64_t g;

    pthread_mutex_lock(&c->lock);
    g = c->gen;
    pthread_mutex_unlock(&c->lock);
    return g;
}

int mapcache_get(struct mapcache *c, const char *app_user_id, struct store_user *out)
{
    uint64_t h;
    struct mc_entry *e;
    int rc = TV_ERR_NOT_FOUND;

    if (app_user_id == NULL || app_user_id[0] == '\0')
        return TV_ERR_NOT_FOUND;
    h = hash_key(c, app_user_id);
    pthread_mutex_lock(&c->lock);
    e = *find(c, h, app_user_id);
    if (e != NULL) {
        *out = e->u;
        lru_unlink(c, e);
        lru_push_head(c, e);
        c->hits++;
        rc = 0;
    } else {
        c->misses++;
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int mapcache_put(struct mapcache *c, uint64_t gen, const struct store_user *u)
{
    struct mc_entry **pp, *e;
    uint64_t h;

    if (u == NULL || u->app_user_id[0] == '\0' || u->acs_id[0] == '\0')
        return TV_ERR_INVALID;
    h = hash_key(c, u->app_user_id);
    /* Allocated outside the lock; freed again when refused. */
    if ((e = calloc(1, sizeof *e)) == NULL)
        return TV_ERR_NOMEM;
    e->hash = h;
    e->u = *u;
    pthread_mutex_lock(&c->lock);
    if (c->gen != gen) {
        c->refused++;
        pthread_mutex_unlock(&c->lock);
        free(e);
        return TV_ERR_CONFLICT;
    }
    pp = find(c, h, u->app_user_id);
    if (*pp != NULL)
        remove_at(c, pp);
    while (c->n >= c->cap && c->tail != NULL) {
        struct mc_entry *old = c->tail;
        remove_at(c, find(c, old->hash, old->u.app_user_id));
        c->evictions++;
    }
    e->hnext = c->buckets[h & c->bmask];
    c->buckets[h & c->bmask] = e;
    lru_push_head(c, e);
    c->n++;
    c->inserts++;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

void mapcache_drop(struct mapcache *c, const char *app_user_id)
{
    pthread_mutex_lock(&c->lock);
    c->gen++;
    if (app_user_id != NULL && app_user_id[0] != '\0') {
        struct mc_entry **pp = find(c, hash_key(c, app_user_id), app_user_id);
        if (*pp != NULL) {
            remove_at(c, pp);
            c->dropped++;
        }
    }
    pthread_mutex_unlock(&c->lock);
}

void mapcache_clear(struct mapcache *c)
{
    pthread_mutex_lock(&c->lock);
    c->gen++;
    while (c->head != NULL) {
        struct mc_entry *e = c->head;
        c->head = e->next;
        free(e);
    }
    c->tail = NULL;
    memset(c->buckets, 0, (c->bmask + 1) * sizeof(struct mc_entry *));
    c->n = 0;
    c->resets++;
    pthread_mutex_unlock(&c->lock);
}

void mapcache_stats_get(struct mapcache *c, struct mapcache_stats *out)
{
    pthread_mutex_lock(&c->lock);
    out->hits = c->hits;
    out->misses = c->misses;
    out->inserts = c->inserts;
    out->refused = c->refused;
    out->dropped = c->dropped;
    out->evictions = c->evictions;
    out->resets = c->resets;
    out->entries = c->n;
    pthread_mutex_unlock(&c->lock);
}
