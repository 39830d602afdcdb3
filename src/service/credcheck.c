/* The ACS credential check of start-up. A revoke of an identity that cannot exist is the one
 * ACS call that is harmless whatever the answer (nothing is created, no token is issued, the
 * resource's own identities are untouched) and that ACS authenticates before it looks the
 * identity up: 401/403 then say the credential is wrong, 404 that it is right. One thread sleeps
 * between calls; the call itself runs on the ACS client's engine like any other, so it takes the
 * budget, the breaker and, in keyless mode, the Entra token as every call does. */
#include "service/credcheck.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "acs/client.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "store/store.h"
#include "store/users.h"

#define HINT_ROWS 16 /* mappings read to find the resource id */
#define RESOURCE_ID_MAX 128

struct credcheck {
    struct acs_client *acs;
    struct store *store;
    int64_t backoff_min_ms, backoff_max_ms;

    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC; signalled by a call's end and by stop */
    enum credcheck_state state;
    char why[CREDCHECK_TEXT_MAX - 64]; /* UNCHECKED: the last call's reason ("" before one ended) */
    long status;                       /* REJECTED: ACS's status */
    int inflight;                      /* a call is on its way */
    int stopping;
    int64_t next_ms;    /* monotonic time of the next call while UNCHECKED */
    int64_t backoff_ms; /* the wait after the next answer without a verdict */
    int has_thread;
    pthread_t thread;
    char identity[ACS_ID_MAX]; /* the made-up identity, built once on the thread */
};

/* "8:acs:<resource id>_<uuid>", the form of ACS's own ids, with a fresh random UUID, so it
 * never names a real identity. */
static int made_up_identity(const char *resource_id, char *out, size_t cap)
{
    unsigned char r[16];

    if (RAND_bytes(r, sizeof r) != 1)
        return TV_ERR_CRYPTO;
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40); /* version 4 */
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, cap,
             "8:acs:%s_%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             resource_id, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11],
             r[12], r[13], r[14], r[15]);
    return 0;
}

/* ACS's resource id as a mapping of this resource shows it, into out; else a random UUID, so
 * the identity still has the right form (ACS decides on the credential before the id). */
static int resource_id_pick(struct credcheck *c, char *out, size_t cap)
{
    struct store_user rows[HINT_ROWS];
    const char *resource = acs_client_resource(c->acs);
    int n = 0, rc;

    out[0] = '\0';
    if (c->store != NULL && store_user_list(c->store, NULL, HINT_ROWS, rows, &n) == 0) {
        for (int i = 0; i < n && out[0] == '\0'; i++) {
            const char *id = rows[i].acs_id, *us;
            if (strcmp(rows[i].resource, resource) != 0 || strncmp(id, "8:acs:", 6) != 0 ||
                (us = strchr(id + 6, '_')) == NULL || us == id + 6 ||
                (size_t)(us - (id + 6)) >= cap)
                continue;
            memcpy(out, id + 6, (size_t)(us - (id + 6)));
            out[us - (id + 6)] = '\0';
        }
    }
    if (out[0] != '\0')
        return 0;
    /* No mapping yet: a made-up resource id of the same form (a UUID). */
    rc = made_up_identity("x", out, cap);
    if (rc == 0)
        memmove(out, out + 8, strlen(out + 8) + 1); /* keep the UUID after "8:acs:x_" */
    return rc;
}

/* Engine thread: the verdict of one call. Must not block (the mutex is held only briefly). */
static void credcheck_done(void *arg, struct acs_result *res)
{
    struct credcheck *c = arg;
    long st = res->http_status;
    int64_t now = clock_mono_ms();

    pthread_mutex_lock(&c->mu);
    c->inflight = 0;
    if (res->rc == 0 || st == 404) {
        log_msg(LOGL_INFO, NULL,
                "ACS credential checked: accepted (a revoke of a made-up identity was answered "
                "%ld)%s",
                st, c->state == CREDCHECK_REJECTED ? ", after it was rejected before" : "");
        c->state = CREDCHECK_OK; /* final: nothing more to learn */
    } else if (st == 401 || st == 403) {
        /* Logged once, when the verdict comes; /readyz says it from then on. */
        if (c->state != CREDCHECK_REJECTED || c->status != st)
            log_msg(LOGL_ERROR, NULL,
                    "ACS credential rejected: ACS answered %ld to a revoke of a made-up "
                    "identity; check the access key (or, keyless, the identity's role on the "
                    "resource); /readyz answers 503 while it is refused",
                    st);
        c->state = CREDCHECK_REJECTED;
        c->status = st;
        /* Checked again now and then: a role assignment may take minutes to reach ACS. */
        c->next_ms = now + c->backoff_max_ms;
    } else if (res->rc != TV_ERR_SHUTDOWN) {
        if (c->why[0] == '\0' && c->state == CREDCHECK_UNCHECKED)
            log_msg(LOGL_WARN, NULL, "ACS credential not checked yet: %s (%s); retrying",
                    res->message[0] ? res->message : err_message(res->rc), err_name(res->rc));
        /* No verdict: a rejected credential stays rejected until ACS says otherwise. */
        if (st > 0)
            snprintf(c->why, sizeof c->why, "ACS answered %ld (%s)", st, err_name(res->rc));
        else if (res->message[0] != '\0' && strcmp(res->message, err_message(res->rc)) != 0)
            snprintf(c->why, sizeof c->why, "%s: %.120s", err_message(res->rc), res->message);
        else
            snprintf(c->why, sizeof c->why, "%s", err_message(res->rc));
        /* ACS's own wait when it named one, else the doubling backoff. */
        c->next_ms = now + (res->retry_after_s > 0 && res->retry_after_s * 1000 > c->backoff_ms
                                ? res->retry_after_s * 1000
                                : c->backoff_ms);
        c->backoff_ms =
            c->backoff_ms * 2 > c->backoff_max_ms ? c->backoff_max_ms : c->backoff_ms * 2;
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    acs_result_release(res);
}

/* Sends one call (mu not held). A refused submission counts as an answer without a verdict. */
static void credcheck_send(struct credcheck *c)
{
    struct acs_request req = {.op = ACS_OP_REVOKE,
                              .identity_id = c->identity,
                              .caller = "credcheck",
                              .expect_status = 404};
    struct acs_result res;
    int rc = acs_client_submit(c->acs, &req, credcheck_done, c);

    if (rc == 0)
        return;
    memset(&res, 0, sizeof res);
    res.rc = rc;
    snprintf(res.message, sizeof res.message, "the ACS client refused the call (%s)", err_name(rc));
    credcheck_done(c, &res);
}

static void *credcheck_main(void *arg)
{
    struct credcheck *c = arg;
    char rid[RESOURCE_ID_MAX];

    if (resource_id_pick(c, rid, sizeof rid) != 0 ||
        made_up_identity(rid, c->identity, sizeof c->identity) != 0) {
        pthread_mutex_lock(&c->mu);
        snprintf(c->why, sizeof c->why, "no random bytes for the made-up identity");
        pthread_mutex_unlock(&c->mu);
        return NULL;
    }
    pthread_mutex_lock(&c->mu);
    while (!c->stopping) {
        int64_t now = clock_mono_ms(), until;
        struct timespec ts;

        if (c->state != CREDCHECK_OK && !c->inflight && now >= c->next_ms) {
            c->inflight = 1;
            pthread_mutex_unlock(&c->mu);
            credcheck_send(c);
            pthread_mutex_lock(&c->mu);
            continue;
        }
        /* Accepted, or a call on its way: only stop (or the call's end) wakes us. */
        until = c->state == CREDCHECK_OK || c->inflight ? now + 60000 : c->next_ms;
        ts.tv_sec = (time_t)(until / 1000);
        ts.tv_nsec = (long)(until % 1000) * 1000000L;
        (void)pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

int credcheck_new(const struct credcheck_opts *o, struct credcheck **out)
{
    struct credcheck *c;
    pthread_condattr_t ca;
    int rc = TV_ERR_NOMEM;

    if (o == NULL || o->acs == NULL || out == NULL)
        return TV_ERR_INVALID;
    if ((c = calloc(1, sizeof *c)) == NULL)
        return TV_ERR_NOMEM;
    c->acs = o->acs;
    c->store = o->store;
    c->backoff_min_ms = o->backoff_min_ms > 0 ? o->backoff_min_ms : 1000;
    c->backoff_max_ms = o->backoff_max_ms > 0 ? o->backoff_max_ms : 60000;
    if (c->backoff_max_ms < c->backoff_min_ms)
        c->backoff_max_ms = c->backoff_min_ms;
    c->backoff_ms = c->backoff_min_ms;
    c->state = CREDCHECK_UNCHECKED;
    if (pthread_mutex_init(&c->mu, NULL) != 0)
        goto fail_alloc;
    if (pthread_condattr_init(&ca) != 0)
        goto fail_mu;
    /* Monotonic: a wall-clock jump must not stall or hurry the retries. */
    if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&c->cv, &ca) != 0) {
        pthread_condattr_destroy(&ca);
        goto fail_mu;
    }
    pthread_condattr_destroy(&ca);
    if (pthread_create(&c->thread, NULL, credcheck_main, c) != 0) {
        rc = TV_ERR_INTERNAL;
        goto fail_cv;
    }
    c->has_thread = 1;
    *out = c;
    return 0;
fail_cv:
    pthread_cond_destroy(&c->cv);
fail_mu:
    pthread_mutex_destroy(&c->mu);
fail_alloc:
    free(c);
    return rc;
}

void credcheck_stop(struct credcheck *c)
{
    if (c == NULL || !c->has_thread)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    c->has_thread = 0;
}

void credcheck_free(struct credcheck *c)
{
    if (c == NULL)
        return;
    credcheck_stop(c);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

enum credcheck_state credcheck_get(struct credcheck *c, char *text, size_t cap)
{
    enum credcheck_state st;
    int64_t wait_ms;

    pthread_mutex_lock(&c->mu);
    st = c->state;
    if (text != NULL && cap > 0) {
        if (st == CREDCHECK_OK)
            snprintf(text, cap, "ok");
        else if (st == CREDCHECK_REJECTED)
            snprintf(text, cap, "rejected (%ld)", c->status);
        else if (c->why[0] == '\0')
            snprintf(text, cap, "unchecked: the first check is under way");
        else if (c->inflight)
            snprintf(text, cap, "unchecked: %s; checking again now", c->why);
        else {
            wait_ms = c->next_ms - clock_mono_ms();
            snprintf(text, cap, "unchecked: %s; next check in %lld s", c->why,
                     (long long)(wait_ms > 0 ? (wait_ms + 999) / 1000 : 0));
        }
    }
    pthread_mutex_unlock(&c->mu);
    return st;
}
