/* Unit tests of what surrounds the settings (core/config_env.c and config_load's file choice):
 * TOKENVEND_* variables that no setting reads, the name each most likely misspells, and which
 * configuration file is read when none is named on the command line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth/password.h"
#include "core/config.h"
#include "core/err.h"

/* The unknown variables config_env_unknown reported, in order, with their suggestions. */
struct seen {
    char names[8][CONFIG_ENV_NAME_MAX];
    char hints[8][CONFIG_ENV_NAME_MAX];
    size_t n;
};

static void collect(void *ctx, const char *name, const char *suggestion)
{
    struct seen *s = ctx;

    if (s->n < 8) {
        snprintf(s->names[s->n], CONFIG_ENV_NAME_MAX, "%s", name);
        snprintf(s->hints[s->n], CONFIG_ENV_NAME_MAX, "%s", suggestion);
    }
    s->n++;
}

/* The hint reported for name, or NULL when name was not reported. */
static const char *hint_for(const struct seen *s, const char *name)
{
    for (size_t i = 0; i < s->n && i < 8; i++) {
        if (strcmp(s->names[i], name) == 0)
            return s->hints[i];
    }
    return NULL;
}

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/tv-config-env-XXXXXX");
    assert_non_null(mkdtemp(dir));
    unsetenv(CONFIG_ENV_FILE);
    unsetenv(CONFIG_ENV_DIR);
    return 0;
}

static int teardown(void **state)
{
    char path[128];
    (void)state;
    unsetenv(CONFIG_ENV_FILE);
    unsetenv(CONFIG_ENV_DIR);
    snprintf(path, sizeof path, "%s/%s", dir, CONFIG_FILE_NAME);
    unlink(path);
    snprintf(path, sizeof path, "%s/named.conf", dir);
    unlink(path);
    rmdir(dir);
    return 0;
}

static void test_suggest(void **state)
{
    char out[CONFIG_ENV_NAME_MAX];
    (void)state;

    config_env_suggest("TOKENVEND_PUBLIC_ADR", out, sizeof out);
    assert_string_equal(out, "TOKENVEND_PUBLIC_ADDR");
    /* Case does not count; a swap of neighbours counts one. */
    config_env_suggest("tokenvend_internal_addr", out, sizeof out);
    assert_string_equal(out, "TOKENVEND_INTERNAL_ADDR");
    config_env_suggest("TOKENVEND_DB_FIEL", out, sizeof out);
    assert_string_equal(out, "TOKENVEND_DB_FILE");
    config_env_suggest("TOKENVEND_OIDC_AUDIANCE", out, sizeof out);
    assert_string_equal(out, "TOKENVEND_OIDC_AUDIENCE");
    config_env_suggest("TOKENVEND_ARGON", out, sizeof out);
    assert_string_equal(out, PASSWORD_ENV_PARAMS);
    /* Nothing close: no suggestion rather than a wild one. */
    config_env_suggest("TOKENVEND_FROBNICATE_EVERYTHING", out, sizeof out);
    assert_string_equal(out, "");
    config_env_suggest("TOKENVEND_X", out, sizeof out);
    assert_string_equal(out, "");
}

static void test_unknown_env(void **state)
{
    struct seen s = {0};
    /* Whatever the environment running the tests holds already. */
    size_t before = config_env_unknown(NULL, NULL);
    (void)state;

    setenv("TOKENVEND_PUBLIC_ADR", "127.0.0.1:1", 1);
    setenv("tokenvend_db", "x.db", 1);
    /* Known: a setting's variable, its _FILE form, the ones read outside the table. */
    setenv("TOKENVEND_PUBLIC_ADDR", "127.0.0.1:1", 1);
    setenv("TOKENVEND_DB_FILE", "/dev/null", 1);
    setenv(PASSWORD_ENV_PARAMS, "t=1,m=1024", 1);
    setenv(CONFIG_ENV_DIR, dir, 1);
    /* Not ours at all. */
    setenv("TOKENVENDOR", "1", 1);

    size_t n = config_env_unknown(collect, &s);
    assert_int_equal(n, s.n);
    assert_int_equal(n, before + 2);
    assert_string_equal(hint_for(&s, "TOKENVEND_PUBLIC_ADR"), "TOKENVEND_PUBLIC_ADDR");
    assert_string_equal(hint_for(&s, "tokenvend_db"), "TOKENVEND_DB");
    assert_null(hint_for(&s, "TOKENVEND_DB_FILE"));
    assert_int_equal(config_env_unknown(NULL, NULL), before + 2);

    unsetenv("TOKENVEND_PUBLIC_ADR");
    unsetenv("tokenvend_db");
    unsetenv("TOKENVEND_PUBLIC_ADDR");
    unsetenv("TOKENVEND_DB_FILE");
    unsetenv(PASSWORD_ENV_PARAMS);
    unsetenv("TOKENVENDOR");
    assert_int_equal(config_env_unknown(NULL, NULL), before);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* The search (default_path NULL): TOKENVEND_CONFIG, then $TOKENVEND_CONFIG_DIR/tokenvend.conf,
 * then config/tokenvend.conf under the working directory; --config before all. */
static void test_file_search(void **state)
{
    struct config_overrides ov = {0};
    struct config cfg;
    char err[CONFIG_ERR_MAX], sys[128], named[128], line[CONFIG_DESCRIBE_MAX], cwd[512];
    (void)state;

    snprintf(sys, sizeof sys, "%s/%s", dir, CONFIG_FILE_NAME);
    snprintf(named, sizeof named, "%s/named.conf", dir);
    write_file(sys, "token_minutes = 120\n");
    write_file(named, "token_minutes = 240\n");
    assert_non_null(getcwd(cwd, sizeof cwd));
    /* A working directory without config/: only the other places count. */
    assert_int_equal(chdir(dir), 0);

    setenv(CONFIG_ENV_DIR, dir, 1);
    assert_int_equal(config_load(&ov, &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.token_minutes, 120);
    config_file_describe(&cfg, line, sizeof line);
    assert_true(strstr(line, sys) != NULL && strstr(line, "(default)") != NULL);
    config_release(&cfg);

    setenv(CONFIG_ENV_FILE, named, 1);
    assert_int_equal(config_load(&ov, &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.token_minutes, 240);
    config_file_describe(&cfg, line, sizeof line);
    assert_true(strstr(line, "(env " CONFIG_ENV_FILE ")") != NULL);
    config_release(&cfg);

    ov.config_path = sys;
    assert_int_equal(config_load(&ov, &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.token_minutes, 120);
    assert_string_equal(cfg.config_file_via, "--config");
    config_release(&cfg);
    ov.config_path = NULL;

    /* A named file that is missing is an error, never "no file". */
    setenv(CONFIG_ENV_FILE, "/nonexistent/tokenvend.conf", 1);
    assert_int_equal(config_load(&ov, &cfg, err, sizeof err), TV_ERR_CONFIG);
    assert_non_null(strstr(err, CONFIG_ENV_FILE " /nonexistent/tokenvend.conf"));
    unsetenv(CONFIG_ENV_FILE);

    /* Nothing in the directory, none under the working directory: defaults, and it says so. */
    unlink(sys);
    assert_int_equal(config_load(&ov, &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.token_minutes, 1440);
    config_file_describe(&cfg, line, sizeof line);
    assert_string_equal(line, "no configuration file; environment and defaults only");
    config_release(&cfg);

    /* A default_path replaces the search, environment included (what tests rely on). */
    setenv(CONFIG_ENV_FILE, named, 1);
    ov.default_path = "";
    assert_int_equal(config_load(&ov, &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.token_minutes, 1440);
    config_release(&cfg);
    assert_int_equal(chdir(cwd), 0);
}

/* Something at $TOKENVEND_CONFIG_DIR/tokenvend.conf that is not a readable regular file (a
 * dangling symlink: a configuration mount that did not come up; a directory) stops the load
 * with the path named: it never falls through to config/tokenvend.conf under the working
 * directory, another file. */
static void test_file_not_regular(void **state)
{
    struct config_overrides ov = {0};
    struct config cfg;
    char err[CONFIG_ERR_MAX], sys[128], cfgdir[128], local[160], cwd[512];
    (void)state;

    snprintf(sys, sizeof sys, "%s/%s", dir, CONFIG_FILE_NAME);
    snprintf(cfgdir, sizeof cfgdir, "%s/config", dir);
    snprintf(local, sizeof local, "%s/%s", cfgdir, CONFIG_FILE_NAME);
    assert_int_equal(mkdir(cfgdir, 0700), 0);
    write_file(local, "token_minutes = 240\n");
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(dir), 0);
    setenv(CONFIG_ENV_DIR, dir, 1);

    assert_int_equal(symlink("/nonexistent/mount/tokenvend.conf", sys), 0);
    err[0] = '\0';
    assert_int_equal(config_load(&ov, &cfg, err, sizeof err), TV_ERR_CONFIG);
    assert_non_null(strstr(err, sys));
    assert_non_null(strstr(err, "symbolic link"));
    assert_int_equal(unlink(sys), 0);

    assert_int_equal(mkdir(sys, 0700), 0);
    err[0] = '\0';
    assert_int_equal(config_load(&ov, &cfg, err, sizeof err), TV_ERR_CONFIG);
    assert_non_null(strstr(err, "not a regular file"));
    assert_int_equal(rmdir(sys), 0);

    /* The control: with nothing at the system path, config/ under the working directory. */
    assert_int_equal(config_load(&ov, &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.token_minutes, 240);
    config_release(&cfg);

    assert_int_equal(chdir(cwd), 0);
    unlink(local);
    rmdir(cfgdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_suggest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_search, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_not_regular, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
