/* A FIFO of jobs served by a few threads: the service's flow steps run on one (unbounded: every
 * ACS completion must find room), its plain blocking jobs (password checks) on another with a
 * cap on the jobs queued or running. Knows nothing of what a job does. Thread-safe. */
#ifndef TV_SERVICE_JOBQ_INT_H
#define TV_SERVICE_JOBQ_INT_H

#include <pthread.h>

/* One queued job, embedded in whatever it runs for: run(it) is called once on a queue thread
 * and may free the containing object. */
struct jobq_item {
    void (*run)(struct jobq_item *it);
    struct jobq_item *next;
};

/* Embedded in its owner; fields are the queue's own. */
struct jobq {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct jobq_item *head, *tail;
    int stop;
    pthread_t *threads;
    unsigned n, started;
    unsigned pending, max_pending; /* jobs queued or running; 0 max = unbounded */
};

/* Prepares q for nthreads threads (none started yet) and at most max_pending jobs queued or
 * running through jobq_submit (0 = no cap). */
void jobq_init(struct jobq *q, unsigned nthreads, unsigned max_pending);
/* Starts the threads. 0, TV_ERR_NOMEM or TV_ERR_INTERNAL (those started keep running until
 * jobq_release). */
int jobq_start(struct jobq *q);
/* Queues it whatever the cap says (a completion that must run). Never fails. */
void jobq_push(struct jobq *q, struct jobq_item *it);
/* Queues it when the queue takes work: 0, TV_ERR_SHUTDOWN (stopping or never started) or
 * TV_ERR_UNAVAILABLE (max_pending jobs queued or running); it is not run on failure. */
int jobq_submit(struct jobq *q, struct jobq_item *it);
/* Runs every queued job (on the threads, or here when none ever started), joins the threads and
 * frees what jobq_init and jobq_start made. */
void jobq_release(struct jobq *q);

#endif
