/* `tokenvend apikey create|list|revoke|rotate`: API keys for the internal listener. A new key is
 * printed once, as the last line of stdout, and only its hash is stored. rotate gives a name a
 * new key and keeps the old one valid for a grace period (store_apikey_rotate), so backends can
 * switch over without an outage. Single-threaded. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "auth/apikey.h"
#include "admin_int.h"
#include "cli/cli.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "store/apikeys.h"
#include "store/audit.h"

#define LIST_PAGE 200
/* The old key's grace period after a rotation: a day by default (time for every backend to pick
 * up the new key), at most 30 days (a rotated-out key should not linger). */
#define GRACE_DEFAULT_MS (24LL * 3600 * 1000)
#define GRACE_MAX_MS (30LL * 24 * 3600 * 1000)

enum { OPT_GRACE };

static const struct cli_opt apikey_opts[] = {
    {"grace", "DURATION",
     "rotate: how long the old key keeps working: N followed by s, m, h or d (default 24h, "
     "at most 30d; 0: refused at once)"},
};

void cli_apikey_usage_print(FILE *f)
{
    fputs(
        "Usage: tokenvend apikey SUBCOMMAND [ARGS] [FLAGS]\n"
        "\n"
        "API keys authenticate backends on the internal listener\n"
        "(Authorization: Bearer <key>). Only a hash of each key is stored.\n"
        "\n"
        "Subcommands:\n"
        "  create NAME    make a key named NAME ([A-Za-z0-9._-], 1..64 characters); prints\n"
        "                 {\"name\",\"keyId\",\"createdAt\"} and then the key itself as the LAST\n"
        "                 line of stdout. It is shown this once: store it now.\n"
        "  list           {\"apikeys\":[{\"name\",\"keyId\",\"createdAt\",\"lastUsedAt\",\n"
        "                 \"revokedAt\"}]} (never the keys)\n"
        "  revoke NAME    revoke the key named NAME (it stops working at once), and its\n"
        "                 previous key if it was rotated\n"
        "  rotate NAME [--grace DURATION]\n"
        "                 a new key for NAME, printed like create's (the LAST line of\n"
        "                 stdout); the old key keeps working for the grace period, then is\n"
        "                 refused (401). Prints {\"name\",\"keyId\",\"createdAt\",\n"
        "                 \"previousKeyId\",\"previousExpiresAt\"}. Rotating again in the grace\n"
        "                 period ends the older key at once. list shows both keys, the old one\n"
        "                 with \"current\":false and its \"expiresAt\".\n"
        "\n"
        "Flags:\n",
        f);
    cli_opts_print(f, apikey_opts, sizeof apikey_opts / sizeof apikey_opts[0]);
    cli_common_flags_print(f);
    fputs("\nExit status: 0 success, 1 not found / already exists / database failure,\n"
          "2 usage or configuration error.\n",
          f);
}

/* The audit row of an admin action on the key called name. */
static void audit_admin(struct store *st, const char *action, const char *name)
{
    char detail[STORE_AUDIT_DETAIL_MAX + 1];

    snprintf(detail, sizeof detail, "name=%s", name);
    cli_audit_add(st, action, "", "", "ok", detail);
}

static struct json_object *key_object(const struct store_apikey *k)
{
    struct json_object *o = json_object_new_object();

    if (o == NULL)
        return NULL;
    json_object_object_add(o, "name", json_object_new_string(k->name));
    json_object_object_add(o, "keyId", json_object_new_string(k->key_id));
    cli_json_add_time(o, "createdAt", k->created_ms);
    cli_json_add_time(o, "lastUsedAt", k->last_used_ms);
    cli_json_add_time(o, "revokedAt", k->revoked_ms);
    json_object_object_add(o, "current", json_object_new_boolean(1));
    json_object_object_add(o, "expiresAt", NULL);
    return o;
}

/* The previous key of a rotated name, as list shows it (its creation time is not kept). */
static struct json_object *prev_key_object(const struct store_apikey *k)
{
    struct json_object *o = json_object_new_object();

    if (o == NULL)
        return NULL;
    json_object_object_add(o, "name", json_object_new_string(k->name));
    json_object_object_add(o, "keyId", json_object_new_string(k->prev_key_id));
    json_object_object_add(o, "createdAt", NULL);
    cli_json_add_time(o, "lastUsedAt", k->prev_last_used_ms);
    cli_json_add_time(o, "revokedAt", k->revoked_ms);
    json_object_object_add(o, "current", json_object_new_boolean(0));
    cli_json_add_time(o, "expiresAt", k->prev_expires_ms);
    return o;
}

/* Prints a new key's JSON (o, consumed), then the key itself as the last line of stdout: the one
 * time it is shown (create and rotate). */
static int apikey_print_new(struct json_object *o, const char *key)
{
    int rc = cli_json_print(o);

    if (rc != CLI_EXIT_OK)
        return rc;
    fputs("The new API key follows on the last line of stdout; it is not stored and cannot be "
          "shown again.\n",
          stderr);
    printf("%s\n", key);
    fflush(stdout);
    return CLI_EXIT_OK;
}

static int apikey_create(struct store *st, const char *name)
{
    struct store_apikey k;
    char key[APIKEY_MAX];
    char msg[160];
    int rc;

    memset(&k, 0, sizeof k);
    buf_copy_str(k.name, sizeof k.name, name);
    k.created_ms = clock_wall_ms();
    if ((rc = apikey_generate(key, sizeof key, k.key_id, k.hash)) != 0) {
        rc = cli_store_failure(rc, "could not generate a key (no randomness?)");
        goto done;
    }
    if ((rc = store_apikey_insert(st, &k)) != 0) {
        if (rc == TV_ERR_CONFLICT)
            snprintf(msg, sizeof msg, "an API key named '%s' already exists", name);
        else
            snprintf(msg, sizeof msg, "could not store the API key '%s'", name);
        rc = cli_store_failure(rc, msg);
        goto done;
    }
    audit_admin(st, "apikey_create", name);
    struct json_object *o = json_object_new_object();
    if (o != NULL) {
        json_object_object_add(o, "name", json_object_new_string(k.name));
        json_object_object_add(o, "keyId", json_object_new_string(k.key_id));
        cli_json_add_time(o, "createdAt", k.created_ms);
    }
    rc = apikey_print_new(o, key);
done:
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(&k, sizeof k);
    return rc;
}

static int apikey_list(struct store *st)
{
    struct store_apikey *rows = calloc(LIST_PAGE, sizeof *rows);
    struct json_object *arr = NULL;
    struct json_object *o = cli_json_list_new("apikeys", &arr);
    char after[STORE_NAME_MAX + 1] = "";
    int n = 0;
    int rc;

    if (rows == NULL || o == NULL) {
        rc = cli_json_print(NULL);
        goto done;
    }
    do {
        if ((rc = store_apikey_list(st, after, LIST_PAGE, rows, &n)) != 0) {
            rc = cli_store_failure(rc, "could not list the API keys");
            goto done;
        }
        for (int i = 0; i < n; i++) {
            json_object_array_add(arr, key_object(&rows[i]));
            if (rows[i].prev_key_id[0] != '\0')
                json_object_array_add(arr, prev_key_object(&rows[i]));
        }
        if (n > 0)
            buf_copy_str(after, sizeof after, rows[n - 1].name);
    } while (n == LIST_PAGE);
    rc = cli_json_print(o);
    o = NULL;
done:
    json_object_put(o);
    if (rows != NULL)
        OPENSSL_cleanse(rows, LIST_PAGE * sizeof *rows);
    free(rows);
    return rc;
}

static int apikey_revoke(struct store *st, const char *name)
{
    struct store_apikey k;
    char msg[160];
    int rc;

    if ((rc = store_apikey_revoke(st, name, clock_wall_ms())) != 0) {
        if (rc == TV_ERR_NOT_FOUND)
            snprintf(msg, sizeof msg, "no API key named '%s'", name);
        else
            snprintf(msg, sizeof msg, "could not revoke the API key '%s'", name);
        return cli_store_failure(rc, msg);
    }
    audit_admin(st, "apikey_revoke", name);
    if ((rc = store_apikey_get(st, name, &k)) != 0)
        return cli_store_failure(rc, "revoked, but could not read the key back");
    rc = cli_json_print(key_object(&k));
    OPENSSL_cleanse(&k, sizeof k);
    return rc;
}

/* Parses DURATION: a whole number followed by s, m, h or d, or a bare 0; at most
 * GRACE_MAX_MS. CLI_EXIT_OK or CLI_EXIT_USAGE (reported). */
static int grace_parse(const char *s, int64_t *out)
{
    char *end;
    long long n;
    int64_t unit = 0;

    errno = 0;
    n = strtoll(s, &end, 10);
    if (end != s && s[0] >= '0' && s[0] <= '9' && errno == 0) {
        if (strcmp(end, "s") == 0)
            unit = 1000;
        else if (strcmp(end, "m") == 0)
            unit = 60 * 1000;
        else if (strcmp(end, "h") == 0)
            unit = 3600 * 1000;
        else if (strcmp(end, "d") == 0)
            unit = 24 * 3600 * 1000;
        else if (end[0] == '\0' && n == 0)
            unit = 1;
    }
    if (unit == 0 || n > GRACE_MAX_MS / unit)
        return cli_usage_error("apikey rotate: --grace must be a duration such as 90s, 30m, 24h or "
                               "7d, at most 30d (0: the old key stops at once), got '%.32s'",
                               s);
    *out = (int64_t)n * unit;
    return CLI_EXIT_OK;
}

static int apikey_rotate(struct store *st, const char *name, int64_t grace_ms)
{
    struct store_apikey cur, next;
    char key[APIKEY_MAX];
    char msg[160];
    char detail[STORE_AUDIT_DETAIL_MAX + 1];
    int rc;

    memset(&cur, 0, sizeof cur);
    memset(&next, 0, sizeof next);
    if ((rc = store_apikey_get(st, name, &cur)) != 0 || cur.revoked_ms != 0) {
        if (rc == 0)
            snprintf(msg, sizeof msg, "the API key '%s' is revoked: create a new name instead",
                     name);
        else if (rc == TV_ERR_NOT_FOUND)
            snprintf(msg, sizeof msg, "no API key named '%s'", name);
        else
            snprintf(msg, sizeof msg, "could not read the API key '%s'", name);
        rc = cli_store_failure(rc == 0 ? TV_ERR_CONFLICT : rc, msg);
        goto done;
    }
    next.created_ms = clock_wall_ms();
    if ((rc = apikey_generate(key, sizeof key, next.key_id, next.hash)) != 0) {
        rc = cli_store_failure(rc, "could not generate a key (no randomness?)");
        goto done;
    }
    /* Revoked, removed or rotated by someone else since the read: the rotation matches no row
     * and changes nothing (the other rotation's key, handed out already, stays). */
    if ((rc = store_apikey_rotate(st, name, cur.key_id, &next, next.created_ms + grace_ms)) != 0) {
        snprintf(msg, sizeof msg,
                 rc == TV_ERR_NOT_FOUND  ? "the API key '%s' was revoked or removed meanwhile"
                 : rc == TV_ERR_CONFLICT ? "the API key '%s' was rotated meanwhile; run again"
                                         : "could not store the new key of '%s'",
                 name);
        rc = cli_store_failure(rc, msg);
        goto done;
    }
    snprintf(detail, sizeof detail, "name=%s new=%s old=%s grace_ms=%" PRId64, name, next.key_id,
             cur.key_id, grace_ms);
    cli_audit_add(st, "apikey_rotate", "", "", "ok", detail);
    struct json_object *o = json_object_new_object();
    if (o != NULL) {
        json_object_object_add(o, "name", json_object_new_string(name));
        json_object_object_add(o, "keyId", json_object_new_string(next.key_id));
        cli_json_add_time(o, "createdAt", next.created_ms);
        json_object_object_add(o, "previousKeyId", json_object_new_string(cur.key_id));
        cli_json_add_time(o, "previousExpiresAt", next.created_ms + grace_ms);
    }
    rc = apikey_print_new(o, key);
done:
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(&next, sizeof next);
    OPENSSL_cleanse(&cur, sizeof cur);
    return rc;
}

static const struct cli_admin_spec apikey_spec = {
    "apikey",
    {"create", "list", "revoke", "rotate"},
    apikey_opts,
    sizeof apikey_opts / sizeof apikey_opts[0],
    cli_apikey_usage_print,
};

int cli_apikey_main(int argc, char **argv)
{
    struct cli_args a;
    struct config cfg = {0};
    struct store *st = NULL;
    const char *sub;
    char cmd[32];
    int64_t grace_ms = GRACE_DEFAULT_MS;
    int rc;

    rc = cli_admin_parse(&apikey_spec, argc, argv, &a, cmd, sizeof cmd, &sub);
    if (rc != CLI_EXIT_OK || sub == NULL)
        return rc;
    if (a.values[OPT_GRACE] != NULL && strcmp(sub, "rotate") != 0)
        return cli_usage_error("%s: --grace applies to 'apikey rotate' only", cmd);
    if (a.values[OPT_GRACE] != NULL && (rc = grace_parse(a.values[OPT_GRACE], &grace_ms)) != 0)
        return rc;
    if (strcmp(sub, "list") == 0) {
        if (a.npos != 0)
            return cli_usage_error("apikey list takes no arguments");
    } else {
        if (a.npos != 1)
            return cli_usage_error("%s: expects one NAME", cmd);
        if (!apikey_name_valid(a.pos[0]))
            return cli_usage_error("%s: NAME must be 1..64 characters of [A-Za-z0-9._-]", cmd);
    }
    if ((rc = cli_admin_store_open(&a, &cfg, &st)) != CLI_EXIT_OK)
        goto done;
    if (strcmp(sub, "create") == 0)
        rc = apikey_create(st, a.pos[0]);
    else if (strcmp(sub, "list") == 0)
        rc = apikey_list(st);
    else if (strcmp(sub, "rotate") == 0)
        rc = apikey_rotate(st, a.pos[0], grace_ms);
    else
        rc = apikey_revoke(st, a.pos[0]);
done:
    store_close(st);
    config_release(&cfg);
    return rc;
}
