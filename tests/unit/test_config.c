/* Unit tests of the configuration loader: layer precedence, *_FILE variants, the ACS
 * connection-string variables, file syntax errors, value validation and redaction, and a config
 * file holding a secret checked like a secret file. */
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

#include "core/config.h"
#include "core/err.h"
#include "core/fsperm.h"

#define NO_FILE ""

/* Temporary files created by a test, removed in teardown. */
static char tmp_paths[8][64];
static size_t ntmp;

static const char *const env_vars[] = {
    "TOKENVEND_PUBLIC_ADDR",
    "TOKENVEND_INTERNAL_ADDR",
    "TOKENVEND_DB",
    "TOKENVEND_TOKEN_MINUTES",
    "TOKENVEND_ALLOWED_SCOPES",
    "TOKENVEND_DEFAULT_SCOPES",
    "TOKENVEND_LOG_LEVEL",
    "TOKENVEND_CACHE",
    "TOKENVEND_ACS_CONNECTION_STRING",
    "COMMUNICATION_SERVICES_CONNECTION_STRING",
    "TOKENVEND_CORS_ORIGINS",
    "TOKENVEND_ACS_API_VERSION",
    "TOKENVEND_LOCAL_ACCOUNTS",
    "TOKENVEND_LOGIN_LIMIT",
    "TOKENVEND_LOGIN_PER_ADDRESS",
    "TOKENVEND_PASSWORD_MIN_LENGTH",
    "TOKENVEND_SECRET_KEY",
    "TOKENVEND_MAX_CONNECTIONS_PER_IP",
    "TOKENVEND_SESSION_REFRESH_TTL",
    "TOKENVEND_SESSION_REFRESH_MAX",
};

static void env_clear(void)
{
    char name[128];
    for (size_t i = 0; i < sizeof env_vars / sizeof env_vars[0]; i++) {
        unsetenv(env_vars[i]);
        snprintf(name, sizeof name, "%s_FILE", env_vars[i]);
        unsetenv(name);
    }
}

static int setup(void **state)
{
    (void)state;
    env_clear();
    ntmp = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    env_clear();
    for (size_t i = 0; i < ntmp; i++)
        unlink(tmp_paths[i]);
    ntmp = 0;
    return 0;
}

/* Writes text to a new temporary file and returns its path (valid until teardown). */
static const char *tmp_file(const char *text)
{
    assert_true(ntmp < 8);
    char *path = tmp_paths[ntmp++];
    snprintf(path, 64, "/tmp/tv-config-test-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

/* Loads with the given file (NULL: none) and flags; returns config_load's result. */
static int load(const char *file, const struct config_flag *flags, size_t nflags,
                struct config *cfg, char *err)
{
    struct config_overrides ov = {
        .config_path = file,
        .default_path = NO_FILE,
        .flags = flags,
        .nflags = nflags,
    };
    return config_load(&ov, cfg, err, CONFIG_ERR_MAX);
}

static void assert_contains(const char *hay, const char *needle)
{
    if (strstr(hay, needle) == NULL)
        fail_msg("'%s' does not contain '%s'", hay, needle);
}

static void test_defaults(void **state)
{
    struct config cfg;
    char err[CONFIG_ERR_MAX];
    (void)state;

    assert_int_equal(load(NULL, NULL, 0, &cfg, err), 0);
    assert_string_equal(cfg.public_addr.host, "0.0.0.0");
    assert_int_equal(cfg.public_addr.port, 8080);
    assert_string_equal(cfg.internal_addr.host, "127.0.0.1");
    assert_int_equal(cfg.internal_addr.port, 8081);
    assert_string_equal(cfg.db, "data/tokenvend.db");
    assert_int_equal(cfg.allowed_scopes.n, 2);
    assert_string_equal(cfg.allowed_scopes.items[0], "chat");
    assert_string_equal(cfg.allowed_scopes.items[1], "voip");
    assert_int_equal(cfg.token_minutes, 1440);
    assert_int_equal(cfg.session_refresh_ttl_s, 12 * 3600);
    assert_int_equal(cfg.session_refresh_max_s, 7 * 86400);
    assert_int_equal(cfg.cors_origins.n, 0);
    assert_int_equal(cfg.log_level, LOGL_INFO);
    assert_string_equal(cfg.oidc_user_claim, "sub");
    assert_int_equal(cfg.oidc_allow_insecure_http, 0);
    assert_int_equal(cfg.local_accounts, 0);
    assert_int_equal(cfg.cache, 1);
    assert_int_equal(cfg.cache_min_remaining_minutes, 30);
    assert_string_equal(cfg.acs_connection_string, "");
    assert_string_equal(cfg.acs_api_version, "2023-10-01");
    assert_int_equal(cfg.acs_connect_timeout_ms, 3000);
    assert_int_equal(cfg.acs_attempt_timeout_ms, 10000);
    assert_int_equal(cfg.acs_deadline_ms, 30000);
    assert_int_equal(cfg.acs_max_retries, 3);
    assert_int_equal(cfg.acs_backoff_base_ms, 200);
    assert_int_equal(cfg.acs_backoff_max_ms, 5000);
    assert_int_equal(cfg.audit_retention_days, 90);
    assert_int_equal(cfg.audit_prune_interval_ms, 3600000);
    assert_string_equal(cfg.metrics_auth, "off");
    assert_string_equal(config_source(&cfg, "token_minutes"), "default");
    config_release(&cfg);
}

/* session_refresh_ttl / _max: N followed by s, m, h or d, or a bare 0, in seconds. */
static void test_durations(void **state)
{
    static const struct {
        const char *value;
        long want;
    } good[] = {{"0", 0},       {"90s", 90},    {"30m", 1800},
                {"12h", 43200}, {"7d", 604800}, {"366d", 366L * 86400}};
    struct config cfg;
    char err[CONFIG_ERR_MAX];
    (void)state;

    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct config_flag f = {"session_refresh_ttl", good[i].value, "--set"};
        assert_int_equal(load(NULL, &f, 1, &cfg, err), 0);
        assert_int_equal(cfg.session_refresh_ttl_s, good[i].want);
        config_release(&cfg);
    }
    setenv("TOKENVEND_SESSION_REFRESH_MAX", "2h", 1);
    assert_int_equal(load(NULL, NULL, 0, &cfg, err), 0);
    assert_int_equal(cfg.session_refresh_max_s, 7200);
    config_release(&cfg);
    unsetenv("TOKENVEND_SESSION_REFRESH_MAX");
}

static void test_precedence(void **state)
{
    struct config cfg;
    char err[CONFIG_ERR_MAX], want[128];
    (void)state;
    const char *file = tmp_file("# comment\n\ntoken_minutes = 100\ndb = file.db\n"
                                "log_level = warn\npublic_addr = 127.0.0.1:9000\n");

    /* File over defaults. */
    assert_int_equal(load(file, NULL, 0, &cfg, err), 0);
    assert_int_equal(cfg.token_minutes, 100);
    assert_string_equal(cfg.db, "file.db");
    assert_int_equal(cfg.log_level, LOGL_WARN);
    assert_int_equal(cfg.public_addr.port, 9000);
    snprintf(want, sizeof want, "%s:3", file);
    assert_string_equal(config_source(&cfg, "token_minutes"), want);
    assert_string_equal(config_source(&cfg, "internal_addr"), "default");
    config_release(&cfg);

    /* Environment over the file. */
    setenv("TOKENVEND_TOKEN_MINUTES", "200", 1);
    setenv("TOKENVEND_LOG_LEVEL", "error", 1);
    assert_int_equal(load(file, NULL, 0, &cfg, err), 0);
    assert_int_equal(cfg.token_minutes, 200);
    assert_int_equal(cfg.log_level, LOGL_ERROR);
    assert_string_equal(cfg.db, "file.db");
    assert_string_equal(config_source(&cfg, "token_minutes"), "env TOKENVEND_TOKEN_MINUTES");
    config_release(&cfg);

    /* Flags over the environment, the later flag winning. */
    struct config_flag flags[] = {
        {"token_minutes", "300", "--set"},
        {"log_level", "debug", "--log-level"},
        {"token_minutes", "400", "--set"},
    };
    assert_int_equal(load(file, flags, 3, &cfg, err), 0);
    assert_int_equal(cfg.token_minutes, 400);
    assert_int_equal(cfg.log_level, LOGL_DEBUG);
    assert_string_equal(config_source(&cfg, "token_minutes"), "flag --set");
    assert_string_equal(config_source(&cfg, "log_level"), "flag --log-level");
    config_release(&cfg);
}

static void test_default_path(void **state)
{
    struct config cfg;
    char err[CONFIG_ERR_MAX];
    (void)state;
    const char *file = tmp_file("db = from-default-path.db\n");
    struct config_overrides ov = {.default_path = file};

    assert_int_equal(config_load(&ov, &cfg, err, sizeof err), 0);
    assert_string_equal(cfg.db, "from-default-path.db");
    assert_string_equal(cfg.config_file, file);
    config_release(&cfg);

    /* A missing default file is fine; a missing --config file is an error. */
    ov.default_path = "/nonexistent/tokenvend.conf";
    assert_int_equal(config_load(&ov, &cfg, err, sizeof err), 0);
    assert_string_equal(cfg.db, "data/tokenvend.db");
    config_release(&cfg);
    ov.config_path = "/nonexistent/tokenvend.conf";
    assert_int_equal(config_load(&ov, &cfg, err, sizeof err), TV_ERR_CONFIG);
    assert_contains(err, "--config /nonexistent/tokenvend.conf");
}

static void test_file_variants(void **state)
{
    struct config cfg;
    char err[CONFIG_ERR_MAX], conf[256];
    (void)state;
    const char *secret = tmp_file("endpoint=https://x.example/;accesskey=c2VjcmV0\n");
    const char *dbname = tmp_file("db-from-file.db\r\n");

    setenv("TOKENVEND_ACS_CONNECTION_STRING_FILE", secret, 1);
    assert_int_equal(load(NULL, NULL, 0, &cfg, err), 0);
    assert_string_equal(cfg.acs_connection_string,
                        "endpoint=https://x.example/;accesskey=c2VjcmV0");
    assert_string_equal(config_source(&cfg, "acs_connection_string"),
                        "env TOKENVEND_ACS_CONNECTION_STRING_FILE");
    config_release(&cfg);

    snprintf(conf, sizeof conf, "db_file = %s\n", dbname);
    assert_int_equal(load(tmp_file(conf), NULL, 0, &cfg, err), 0);
    assert_string_equal(cfg.db, "db-from-file.db");
    config_release(&cfg);

    struct config_flag flags[] = {{"db_file", dbname, "--set"}};
    assert_int_equal(load(NULL, flags, 1, &cfg, err), 0);
    assert_string_equal(cfg.db, "db-from-file.db");
    config_release(&cfg);

    /* A *_FILE that cannot be read names the variable. */
    setenv("TOKENVEND_DB_FILE", "/nonexistent/db-name", 1);
    assert_int_equal(load(NULL, NULL, 0, &cfg, err), TV_ERR_CONFIG);
    assert_contains(err, "TOKENVEND_DB_FILE");
    assert_contains(err, "/nonexistent/db-name");
}

static void test_both_plain_and_file(void **state)
{
    struct config cfg;
    char err[CONFIG_ERR_MAX], conf[256], want[128];
    (void)state;
    const char *path = tmp_file("x.db\n");

    setenv("TOKENVEND_DB", "a.db", 1);
    setenv("TOKENVEND_DB_FILE", path, 1);
    assert_int_equal(load(NULL, NULL, 0, &cfg, err), TV_ERR_CONFIG);
    assert_contains(err, "TOKENVEND_DB and TOKENVEND_DB_FILE");
    env_clear();

    snprintf(conf, sizeof conf, "db = a.db\n# x\ndb_file = %s\n", path);
    const char *file = tmp_file(conf);
    assert_int_equal(load(file, NULL, 0, &cfg, err), TV_ERR_CONFIG);
    snprintf(want, sizeof want, "%s:3", file);
    assert_contains(err, want);
    assert_contains(err, "both db and db_file");

    struct config_flag flags[] = {{"db", "a.db", "--set"}, {"db_file", path, "--set"}};
    assert_int_equal(load(NULL, flags, 2, &cfg, err), TV_ERR_CONFIG);
    assert_contains(err, "both db and db_file");
}

static void test_file_syntax(void **state)
{
    struct config cfg;
    char err[CONFIG_ERR_MAX], want[128];
    (void)state;

    const char *file = tmp_file("db = x.db\n\n  # indented comment\nbogus_setting = 1\n");
    assert_int_equal(load(file, NULL, 0, &cfg, err), TV_ERR_CONFIG);
    snprintf(want, sizeof want, "%s:4: unknown setting 'bogus_setting'", file);
    assert_string_equal(err, want);

    file = tmp_file("db = x.db\njust words\n");
    assert_int_equal(load(file, NULL, 0, &cfg, err), TV_ERR_CONFIG);
    snprintf(want, sizeof want, "%s:2", file);
    assert_contains(err, want);

    file = tmp_file("db = a.db\ndb = b.db\n");
    assert_int_equal(load(file, NULL, 0, &cfg, err), TV_ERR_CONFIG);
    assert_contains(err, "set twice");

    file = tmp_file("oidc_audience = \"api://my app # not a comment\"  # a comment\n"
                    "db = plain.db # trailing comment\n"
                    "oidc_user_claim = \"quo\\\"ted\"\n"
                    "cors_origins = \"\"\r\n");
    assert_int_equal(load(file, NULL, 0, &cfg, err), 0);
    assert_string_equal(cfg.oidc_audience, "api://my app # not a comment");
    assert_string_equal(cfg.db, "plain.db");
    assert_string_equal(cfg.oidc_user_claim, "quo\"ted");
    assert_int_equal(cfg.cors_origins.n, 0);
    config_release(&cfg);

    file = tmp_file("db = \"unterminated\n");
    assert_int_equal(load(file, NULL, 0, &cfg, err), TV_ERR_CONFIG);
    assert_contains(err, "unterminated");
}

struct bad_case {
    const char *name;
    const char *value;
    const char *expect; /* substring of the error */
};

static void test_bad_values(void **state)
{
    static const struct bad_case cases[] = {
        {"public_addr", "0.0.0.0:70000", "port"},
        {"internal_addr", "localhost", "host:port"},
        {"public_addr", ":8080", "host"},
        {"token_minutes", "59", "60..1440"},
        {"token_minutes", "1441", "60..1440"},
        {"token_minutes", "12abc", "60..1440"},
        {"allowed_scopes", "chat,foo", "unknown scope 'foo'"},
        {"allowed_scopes", "", "must not be empty"},
        {"default_scopes", "chat,voip.join", "'voip.join' is not in allowed_scopes"},
        {"cache", "maybe", "on or off"},
        {"local_accounts", "2", "on or off"},
        {"log_level", "loud", "debug, info"},
        {"acs_api_version", "2020-01-01", "not one of"},
        {"cors_origins", "ftp://x.example", "origins"},
        {"cors_origins", "https://a.example/path", "origins"},
        {"oidc_issuer", "not a url", "URL"},
        /* OIDC keys over plain http only where the path cannot leave the machine. */
        {"oidc_issuer", "http://idp.example/", "https://"},
        {"oidc_issuer", "http://127.0.0.1@idp.example/", "https://"},
        {"oidc_jwks_url", "http://10.1.2.3/keys", "https://"},
        {"oidc_allow_insecure_http", "maybe", "on or off"},
        {"acs_max_retries", "-1", "0..20"},
        {"cache_min_remaining_minutes", "10", "11..1439"},
        {"login_limit", "10/300", "N/Ws"},
        {"login_limit", "0/300s", "N/Ws"},
        {"login_limit", "", "must not be empty"},
        {"breaker", "5/30", "N/Ws"},
        {"breaker", "0/30s", "N/Ws"},
        {"breaker", "5/0s", "N/Ws"},
        {"breaker", "", "must not be empty"},
        {"limit_user", "5/10", "N/Ws"},
        {"limit_user", "", "must not be empty"},
        {"limit_apikey", "0/1s", "N/Ws"},
        {"limit_ip", "on", "N/Ws"},
        {"trusted_proxies", "10.0.0.0/33", "not an IPv4/IPv6 address"},
        {"trusted_proxies", "proxy.example", "trusted_proxies"},
        {"acs_budget", "create=20/2", "part 'create=20/2'"},
        {"acs_budget", "create=20/2s,make=1/1s", "part 'make=1/1s'"},
        {"acs_budget", "", "must not be empty"},
        {"login_per_address", "33", "0..32"},
        {"password_min_length", "0", "1..1024"},
        {"secret_key", "c2VjcmV0", "exactly 32 bytes"},
        {"secret_key", "not base64!", "exactly 32 bytes"},
        {"cache_key", "c2VjcmV0", "exactly 32 bytes"},
        {"cache_key", "not base64!", "exactly 32 bytes"},
        {"audit_retention_days", "-1", "0..36500"},
        {"session_refresh_ttl", "12", "N followed by s, m, h or d"},
        {"session_refresh_ttl", "12x", "N followed by s, m, h or d"},
        {"session_refresh_ttl", "h", "N followed by s, m, h or d"},
        {"session_refresh_ttl", "-1h", "N followed by s, m, h or d"},
        {"session_refresh_ttl", " 1h", "N followed by s, m, h or d"},
        {"session_refresh_ttl", "367d", "0s..31622400s"},
        {"session_refresh_ttl", "99999999999d", "N followed by s, m, h or d"},
        {"session_refresh_max", "0", "1s..31622400s"},
        {"session_refresh_max", "1\x01h", "N followed by s, m, h or d"},     /* a control byte */
        {"session_refresh_max", "1\xff\xfeh", "N followed by s, m, h or d"}, /* not UTF-8 */
        {"audit_retention_days", "36501", "0..36500"},
        {"audit_prune_interval_ms", "99", "100..86400000"},
        /* A choice setting lists its own choices, not another setting's. */
        {"metrics_auth", "basic", "not one of off, apikey"},
        {"acs_api_version", "2020-01-01", "not one of 2021-03-07, 2022-06-01"},
    };
    char err[CONFIG_ERR_MAX], env[96], want[160];
    struct config cfg;
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct bad_case *c = &cases[i];
        /* From a flag. */
        struct config_flag f = {c->name, c->value, "--set"};
        assert_int_equal(load(NULL, &f, 1, &cfg, err), TV_ERR_CONFIG);
        assert_contains(err, c->name);
        assert_contains(err, c->expect);
        assert_contains(err, "flag --set");
        /* From the environment. */
        snprintf(env, sizeof env, "TOKENVEND_");
        for (size_t j = 0; c->name[j] && j < 80; j++)
            env[10 + j] =
                (char)(c->name[j] >= 'a' && c->name[j] <= 'z' ? c->name[j] - 32 : c->name[j]);
        env[10 + strlen(c->name)] = '\0';
        setenv(env, c->value, 1);
        assert_int_equal(load(NULL, NULL, 0, &cfg, err), TV_ERR_CONFIG);
        snprintf(want, sizeof want, "env %s", env);
        assert_contains(err, want);
        assert_contains(err, c->expect);
        unsetenv(env);
    }

    /* Cross-setting rules. */
    struct config_flag cross[] = {{"acs_connect_timeout_ms", "20000", "--set"}};
    assert_int_equal(load(NULL, cross, 1, &cfg, err), TV_ERR_CONFIG);
    assert_contains(err, "acs_connect_timeout_ms");
    struct config_flag cache[] = {{"token_minutes", "60", "--set"},
                                  {"cache_min_remaining_minutes", "60", "--set"}};
    assert_int_equal(load(NULL, cache, 2, &cfg, err), TV_ERR_CONFIG);
    assert_contains(err, "cache_min_remaining_minutes");
    struct config_flag unknown[] = {{"no_such_thing", "1", "--set"}};
    assert_int_equal(load(NULL, unknown, 1, &cfg, err), TV_ERR_CONFIG);
    assert_contains(err, "unknown setting 'no_such_thing'");
}

static char *print_to_string(const struct config *cfg, int redact);

/* cache_key (the token cache kept in the store): the base64 of 32 bytes, inline or from
 * cache_key_file (a secret file), never printed, and only with the cache on. */
static void test_cache_key(void **state)
{
    static const char key[] = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; /* 32 bytes */
    struct config cfg;
    char err[CONFIG_ERR_MAX], conf[160];
    const char *file = tmp_file(key);
    char *text;

    (void)state;
    assert_int_equal(load(NULL, NULL, 0, &cfg, err), 0);
    assert_string_equal(cfg.cache_key, "");
    config_release(&cfg);

    setenv("TOKENVEND_CACHE_KEY_FILE", file, 1);
    assert_int_equal(load(NULL, NULL, 0, &cfg, err), 0);
    assert_string_equal(cfg.cache_key, key);
    assert_int_equal(cfg.secret_files.n, 1);
    assert_string_equal(cfg.secret_files.items[0], file);
    text = print_to_string(&cfg, 1);
    assert_null(strstr(text, key));
    assert_contains(text, "cache_key");
    free(text);
    config_release(&cfg);
    unsetenv("TOKENVEND_CACHE_KEY_FILE");

    snprintf(conf, sizeof conf, "cache_key_file = %s\n", file);
    assert_int_equal(load(tmp_file(conf), NULL, 0, &cfg, err), 0);
    assert_string_equal(cfg.cache_key, key);
    config_release(&cfg);

    struct config_flag off[] = {{"cache_key", key, "--set"}, {"cache", "off", "--set"}};
    assert_int_equal(load(NULL, off, 2, &cfg, err), TV_ERR_CONFIG);
    assert_contains(err, "cache_key: needs cache on");
    assert_null(strstr(err, key));
}

/* db chooses the store by its form: a postgresql:// or postgres:// URI is PostgreSQL (issue 9).
 * The URI may hold a password: config check prints it redacted, and a file it came from is a
 * secret file (its permissions are checked). A value that only looks like a URI is refused
 * without being echoed (it used to become a SQLite file under a directory "postgresql:"). */
static void test_db_uri(void **state)
{
    static const char *const uris[] = {"postgresql://tv:Sekr1t@127.0.0.1:5432/tv",
                                       "postgres://tv:Sekr1t@db/tv",
                                       "postgresql:///tv?password=Sekr1t"};
    static const char *const bad[] = {"postgresql:/tv:Sekr1t@db/tv", "postgres:tv:Sekr1t"};
    struct config cfg;
    char err[CONFIG_ERR_MAX];
    char *text;

    (void)state;
    for (size_t i = 0; i < sizeof(uris) / sizeof(uris[0]); i++) {
        setenv("TOKENVEND_DB", uris[i], 1);
        assert_int_equal(load(NULL, NULL, 0, &cfg, err), 0);
        assert_string_equal(cfg.db, uris[i]);
        text = print_to_string(&cfg, 1);
        assert_null(strstr(text, "Sekr1t"));
        assert_contains(text, "***");
        free(text);
        config_release(&cfg);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setenv("TOKENVEND_DB", bad[i], 1);
        assert_int_equal(load(NULL, NULL, 0, &cfg, err), TV_ERR_CONFIG);
        assert_contains(err, "env TOKENVEND_DB: db: not a PostgreSQL URI");
        assert_null(strstr(err, "Sekr1t"));
    }
    /* libpq's key=value form would name a SQLite file, password and all (review9). */
    setenv("TOKENVEND_DB", "host=127.0.0.1 password=Sekr1t dbname=tv", 1);
    assert_int_equal(load(NULL, NULL, 0, &cfg, err), TV_ERR_CONFIG);
    assert_contains(err, "key=value connection string is not taken");
    assert_null(strstr(err, "Sekr1t"));
    unsetenv("TOKENVEND_DB");
    /* From a file: with a password the file is a secret file; without one it is not. */
    {
        const char *with = tmp_file(uris[0]);
        setenv("TOKENVEND_DB_FILE", with, 1);
        assert_int_equal(load(NULL, NULL, 0, &cfg, err), 0);
        assert_string_equal(cfg.db, uris[0]);
        assert_int_equal(cfg.secret_files.n, 1);
        assert_string_equal(cfg.secret_files.items[0], with);
        config_release(&cfg);
        setenv("TOKENVEND_DB_FILE", tmp_file("postgresql://tv@db/tv"), 1);
        assert_int_equal(load(NULL, NULL, 0, &cfg, err), 0);
        assert_int_equal(cfg.secret_files.n, 0);
        config_release(&cfg);
        unsetenv("TOKENVEND_DB_FILE");
    }
    /* A file path that merely contains the word is still a path. */
    setenv("TOKENVEND_DB", "/tmp/postgresql-notes.db", 1);
    assert_int_equal(load(NULL, NULL, 0, &cfg, err), 0);
    text = print_to_string(&cfg, 1);
    assert_contains(text, "db = /tmp/postgresql-notes.db  # env TOKENVEND_DB\n");
    free(text);
    config_release(&cfg);
    unsetenv("TOKENVEND_DB");
}

/* acs_custom_id: off by default; on only with the api-version that has a customId, refused with
 * any other, naming the setting, its source and the version it needs. */
static void test_acs_custom_id(void **state)
{
    struct config cfg;
    char err[CONFIG_ERR_MAX];
    const struct config_flag on_preview[] = {
        {"acs_custom_id", "on", "--set"},
        {"acs_api_version", "2025-03-02-preview", "--set"},
    };

    (void)state;
    assert_int_equal(load(NULL, NULL, 0, &cfg, err), 0);
    assert_int_equal(cfg.acs_custom_id, 0);
    config_release(&cfg);
    assert_int_equal(load(NULL, on_preview, 2, &cfg, err), 0);
    assert_int_equal(cfg.acs_custom_id, 1);
    assert_string_equal(cfg.acs_api_version, "2025-03-02-preview");
    config_release(&cfg);
    setenv("TOKENVEND_ACS_CUSTOM_ID", "on", 1);
    assert_int_equal(load(NULL, NULL, 0, &cfg, err), TV_ERR_CONFIG);
    assert_contains(err, "env TOKENVEND_ACS_CUSTOM_ID: acs_custom_id: needs acs_api_version "
                         "2025-03-02-preview");
    assert_contains(err, "not 2023-10-01");
    setenv("TOKENVEND_ACS_API_VERSION", "2025-06-30", 1);
    assert_int_equal(load(NULL, NULL, 0, &cfg, err), TV_ERR_CONFIG);
    assert_contains(err, "not 2025-06-30");
    setenv("TOKENVEND_ACS_API_VERSION", "2025-03-02-preview", 1);
    assert_int_equal(load(NULL, NULL, 0, &cfg, err), 0);
    assert_int_equal(cfg.acs_custom_id, 1);
    config_release(&cfg);
    unsetenv("TOKENVEND_ACS_CUSTOM_ID");
    unsetenv("TOKENVEND_ACS_API_VERSION");
}

static void test_good_values(void **state)
{
    struct config cfg;
    char err[CONFIG_ERR_MAX];
    (void)state;
    struct config_flag flags[] = {
        {"public_addr", "[::1]:0", "--set"},
        {"allowed_scopes", "chat, voip,chat.join,chat.join.limited,voip.join,chat", "--set"},
        {"default_scopes", "voip.join", "--set"},
        {"cors_origins", "https://a.example, http://localhost:3000", "--set"},
        {"cache", "OFF", "--set"},
        {"local_accounts", "on", "--set"},
        {"acs_api_version", "2025-06-30", "--set"},
        {"audit_retention_days", "0", "--set"},
        {"audit_prune_interval_ms", "100", "--set"},
        {"metrics_auth", "apikey", "--set"},
    };

    assert_int_equal(load(NULL, flags, sizeof flags / sizeof flags[0], &cfg, err), 0);
    assert_string_equal(cfg.public_addr.host, "::1");
    assert_int_equal(cfg.public_addr.port, 0);
    assert_int_equal(cfg.allowed_scopes.n, 5);
    assert_int_equal(cfg.default_scopes.n, 1);
    assert_string_equal(cfg.default_scopes.items[0], "voip.join");
    assert_int_equal(cfg.cors_origins.n, 2);
    assert_string_equal(cfg.cors_origins.items[1], "http://localhost:3000");
    assert_int_equal(cfg.cache, 0);
    assert_int_equal(cfg.local_accounts, 1);
    assert_string_equal(cfg.acs_api_version, "2025-06-30");
    assert_int_equal(cfg.audit_retention_days, 0);
    assert_int_equal(cfg.audit_prune_interval_ms, 100);
    assert_string_equal(cfg.metrics_auth, "apikey");
    config_release(&cfg);
}

/* https:// anywhere; http:// to loopback hosts, or anywhere with oidc_allow_insecure_http. */
static void test_oidc_url_transport(void **state)
{
    static const char *const ok[] = {"https://idp.example/", "http://127.0.0.1:8080/",
                                     "http://localhost:9/realms/x", "http://[::1]:9/"};
    struct config cfg;
    char err[CONFIG_ERR_MAX];
    (void)state;

    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct config_flag f[] = {{"oidc_issuer", ok[i], "--set"},
                                  {"oidc_jwks_url", ok[i], "--set"}};
        assert_int_equal(load(NULL, f, 2, &cfg, err), 0);
        config_release(&cfg);
    }
    struct config_flag insecure[] = {{"oidc_issuer", "http://idp.example/", "--set"},
                                     {"oidc_jwks_url", "http://keys.example/jwks", "--set"},
                                     {"oidc_allow_insecure_http", "on", "--set"}};
    assert_int_equal(load(NULL, insecure, 3, &cfg, err), 0);
    assert_int_equal(cfg.oidc_allow_insecure_http, 1);
    config_release(&cfg);
    /* The rule applies to the value in force: a later layer may fix an earlier one. */
    setenv("TOKENVEND_OIDC_ISSUER", "http://idp.example/", 1);
    struct config_flag fixed[] = {{"oidc_issuer", "https://idp.example/", "--set"}};
    assert_int_equal(load(NULL, fixed, 1, &cfg, err), 0);
    config_release(&cfg);
    unsetenv("TOKENVEND_OIDC_ISSUER");
}

static char *print_to_string(const struct config *cfg, int redact)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    config_print(cfg, f, redact);
    fclose(f);
    return text;
}

static void test_print_redacts(void **state)
{
    struct config cfg;
    char err[CONFIG_ERR_MAX];
    (void)state;

    assert_int_equal(load(NULL, NULL, 0, &cfg, err), 0);
    char *text = print_to_string(&cfg, 1);
    assert_contains(text, "acs_connection_string = <unset>  # default\n");
    assert_contains(text, "token_minutes = 1440  # default\n");
    assert_contains(text, "public_addr = 0.0.0.0:8080  # default\n");
    assert_contains(text, "cors_origins = \"\"  # default\n");
    free(text);
    config_release(&cfg);

    setenv("COMMUNICATION_SERVICES_CONNECTION_STRING",
           "endpoint=https://x.example/;accesskey=U0VDUkVUS0VZU0VDUkVUS0VZ", 1);
    assert_int_equal(load(NULL, NULL, 0, &cfg, err), 0);
    text = print_to_string(&cfg, 1);
    assert_contains(text, "acs_connection_string = <redacted>  # env "
                          "COMMUNICATION_SERVICES_CONNECTION_STRING\n");
    assert_null(strstr(text, "U0VDUkVUS0VZU0VDUkVUS0VZ"));
    assert_null(strstr(text, "x.example"));
    free(text);
    text = print_to_string(&cfg, 0);
    assert_contains(text, "U0VDUkVUS0VZU0VDUkVUS0VZ");
    free(text);
    config_release(&cfg);
}

static void test_acs_connection_string_vars(void **state)
{
    struct config cfg;
    char err[CONFIG_ERR_MAX];
    (void)state;
    const char *cs_a = "endpoint=https://a.example/;accesskey=QQ==";
    const char *cs_b = "endpoint=https://b.example/;accesskey=Qg==";

    /* The quickstart's variable alone. */
    setenv("COMMUNICATION_SERVICES_CONNECTION_STRING", cs_a, 1);
    assert_int_equal(load(NULL, NULL, 0, &cfg, err), 0);
    assert_string_equal(cfg.acs_connection_string, cs_a);
    config_release(&cfg);

    /* Both: the TOKENVEND_ one wins. */
    setenv("TOKENVEND_ACS_CONNECTION_STRING", cs_b, 1);
    assert_int_equal(load(NULL, NULL, 0, &cfg, err), 0);
    assert_string_equal(cfg.acs_connection_string, cs_b);
    assert_string_equal(config_source(&cfg, "acs_connection_string"),
                        "env TOKENVEND_ACS_CONNECTION_STRING");
    config_release(&cfg);

    /* The quickstart variable's _FILE form, overridden by TOKENVEND_ as well. */
    unsetenv("COMMUNICATION_SERVICES_CONNECTION_STRING");
    setenv("COMMUNICATION_SERVICES_CONNECTION_STRING_FILE",
           tmp_file("endpoint=https://c/;accesskey=Qw==\n"), 1);
    assert_int_equal(load(NULL, NULL, 0, &cfg, err), 0);
    assert_string_equal(cfg.acs_connection_string, cs_b);
    config_release(&cfg);
    unsetenv("TOKENVEND_ACS_CONNECTION_STRING");
    assert_int_equal(load(NULL, NULL, 0, &cfg, err), 0);
    assert_string_equal(cfg.acs_connection_string, "endpoint=https://c/;accesskey=Qw==");
    config_release(&cfg);

    /* One name and its _FILE at once is an error. */
    setenv("COMMUNICATION_SERVICES_CONNECTION_STRING", cs_a, 1);
    assert_int_equal(load(NULL, NULL, 0, &cfg, err), TV_ERR_CONFIG);
    assert_contains(err, "COMMUNICATION_SERVICES_CONNECTION_STRING_FILE");
    /* The error never shows the secret. */
    assert_null(strstr(err, "accesskey"));

    /* The environment beats the file; a flag beats the environment. */
    env_clear();
    setenv("COMMUNICATION_SERVICES_CONNECTION_STRING", cs_a, 1);
    const char *file = tmp_file("acs_connection_string = \"endpoint=https://f/;accesskey=Rg==\"\n");
    assert_int_equal(load(file, NULL, 0, &cfg, err), 0);
    assert_string_equal(cfg.acs_connection_string, cs_a);
    config_release(&cfg);
    struct config_flag f = {"acs_connection_string", cs_b, "--set"};
    assert_int_equal(load(file, &f, 1, &cfg, err), 0);
    assert_string_equal(cfg.acs_connection_string, cs_b);
    config_release(&cfg);
}

/* The local-account settings: defaults, good values, a secret key from a file (remembered
 * for the permission check) and never shown in an error. */
static void test_login_settings(void **state)
{
    static const char key[] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    struct config cfg;
    char err[CONFIG_ERR_MAX];
    (void)state;

    assert_int_equal(load(NULL, NULL, 0, &cfg, err), 0);
    assert_string_equal(cfg.login_limit, "10/300s");
    assert_string_equal(cfg.breaker, "5/30s");
    assert_int_equal(cfg.login_per_address, 4);
    assert_int_equal(cfg.password_min_length, 12);
    assert_string_equal(cfg.limit_user, "120/60s");
    assert_string_equal(cfg.limit_apikey, "off");
    assert_string_equal(cfg.limit_ip, "off");
    assert_string_equal(cfg.trusted_proxies, "");
    assert_string_equal(cfg.secret_key, "");
    assert_int_equal(cfg.secret_files.n, 0);
    config_release(&cfg);

    const char *kf = tmp_file(key);
    setenv("TOKENVEND_SECRET_KEY_FILE", kf, 1);
    struct config_flag good[] = {{"login_limit", "off", "--set"},
                                 {"login_per_address", "0", "--set"},
                                 {"password_min_length", "20", "--set"},
                                 {"breaker", "off", "--set"},
                                 {"limit_user", "5/10s", "--set"},
                                 {"limit_apikey", "1000/1s", "--set"},
                                 {"limit_ip", "off", "--set"},
                                 {"trusted_proxies", " 10.0.0.0/8, ::1 ", "--set"},
                                 {"acs_budget", "create=20/2s,issue=20/2s", "--set"}};
    assert_int_equal(load(NULL, good, 9, &cfg, err), 0);
    assert_string_equal(cfg.limit_user, "5/10s");
    assert_string_equal(cfg.limit_apikey, "1000/1s");
    assert_string_equal(cfg.trusted_proxies, " 10.0.0.0/8, ::1 ");
    assert_string_equal(cfg.acs_budget, "create=20/2s,issue=20/2s");
    assert_string_equal(cfg.login_limit, "off");
    assert_string_equal(cfg.breaker, "off");
    assert_int_equal(cfg.login_per_address, 0);
    assert_int_equal(cfg.password_min_length, 20);
    assert_string_equal(cfg.secret_key, key);
    assert_int_equal(cfg.secret_files.n, 1);
    assert_string_equal(cfg.secret_files.items[0], kf);
    config_release(&cfg);
    unsetenv("TOKENVEND_SECRET_KEY_FILE");

    /* A key of the wrong size: the error names the setting, never the value. */
    struct config_flag bad[] = {{"secret_key", "c2VjcmV0c2VjcmV0", "--set"}};
    assert_int_equal(load(NULL, bad, 1, &cfg, err), TV_ERR_CONFIG);
    assert_contains(err, "secret_key");
    assert_null(strstr(err, "c2VjcmV0c2VjcmV0"));
}

/* The slow-client defaults (issue 6): a client dripping its head is never kept longer than an
 * idle one, and one address cannot hold every connection; the per-address cap follows
 * max_connections unless it is set, by any layer. */
static void test_slow_client_defaults(void **state)
{
    struct config cfg;
    char err[CONFIG_ERR_MAX];
    (void)state;

    assert_int_equal(load(NULL, NULL, 0, &cfg, err), 0);
    assert_true(cfg.header_timeout_s < cfg.connection_timeout_s);
    assert_true(cfg.header_timeout_s < cfg.request_timeout_s);
    assert_true(cfg.max_connections_per_ip > 0);
    assert_true(cfg.max_connections_per_ip < cfg.max_connections);
    assert_int_equal(cfg.max_connections_per_ip, config_per_ip_default(cfg.max_connections));
    assert_int_equal(cfg.header_timeout_s, 10);
    assert_int_equal(cfg.max_connections_per_ip, 625);
    config_release(&cfg);

    assert_int_equal(config_per_ip_default(16), 4);
    assert_int_equal(config_per_ip_default(64), 4);
    assert_int_equal(config_per_ip_default(1600), 100);

    struct config_flag small[] = {{"max_connections", "50", "--set"}};
    assert_int_equal(load(NULL, small, 1, &cfg, err), 0);
    assert_int_equal(cfg.max_connections_per_ip, 4);
    config_release(&cfg);

    const char *f = tmp_file("max_connections = 3200\n");
    assert_int_equal(load(f, NULL, 0, &cfg, err), 0);
    assert_int_equal(cfg.max_connections_per_ip, 200);
    config_release(&cfg);

    /* Set explicitly, by a flag or the environment, it wins; 0 still means no cap. */
    struct config_flag set[] = {{"max_connections", "50", "--set"},
                                {"max_connections_per_ip", "30", "--set"}};
    assert_int_equal(load(NULL, set, 2, &cfg, err), 0);
    assert_int_equal(cfg.max_connections_per_ip, 30);
    config_release(&cfg);
    setenv("TOKENVEND_MAX_CONNECTIONS_PER_IP", "0", 1);
    assert_int_equal(load(f, NULL, 0, &cfg, err), 0);
    assert_int_equal(cfg.max_connections_per_ip, 0);
    config_release(&cfg);
    unsetenv("TOKENVEND_MAX_CONNECTIONS_PER_IP");
}

static void test_scopes_parse(void **state)
{
    struct config_scopes s;
    char err[256];
    (void)state;

    assert_int_equal(config_scopes_parse("voip", &s, err, sizeof err), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(config_scopes_parse("chat,voip,chat", &s, err, sizeof err), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(config_scopes_parse("chat,,voip", &s, err, sizeof err), TV_ERR_INVALID);
    assert_int_equal(config_scopes_parse("", &s, err, sizeof err), TV_ERR_INVALID);
    assert_int_equal(config_scopes_parse("VOIP", &s, err, sizeof err), TV_ERR_INVALID);
    assert_contains(err, "unknown scope 'VOIP'");
}

/* A config file that sets a secret inline is a secret file: it is listed with the *_file
 * paths, so a mode that lets group or others read it draws the fsperm warning (0644: one
 * warning; 0600: none). A file with no secret, or an empty one, is not listed. */
static void test_config_file_with_secret(void **state)
{
    struct config cfg;
    char err[CONFIG_ERR_MAX];
    const char *with = tmp_file("token_minutes = 120\n"
                                "secret_key = AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n");
    const char *without = tmp_file("token_minutes = 120\nsecret_key = \"\"\n");
    (void)state;

    assert_int_equal(load(with, NULL, 0, &cfg, err), 0);
    assert_int_equal(cfg.secret_files.n, 1);
    assert_string_equal(cfg.secret_files.items[0], with);
    assert_int_equal(chmod(with, 0644), 0);
    assert_int_equal(fsperm_warn_secrets(&cfg), 1);
    assert_int_equal(chmod(with, 0600), 0);
    assert_int_equal(fsperm_warn_secrets(&cfg), 0);
    config_release(&cfg);

    assert_int_equal(load(without, NULL, 0, &cfg, err), 0);
    assert_int_equal(cfg.secret_files.n, 0);
    assert_int_equal(chmod(without, 0644), 0);
    assert_int_equal(fsperm_warn_secrets(&cfg), 0);
    config_release(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_variants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_both_plain_and_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_syntax, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_good_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oidc_url_transport, setup, teardown),
        cmocka_unit_test_setup_teardown(test_print_redacts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acs_connection_string_vars, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scopes_parse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_login_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_client_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_file_with_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_uri, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acs_custom_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_key, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
