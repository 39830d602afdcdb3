/* Test helper: runs $(TV_BUILD)/bin/acs-emulator on a free loopback port as a child process and
 * talks to its /emulator/... control routes over plain HTTP (blocking libcurl). One struct temu
 * per emulator; not thread-safe. Emulator logs go to /dev/null unless TV_EMU_VERBOSE is set.
 * The temu_ prefix keeps clear of the emulator's own emu_ symbols in the library. */
#ifndef TV_TESTS_EMU_H
#define TV_TESTS_EMU_H

#include <stddef.h>
#include <sys/types.h>

#define TEMU_CONNSTR_MAX 512
#define TEMU_URL_MAX 64

struct temu {
    pid_t pid;
    int out_fd; /* read end of the emulator's stdout, kept open */
    int port;
    char connstr[TEMU_CONNSTR_MAX]; /* "endpoint=http://127.0.0.1:PORT/;accesskey=..." */
    char base_url[TEMU_URL_MAX];    /* "http://127.0.0.1:PORT" */
};

/* Path of the emulator binary: $TV_BUILD/bin/acs-emulator (TV_BUILD defaults to "build"). */
const char *temu_binary(void);
/* Whether the emulator binary exists and is executable (tests may skip without it). */
int temu_available(void);
/* Starts the emulator with --listen 127.0.0.1:0 plus extra_args (NULL-terminated, may be NULL)
 * and waits (up to 10 s) for its connection-string line. 0 or -1 (child reaped on failure). */
int temu_start(struct temu *e, const char *const *extra_args);
/* SIGTERM, then waits for the child. Returns its exit status (0 on a clean stop), -1 on
 * trouble. Safe to call twice. */
int temu_stop(struct temu *e);

/* One HTTP request to base_url + path with an optional JSON body. *status gets the HTTP status;
 * *body (if not NULL) a malloc'd NUL-terminated response body the caller frees. 0 or -1 when
 * no answer came. */
int temu_http(const struct temu *e, const char *method, const char *path, const char *json,
              long *status, char **body);
/* PUT /emulator/faults with json; 0 when the emulator answered 2xx. */
int temu_faults_set(const struct temu *e, const char *json);
/* DELETE /emulator/faults; 0 on 2xx. */
int temu_faults_clear(const struct temu *e);
/* POST /emulator/stats/reset; 0 on 2xx. */
int temu_stats_reset(const struct temu *e);
/* GET /emulator/stats and reads group.op (e.g. "requests", "create") or, with op NULL, the
 * top-level member `group` (e.g. "tokens_issued"). The count, or -1 on any failure. */
long temu_stats_get(const struct temu *e, const char *group, const char *op);

/* A loopback TCP port on which nothing listens (bound once, then closed). 0 on failure. */
int temu_closed_port(void);
/* A libcurl CURLOPT_WRITEFUNCTION that gathers the body, NUL-terminated, in a temu_body
 * (CURLOPT_WRITEDATA; start from {NULL, 0}, free data after); a body over 1 MiB fails the transfer.
 */
struct temu_body {
    char *data;
    size_t len;
};
size_t temu_body_write(char *d, size_t size, size_t nmemb, void *userp);
/* An unsigned JWT (alg "none", signature "x") whose payload is payload_json; malloc'd. */
char *temu_fake_jwt(const char *payload_json);

#endif
