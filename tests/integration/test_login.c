/* Integration tests of local accounts through an in-process tokenvend serve (app_new on
 * loopback port 0, no ACS needed: GET /api/user answers 404 for an accepted caller without an
 * identity and 401 for a refused token): session tokens are checked against their account on
 * every use; the session signing key is stored sealed under secret_key, survives a restart,
 * and refuses to load without the key or with another one; a clear key is sealed in place; a
 * database, or a config file holding a secret, readable by others draws a warning; a hash made with
 * other Argon2 parameters is replaced on a successful login, and a failure against a cheaper one
 * pays the current cost; a login the store cannot count is refused unchecked (503). */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include <sqlite3.h>

#include "app.h"
#include "auth/password.h"
#include "auth/session.h"
#include "core/curlx.h"
#include "core/aead.h"
#include "core/b64.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "store/accounts.h"
#include "store/audit.h"
#include "store/login_failures.h"
#include "store/meta.h"
#include "store/store.h"

#define SECRET_B64 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" /* bytes 0..31 */
#define OTHER_B64 "HxweHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE="
#define CONNSTR "endpoint=https://127.0.0.1:1/;accesskey=" SECRET_B64
#define PASSWORD "a-long-enough-password"

struct fx {
    char dir[64];
    char db[128];
    char logpath[160];
    struct config cfg;
    struct app *app;
    unsigned port;
    const char *login_limit; /* NULL: the default */
    const char *config_path; /* NULL: no config file */
};

/* ---- the service ---- */

/* Starts the app (local accounts on, loopback port 0) with secret as secret_key, or as
 * secret_key_file when it is a path, or none when NULL. Returns app_new's or app_start's
 * code. */
static int svc_start(struct fx *f, const char *secret)
{
    struct config_flag flags[8];
    size_t n = 0;
    char err[CONFIG_ERR_MAX];
    int rc;

    flags[n++] = (struct config_flag){"db", f->db, "--set"};
    flags[n++] = (struct config_flag){"local_accounts", "on", "--set"};
    flags[n++] = (struct config_flag){"public_addr", "127.0.0.1:0", "--set"};
    flags[n++] = (struct config_flag){"internal_addr", "127.0.0.1:0", "--set"};
    flags[n++] = (struct config_flag){"acs_connection_string", CONNSTR, "--set"};
    flags[n++] = (struct config_flag){"log_level", "info", "--set"};
    if (f->login_limit != NULL)
        flags[n++] = (struct config_flag){"login_limit", f->login_limit, "--set"};
    if (secret != NULL && secret[0] == '/')
        flags[n++] = (struct config_flag){"secret_key_file", secret, "--set"};
    else if (secret != NULL)
        flags[n++] = (struct config_flag){"secret_key", secret, "--set"};
    struct config_overrides ov = {
        .config_path = f->config_path, .default_path = "", .flags = flags, .nflags = n};
    rc = config_load(&ov, &f->cfg, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "config: %s\n", err);
        return rc;
    }
    rc = app_new(&f->cfg, &f->app);
    if (rc == 0)
        rc = app_start(f->app);
    if (rc == 0)
        f->port = app_port(f->app, 0);
    return rc;
}

static void svc_stop(struct fx *f)
{
    app_free(f->app);
    f->app = NULL;
    config_release(&f->cfg);
}

struct body {
    char data[16384];
    size_t len;
};

static size_t body_write(char *p, size_t size, size_t n, void *arg)
{
    struct body *b = arg;
    size_t len = size * n;

    if (b->len + len >= sizeof b->data)
        len = sizeof b->data - 1 - b->len;
    memcpy(b->data + b->len, p, len);
    b->len += len;
    b->data[b->len] = '\0';
    return size * n;
}

/* One request to the public listener; returns the status, body in *b. */
static long http(struct fx *f, const char *method, const char *path, const char *bearer,
                 const char *json, struct body *b)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char url[256], auth[2048];
    long status = 0;

    memset(b, 0, sizeof *b);
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", f->port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    if (bearer != NULL) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer);
        h = curl_slist_append(h, auth);
    }
    if (json != NULL) {
        h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return status;
}

/* POST /api/login; returns the status and, on 200, the token (malloc'd) in *token. */
static long login(struct fx *f, const char *user, const char *pw, char **token)
{
    struct body b;
    char json[512];
    long st;

    snprintf(json, sizeof json, "{\"username\":\"%s\",\"password\":\"%s\"}", user, pw);
    st = http(f, "POST", "/api/login", NULL, json, &b);
    if (st == 200 && token != NULL) {
        struct json_object *o = json_tokener_parse(b.data), *t = NULL;
        assert_true(json_object_object_get_ex(o, "access_token", &t));
        *token = strdup(json_object_get_string(t));
        json_object_put(o);
    }
    return st;
}

/* 404 (no ACS identity yet): the caller was accepted; 401: the token was refused. */
static long whoami(struct fx *f, const char *token)
{
    struct body b;
    return http(f, "GET", "/api/user", token, NULL, &b);
}

static void account_add(const char *db, const char *name, const char *pw)
{
    struct store *st = NULL;
    struct store_account a;

    memset(&a, 0, sizeof a);
    snprintf(a.name, sizeof a.name, "%s", name);
    assert_int_equal(password_hash(pw, strlen(pw), a.password_hash, sizeof a.password_hash), 0);
    assert_int_equal(store_open(db, STORE_MIGRATE_YES, &st), 0);
    assert_int_equal(store_account_upsert(st, &a, NULL), 0);
    store_close(st);
}

/* The meta row of the session key, read with the sqlite3 API (as anyone with the file could). */
static size_t stored_key(const char *db, uint8_t *out, size_t cap)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    size_t n = 0;

    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(h,
                                        "SELECT value FROM meta WHERE key = 'session_signing_key'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    n = (size_t)sqlite3_column_bytes(st, 0);
    assert_true(n <= cap);
    memcpy(out, sqlite3_column_blob(st, 0), n);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return n;
}

/* The session key as the service holds it, recovered from the database with the secret. */
static struct session_key *recover_key(const char *db, const char *secret_b64)
{
    uint8_t blob[8192], *secret = NULL, *der = NULL;
    size_t n = stored_key(db, blob, sizeof blob), slen = 0, dlen = 0;
    struct session_key *k = NULL;

    if (secret_b64 == NULL) {
        assert_int_equal(session_key_import(blob, n, &k), 0);
        return k;
    }
    assert_int_equal(b64_decode(secret_b64, strlen(secret_b64), &secret, &slen), 0);
    assert_int_equal(aead_open(secret, "tokenvend/session-key/v1", blob, n, &der, &dlen), 0);
    assert_int_equal(session_key_import(der, dlen, &k), 0);
    free(secret);
    free(der);
    return k;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    struct password_params cheap = {1, 64, 1};

    snprintf(f->dir, sizeof f->dir, "/tmp/tv-login-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->db, sizeof f->db, "%s/data/tv.db", f->dir);
    snprintf(f->logpath, sizeof f->logpath, "%s/log", f->dir);
    password_params_set(&cheap);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[256];

    svc_stop(f);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

/* ---- tests ---- */

/* A session lives only as long as its account and its password: remove and passwd end it
 * (within the account cache's 0.5 s), and a validly signed token for a name that never had an
 * account, or with another epoch, is refused. */
static void test_session_follows_account(void **state)
{
    struct fx *f = *state;
    struct session_key *k;
    struct store *st = NULL;
    char *tok = NULL, *tok2 = NULL, *forged = NULL;
    int64_t epoch = 0;
    long code = 0;

    account_add(f->db, "alice", PASSWORD);
    account_add(f->db, "bob", PASSWORD);
    assert_int_equal(svc_start(f, NULL), 0);
    assert_int_equal(login(f, "alice", PASSWORD, &tok), 200);
    assert_int_equal(whoami(f, tok), 404);
    assert_int_equal(whoami(f, tok), 404); /* again: now from the verified-token cache */

    /* Minted with the stored key: good signature, no such account. */
    k = recover_key(f->db, NULL);
    assert_int_equal(session_issue_epoch(k, "ghost", 0, 0, 300, &forged, NULL), 0);
    assert_int_equal(whoami(f, forged), 401);
    free(forged);
    /* Good signature, real account, but not its epoch; and one without any epoch claim. */
    assert_int_equal(store_open(f->db, STORE_MIGRATE_NO, &st), 0);
    assert_int_equal(store_account_epoch(st, "bob", &epoch), 0);
    assert_int_equal(session_issue_epoch(k, "bob", epoch + 1, 0, 300, &forged, NULL), 0);
    assert_int_equal(whoami(f, forged), 401);
    free(forged);
    assert_int_equal(session_issue(k, "bob", 0, 300, &forged, NULL), 0);
    assert_int_equal(whoami(f, forged), 401);
    free(forged);
    assert_int_equal(session_issue_epoch(k, "bob", epoch, 0, 300, &forged, NULL), 0);
    assert_int_equal(whoami(f, forged), 404); /* the right epoch is accepted */

    /* passwd (as the CLI does it, from the store): the old token stops within 1 s. */
    {
        char h[PASSWORD_HASH_MAX];
        assert_int_equal(password_hash("another-long-password", 21, h, sizeof h), 0);
        assert_int_equal(store_account_passwd(st, "alice", h, clock_wall_ms()), 0);
    }
    clock_sleep_ms(1000);
    assert_int_equal(whoami(f, tok), 401);
    assert_int_equal(login(f, "alice", PASSWORD, NULL), 401);
    assert_int_equal(login(f, "alice", "another-long-password", &tok2), 200);
    assert_int_equal(whoami(f, tok2), 404);

    /* remove: the new token stops within 1 s too. */
    assert_int_equal(store_account_delete(st, "alice"), 0);
    clock_sleep_ms(1000);
    code = whoami(f, tok2);
    assert_int_equal(code, 401);
    /* bob is untouched. */
    assert_int_equal(whoami(f, forged), 404);
    free(forged);
    store_close(st);
    session_key_free(k);
    free(tok);
    free(tok2);
}

/* With secret_key the stored key is sealed (not the clear key), a restart with the same key
 * keeps sessions, and a start without it or with another one fails with a configuration
 * error rather than making a new key. */
static void test_session_key_sealed(void **state)
{
    struct fx *f = *state;
    struct session_key *k;
    uint8_t blob[8192], *der = NULL;
    size_t n, dlen = 0;
    char *tok = NULL;

    account_add(f->db, "carol", PASSWORD);
    assert_int_equal(svc_start(f, SECRET_B64), 0);
    assert_int_equal(login(f, "carol", PASSWORD, &tok), 200);
    svc_stop(f);

    n = stored_key(f->db, blob, sizeof blob);
    assert_int_equal(blob[0], AEAD_VERSION);
    assert_int_not_equal(session_key_import(blob, n, &k), 0); /* not a key as it stands */
    k = recover_key(f->db, SECRET_B64);
    assert_int_equal(session_key_export(k, &der, &dlen), 0);
    assert_true(n > dlen);
    assert_null(memmem(blob, n, der, dlen)); /* the clear key is nowhere in the row */
    assert_null(memmem(blob, n, der + dlen - 32, 32));
    session_key_free(k);
    free(der);

    assert_int_equal(svc_start(f, SECRET_B64), 0);
    assert_int_equal(whoami(f, tok), 404); /* the old session still works */
    svc_stop(f);
    assert_int_equal(svc_start(f, NULL), TV_ERR_CONFIG);
    svc_stop(f);
    assert_int_equal(svc_start(f, OTHER_B64), TV_ERR_CONFIG);
    svc_stop(f);
    /* Neither failed start replaced the key. */
    {
        uint8_t again[8192];
        assert_int_equal(stored_key(f->db, again, sizeof again), n);
        assert_memory_equal(again, blob, n);
    }
    free(tok);
}

/* A clear key from before secret_key was set is sealed in place at the next start, and the
 * sessions signed with it keep working. */
static void test_clear_key_sealed_in_place(void **state)
{
    struct fx *f = *state;
    struct session_key *k, *k2;
    uint8_t blob[8192];
    char *tok = NULL;

    account_add(f->db, "dave", PASSWORD);
    assert_int_equal(svc_start(f, NULL), 0);
    assert_int_equal(login(f, "dave", PASSWORD, &tok), 200);
    svc_stop(f);
    k = recover_key(f->db, NULL);
    assert_int_equal(svc_start(f, SECRET_B64), 0);
    assert_int_equal(whoami(f, tok), 404);
    svc_stop(f);
    assert_true(stored_key(f->db, blob, sizeof blob) > AEAD_OVERHEAD);
    assert_int_equal(blob[0], AEAD_VERSION);
    k2 = recover_key(f->db, SECRET_B64);
    assert_string_equal(session_key_kid(k), session_key_kid(k2));
    session_key_free(k);
    session_key_free(k2);
    free(tok);
}

/* A database or a secret file readable by others draws one warning naming it and its mode;
 * a new database and its directory draw none. */
static void test_permission_warning(void **state)
{
    struct fx *f = *state;
    char buf[65536], keyfile[192];
    int fd;
    ssize_t n;

    snprintf(keyfile, sizeof keyfile, "%s/secret.key", f->dir);
    fd = open(keyfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, SECRET_B64 "\n", strlen(SECRET_B64) + 1),
                     (ssize_t)strlen(SECRET_B64) + 1);
    close(fd);
    fd = open(f->logpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    log_setup(LOGL_INFO, fd);
    assert_int_equal(svc_start(f, keyfile), 0); /* creates the database, 0600 */
    svc_stop(f);
    n = pread(fd, buf, sizeof buf - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_null(strstr(buf, "\"level\":\"warn\"")); /* nothing to warn about yet */
    assert_int_equal(ftruncate(fd, 0), 0);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    assert_int_equal(chmod(f->db, 0644), 0);
    assert_int_equal(chmod(keyfile, 0640), 0);
    assert_int_equal(svc_start(f, keyfile), 0);
    svc_stop(f);
    log_setup(LOGL_WARN, 2);
    n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "\"level\":\"warn\""));
    assert_non_null(strstr(buf, f->db));
    assert_non_null(strstr(buf, "mode 0644"));
    assert_non_null(strstr(buf, "secret file"));
    assert_non_null(strstr(buf, keyfile));
    assert_non_null(strstr(buf, "mode 0640"));
    assert_null(strstr(buf, SECRET_B64)); /* the key itself never */
}

/* Reads the log file from the start and empties it. */
static void log_take(int fd, char *buf, size_t cap)
{
    ssize_t n = pread(fd, buf, cap - 1, 0);

    assert_true(n >= 0);
    buf[n] = '\0';
    assert_int_equal(ftruncate(fd, 0), 0);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
}

/* A config file that sets a secret inline draws the start-up warning of a secret file when
 * group or others may read it (naming it and its mode, never the secret), and none at 0600. */
static void test_config_file_secret_warning(void **state)
{
    struct fx *f = *state;
    char buf[65536], conf[192];
    FILE *cf;
    int fd;

    snprintf(conf, sizeof conf, "%s/tokenvend.conf", f->dir);
    cf = fopen(conf, "w");
    assert_non_null(cf);
    fprintf(cf, "secret_key = %s\n", SECRET_B64);
    fclose(cf);
    assert_int_equal(chmod(conf, 0644), 0);
    f->config_path = conf;
    fd = open(f->logpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    log_setup(LOGL_INFO, fd);
    assert_int_equal(svc_start(f, NULL), 0);
    svc_stop(f);
    log_take(fd, buf, sizeof buf);
    assert_non_null(strstr(buf, "config file holding secrets"));
    assert_non_null(strstr(buf, conf));
    assert_non_null(strstr(buf, "mode 0644"));
    assert_null(strstr(buf, SECRET_B64));

    assert_int_equal(chmod(conf, 0600), 0);
    assert_int_equal(svc_start(f, NULL), 0);
    svc_stop(f);
    log_setup(LOGL_WARN, 2);
    log_take(fd, buf, sizeof buf);
    close(fd);
    assert_null(strstr(buf, "config file holding secrets"));
    assert_null(strstr(buf, SECRET_B64));
}

/* An account hashed with cheaper Argon2 parameters is rehashed with the current ones on its
 * next successful login; a failed login changes nothing. */
static void test_rehash_on_login(void **state)
{
    struct fx *f = *state;
    struct password_params cheap = {1, 64, 1}, current = {1, 256, 1};
    struct store_account a;
    struct store *st = NULL;
    char before[PASSWORD_HASH_MAX];
    int64_t epoch = 0;

    account_add(f->db, "erin", PASSWORD); /* t=1, m=64 */
    assert_int_equal(password_params_set(&current), 0);
    assert_int_equal(svc_start(f, NULL), 0);
    assert_int_equal(store_open(f->db, STORE_MIGRATE_NO, &st), 0);
    assert_int_equal(store_account_get(st, "erin", &a), 0);
    snprintf(before, sizeof before, "%s", a.password_hash);
    epoch = a.session_epoch;
    assert_non_null(strstr(before, "m=64,t=1,p=1$"));
    assert_int_equal(login(f, "erin", "wrong-password-here", NULL), 401);
    assert_int_equal(store_account_get(st, "erin", &a), 0);
    assert_string_equal(a.password_hash, before);
    assert_int_equal(login(f, "erin", PASSWORD, NULL), 200);
    assert_int_equal(store_account_get(st, "erin", &a), 0);
    assert_string_not_equal(a.password_hash, before);
    assert_non_null(strstr(a.password_hash, "m=256,t=1,p=1$"));
    assert_true(a.session_epoch == epoch); /* a rehash ends no session */
    assert_int_equal(password_verify(a.password_hash, PASSWORD, strlen(PASSWORD)), 0);
    store_close(st);
    assert_int_equal(password_params_set(&cheap), 0);
}

/* Collects the Retry-After header of a reply ("" when none). */
static size_t header_retry_after(char *p, size_t size, size_t n, void *arg)
{
    char *out = arg;
    size_t len = size * n;

    if (len > 13 && strncasecmp(p, "Retry-After:", 12) == 0) {
        size_t i = 12, k = 0;
        while (i < len && p[i] == ' ')
            i++;
        while (i < len && k < 15 && p[i] >= '0' && p[i] <= '9')
            out[k++] = p[i++];
        out[k] = '\0';
    }
    return len;
}

/* POST /api/login; returns the status, the body in *b and Retry-After in retry (16 bytes). */
static long login_reply(struct fx *f, const char *user, const char *pw, struct body *b, char *retry)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char url[128], json[256];
    long status = 0;

    memset(b, 0, sizeof *b);
    retry[0] = '\0';
    snprintf(url, sizeof url, "http://127.0.0.1:%u/api/login", f->port);
    snprintf(json, sizeof json, "{\"username\":\"%s\",\"password\":\"%s\"}", user, pw);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_retry_after);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, retry);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return status;
}

/* Runs sql on the database through a connection of its own (as another process could). */
static void db_exec(const char *db, const char *sql)
{
    sqlite3 *h = NULL;

    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    sqlite3_busy_timeout(h, 10000);
    assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
}

/* Fail closed: when the store cannot count a login attempt (here a trigger refuses every write
 * to login_failures; reads still work), the login is refused with 503, Retry-After and the
 * error shape before its password is checked, so the right password and a wrong one get the
 * same answer and guessing gains nothing. Once the store works again, a success leaves no
 * count behind and a failure one. */
static void test_uncountable_login_refused(void **state)
{
    struct fx *f = *state;
    struct store *st = NULL;
    struct body b;
    char retry[16];
    int64_t tat = -1;

    account_add(f->db, "ivy", PASSWORD);
    assert_int_equal(svc_start(f, NULL), 0);
    db_exec(f->db, "CREATE TRIGGER lf_no_insert BEFORE INSERT ON login_failures"
                   " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;"
                   "CREATE TRIGGER lf_no_update BEFORE UPDATE ON login_failures"
                   " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;");
    assert_int_equal(login_reply(f, "ivy", "wrong-password-here", &b, retry), 503);
    assert_string_equal(retry, "1");
    assert_non_null(strstr(b.data, "\"code\":\"unavailable\""));
    assert_int_equal(login_reply(f, "ivy", PASSWORD, &b, retry), 503);
    assert_string_equal(retry, "1");
    assert_non_null(strstr(b.data, "\"code\":\"unavailable\""));
    assert_null(strstr(b.data, "access_token"));

    db_exec(f->db, "DROP TRIGGER lf_no_insert; DROP TRIGGER lf_no_update");
    assert_int_equal(store_open(f->db, STORE_MIGRATE_NO, &st), 0);
    assert_int_equal(login(f, "ivy", PASSWORD, NULL), 200);
    assert_int_equal(store_login_failure_get(st, "ivy", &tat), 0);
    assert_true(tat == 0); /* counted, then taken back */
    assert_int_equal(login(f, "ivy", "wrong-password-here", NULL), 401);
    assert_int_equal(store_login_failure_get(st, "ivy", &tat), 0);
    assert_true(tat > 0);
    store_close(st);
}

/* A wrong password for an account whose hash is cheaper than the current parameters is padded
 * to the current cost (counted, not timed) instead of paying a whole dummy verification on top
 * (which made it slower than an unknown name); an unknown name pays the dummy; an account with
 * a current hash, and a right password, are neither padded nor dummied. */
static void test_old_hash_failure_pays_current_cost(void **state)
{
    struct fx *f = *state;
    struct password_params cheap = {1, 64, 1}, current = {1, 256, 1};
    unsigned long long before, pads;

    account_add(f->db, "gina", PASSWORD); /* t=1, m=64: cheaper than the service's */
    assert_int_equal(password_params_set(&current), 0);
    account_add(f->db, "hank", PASSWORD); /* current */
    assert_int_equal(svc_start(f, NULL), 0);

    before = password_dummy_count();
    pads = password_pad_count();
    assert_int_equal(login(f, "gina", "wrong-password-here", NULL), 401);
    assert_true(password_dummy_count() == before);
    assert_true(password_pad_count() == pads + 1);

    before = password_dummy_count();
    assert_int_equal(login(f, "nobody", "wrong-password-here", NULL), 401);
    assert_true(password_dummy_count() == before + 1);

    before = password_dummy_count();
    pads = password_pad_count();
    assert_int_equal(login(f, "hank", "wrong-password-here", NULL), 401);
    assert_int_equal(login(f, "hank", PASSWORD, NULL), 200);
    assert_int_equal(login(f, "gina", PASSWORD, NULL), 200); /* and now rehashed */
    assert_int_equal(login(f, "gina", "wrong-password-here", NULL), 401);
    assert_true(password_dummy_count() == before);
    assert_true(password_pad_count() == pads);
    assert_int_equal(password_params_set(&cheap), 0);
}

/* The failure that locks a name writes one login_lockout audit row (never the password); a
 * locked name is refused with 429 before any password check, so its count stops growing. */
static void test_lockout_audited(void **state)
{
    struct fx *f = *state;
    struct store_audit rows[8];
    struct store_audit_filter filt = {.action = "login_lockout"};
    struct store *st = NULL;
    int64_t tat1 = 0, tat2 = 0;
    int n = 0;

    f->login_limit = "2/600s";
    account_add(f->db, "frank", PASSWORD);
    assert_int_equal(svc_start(f, NULL), 0);
    assert_int_equal(login(f, "frank", "guess-number-one", NULL), 401);
    assert_int_equal(login(f, "frank", "guess-number-two", NULL), 401);
    assert_int_equal(login(f, "frank", PASSWORD, NULL), 429);
    assert_int_equal(store_open(f->db, STORE_MIGRATE_NO, &st), 0);
    assert_int_equal(store_login_failure_get(st, "frank", &tat1), 0);
    assert_int_equal(login(f, "frank", "guess-number-three", NULL), 429);
    assert_int_equal(store_login_failure_get(st, "frank", &tat2), 0);
    assert_true(tat1 == tat2 && tat1 > 0); /* refused before the check: not counted */
    assert_int_equal(store_audit_list(st, &filt, 8, rows, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].app_user_id, "local:frank");
    assert_string_equal(rows[0].outcome, "rate_limited");
    for (int i = 0; i < n; i++)
        assert_null(strstr(rows[i].detail, "guess"));
    store_close(st);
}

struct guess {
    struct fx *f;
    const char *name;
    long status;
};

static void *guess_run(void *arg)
{
    struct guess *g = arg;

    g->status = login(g->f, g->name, "a-concurrent-guess", NULL);
    return NULL;
}

/* Two wrong guesses at once for a name one failure short of its limit both pass the limit's
 * check before either is counted; the count then refuses the second in its own transaction,
 * so at most the limit's worth of passwords is ever checked: one 401 and one 429 per name. */
static void test_concurrent_guesses_within_limit(void **state)
{
    static const char *names[] = {"kim", "lou", "max", "ned", "ola", "pat"};
    struct fx *f = *state;

    f->login_limit = "2/600s";
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        account_add(f->db, names[i], PASSWORD);
    assert_int_equal(svc_start(f, NULL), 0);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct guess g[2] = {{f, names[i], 0}, {f, names[i], 0}};
        pthread_t t[2];
        int checked = 0;

        assert_int_equal(login(f, names[i], "a-first-guess", NULL), 401);
        for (int k = 0; k < 2; k++)
            assert_int_equal(pthread_create(&t[k], NULL, guess_run, &g[k]), 0);
        for (int k = 0; k < 2; k++)
            assert_int_equal(pthread_join(t[k], NULL), 0);
        for (int k = 0; k < 2; k++) {
            if (g[k].status != 401 && g[k].status != 429)
                fail_msg("%s: status %ld", names[i], g[k].status);
            checked += g[k].status == 401;
        }
        if (checked != 1)
            fail_msg("%s: %d of two concurrent guesses checked past a limit of 2", names[i],
                     checked);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_session_follows_account, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_key_sealed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clear_key_sealed_in_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permission_warning, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_file_secret_warning, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rehash_on_login, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lockout_audited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_hash_failure_pays_current_cost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uncountable_login_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_guesses_within_limit, setup, teardown),
    };

    curlx_init();
    log_setup(LOGL_WARN, 2);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
