/* Identity registry of acs-emulator: an open-addressing hash map (linear probing, no removal:
 * deleted identities stay as tombstones so their tokens keep validating as "deleted"), grown
 * at 50% load, and a second one of the same kind from customId to the identity it names now
 * (rebound when that identity was deleted and the customId creates a new one). All map access
 * is under st->mu; counters are relaxed atomics. */
#include "state.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "persist.h"

#define STATE_INITIAL_SLOTS 1024

struct state_ident {
    struct emu_identity_rec rec; /* rec.custom_id points at custom_id */
    uint64_t hash;
    char *custom_id; /* NULL for none */
};

/* A customId slot: the identity it names (whose custom_id is the key); ident NULL when empty. */
struct state_cid {
    uint64_t hash;
    struct state_ident *ident;
};

struct emu_state {
    pthread_mutex_t mu;
    struct state_ident **slots;
    size_t nslots; /* power of two */
    size_t used;
    size_t live;
    struct state_cid *cslots; /* customId index */
    size_t cnslots;           /* power of two */
    size_t cused;
    struct emu_persist *db;

    atomic_uint_fast64_t requests[EMU_OP__COUNT];
    atomic_uint_fast64_t succeeded[EMU_OP__COUNT];
    atomic_uint_fast64_t identities_created;
    atomic_uint_fast64_t tokens_issued;
    atomic_uint_fast64_t tokens_reused;
    atomic_uint_fast64_t faults_injected;
};

static uint64_t state_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h ^ (h >> 29);
}

/* Slot of id, or of the empty slot where it would go. Caller holds mu. */
static size_t state_probe(const struct emu_state *st, const char *id, uint64_t h)
{
    size_t mask = st->nslots - 1;
    size_t i = (size_t)h & mask;

    while (st->slots[i]) {
        if (st->slots[i]->hash == h && strcmp(st->slots[i]->rec.id, id) == 0)
            break;
        i = (i + 1) & mask;
    }
    return i;
}

static struct state_ident *state_find(const struct emu_state *st, const char *id)
{
    return st->slots[state_probe(st, id, state_hash(id))];
}

static int state_grow(struct emu_state *st)
{
    size_t n = st->nslots * 2;
    struct state_ident **slots = calloc(n, sizeof(*slots));
    struct state_ident **old = st->slots;
    size_t oldn = st->nslots;

    if (!slots)
        return TV_ERR_NOMEM;
    st->slots = slots;
    st->nslots = n;
    for (size_t i = 0; i < oldn; i++) {
        if (old[i])
            slots[state_probe(st, old[i]->rec.id, old[i]->hash)] = old[i];
    }
    free(old);
    return 0;
}

/* Slot of custom_id in the customId index, or of the empty slot where it would go. Caller
 * holds mu. */
static size_t cid_probe(const struct emu_state *st, const char *cid, uint64_t h)
{
    size_t mask = st->cnslots - 1;
    size_t i = (size_t)h & mask;

    while (st->cslots[i].ident) {
        if (st->cslots[i].hash == h && strcmp(st->cslots[i].ident->custom_id, cid) == 0)
            break;
        i = (i + 1) & mask;
    }
    return i;
}

/* Makes room for one more customId, so that binding it cannot fail later. */
static int cid_reserve(struct emu_state *st)
{
    size_t n = st->cnslots * 2;
    struct state_cid *slots, *old = st->cslots;
    size_t oldn = st->cnslots;

    if ((st->cused + 1) * 2 <= st->cnslots)
        return 0;
    slots = calloc(n, sizeof(*slots));
    if (!slots)
        return TV_ERR_NOMEM;
    st->cslots = slots;
    st->cnslots = n;
    for (size_t i = 0; i < oldn; i++) {
        if (old[i].ident)
            slots[cid_probe(st, old[i].ident->custom_id, old[i].hash)] = old[i];
    }
    free(old);
    return 0;
}

/* The identity custom_id names now, or NULL. Caller holds mu. */
static struct state_ident *cid_find(const struct emu_state *st, const char *cid)
{
    return st->cslots[cid_probe(st, cid, state_hash(cid))].ident;
}

/* Points e's customId at e. With only_if_better, an existing binding is kept unless it names a
 * deleted identity and e is live or newer (loading finds the rows in no particular order).
 * Room must have been reserved. Caller holds mu. */
static void cid_bind(struct emu_state *st, struct state_ident *e, int only_if_better)
{
    uint64_t h = state_hash(e->custom_id);
    size_t i = cid_probe(st, e->custom_id, h);
    struct state_ident *cur = st->cslots[i].ident;

    if (cur && only_if_better &&
        (!cur->rec.deleted_ms || (e->rec.deleted_ms && e->rec.created_ms <= cur->rec.created_ms)))
        return;
    if (!cur)
        st->cused++;
    st->cslots[i].hash = h;
    st->cslots[i].ident = e;
}

/* Inserts a copy of rec (id must be absent; its customId is copied too, not yet indexed) and
 * gives the entry in *out when out is not NULL. Caller holds mu. */
static int state_insert(struct emu_state *st, const struct emu_identity_rec *rec,
                        struct state_ident **out)
{
    struct state_ident *e;
    int rc;

    if ((st->used + 1) * 2 > st->nslots) {
        rc = state_grow(st);
        if (rc != 0)
            return rc;
    }
    e = calloc(1, sizeof(*e));
    if (!e)
        return TV_ERR_NOMEM;
    e->rec = *rec;
    e->rec.custom_id = NULL;
    if (rec->custom_id && rec->custom_id[0]) {
        e->custom_id = strdup(rec->custom_id);
        if (!e->custom_id) {
            free(e);
            return TV_ERR_NOMEM;
        }
        e->rec.custom_id = e->custom_id;
    }
    e->hash = state_hash(rec->id);
    st->slots[state_probe(st, rec->id, e->hash)] = e;
    st->used++;
    if (!rec->deleted_ms)
        st->live++;
    if (out)
        *out = e;
    return 0;
}

static int state_load_one(void *arg, const struct emu_identity_rec *rec)
{
    struct emu_state *st = arg;
    struct state_ident *e = NULL;
    int rc;

    if (state_find(st, rec->id))
        return 0;
    rc = cid_reserve(st);
    if (rc == 0)
        rc = state_insert(st, rec, &e);
    if (rc == 0 && e->custom_id)
        cid_bind(st, e, 1);
    return rc;
}

int emu_state_new(struct emu_persist *db, struct emu_state **out)
{
    int rc = TV_ERR_NOMEM;
    struct emu_state *st = calloc(1, sizeof(*st));

    if (!st)
        return TV_ERR_NOMEM;
    pthread_mutex_init(&st->mu, NULL);
    st->nslots = STATE_INITIAL_SLOTS;
    st->slots = calloc(st->nslots, sizeof(*st->slots));
    st->cnslots = STATE_INITIAL_SLOTS;
    st->cslots = calloc(st->cnslots, sizeof(*st->cslots));
    if (!st->slots || !st->cslots)
        goto out;
    st->db = db;
    if (db) {
        rc = emu_persist_identity_each(db, state_load_one, st);
        if (rc != 0)
            goto out;
    }
    *out = st;
    st = NULL;
    rc = 0;
out:
    emu_state_free(st);
    return rc;
}

void emu_state_free(struct emu_state *st)
{
    if (!st)
        return;
    if (st->slots) {
        for (size_t i = 0; i < st->nslots; i++) {
            if (st->slots[i])
                free(st->slots[i]->custom_id);
            free(st->slots[i]);
        }
        free(st->slots);
    }
    free(st->cslots);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

int emu_state_create(struct emu_state *st, const char *resource_id, int64_t now_ms,
                     char id[EMU_ID_MAX])
{
    uint64_t gen;
    int existed;

    return emu_state_create_custom(st, resource_id, NULL, now_ms, id, &gen, &existed);
}

int emu_state_create_custom(struct emu_state *st, const char *resource_id, const char *custom_id,
                            int64_t now_ms, char id[EMU_ID_MAX], uint64_t *gen, int *existed)
{
    int rc;
    char uuid[EMU_UUID_LEN];
    struct emu_identity_rec rec;
    struct state_ident *e = NULL;
    int custom = custom_id && custom_id[0];

    *gen = 0;
    *existed = 0;
    memset(&rec, 0, sizeof(rec));
    rc = emu_uuid_random(uuid);
    if (rc != 0)
        return rc;
    snprintf(rec.id, sizeof(rec.id), "8:acs:%s_%s", resource_id, uuid);
    rec.created_ms = now_ms;
    rec.custom_id = custom ? custom_id : NULL;
    pthread_mutex_lock(&st->mu);
    if (custom) {
        e = cid_find(st, custom_id);
        if (e && !e->rec.deleted_ms) {
            memcpy(id, e->rec.id, sizeof(e->rec.id));
            *gen = e->rec.gen;
            *existed = 1;
            rc = 0;
            goto out;
        }
        /* Room first: once the identity is stored, binding its customId must not fail. */
        rc = cid_reserve(st);
        if (rc != 0)
            goto out;
    }
    /* A random v4 UUID colliding is not a case worth a code path beyond refusing it. */
    if (state_find(st, rec.id)) {
        rc = TV_ERR_CONFLICT;
        goto out;
    }
    if (st->db) {
        rc = emu_persist_identity_put(st->db, &rec);
        if (rc != 0)
            goto out;
    }
    rc = state_insert(st, &rec, &e);
    if (rc != 0)
        goto out;
    if (custom)
        cid_bind(st, e, 0);
    atomic_fetch_add_explicit(&st->identities_created, 1, memory_order_relaxed);
    memcpy(id, rec.id, sizeof(rec.id));
out:
    pthread_mutex_unlock(&st->mu);
    return rc;
}

int emu_state_issue(struct emu_state *st, const char *id, uint64_t *gen)
{
    int rc = TV_ERR_NOT_FOUND;
    struct state_ident *e;

    pthread_mutex_lock(&st->mu);
    e = state_find(st, id);
    if (e && !e->rec.deleted_ms) {
        *gen = e->rec.gen;
        rc = 0;
    }
    pthread_mutex_unlock(&st->mu);
    return rc;
}

/* Applies a revoke (deleting = 0) or delete to a live identity, persisting first so memory
 * never runs ahead of the file. */
static int state_change(struct emu_state *st, const char *id, int64_t now_ms, int deleting)
{
    int rc = TV_ERR_NOT_FOUND;
    struct state_ident *e;
    struct emu_identity_rec next;

    pthread_mutex_lock(&st->mu);
    e = state_find(st, id);
    if (!e || e->rec.deleted_ms)
        goto out;
    next = e->rec;
    if (deleting) {
        next.deleted_ms = now_ms > 0 ? now_ms : 1;
    } else {
        next.gen++;
        next.revoked_ms = now_ms;
    }
    if (st->db) {
        rc = emu_persist_identity_put(st->db, &next);
        if (rc != 0)
            goto out;
    }
    e->rec = next;
    if (deleting)
        st->live--;
    rc = 0;
out:
    pthread_mutex_unlock(&st->mu);
    return rc;
}

int emu_state_revoke(struct emu_state *st, const char *id, int64_t now_ms)
{
    return state_change(st, id, now_ms, 0);
}

int emu_state_delete(struct emu_state *st, const char *id, int64_t now_ms)
{
    return state_change(st, id, now_ms, 1);
}

enum emu_token_reason emu_state_check(struct emu_state *st, const char *id, uint64_t gen)
{
    enum emu_token_reason r = EMU_TOKEN_DELETED;
    struct state_ident *e;

    pthread_mutex_lock(&st->mu);
    e = state_find(st, id);
    if (e && !e->rec.deleted_ms)
        r = gen >= e->rec.gen ? EMU_TOKEN_OK : EMU_TOKEN_REVOKED;
    pthread_mutex_unlock(&st->mu);
    return r;
}

size_t emu_state_live(struct emu_state *st)
{
    size_t n;

    pthread_mutex_lock(&st->mu);
    n = st->live;
    pthread_mutex_unlock(&st->mu);
    return n;
}

void emu_state_count_request(struct emu_state *st, enum emu_op op)
{
    if ((unsigned)op < EMU_OP__COUNT)
        atomic_fetch_add_explicit(&st->requests[op], 1, memory_order_relaxed);
}

void emu_state_count_success(struct emu_state *st, enum emu_op op)
{
    if ((unsigned)op < EMU_OP__COUNT)
        atomic_fetch_add_explicit(&st->succeeded[op], 1, memory_order_relaxed);
}

void emu_state_count_token(struct emu_state *st)
{
    atomic_fetch_add_explicit(&st->tokens_issued, 1, memory_order_relaxed);
}

void emu_state_count_reused(struct emu_state *st)
{
    atomic_fetch_add_explicit(&st->tokens_reused, 1, memory_order_relaxed);
}

void emu_state_count_fault(struct emu_state *st)
{
    atomic_fetch_add_explicit(&st->faults_injected, 1, memory_order_relaxed);
}

static int state_ops_json(struct buf *b, atomic_uint_fast64_t *v)
{
    int rc = buf_append_str(b, "{");

    for (int i = 0; rc == 0 && i < EMU_OP__COUNT; i++) {
        rc = buf_printf(b, "%s\"%s\":%llu", i ? "," : "", emu_op_name((enum emu_op)i),
                        (unsigned long long)atomic_load_explicit(&v[i], memory_order_relaxed));
    }
    if (rc == 0)
        rc = buf_append_str(b, "}");
    return rc;
}

int emu_state_stats_json(struct emu_state *st, char **out)
{
    int rc;
    struct buf b;

    buf_init(&b, 4096);
    rc = buf_append_str(&b, "{\"requests\":");
    if (rc == 0)
        rc = state_ops_json(&b, st->requests);
    if (rc == 0)
        rc = buf_append_str(&b, ",\"succeeded\":");
    if (rc == 0)
        rc = state_ops_json(&b, st->succeeded);
    if (rc == 0)
        rc = buf_printf(
            &b,
            ",\"identities_created\":%llu,\"identities_live\":%zu,\"tokens_issued\":%llu,"
            "\"tokens_reused\":%llu,\"faults_injected\":%llu}",
            (unsigned long long)atomic_load(&st->identities_created), emu_state_live(st),
            (unsigned long long)atomic_load(&st->tokens_issued),
            (unsigned long long)atomic_load(&st->tokens_reused),
            (unsigned long long)atomic_load(&st->faults_injected));
    if (rc == 0) {
        *out = buf_take(&b);
        if (!*out)
            rc = TV_ERR_NOMEM;
    }
    buf_release(&b);
    return rc;
}

void emu_state_stats_reset(struct emu_state *st)
{
    for (int i = 0; i < EMU_OP__COUNT; i++) {
        atomic_store(&st->requests[i], 0);
        atomic_store(&st->succeeded[i], 0);
    }
    atomic_store(&st->identities_created, 0);
    atomic_store(&st->tokens_issued, 0);
    atomic_store(&st->tokens_reused, 0);
    atomic_store(&st->faults_injected, 0);
}
