/* Test helper: a throw-away PostgreSQL cluster (see pg.h). */
#include "pg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG_SUPERUSER "tvsuper"
#define PG_APP_USER "tv_app"
#define PG_APP_DB "tv"
#define PG_WAIT_S "60" /* pg_ctl -t: generous, for a loaded CI machine */
#define PG_START_TRIES 3
#define PG_LIVE_MAX 8

/* Clusters still running, for the atexit handler. */
static struct pg_harness *g_live[PG_LIVE_MAX];
static int g_atexit_done;

const char *pg_bindir(void)
{
    const char *b = getenv("TV_PG_BINDIR");

    return b != NULL && *b ? b : "/usr/lib/postgresql/15/bin";
}

/* The unprivileged owner of the cluster when we are root (initdb refuses root). */
static int owner_ids(uid_t *uid, gid_t *gid)
{
    const struct passwd *pw;
    const struct group *gr;

    if (geteuid() != 0)
        return 0;
    pw = getpwnam("nobody");
    gr = getgrnam("nogroup");
    *uid = pw != NULL ? pw->pw_uid : 65534;
    *gid = gr != NULL ? gr->gr_gid : 65534;
    return 1;
}

/* Runs argv[0] (a full path) to its end as the cluster's owner, in the cluster's directory,
 * stdout and stderr appended to log (or /dev/null). Returns its exit status, -1 when it could not
 * run or died from a signal. */
static int run(const struct pg_harness *h, const char *const *argv, const char *log)
{
    uid_t uid = 0;
    gid_t gid = 0;
    int as_owner = owner_ids(&uid, &gid);
    int status = 0;
    pid_t pid = fork();

    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(log != NULL ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (chdir(h->dir) != 0)
            _exit(126);
        /* Groups first, then the group id, then the user id: each later step drops the right
         * to do the earlier ones. */
        if (as_owner && (setgroups(0, NULL) != 0 || setresgid(gid, gid, gid) != 0 ||
                         setresuid(uid, uid, uid) != 0))
            _exit(126);
        union {
            const char *const *c;
            char *const *m;
        } args = {.c = argv};
        execv(argv[0], args.m);
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (type == FTW_DP)
        return rmdir(path) == 0 || errno == ENOENT ? 0 : -1;
    return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

static int rm_tree(const char *dir)
{
    if (access(dir, F_OK) != 0)
        return 0;
    return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

/* The guardian: a shell in a session of its own that waits for EOF on a pipe whose only write
 * end is ours (close-on-exec, so no child inherits it). EOF comes when pg_stop closes it or when
 * this process dies however it dies, and then the shell stops the cluster if it still runs and
 * removes the directory. A shell rather than forked C code: exec right after fork is safe even
 * when the test already runs threads. */
static int guardian_start(struct pg_harness *h)
{
    static const char script[] =
        "cat >/dev/null; d=$1; b=$2; shift 2; "
        "if [ -f \"$d/data/postmaster.pid\" ]; then "
        "\"$@\" \"$b/pg_ctl\" -D \"$d/data\" -m immediate -w -t 30 stop; fi; "
        "rm -rf \"$d\"";
    uid_t uid = 0;
    gid_t gid = 0;
    int as_owner = owner_ids(&uid, &gid);
    char uidarg[32], gidarg[32];
    const char *argv[12];
    int n = 0, fds[2];
    pid_t pid;

    snprintf(uidarg, sizeof(uidarg), "--reuid=%u", (unsigned)uid);
    snprintf(gidarg, sizeof(gidarg), "--regid=%u", (unsigned)gid);
    argv[n++] = "/bin/sh";
    argv[n++] = "-c";
    argv[n++] = script;
    argv[n++] = "pg-guardian";
    argv[n++] = h->dir;
    argv[n++] = pg_bindir();
    if (as_owner) {
        argv[n++] = "/usr/bin/setpriv";
        argv[n++] = uidarg;
        argv[n++] = gidarg;
        argv[n++] = "--clear-groups";
    }
    argv[n] = NULL;
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        int dn = open("/dev/null", O_WRONLY);
        dup2(fds[0], 0);
        if (dn >= 0) {
            dup2(dn, 1);
            dup2(dn, 2);
        }
        setsid(); /* a signal to our process group must not take the guardian with it */
        union {
            const char *const *c;
            char *const *m;
        } args = {.c = argv};
        execv(argv[0], args.m);
        _exit(127);
    }
    close(fds[0]);
    h->guardian = pid;
    h->guard_fd = fds[1];
    return 0;
}

static void guardian_end(struct pg_harness *h)
{
    if (h->guard_fd >= 0) {
        close(h->guard_fd);
        h->guard_fd = -1;
    }
    if (h->guardian > 0) {
        while (waitpid(h->guardian, NULL, 0) < 0 && errno == EINTR)
            ;
        h->guardian = -1;
    }
}

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int port = 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return 0;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static void path_in(const struct pg_harness *h, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", h->dir, name);
}

/* pg_ctl start|restart with the options that keep the cluster private and fast: loopback only,
 * the socket in our directory, no fsync (a test cluster is thrown away). */
static int ctl(struct pg_harness *h, const char *action, const char *mode)
{
    char pgctl[PG_DIR_MAX + 128], data[PG_DIR_MAX + 8], log[PG_DIR_MAX + 16],
        ctl_log[PG_DIR_MAX + 16];
    char opts[PG_DIR_MAX + 256];
    const char *argv[16];
    int n = 0;

    snprintf(pgctl, sizeof(pgctl), "%s/pg_ctl", pg_bindir());
    path_in(h, "data", data, sizeof(data));
    path_in(h, "server.log", log, sizeof(log));
    path_in(h, "pg_ctl.log", ctl_log, sizeof(ctl_log));
    snprintf(opts, sizeof(opts),
             "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
             "-c full_page_writes=off",
             h->port, h->dir);
    argv[n++] = pgctl;
    argv[n++] = "-D";
    argv[n++] = data;
    argv[n++] = "-w";
    argv[n++] = "-t";
    argv[n++] = PG_WAIT_S;
    if (mode != NULL) {
        argv[n++] = "-m";
        argv[n++] = mode;
    }
    if (strcmp(action, "stop") != 0) {
        argv[n++] = "-l";
        argv[n++] = log;
        argv[n++] = "-o";
        argv[n++] = opts;
    }
    argv[n++] = action;
    argv[n] = NULL;
    return run(h, argv, ctl_log) == 0 ? 0 : -1;
}

static void print_log_tail(const struct pg_harness *h, const char *name)
{
    char path[PG_DIR_MAX + 32], buf[2048];
    FILE *f;
    long size;
    size_t n;

    path_in(h, name, path, sizeof(path));
    f = fopen(path, "r");
    if (f == NULL)
        return;
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) > (long)sizeof(buf) - 1)
        fseek(f, size - (long)sizeof(buf) + 1, SEEK_SET);
    else
        fseek(f, 0, SEEK_SET);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    fprintf(stderr, "--- %s (tail)\n%s\n---\n", name, buf);
}

static PGconn *admin_connect(const struct pg_harness *h)
{
    char conninfo[PG_DIR_MAX + 128];
    PGconn *c;

    snprintf(conninfo, sizeof(conninfo),
             "host=%s port=%d user=" PG_SUPERUSER " dbname=postgres connect_timeout=10", h->dir,
             h->port);
    c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "pg harness: admin connection failed: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

int pg_admin_exec(const struct pg_harness *h, const char *sql)
{
    PGconn *c = admin_connect(h);
    PGresult *r;
    int rc = -1;

    if (c == NULL)
        return -1;
    r = PQexec(c, sql);
    if (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK)
        rc = 0;
    else
        fprintf(stderr, "pg harness: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return rc;
}

/* The role and its database. The password is our own random hex, quoted by libpq all the same
 * (CREATE ROLE takes no bound parameters). */
static int create_role_db(const struct pg_harness *h)
{
    PGconn *c = admin_connect(h);
    char sql[256];
    char *lit;
    int rc = -1;

    if (c == NULL)
        return -1;
    lit = PQescapeLiteral(c, h->pass, strlen(h->pass));
    if (lit == NULL)
        goto done;
    snprintf(sql, sizeof(sql), "CREATE ROLE " PG_APP_USER " LOGIN PASSWORD %s", lit);
    PQfreemem(lit);
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok)
        goto done;
    r = PQexec(c, "CREATE DATABASE " PG_APP_DB " OWNER " PG_APP_USER);
    ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (ok)
        rc = 0;
done:
    if (rc != 0)
        fprintf(stderr, "pg harness: creating the role and database failed: %s", PQerrorMessage(c));
    PQfinish(c);
    return rc;
}

static void stop_all_at_exit(void)
{
    for (int i = 0; i < PG_LIVE_MAX; i++)
        if (g_live[i] != NULL)
            pg_stop(g_live[i]);
}

static void live_add(struct pg_harness *h)
{
    if (!g_atexit_done) {
        atexit(stop_all_at_exit);
        g_atexit_done = 1;
    }
    for (int i = 0; i < PG_LIVE_MAX; i++) {
        if (g_live[i] == NULL) {
            g_live[i] = h;
            return;
        }
    }
    /* More clusters than slots: the guardian still cleans up the extra ones. */
}

static void live_remove(const struct pg_harness *h)
{
    for (int i = 0; i < PG_LIVE_MAX; i++)
        if (g_live[i] == h)
            g_live[i] = NULL;
}

int pg_start(struct pg_harness *h)
{
    char initdb[PG_DIR_MAX + 128], data[PG_DIR_MAX + 8], log[PG_DIR_MAX + 16];
    unsigned char rnd[16];
    uid_t uid = 0;
    gid_t gid = 0;
    int tries;

    memset(h, 0, sizeof(*h));
    h->guardian = -1;
    h->guard_fd = -1;
    snprintf(h->dir, sizeof(h->dir), "/tmp/tv-pg-XXXXXX");
    snprintf(initdb, sizeof(initdb), "%s/initdb", pg_bindir());
    if (access(initdb, X_OK) != 0) {
        fprintf(stderr,
                "pg harness: %s is missing (Debian package postgresql-15: run "
                "scripts/deps.sh test)\n",
                initdb);
        return -1;
    }
    if (mkdtemp(h->dir) == NULL) {
        fprintf(stderr, "pg harness: mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    if (owner_ids(&uid, &gid) && chown(h->dir, uid, gid) != 0) {
        fprintf(stderr, "pg harness: chown %s: %s\n", h->dir, strerror(errno));
        rmdir(h->dir);
        return -1;
    }
    if (guardian_start(h) != 0) {
        rmdir(h->dir);
        return -1;
    }
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        goto fail;
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(h->pass + 2 * i, 3, "%02x", rnd[i]);
    snprintf(h->user, sizeof(h->user), PG_APP_USER);
    snprintf(h->db, sizeof(h->db), PG_APP_DB);
    path_in(h, "data", data, sizeof(data));
    path_in(h, "initdb.log", log, sizeof(log));
    {
        const char *argv[] = {initdb,
                              "-D",
                              data,
                              "-U",
                              PG_SUPERUSER,
                              "-E",
                              "UTF8",
                              "--no-locale",
                              "--no-sync",
                              "--auth-local=trust",
                              "--auth-host=scram-sha-256",
                              NULL};
        if (run(h, argv, log) != 0) {
            fprintf(stderr, "pg harness: initdb failed\n");
            print_log_tail(h, "initdb.log");
            goto fail;
        }
    }
    /* A port found free may be taken before the server binds it: then try another. */
    for (tries = 0; tries < PG_START_TRIES; tries++) {
        h->port = free_port();
        if (h->port != 0 && ctl(h, "start", NULL) == 0)
            break;
    }
    if (tries == PG_START_TRIES) {
        fprintf(stderr, "pg harness: the server did not start\n");
        print_log_tail(h, "server.log");
        print_log_tail(h, "pg_ctl.log");
        goto fail;
    }
    h->running = 1;
    if (create_role_db(h) != 0)
        goto fail;
    snprintf(h->uri, sizeof(h->uri), "postgresql://%s:%s@127.0.0.1:%d/%s", h->user, h->pass,
             h->port, h->db);
    live_add(h);
    return 0;
fail:
    pg_stop(h);
    return -1;
}

const char *pg_uri(const struct pg_harness *h)
{
    return h->uri;
}

int pg_uri_with(const struct pg_harness *h, const char *user, const char *pass, const char *db,
                char *out, size_t cap)
{
    int n = snprintf(out, cap, "postgresql://%s:%s@127.0.0.1:%d/%s",
                     user != NULL && *user ? user : h->user, pass != NULL && *pass ? pass : h->pass,
                     h->port, db != NULL && *db ? db : h->db);

    return n > 0 && (size_t)n < cap ? 0 : -1;
}

int pg_restart(struct pg_harness *h)
{
    return h->running ? ctl(h, "restart", "fast") : -1;
}

int pg_pause(struct pg_harness *h)
{
    return h->running ? ctl(h, "stop", "fast") : -1;
}

int pg_resume(struct pg_harness *h)
{
    return h->running ? ctl(h, "start", NULL) : -1;
}

int pg_stop(struct pg_harness *h)
{
    char pid_file[PG_DIR_MAX + 32];
    int rc = 0;

    live_remove(h);
    if (h->dir[0] == '\0')
        return 0;
    path_in(h, "data/postmaster.pid", pid_file, sizeof(pid_file));
    if (access(pid_file, F_OK) == 0 && ctl(h, "stop", "fast") != 0) {
        fprintf(stderr, "pg harness: pg_ctl stop failed\n");
        rc = -1;
    }
    h->running = 0;
    if (rm_tree(h->dir) != 0) {
        fprintf(stderr, "pg harness: removing %s: %s\n", h->dir, strerror(errno));
        rc = -1;
    }
    guardian_end(h);
    OPENSSL_cleanse(h->pass, sizeof(h->pass));
    OPENSSL_cleanse(h->uri, sizeof(h->uri));
    h->dir[0] = '\0';
    return rc;
}
