/* The delete outbox worker's lifecycle (outbox.c); service_outbox_kick (service/service.h)
 * wakes it. */
#ifndef TV_SERVICE_OUTBOX_INT_H
#define TV_SERVICE_OUTBOX_INT_H

struct service;

/* Starts the worker thread, which at once looks for due rows. 0 or TV_ERR_INTERNAL. */
int outbox_start(struct service *s);
/* Stops it and waits for the thread (it never waits on ACS). No-op when not started. */
void outbox_stop(struct service *s);

#endif
