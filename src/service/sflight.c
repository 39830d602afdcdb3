/* Single-flight maps (sflight_int.h): a hash of keys to the waiters of the work in flight. */
#include "sflight_int.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

struct sf_entry {
    struct sf_entry *next;
    struct sf_link *waiters; /* newest first */
    char key[];
};

static unsigned sf_hash(const char *k)
{
    unsigned h = 2166136261u; /* FNV-1a */

    for (; *k != '\0'; k++)
        h = (h ^ (unsigned char)*k) * 16777619u;
    return h % SF_BUCKETS;
}

void sfmap_init(struct sfmap *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
}

void sfmap_release(struct sfmap *m)
{
    for (size_t i = 0; i < SF_BUCKETS; i++) {
        while (m->b[i] != NULL) {
            struct sf_entry *e = m->b[i];
            m->b[i] = e->next;
            free(e);
        }
    }
    pthread_mutex_destroy(&m->lock);
}

int sfmap_join(struct sfmap *m, const char *key, struct sf_link *me, int lead,
               sf_recheck_fn recheck, void *ctx, enum sf_role *role)
{
    unsigned b = sf_hash(key);
    size_t klen = strlen(key);
    struct sf_entry *e;
    int rc = 0;

    pthread_mutex_lock(&m->lock);
    for (e = m->b[b]; e != NULL; e = e->next) {
        if (strcmp(e->key, key) == 0)
            break;
    }
    if (e != NULL) {
        me->next = e->waiters;
        e->waiters = me;
        *role = SF_JOINED;
        goto unlock;
    }
    /* The leader publishes its result before it removes its entry: this lookup sees it. */
    rc = recheck(ctx);
    if (rc == 0) {
        *role = SF_FOUND;
        goto unlock;
    }
    if (rc != TV_ERR_NOT_FOUND || !lead)
        goto unlock;
    if ((e = calloc(1, sizeof *e + klen + 1)) == NULL) {
        rc = TV_ERR_NOMEM;
        goto unlock;
    }
    memcpy(e->key, key, klen + 1);
    e->next = m->b[b];
    m->b[b] = e;
    *role = SF_LEAD;
    rc = 0;
unlock:
    pthread_mutex_unlock(&m->lock);
    return rc;
}

struct sf_link *sfmap_finish(struct sfmap *m, const char *key)
{
    struct sf_link *w = NULL;

    pthread_mutex_lock(&m->lock);
    for (struct sf_entry **pp = &m->b[sf_hash(key)]; *pp != NULL; pp = &(*pp)->next) {
        if (strcmp((*pp)->key, key) == 0) {
            struct sf_entry *e = *pp;
            *pp = e->next;
            /* Joined by prepending: reverse, so they continue in arrival order (a delete that
             * came before a token request acts before it). */
            for (struct sf_link *n = e->waiters; n != NULL;) {
                struct sf_link *next = n->next;
                n->next = w;
                w = n;
                n = next;
            }
            free(e);
            break;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return w;
}
