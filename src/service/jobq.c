/* The service's job queues (jobq_int.h). */
#include "jobq_int.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"

void jobq_init(struct jobq *q, unsigned nthreads, unsigned max_pending)
{
    memset(q, 0, sizeof *q);
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
    q->n = nthreads;
    q->max_pending = max_pending;
}

/* Caller holds q->lock. */
static void enqueue_locked(struct jobq *q, struct jobq_item *it)
{
    it->next = NULL;
    if (q->tail != NULL)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    q->pending++;
    pthread_cond_signal(&q->cond);
}

void jobq_push(struct jobq *q, struct jobq_item *it)
{
    pthread_mutex_lock(&q->lock);
    enqueue_locked(q, it);
    pthread_mutex_unlock(&q->lock);
}

int jobq_submit(struct jobq *q, struct jobq_item *it)
{
    int rc = 0;

    /* Counted under the lock, so concurrent callers cannot overshoot the cap; the count drops
     * when a job has run (run_one). */
    pthread_mutex_lock(&q->lock);
    if (q->stop || q->started == 0)
        rc = TV_ERR_SHUTDOWN;
    else if (q->max_pending > 0 && q->pending >= q->max_pending)
        rc = TV_ERR_UNAVAILABLE;
    else
        enqueue_locked(q, it);
    pthread_mutex_unlock(&q->lock);
    return rc;
}

static void run_one(struct jobq *q, struct jobq_item *it)
{
    it->run(it); /* may free it */
    pthread_mutex_lock(&q->lock);
    q->pending--;
    pthread_mutex_unlock(&q->lock);
}

static void *worker_main(void *arg)
{
    struct jobq *q = arg;

    for (;;) {
        struct jobq_item *it;
        pthread_mutex_lock(&q->lock);
        while (q->head == NULL && !q->stop)
            pthread_cond_wait(&q->cond, &q->lock);
        it = q->head;
        if (it == NULL) {
            /* Stopping and drained: every queued job has run. */
            pthread_mutex_unlock(&q->lock);
            break;
        }
        q->head = it->next;
        if (q->head == NULL)
            q->tail = NULL;
        pthread_mutex_unlock(&q->lock);
        run_one(q, it);
    }
    return NULL;
}

int jobq_start(struct jobq *q)
{
    if ((q->threads = calloc(q->n, sizeof *q->threads)) == NULL)
        return TV_ERR_NOMEM;
    for (unsigned i = 0; i < q->n; i++) {
        if (pthread_create(&q->threads[i], NULL, worker_main, q) != 0) {
            log_msg(LOGL_ERROR, NULL, "service: cannot start worker thread %u", i);
            return TV_ERR_INTERNAL;
        }
        pthread_mutex_lock(&q->lock);
        q->started++;
        pthread_mutex_unlock(&q->lock);
    }
    return 0;
}

void jobq_release(struct jobq *q)
{
    pthread_mutex_lock(&q->lock);
    q->stop = 1;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
    for (unsigned i = 0; i < q->started; i++)
        pthread_join(q->threads[i], NULL);
    /* Without threads (never started) queued jobs still run: a flow owes its caller an answer. */
    while (q->head != NULL) {
        struct jobq_item *it = q->head;
        q->head = it->next;
        run_one(q, it);
    }
    q->tail = NULL;
    free(q->threads);
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->lock);
}
