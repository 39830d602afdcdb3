/* Unit tests of the store's side of the id rule: store_user_list_kept, which pages past rows the
 * id rule refuses while the cursors it hands out stay ones a caller may send back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/ident.h"
#include "store/store.h"
#include "store/users.h"

#define RES "acs.example.com"

struct fx {
    char dir[64];
    char path[128];
};

static void remove_db_files(const char *path)
{
    char p[256];

    unlink(path);
    snprintf(p, sizeof(p), "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", path);
    unlink(p);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/tv-ids-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/tv.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    remove_db_files(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Rows the way a binary without the id rule stored them. */
static void insert_user(struct store *s, const char *app, const char *acs)
{
    struct store_user u;

    memset(&u, 0, sizeof u);
    snprintf(u.app_user_id, sizeof u.app_user_id, "%s", app);
    snprintf(u.acs_id, sizeof u.acs_id, "%s", acs);
    snprintf(u.resource, sizeof u.resource, "%s", RES);
    u.created_ms = 1;
    assert_int_equal(store_user_insert(s, &u), 0);
}

static int keep_valid(const struct store_user *u, void *ctx)
{
    int *passed = ctx;

    if (ident_check_str(u->app_user_id, STORE_ID_MAX) == IDENT_OK)
        return 1;
    (*passed)++;
    return 0;
}

static void test_list_kept(void **state)
{
    struct fx *f = *state;
    struct store *s = NULL;
    struct store_user page[3];
    char cursor[STORE_ID_MAX + 1] = "";
    const char *want[] = {"a1", "a2", "b1", "c1", "c2"};
    size_t seen = 0;
    int n = 0, passed = 0, pages = 0;

    assert_int_equal(store_open(f->path, STORE_MIGRATE_YES, &s), 0);
    /* Valid ids around runs of refused ones, one run longer than a page. */
    insert_user(s, "a1", "8:acs:1");
    insert_user(s, "a2", "8:acs:2");
    insert_user(s, "a3\xC0\xAF", "8:acs:3");
    insert_user(s, "a4\r\nInjected: 1", "8:acs:4");
    insert_user(s, "b1", "8:acs:5");
    insert_user(s, "b2\xff\xfe", "8:acs:6");
    insert_user(s, "b3\x7f", "8:acs:7");
    insert_user(s, "b4\xC2\x85", "8:acs:8");
    insert_user(s, "b5\xED\xA0\x80", "8:acs:9");
    insert_user(s, "c1", "8:acs:10");
    insert_user(s, "c2", "8:acs:11");
    insert_user(s, "c3\xff", "8:acs:12");
    do {
        assert_int_equal(
            store_user_list_kept(s, pages ? cursor : NULL, 3, keep_valid, &passed, page, &n), 0);
        for (int i = 0; i < n; i++) {
            assert_true(seen < sizeof want / sizeof want[0]);
            assert_string_equal(page[i].app_user_id, want[seen++]);
        }
        if (n > 0)
            snprintf(cursor, sizeof cursor, "%s", page[n - 1].app_user_id);
        pages++;
    } while (n == 3);
    assert_int_equal(seen, 5);
    assert_int_equal(pages, 2);
    assert_int_equal(passed, 7);
    assert_int_equal(store_user_list_kept(s, NULL, 3, NULL, NULL, page, &n), TV_ERR_INVALID);
    assert_int_equal(store_user_list_kept(s, NULL, 0, keep_valid, &passed, page, &n),
                     TV_ERR_INVALID);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list_kept, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
