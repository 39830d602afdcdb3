/* The kept token cache (tkeep_int.h): sealing with the row's binding as associated data, the
 * lookup under the memory cache's rules, a one-thread bounded write queue that also prunes. */
#include "tkeep_int.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "jobq_int.h"
#include "store/tokens.h"

#define AD_MAX (64 + 3 * (STORE_ID_MAX + 8) + STORE_TOKEN_SCOPES_MAX + 64)
#define AD_PURPOSE "tokenvend/token-cache/v1"

struct tkeep {
    uint8_t key[AEAD_KEY_LEN];
    struct store *st;
    int64_t min_remaining_ms;
    struct jobq wq;
    atomic_llong last_prune_ms;
    atomic_ullong hits, misses, writes, write_errors, open_failures, purged, pruned;
};

/* One queued write: ciphertext only. */
struct tk_job {
    struct jobq_item it; /* first: the queue hands this back */
    struct tkeep *k;
    struct tcache *cache;
    uint64_t epoch;
    struct store_token row;
    char request_id[72];
};

/* Every field length-prefixed, so no two different bindings give the same text. */
static int ad_build(const struct tkeep_id *id, char out[AD_MAX])
{
    int n =
        snprintf(out, AD_MAX, AD_PURPOSE "|%zu:%s|%zu:%s|%zu:%s|%d|%lld|%lld", strlen(id->resource),
                 id->resource, strlen(id->acs_id), id->acs_id, strlen(id->scopes), id->scopes,
                 id->minutes, (long long)id->issued_ms, (long long)id->expires_ms);
    return n > 0 && n < AD_MAX ? 0 : TV_ERR_TOO_LARGE;
}

static int id_ok(const struct tkeep_id *id)
{
    return id != NULL && id->resource != NULL && id->acs_id != NULL && id->scopes != NULL &&
           id->resource[0] != '\0' && id->acs_id[0] != '\0' &&
           strnlen(id->resource, STORE_ID_MAX + 1) <= STORE_ID_MAX &&
           strnlen(id->acs_id, STORE_ID_MAX + 1) <= STORE_ID_MAX &&
           strnlen(id->scopes, STORE_TOKEN_SCOPES_MAX + 1) <= STORE_TOKEN_SCOPES_MAX;
}

int tkeep_seal(const uint8_t key[AEAD_KEY_LEN], const struct tkeep_id *id, const char *token,
               const char *expires_on, uint8_t **out, size_t *out_len)
{
    char ad[AD_MAX];
    uint8_t *pt = NULL;
    size_t tl, el, n;
    int rc;

    if (!id_ok(id) || token == NULL || ad_build(id, ad) != 0)
        return TV_ERR_INVALID;
    if (expires_on == NULL)
        expires_on = "";
    tl = strnlen(token, TCACHE_TOKEN_MAX + 1);
    el = strnlen(expires_on, TCACHE_EXPIRES_MAX);
    if (tl == 0 || tl > TCACHE_TOKEN_MAX || el >= TCACHE_EXPIRES_MAX)
        return TV_ERR_INVALID;
    n = el + 1 + tl;
    if ((pt = malloc(n)) == NULL)
        return TV_ERR_NOMEM;
    memcpy(pt, expires_on, el);
    pt[el] = '\0';
    memcpy(pt + el + 1, token, tl);
    rc = aead_seal(key, ad, pt, n, out, out_len);
    OPENSSL_clear_free(pt, n);
    return rc;
}

int tkeep_open(const uint8_t key[AEAD_KEY_LEN], const struct tkeep_id *id, const uint8_t *sealed,
               size_t len, char **token, size_t *token_len, char expires_on[TCACHE_EXPIRES_MAX])
{
    char ad[AD_MAX];
    uint8_t *pt = NULL;
    const uint8_t *nul;
    size_t n = 0, el, tl;
    char *tok = NULL;
    int rc;

    if (!id_ok(id) || ad_build(id, ad) != 0)
        return TV_ERR_UNAUTHORIZED;
    rc = aead_open(key, ad, sealed, len, &pt, &n);
    if (rc == TV_ERR_INVALID)
        rc = TV_ERR_UNAUTHORIZED; /* not even a sealed blob: damaged */
    if (rc != 0)
        return rc;
    /* Authentic, so written by us; still checked, as any input. */
    nul = memchr(pt, '\0', n);
    el = nul != NULL ? (size_t)(nul - pt) : n;
    tl = nul != NULL ? n - el - 1 : 0;
    if (nul == NULL || el >= TCACHE_EXPIRES_MAX || tl == 0 || tl > TCACHE_TOKEN_MAX ||
        memchr(nul + 1, '\0', tl) != NULL) {
        rc = TV_ERR_INVALID;
        goto done;
    }
    if ((tok = malloc(tl + 1)) == NULL) {
        rc = TV_ERR_NOMEM;
        goto done;
    }
    memcpy(tok, nul + 1, tl);
    tok[tl] = '\0';
    memcpy(expires_on, pt, el);
    expires_on[el] = '\0';
    *token = tok;
    *token_len = tl;
done:
    OPENSSL_clear_free(pt, n);
    return rc;
}

int tkeep_new(const uint8_t key[AEAD_KEY_LEN], struct store *st, int64_t min_remaining_ms,
              struct tkeep **out)
{
    struct tkeep *k = calloc(1, sizeof *k);
    int rc;

    if (k == NULL)
        return TV_ERR_NOMEM;
    memcpy(k->key, key, AEAD_KEY_LEN);
    k->st = st;
    k->min_remaining_ms = min_remaining_ms;
    jobq_init(&k->wq, 1, TKEEP_QUEUE_MAX);
    if ((rc = jobq_start(&k->wq)) != 0) {
        jobq_release(&k->wq);
        OPENSSL_cleanse(k->key, sizeof k->key);
        free(k);
        return rc;
    }
    *out = k;
    return 0;
}

void tkeep_free(struct tkeep *k)
{
    if (k == NULL)
        return;
    jobq_release(&k->wq);
    OPENSSL_cleanse(k->key, sizeof k->key);
    free(k);
}

int tkeep_lookup(struct tkeep *k, const struct tkeep_id *id, int64_t now_ms, int64_t not_before_ms,
                 const char *request_id, struct tcache_hit *out)
{
    struct store_token row;
    struct tkeep_id bound;
    char *tok = NULL;
    size_t tl = 0;
    int rc;

    memset(&row, 0, sizeof row);
    rc = store_token_get(k->st, id->acs_id, id->scopes, id->minutes, &row);
    if (rc != 0) {
        if (rc != TV_ERR_NOT_FOUND)
            log_msg(LOGL_WARN, request_id, "kept token cache: cannot read the store: %s",
                    err_name(rc));
        goto miss;
    }
    /* The cheap rules first: nothing is decrypted for a row that could not be served. */
    /* expires_ms is not authenticated yet: compared before any subtraction, so a damaged
     * value cannot overflow it. */
    if (row.expires_ms <= now_ms || row.expires_ms - now_ms < k->min_remaining_ms ||
        row.issued_ms <= not_before_ms)
        goto miss;
    bound = *id;
    bound.issued_ms = row.issued_ms;
    bound.expires_ms = row.expires_ms;
    /* The resource is in the associated data: a row of another resource does not open. */
    rc = tkeep_open(k->key, &bound, row.sealed, row.sealed_len, &tok, &tl, out->expires_on);
    if (rc != 0) {
        atomic_fetch_add(&k->open_failures, 1);
        log_msg(LOGL_WARN, request_id,
                "kept token cache: the row for identity %s does not open (%s: another "
                "cache key, or a damaged or moved row); asking ACS instead",
                id->acs_id, err_name(rc));
        goto miss;
    }
    out->token = tok;
    out->token_len = tl;
    out->expires_on_ms = row.expires_ms;
    out->issued_ms = row.issued_ms;
    store_token_release(&row);
    atomic_fetch_add(&k->hits, 1);
    return 0;
miss:
    store_token_release(&row);
    atomic_fetch_add(&k->misses, 1);
    return TV_ERR_NOT_FOUND;
}

/* At most once every TKEEP_PRUNE_EVERY_MS (the writer's thread only). */
static void prune_maybe(struct tkeep *k, const char *request_id)
{
    int64_t now = clock_wall_ms(), removed = 0;
    int rc;

    if (now - atomic_load(&k->last_prune_ms) < TKEEP_PRUNE_EVERY_MS)
        return;
    atomic_store(&k->last_prune_ms, now);
    /* A row with less than min_remaining left is never served again. */
    rc = store_token_prune(k->st, now + k->min_remaining_ms, TKEEP_PRUNE_BATCH, &removed);
    if (rc != 0)
        log_msg(LOGL_WARN, request_id, "kept token cache: cannot prune expired rows: %s",
                err_name(rc));
    else
        atomic_fetch_add(&k->pruned, (unsigned long long)removed);
}

static void write_run(struct jobq_item *it)
{
    struct tk_job *j = (struct tk_job *)(void *)it;
    struct tkeep *k = j->k;
    int rc = 0;

    /* Revoked or deleted here since the token was cached: not written at all. */
    if (tcache_epoch(j->cache, j->row.acs_id) == j->epoch) {
        rc = store_token_put(k->st, &j->row);
        if (rc == 0) {
            atomic_fetch_add(&k->writes, 1);
        } else {
            atomic_fetch_add(&k->write_errors, 1);
            log_msg(LOGL_WARN, j->request_id,
                    "kept token cache: the token of identity %s was not written: %s", j->row.acs_id,
                    err_name(rc));
        }
    }
    prune_maybe(k, j->request_id);
    free(j->row.sealed); /* ciphertext */
    free(j);
}

void tkeep_write(struct tkeep *k, struct tcache *cache, uint64_t epoch, const struct tkeep_id *id,
                 const char *token, const char *expires_on, const char *request_id)
{
    struct tk_job *j;
    int rc;

    if (k == NULL || cache == NULL || !id_ok(id))
        return;
    if ((j = calloc(1, sizeof *j)) == NULL) {
        rc = TV_ERR_NOMEM;
        goto fail;
    }
    if ((rc = tkeep_seal(k->key, id, token, expires_on, &j->row.sealed, &j->row.sealed_len)) != 0) {
        free(j);
        goto fail;
    }
    j->k = k;
    j->cache = cache;
    j->epoch = epoch;
    snprintf(j->row.acs_id, sizeof j->row.acs_id, "%s", id->acs_id);
    snprintf(j->row.scopes, sizeof j->row.scopes, "%s", id->scopes);
    snprintf(j->row.resource, sizeof j->row.resource, "%s", id->resource);
    snprintf(j->request_id, sizeof j->request_id, "%s", request_id != NULL ? request_id : "");
    j->row.minutes = id->minutes;
    j->row.issued_ms = id->issued_ms;
    j->row.expires_ms = id->expires_ms;
    j->it.run = write_run;
    if ((rc = jobq_submit(&k->wq, &j->it)) != 0) {
        free(j->row.sealed);
        free(j);
        goto fail;
    }
    return;
fail:
    atomic_fetch_add(&k->write_errors, 1);
    log_msg(LOGL_WARN, request_id, "kept token cache: the token of identity %s was not kept: %s",
            id->acs_id, err_name(rc));
}

int tkeep_purge(struct tkeep *k, const char *acs_id, const char *request_id)
{
    int64_t removed = 0;
    int rc;

    if (k == NULL || acs_id == NULL || acs_id[0] == '\0')
        return 0;
    rc = store_token_purge(k->st, acs_id, &removed);
    if (rc != 0)
        log_msg(LOGL_WARN, request_id,
                "kept token cache: cannot remove the kept tokens of identity %s: %s (readers "
                "still refuse them by the revoke time)",
                acs_id, err_name(rc));
    else
        atomic_fetch_add(&k->purged, (unsigned long long)removed);
    return rc;
}

void tkeep_stats_get(struct tkeep *k, struct tkeep_stats *out)
{
    memset(out, 0, sizeof *out);
    if (k == NULL)
        return;
    out->hits = atomic_load(&k->hits);
    out->misses = atomic_load(&k->misses);
    out->writes = atomic_load(&k->writes);
    out->write_errors = atomic_load(&k->write_errors);
    out->open_failures = atomic_load(&k->open_failures);
    out->purged = atomic_load(&k->purged);
    out->pruned = atomic_load(&k->pruned);
}

int tkeep_metrics_write(struct tkeep *k, struct buf *out)
{
    static const struct {
        const char *name, *help;
        size_t off;
    } defs[] = {
        {"tokenvend_cache_store_hits_total",
         "Tokens served from the token cache kept in the store (no ACS call).",
         offsetof(struct tkeep_stats, hits)},
        {"tokenvend_cache_store_misses_total",
         "Lookups of the kept token cache that found nothing servable.",
         offsetof(struct tkeep_stats, misses)},
        {"tokenvend_cache_store_writes_total", "Tokens written to the kept token cache.",
         offsetof(struct tkeep_stats, writes)},
        {"tokenvend_cache_store_write_errors_total",
         "Tokens not written to the kept token cache (store error or queue full).",
         offsetof(struct tkeep_stats, write_errors)},
        {"tokenvend_cache_store_open_failures_total",
         "Kept tokens that did not open (another cache key, a damaged or moved row).",
         offsetof(struct tkeep_stats, open_failures)},
        {"tokenvend_cache_store_purged_total", "Kept tokens removed by revoke or delete.",
         offsetof(struct tkeep_stats, purged)},
        {"tokenvend_cache_store_pruned_total", "Expired kept tokens removed.",
         offsetof(struct tkeep_stats, pruned)},
    };
    struct tkeep_stats st;
    int rc = 0;

    tkeep_stats_get(k, &st);
    for (size_t i = 0; rc == 0 && i < sizeof defs / sizeof defs[0]; i++) {
        uint64_t v;
        memcpy(&v, (const char *)&st + defs[i].off, sizeof v);
        rc = buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", defs[i].name,
                        defs[i].help, defs[i].name, defs[i].name, (unsigned long long)v);
    }
    return rc;
}
