/* The delay line (delayq_int.h): a list kept in due order (few items wait at once: one per app
 * user whose create another process holds), and a thread that sleeps on the monotonic clock
 * until the head is due or the list changes. */
#include "delayq_int.h"

#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"

int delayq_init(struct delayq *d, struct jobq *target)
{
    pthread_condattr_t ca;
    int rc = TV_ERR_NOMEM;

    memset(d, 0, sizeof *d);
    d->target = target;
    if (pthread_condattr_init(&ca) != 0)
        return rc;
    /* Monotonic: a wall-clock step neither stalls nor hurries a wait. */
    (void)pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (pthread_cond_init(&d->cond, &ca) == 0) {
        pthread_mutex_init(&d->lock, NULL);
        rc = 0;
    }
    pthread_condattr_destroy(&ca);
    return rc;
}

/* Caller holds d->lock: detaches the items due by now_ms (in due order). */
static struct delay_item *take_due_locked(struct delayq *d, int64_t now_ms)
{
    struct delay_item *first = d->head, *rest, **pp = &d->head;

    while (*pp != NULL && (*pp)->due_ms <= now_ms)
        pp = &(*pp)->next;
    if (pp == &d->head)
        return NULL; /* nothing due */
    rest = *pp;
    *pp = NULL; /* ends the due part */
    d->head = rest;
    return first;
}

static void push_all(struct delayq *d, struct delay_item *it)
{
    while (it != NULL) {
        struct delay_item *next = it->next;
        jobq_push(d->target, &it->job);
        it = next;
    }
}

/* Caller holds d->lock: sleeps until due_ms (monotonic) or a signal. */
static void wait_until_locked(struct delayq *d, int64_t due_ms)
{
    struct timespec ts;

    ts.tv_sec = (time_t)(due_ms / 1000);
    ts.tv_nsec = (long)(due_ms % 1000) * 1000000L;
    (void)pthread_cond_timedwait(&d->cond, &d->lock, &ts);
}

static void *delayq_main(void *arg)
{
    struct delayq *d = arg;

    pthread_mutex_lock(&d->lock);
    while (!d->stop) {
        struct delay_item *due = take_due_locked(d, clock_mono_ms());
        if (due != NULL) {
            /* Pushed without our lock: a job may run (and add itself again) at once. */
            pthread_mutex_unlock(&d->lock);
            push_all(d, due);
            pthread_mutex_lock(&d->lock);
            continue;
        }
        if (d->head == NULL)
            pthread_cond_wait(&d->cond, &d->lock);
        else
            wait_until_locked(d, d->head->due_ms);
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

int delayq_start(struct delayq *d)
{
    if (pthread_create(&d->thread, NULL, delayq_main, d) != 0) {
        log_msg(LOGL_ERROR, NULL, "service: cannot start the delay thread");
        return TV_ERR_INTERNAL;
    }
    d->started = 1;
    return 0;
}

int delayq_add(struct delayq *d, struct delay_item *it, int64_t delay_ms)
{
    struct delay_item **pp;
    int rc = 0;

    it->due_ms = clock_mono_ms() + (delay_ms > 0 ? delay_ms : 0);
    pthread_mutex_lock(&d->lock);
    if (d->stop) {
        rc = TV_ERR_SHUTDOWN;
        goto unlock;
    }
    /* After the items due at the same time: equal delays keep their order. */
    for (pp = &d->head; *pp != NULL && (*pp)->due_ms <= it->due_ms; pp = &(*pp)->next)
        ;
    it->next = *pp;
    *pp = it;
    if (d->head == it)
        pthread_cond_signal(&d->cond);
unlock:
    pthread_mutex_unlock(&d->lock);
    return rc;
}

void delayq_stop(struct delayq *d)
{
    struct delay_item *left;

    pthread_mutex_lock(&d->lock);
    d->stop = 1;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
    if (d->started) {
        pthread_join(d->thread, NULL);
        d->started = 0;
    }
    /* Every waiting item owes its owner an answer: it runs now and finds the line closed. */
    pthread_mutex_lock(&d->lock);
    left = d->head;
    d->head = NULL;
    pthread_mutex_unlock(&d->lock);
    push_all(d, left);
}

void delayq_release(struct delayq *d)
{
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->lock);
}
