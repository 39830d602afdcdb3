/* Test helper: a small libmicrohttpd server on a free loopback port standing in for an identity
 * endpoint (and, on /identities, for ACS's create): it records what the last request carried
 * (method, path, query, headers, body) and answers with a set status and body, after an optional
 * delay. One per process (fake_idp); the Entra fetch and cache suites use it. */
#ifndef TV_TESTS_FAKE_IDP_H
#define TV_TESTS_FAKE_IDP_H

#include <pthread.h>
#include <stddef.h>

/* What the server saw last, and what it answers; fields under mu. */
struct fake_idp {
    struct MHD_Daemon *d;
    int port;
    pthread_mutex_t mu;
    int requests;
    char method[8];
    char path[256];
    char api_version[64];
    char resource[128];
    char client_id[64];
    char identity_header[64];
    char metadata[16];
    char authorization[256]; /* of the last ACS (/identities) request */
    char content_sha[128];
    int acs_requests;
    char body[8192];
    size_t body_len;
    int status;
    char answer[2048];
    unsigned delay_ms;
};

extern struct fake_idp fake_idp;

/* Starts the server (answering 200 with a one-hour Bearer token); 0 or -1. */
int fake_idp_start(void);
void fake_idp_stop(void);
/* The next answers' status and body. */
void fake_idp_answer(int status, const char *body);
/* Milliseconds each answer waits before it is sent. */
void fake_idp_delay(unsigned ms);
/* Requests seen since the start. */
int fake_idp_requests(void);
/* "http://127.0.0.1:PORT". */
void fake_idp_base_url(char *out, size_t cap);

#endif
