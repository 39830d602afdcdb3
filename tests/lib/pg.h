/* Test helper: a throw-away PostgreSQL 15 cluster (Debian's postgresql-15) in a temporary
 * directory, listening on 127.0.0.1 on a free port, with a password-authenticated role and a
 * database of its own. initdb, pg_ctl and postgres refuse to run as root, so when the tests run
 * as root they run as nobody:nogroup (setpriv) in a directory chowned to it. A guardian process
 * stops the cluster and removes the directory when the test process ends in any way (exit,
 * failed assertion, signal, SIGKILL), and pg_stop is also registered with atexit.
 * One struct pg_harness per cluster; not thread-safe (start and stop from one thread). */
#ifndef TV_TESTS_PG_H
#define TV_TESTS_PG_H

#include <sys/types.h>

#define PG_DIR_MAX 64
#define PG_URI_MAX 256
#define PG_PASS_MAX 40

struct pg_harness {
    char dir[PG_DIR_MAX]; /* the temporary directory: data/, the socket, the logs */
    int port;
    char user[32];
    char pass[PG_PASS_MAX]; /* random hex, the role's password */
    char db[32];
    char uri[PG_URI_MAX]; /* postgresql://user:pass@127.0.0.1:PORT/db */
    pid_t guardian;       /* cleans up if this process dies without pg_stop */
    int guard_fd;         /* write end of the guardian's pipe: its EOF is the signal */
    int running;
};

/* Directory of initdb, pg_ctl and postgres: $TV_PG_BINDIR or /usr/lib/postgresql/15/bin. */
const char *pg_bindir(void);
/* Starts a new cluster (initdb, pg_ctl start -w, CREATE ROLE and DATABASE). 0 or -1 with a line
 * on stderr (the server log's tail when the server would not start); on failure nothing stays
 * behind. Blocks for a few seconds. */
int pg_start(struct pg_harness *h);
/* The application URI with the role's password (tests only: the harness's own secret). */
const char *pg_uri(const struct pg_harness *h);
/* A URI for the same server with another user, password or database ("" keeps the harness's),
 * written to out (cap bytes). 0 or -1 when it does not fit. */
int pg_uri_with(const struct pg_harness *h, const char *user, const char *pass, const char *db,
                char *out, size_t cap);
/* Runs one SQL command as the cluster's superuser (through the socket). 0 or -1 (logged). */
int pg_admin_exec(const struct pg_harness *h, const char *sql);
/* pg_ctl restart -m fast: the server goes away (connections break) and comes back on the same
 * port. 0 or -1. */
int pg_restart(struct pg_harness *h);
/* pg_ctl stop -m fast without removing anything (pg_resume starts it again). 0 or -1. */
int pg_pause(struct pg_harness *h);
int pg_resume(struct pg_harness *h);
/* Stops the server (pg_ctl stop -m fast), removes the directory and ends the guardian. Returns
 * 0, or -1 when something could not be undone. Safe to call twice. */
int pg_stop(struct pg_harness *h);

#endif
