/* Mappings stored before tokenvend checked ids (app user ids that are not UTF-8 or hold control
 * characters) must not break the listings: the real service (app_new on loopback, the emulator
 * upstream) and `tokenvend identity list|show` run against a database holding such rows, and
 * every answer must be strict JSON (jsonx_parse refuses bytes that are not UTF-8). The rows stay
 * reachable by their ACS id, so an operator can remove them. Also: a local account's requests
 * are audited under its own namespace ("user:local:NAME"), apart from any OIDC subject. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "auth/apikey.h"
#include "auth/password.h"
#include "cli/cli.h"
#include "core/curlx.h"
#include "core/config.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "emu.h"
#include "store/accounts.h"
#include "store/apikeys.h"
#include "store/audit.h"
#include "store/store.h"
#include "store/users.h"

#define BODY_MAX (1024 * 1024)

/* What a binary without the id rule let in, between ids that pass it. */
static const struct {
    const char *app;
    const char *acs;
    int valid;
} rows[] = {
    {"alpha", "8:acs:legacy_alpha", 1},           {"b\xC0\xAF", "8:acs:legacy_overlong", 0},
    {"b\xff\xfe", "8:acs:legacy_ff", 0},          {"bravo", "8:acs:legacy_bravo", 1},
    {"c\r\nInjected: 1", "8:acs:legacy_crlf", 0}, {"c\x7f", "8:acs:legacy_del", 0},
    {"charlie", "8:acs:legacy_charlie", 1},       {"d\xED\xA0\x80", "8:acs:legacy_surrogate", 0},
};
#define NROWS (sizeof rows / sizeof rows[0])

static struct {
    struct temu emu;
    char dir[64];
    char db[128];
    char key[APIKEY_MAX];
    char internal[64];
    char public[64];
    struct config cfg;
    struct app *app;
} G;

struct acc {
    char *data;
    size_t len;
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct acc *a = ud;
    size_t add = size * n;
    char *grown;

    if (a->len + add > BODY_MAX || (grown = realloc(a->data, a->len + add + 1)) == NULL)
        return 0;
    memcpy(grown + a->len, p, add);
    a->data = grown;
    a->len += add;
    a->data[a->len] = '\0';
    return add;
}

/* One request to base + path with a bearer credential and an optional JSON body; the answer's
 * body in *body (caller frees). */
static long request(const char *base, const char *bearer, const char *method, const char *path,
                    const char *json, char **body, size_t *len)
{
    char url[512], auth[8192];
    struct curl_slist *h = NULL;
    struct acc a = {NULL, 0};
    CURL *c = curl_easy_init();
    long status = 0;

    assert_non_null(c);
    snprintf(url, sizeof url, "%s%s", base, path);
    if (bearer != NULL) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer);
        h = curl_slist_append(h, auth);
    }
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (json != NULL)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, (void *)&a);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    *body = a.data != NULL ? a.data : strdup("");
    *len = a.len;
    return status;
}

/* One request to the internal listener with the API key. */
static long internal(const char *method, const char *path, char **body, size_t *len)
{
    return request(G.internal, G.key, method, path, NULL, body, len);
}

/* Parses text strictly (UTF-8 included), failing the test with the text's head otherwise. */
static struct json_object *strict_json(const char *text, size_t len)
{
    struct json_object *o = NULL;

    if (jsonx_parse(text, len, BODY_MAX, &o) != 0)
        fail_msg("not strict JSON (%zu bytes): %.200s", len, text);
    return o;
}

static int setup(void **state)
{
    struct store *st = NULL;
    struct store_apikey k;
    char dbset[160], pub[64], intl[64], cs[TEMU_CONNSTR_MAX + 32];
    char err[CONFIG_ERR_MAX];
    int pport, iport;

    (void)state;
    if (!temu_available() || temu_start(&G.emu, NULL) != 0)
        return -1;
    snprintf(G.dir, sizeof G.dir, "/tmp/tv-apiids-XXXXXX");
    if (mkdtemp(G.dir) == NULL)
        return -1;
    snprintf(G.db, sizeof G.db, "%s/tv.db", G.dir);
    if (store_open(G.db, STORE_MIGRATE_YES, &st) != 0)
        return -1;
    for (size_t i = 0; i < NROWS; i++) {
        struct store_user u;
        memset(&u, 0, sizeof u);
        snprintf(u.app_user_id, sizeof u.app_user_id, "%s", rows[i].app);
        snprintf(u.acs_id, sizeof u.acs_id, "%s", rows[i].acs);
        snprintf(u.resource, sizeof u.resource, "127.0.0.1:%d", G.emu.port);
        u.created_ms = 1700000000000;
        if (store_user_insert(st, &u) != 0)
            return -1;
    }
    memset(&k, 0, sizeof k);
    snprintf(k.name, sizeof k.name, "backend");
    if (apikey_generate(G.key, sizeof G.key, k.key_id, k.hash) != 0 ||
        store_apikey_insert(st, &k) != 0)
        return -1;
    {
        /* A local account, hashed cheaply: the test is about names, not password cost. */
        struct password_params pp;
        struct store_account acct;
        password_params_get(&pp);
        if (password_params_parse("t=1,m=1024", &pp) != 0 || password_params_set(&pp) != 0)
            return -1;
        memset(&acct, 0, sizeof acct);
        snprintf(acct.name, sizeof acct.name, "alice");
        if (password_hash("correct horse battery", 21, acct.password_hash,
                          sizeof acct.password_hash) != 0 ||
            store_account_upsert(st, &acct, NULL) != 0)
            return -1;
    }
    store_close(st);

    pport = temu_closed_port();
    iport = temu_closed_port();
    snprintf(dbset, sizeof dbset, "%s", G.db);
    snprintf(pub, sizeof pub, "127.0.0.1:%d", pport);
    snprintf(intl, sizeof intl, "127.0.0.1:%d", iport);
    snprintf(cs, sizeof cs, "%s", G.emu.connstr);
    snprintf(G.internal, sizeof G.internal, "http://127.0.0.1:%d", iport);
    snprintf(G.public, sizeof G.public, "http://127.0.0.1:%d", pport);
    {
        const struct config_flag flags[] = {
            {"db", dbset, "--set"},           {"public_addr", pub, "--set"},
            {"internal_addr", intl, "--set"}, {"acs_connection_string", cs, "--set"},
            {"log_level", "warn", "--set"},   {"local_accounts", "on", "--set"},
        };
        struct config_overrides ov = {.default_path = "", .flags = flags, .nflags = 6};
        if (config_load(&ov, &G.cfg, err, sizeof err) != 0) {
            fprintf(stderr, "config: %s\n", err);
            return -1;
        }
    }
    if (app_new(&G.cfg, &G.app) != 0 || app_start(G.app) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    char p[192];

    (void)state;
    app_free(G.app);
    config_release(&G.cfg);
    temu_stop(&G.emu);
    unlink(G.db);
    snprintf(p, sizeof p, "%s-wal", G.db);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", G.db);
    unlink(p);
    snprintf(p, sizeof p, "%s/out", G.dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/err", G.dir);
    unlink(p);
    rmdir(G.dir);
    return 0;
}

/* GET /internal/users, one page of two at a time: strict JSON on every page, exactly the rows
 * whose ids pass the rule, and a cursor the next request accepts. */
static void test_list_pages_stay_json(void **state)
{
    char path[512], cursor[300] = "";
    size_t seen = 0, len = 0;
    int pages = 0;

    (void)state;
    for (;;) {
        struct json_object *o, *users, *next;
        char *body = NULL;
        char *esc = curl_easy_escape(NULL, cursor, 0);
        long st;

        snprintf(path, sizeof path, "/internal/users?limit=2%s%s", cursor[0] ? "&after=" : "",
                 cursor[0] ? esc : "");
        curl_free(esc);
        st = internal("GET", path, &body, &len);
        if (st != 200)
            fail_msg("GET %s -> %ld %s", path, st, body);
        o = strict_json(body, len);
        assert_true(json_object_object_get_ex(o, "users", &users));
        for (size_t i = 0; i < json_object_array_length(users); i++) {
            struct json_object *u = json_object_array_get_idx(users, i), *id;
            assert_true(json_object_object_get_ex(u, "userId", &id));
            while (seen < NROWS && !rows[seen].valid)
                seen++;
            assert_true(seen < NROWS);
            assert_string_equal(json_object_get_string(id), rows[seen].app);
            seen++;
        }
        pages++;
        json_object_object_get_ex(o, "next", &next);
        if (next == NULL) {
            json_object_put(o);
            free(body);
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", json_object_get_string(next));
        json_object_put(o);
        free(body);
        assert_true(pages < 10);
    }
    while (seen < NROWS && !rows[seen].valid)
        seen++;
    assert_int_equal(seen, NROWS);
}

/* A bad row is still reachable by its ACS id: the operator's way to remove it. */
static void test_bad_row_reachable_by_acs_id(void **state)
{
    char *body = NULL;
    size_t len = 0;

    (void)state;
    assert_int_equal(internal("DELETE", "/internal/identities/8:acs:legacy_del", &body, &len), 204);
    free(body);
    assert_int_equal(internal("DELETE", "/internal/identities/8:acs:legacy_del", &body, &len), 204);
    free(body);
}

/* Runs `tokenvend identity ARGS --set db=...` in this process; stdout and stderr into files. */
static int run_identity_cli(const char *sub, const char *arg, char **out, char **err)
{
    char dbset[160], outp[128], errp[128], subc[32], argbuf[256], setc[] = "--set";
    char *argv[6];
    int argc = 0, rc, o_fd, e_fd, save_o, save_e;
    FILE *f;
    long n;

    snprintf(dbset, sizeof dbset, "db=%s", G.db);
    snprintf(outp, sizeof outp, "%s/out", G.dir);
    snprintf(errp, sizeof errp, "%s/err", G.dir);
    /* argv is writable in a real main(); give the command copies, not the callers' constants. */
    snprintf(subc, sizeof subc, "%s", sub);
    argv[argc++] = subc;
    if (arg != NULL) {
        snprintf(argbuf, sizeof argbuf, "%s", arg);
        argv[argc++] = argbuf;
    }
    argv[argc++] = setc;
    argv[argc++] = dbset;
    argv[argc] = NULL;
    fflush(stdout);
    fflush(stderr);
    o_fd = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    e_fd = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(o_fd >= 0 && e_fd >= 0);
    save_o = dup(1);
    save_e = dup(2);
    dup2(o_fd, 1);
    dup2(e_fd, 2);
    rc = cli_identity_main(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(save_o, 1);
    dup2(save_e, 2);
    close(save_o);
    close(save_e);
    close(o_fd);
    close(e_fd);
    for (int i = 0; i < 2; i++) {
        char **dst = i == 0 ? out : err;
        f = fopen(i == 0 ? outp : errp, "rb");
        assert_non_null(f);
        fseek(f, 0, SEEK_END);
        n = ftell(f);
        fseek(f, 0, SEEK_SET);
        *dst = calloc(1, (size_t)n + 1);
        assert_non_null(*dst);
        assert_int_equal(fread(*dst, 1, (size_t)n, f), (size_t)n);
        fclose(f);
    }
    return rc;
}

static void test_cli_list_and_show(void **state)
{
    struct json_object *o, *arr, *v;
    char *out = NULL, *err = NULL;
    size_t nvalid = 0;

    (void)state;
    assert_int_equal(run_identity_cli("list", NULL, &out, &err), 0);
    o = strict_json(out, strlen(out));
    assert_true(json_object_object_get_ex(o, "identities", &arr));
    for (size_t i = 0; i < NROWS; i++)
        nvalid += rows[i].valid;
    assert_int_equal(json_object_array_length(arr), nvalid);
    /* The warning names the ACS ids of the rows it left out. */
    assert_non_null(strstr(err, "8:acs:legacy_ff"));
    assert_non_null(strstr(err, "8:acs:legacy_crlf"));
    json_object_put(o);
    free(out);
    free(err);

    /* show by ACS id: strict JSON, the id made presentable and flagged. */
    assert_int_equal(run_identity_cli("show", "8:acs:legacy_crlf", &out, &err), 0);
    o = strict_json(out, strlen(out));
    assert_true(json_object_object_get_ex(o, "appUserId", &v));
    assert_null(strchr(json_object_get_string(v), '\r'));
    assert_true(json_object_object_get_ex(o, "appUserIdInvalid", &v));
    assert_true(json_object_get_boolean(v));
    json_object_put(o);
    free(out);
    free(err);
}

/* The audit rows of a local account's login and first token name it "local:alice", so they
 * cannot be confused with an OIDC user whose subject is "alice". */
static void test_local_account_audit(void **state)
{
    struct store_audit_filter f = {.app_user_id = "local:alice"};
    struct store_audit rows_out[16];
    struct json_object *o, *v;
    struct store *st = NULL;
    char *body = NULL, session[4096];
    size_t len = 0;
    int n = 0, login = 0, create = 0;

    (void)state;
    assert_int_equal(request(G.public, NULL, "POST", "/api/login",
                             "{\"username\":\"alice\",\"password\":\"correct horse battery\"}",
                             &body, &len),
                     200);
    o = strict_json(body, len);
    assert_true(json_object_object_get_ex(o, "access_token", &v));
    snprintf(session, sizeof session, "%s", json_object_get_string(v));
    json_object_put(o);
    free(body);
    assert_int_equal(request(G.public, session, "GET", "/api/token", NULL, &body, &len), 200);
    free(body);
    /* The internal API names the same user "local:alice"; the bare name is someone else. */
    assert_int_equal(internal("GET", "/internal/users/local:alice", &body, &len), 200);
    free(body);
    assert_int_equal(internal("GET", "/internal/users/alice", &body, &len), 404);
    free(body);

    assert_int_equal(store_open(G.db, STORE_MIGRATE_NO, &st), 0);
    assert_int_equal(store_audit_list(st, &f, 16, rows_out, &n), 0);
    for (int i = 0; i < n; i++) {
        assert_string_equal(rows_out[i].caller, "user:local:alice");
        login += strcmp(rows_out[i].action, "login") == 0;
        create += strcmp(rows_out[i].action, "create") == 0;
    }
    assert_int_equal(login, 1);
    assert_int_equal(create, 1);
    f.app_user_id = "alice";
    assert_int_equal(store_audit_list(st, &f, 16, rows_out, &n), 0);
    assert_int_equal(n, 0);
    store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_pages_stay_json),
        cmocka_unit_test(test_bad_row_reachable_by_acs_id),
        cmocka_unit_test(test_cli_list_and_show),
        cmocka_unit_test(test_local_account_audit),
    };
    curlx_init();
    return cmocka_run_group_tests(tests, setup, teardown);
}
