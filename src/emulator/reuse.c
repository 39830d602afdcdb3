/* Signed-token reuse for benchmarks. A fixed table of REUSE_SLOTS entries with linear probing
 * over at most REUSE_PROBE slots; an entry from an older bucket (or expiring) is free space, so
 * the table never needs a sweep. Every access is under r->mu; the critical sections copy at
 * most one token. */
#include "reuse.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/err.h"
#include "emu.h"
#include "tokens.h"

#define REUSE_SLOTS 8192 /* power of two; a bench uses about a thousand identities */
#define REUSE_PROBE 8

struct reuse_entry {
    char *token; /* NULL: never used */
    uint64_t hash;
    uint64_t gen;
    int64_t minutes;
    int64_t bucket;
    int64_t exp_s;
    char id[EMU_ID_MAX];
    char scope[EMU_SCOPE_STR_MAX];
};

struct emu_reuse {
    pthread_mutex_t mu;
    int64_t bucket_s;
    struct reuse_entry *slots; /* REUSE_SLOTS */
};

static uint64_t reuse_fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* Hash of what names a token request. The generation is left out on purpose, so a token from
 * before a revoke sits in the same probe window and is replaced by the first one after it. */
static uint64_t reuse_hash(const struct emu_reuse_key *k)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    h = reuse_fnv(h, k->id, strlen(k->id) + 1);
    h = reuse_fnv(h, k->acs_scope, strlen(k->acs_scope) + 1);
    h = reuse_fnv(h, &k->expires_in_minutes, sizeof(k->expires_in_minutes));
    return h ^ (h >> 29);
}

static int reuse_same_request(const struct reuse_entry *e, uint64_t h,
                              const struct emu_reuse_key *k)
{
    return e->token && e->hash == h && e->minutes == k->expires_in_minutes &&
           strcmp(e->id, k->id) == 0 && strcmp(e->scope, k->acs_scope) == 0;
}

static void reuse_entry_clear(struct reuse_entry *e)
{
    if (e->token) {
        OPENSSL_cleanse(e->token, strlen(e->token));
        free(e->token);
    }
    memset(e, 0, sizeof(*e));
}

int emu_reuse_new(int64_t bucket_s, struct emu_reuse **out)
{
    struct emu_reuse *r;

    if (bucket_s < 1 || bucket_s > EMU_REUSE_MAX_S)
        return TV_ERR_INVALID;
    r = calloc(1, sizeof(*r));
    if (!r)
        return TV_ERR_NOMEM;
    r->slots = calloc(REUSE_SLOTS, sizeof(*r->slots));
    if (!r->slots) {
        free(r);
        return TV_ERR_NOMEM;
    }
    pthread_mutex_init(&r->mu, NULL);
    r->bucket_s = bucket_s;
    *out = r;
    return 0;
}

void emu_reuse_free(struct emu_reuse *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < REUSE_SLOTS; i++)
        reuse_entry_clear(&r->slots[i]);
    free(r->slots);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

int emu_reuse_get(struct emu_reuse *r, const struct emu_reuse_key *k, int64_t now_s, char **token,
                  int64_t *exp_s)
{
    int rc = TV_ERR_NOT_FOUND;
    uint64_t h = reuse_hash(k);
    int64_t bucket = now_s / r->bucket_s;
    char *copy;

    pthread_mutex_lock(&r->mu);
    for (size_t n = 0; n < REUSE_PROBE; n++) {
        const struct reuse_entry *e = &r->slots[(h + n) & (REUSE_SLOTS - 1)];

        if (!reuse_same_request(e, h, k))
            continue;
        /* A token is only handed out again with more than a bucket of life left, so a short
         * --token-ttl-seconds never yields one that is about to expire. */
        if (e->gen != k->gen || e->bucket != bucket || e->exp_s - now_s <= r->bucket_s)
            break;
        copy = strdup(e->token);
        if (!copy) {
            rc = TV_ERR_NOMEM;
            break;
        }
        *token = copy;
        *exp_s = e->exp_s;
        rc = 0;
        break;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

void emu_reuse_put(struct emu_reuse *r, const struct emu_reuse_key *k, int64_t now_s,
                   const char *token, int64_t exp_s)
{
    uint64_t h = reuse_hash(k);
    int64_t bucket = now_s / r->bucket_s;
    struct reuse_entry *slot = NULL;
    char *copy;

    if (strlen(k->id) >= EMU_ID_MAX || strlen(k->acs_scope) >= EMU_SCOPE_STR_MAX)
        return;
    copy = strdup(token);
    if (!copy)
        return;
    pthread_mutex_lock(&r->mu);
    /* The same request's older entry first (one entry per request, whatever its generation),
     * then the first unused or stale slot, and failing both the home slot. */
    for (size_t n = 0; n < REUSE_PROBE && !slot; n++) {
        struct reuse_entry *e = &r->slots[(h + n) & (REUSE_SLOTS - 1)];
        if (reuse_same_request(e, h, k))
            slot = e;
    }
    for (size_t n = 0; n < REUSE_PROBE && !slot; n++) {
        struct reuse_entry *e = &r->slots[(h + n) & (REUSE_SLOTS - 1)];
        if (!e->token || e->bucket != bucket || e->exp_s <= now_s)
            slot = e;
    }
    if (!slot)
        slot = &r->slots[h & (REUSE_SLOTS - 1)];
    reuse_entry_clear(slot);
    slot->token = copy;
    slot->hash = h;
    slot->gen = k->gen;
    slot->minutes = k->expires_in_minutes;
    slot->bucket = bucket;
    slot->exp_s = exp_s;
    memcpy(slot->id, k->id, strlen(k->id) + 1);
    memcpy(slot->scope, k->acs_scope, strlen(k->acs_scope) + 1);
    pthread_mutex_unlock(&r->mu);
}
