/* A delay line in front of a job queue: an item handed in with a delay is pushed onto the queue
 * (jobq_push) once the delay has passed, by one thread that sleeps until the earliest item is
 * due. For work that must wait without holding a thread: a request waiting for another
 * process's create re-checks the store from here with a backoff. Knows nothing of what a job
 * does. Thread-safe. */
#ifndef TV_SERVICE_DELAYQ_INT_H
#define TV_SERVICE_DELAYQ_INT_H

#include <pthread.h>
#include <stdint.h>

#include "jobq_int.h"

/* Embedded in its owner: job.run is set by the owner, the rest is the delay line's. */
struct delay_item {
    struct jobq_item job;
    int64_t due_ms; /* monotonic */
    struct delay_item *next;
};

/* Embedded in its owner; fields are the delay line's own. */
struct delayq {
    pthread_mutex_t lock;
    pthread_cond_t cond;     /* CLOCK_MONOTONIC */
    struct delay_item *head; /* earliest first */
    struct jobq *target;
    int stop, started;
    pthread_t thread;
};

/* Prepares d to feed target (which must outlive d). 0 or TV_ERR_NOMEM. */
int delayq_init(struct delayq *d, struct jobq *target);
/* Starts the thread. 0 or TV_ERR_INTERNAL. */
int delayq_start(struct delayq *d);
/* Queues it->job onto the target after delay_ms (<= 0: at the next turn of the thread). 0, or
 * TV_ERR_SHUTDOWN once delayq_stop has begun (it is then not queued: the caller ends its
 * work). */
int delayq_add(struct delayq *d, struct delay_item *it, int64_t delay_ms);
/* Stops the thread and pushes every item still waiting onto the target at once; their owners
 * then find delayq_add refused and finish. Call before the target is released. Idempotent. */
void delayq_stop(struct delayq *d);
/* Frees what delayq_init made, after delayq_stop and after the target's threads are gone (a
 * job may call delayq_add until then). */
void delayq_release(struct delayq *d);

#endif
