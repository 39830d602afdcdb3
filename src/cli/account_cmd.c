/* `tokenvend account add|passwd|list|remove|logout`: local accounts for
 * TOKENVEND_LOCAL_ACCOUNTS=on. The password comes from one line of stdin (not echoed on a terminal)
 * or from --password-file; only its Argon2id hash is stored, and the password never reaches the
 * output or the log. Single-threaded. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "auth/password.h"
#include "admin_int.h"
#include "cli/cli.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/fsperm.h"
#include "store/accounts.h"
#include "store/audit.h"
#include "store/refresh.h"

#define LIST_PAGE 200

enum { OPT_PASSWORD_FILE };

static const struct cli_opt account_opts[] = {
    {"password-file", "PATH",
     "add, passwd: read the password from PATH (one line) instead of stdin"},
};

void cli_account_usage_print(FILE *f)
{
    fputs(
        "Usage: tokenvend account SUBCOMMAND [ARGS] [FLAGS]\n"
        "\n"
        "Local accounts sign in with POST /api/login when TOKENVEND_LOCAL_ACCOUNTS=on.\n"
        "\n"
        "Subcommands:\n"
        "  add NAME [--password-file PATH]\n"
        "                 create NAME ([A-Za-z0-9._@-], 1..64 characters) or replace its\n"
        "                 password; the password is one line of stdin (password_min_length\n"
        "                 characters, default 12, up to 1024 bytes; not echoed on a\n"
        "                 terminal) or the one line in PATH. Prints {\"name\",\"created\":bool}.\n"
        "  passwd NAME [--password-file PATH]\n"
        "                 replace the password of an existing account (read as for add);\n"
        "                 its session tokens and refresh tokens stop working at once. Prints\n"
        "                 {\"name\",\"passwordChanged\":true}.\n"
        "  list           {\"accounts\":[{\"name\",\"createdAt\",\"updatedAt\"}]}\n"
        "  remove NAME    delete the account; its session tokens stop working at once\n"
        "  logout NAME    end every session of the account: its session tokens and session\n"
        "                 refresh tokens (tv_refresh cookies) stop working at once; the\n"
        "                 password stays. Prints {\"name\",\"loggedOut\":true}.\n"
        "\n"
        "Flags:\n",
        f);
    cli_opts_print(f, account_opts, sizeof account_opts / sizeof account_opts[0]);
    cli_common_flags_print(f);
    fputs("\nArgon2id cost: t=3, m=32 MiB, p=1 (about 0.1 s); the TOKENVEND_ARGON2 environment\n"
          "variable (\"t=N,m=KIB,p=N\") overrides it, e.g. for fast tests.\n"
          "Exit status: 0 success, 1 not found / database failure, 2 usage or configuration "
          "error.\n",
          f);
}

/* Reads one line of fd 0 into buf (cap > PASSWORD_MAX_LEN + 1), byte by byte so that nothing
 * past the line stays in a stdio buffer. Strips "\n" or "\r\n". On a terminal, prompts on
 * stderr and turns echo off. CLI_EXIT_OK or CLI_EXIT_USAGE (reported). */
static int password_read_stdin(const char *cmd, const char *name, char *buf, size_t cap,
                               size_t *len)
{
    struct termios old, quiet;
    int tty = isatty(0);
    int echo_off = 0;
    size_t n = 0;
    int too_long = 0, nul = 0, got_newline = 0;
    int rc = CLI_EXIT_USAGE;

    if (tty) {
        fprintf(stderr, "Password for %s: ", name);
        fflush(stderr);
        if (tcgetattr(0, &old) == 0) {
            quiet = old;
            quiet.c_lflag &= ~(tcflag_t)ECHO;
            echo_off = tcsetattr(0, TCSAFLUSH, &quiet) == 0;
        }
    }
    for (;;) {
        char c;
        ssize_t r = read(0, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (c == '\n') {
            got_newline = 1;
            break;
        }
        if (c == '\0')
            nul = 1;
        if (n + 1 < cap)
            buf[n++] = c;
        else
            too_long = 1;
    }
    if (echo_off) {
        tcsetattr(0, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    if (too_long || n > PASSWORD_MAX_LEN) {
        cli_usage_error("%s: the password is longer than %d bytes", cmd, PASSWORD_MAX_LEN);
        goto done;
    }
    if (nul) {
        cli_usage_error("%s: the password contains a NUL byte", cmd);
        goto done;
    }
    if (n == 0) {
        cli_usage_error("%s: no password: give it as one line on stdin (%s) or with "
                        "--password-file PATH",
                        cmd, got_newline ? "the line was empty" : "stdin was empty");
        goto done;
    }
    buf[n] = '\0';
    *len = n;
    rc = CLI_EXIT_OK;
done:
    if (rc != CLI_EXIT_OK)
        OPENSSL_cleanse(buf, cap);
    return rc;
}

/* Deletes the account's refresh tokens after its session epoch changed. Best effort: the new
 * epoch alone already makes every one of them refused; this only empties the table sooner. */
static void refresh_drop(struct store *st, const char *name)
{
    (void)store_refresh_revoke_account(st, name, NULL);
}

static int account_add(struct store *st, const char *name, const char *pw, size_t pwlen)
{
    struct store_account acc;
    char msg[160];
    int created = 0;
    int rc;

    memset(&acc, 0, sizeof acc);
    buf_copy_str(acc.name, sizeof acc.name, name);
    acc.created_ms = acc.updated_ms = clock_wall_ms();
    rc = password_hash(pw, pwlen, acc.password_hash, sizeof acc.password_hash);
    if (rc != 0) {
        rc = cli_store_failure(rc, "could not hash the password");
        goto done;
    }
    if ((rc = store_account_upsert(st, &acc, &created)) != 0) {
        snprintf(msg, sizeof msg, "could not store the account '%s'", name);
        rc = cli_store_failure(rc, msg);
        goto done;
    }
    if (!created)
        refresh_drop(st, name);
    cli_audit_add(st, created ? "account_add" : "account_password", name, "", "ok", "");
    struct json_object *o = json_object_new_object();
    if (o != NULL) {
        json_object_object_add(o, "name", json_object_new_string(name));
        json_object_object_add(o, "created", json_object_new_boolean(created));
    }
    rc = cli_json_print(o);
done:
    OPENSSL_cleanse(&acc, sizeof acc);
    return rc;
}

static int account_passwd(struct store *st, const char *name, const char *pw, size_t pwlen)
{
    char hash[PASSWORD_HASH_MAX], msg[160];
    int rc = password_hash(pw, pwlen, hash, sizeof hash);

    if (rc != 0) {
        rc = cli_store_failure(rc, "could not hash the password");
        goto done;
    }
    if ((rc = store_account_passwd(st, name, hash, clock_wall_ms())) != 0) {
        if (rc == TV_ERR_NOT_FOUND)
            snprintf(msg, sizeof msg, "no account named '%s'", name);
        else
            snprintf(msg, sizeof msg, "could not store the password of '%s'", name);
        rc = cli_store_failure(rc, msg);
        goto done;
    }
    refresh_drop(st, name);
    cli_audit_add(st, "account_passwd", name, "", "ok", "sessions ended");
    struct json_object *o = json_object_new_object();
    if (o != NULL) {
        json_object_object_add(o, "name", json_object_new_string(name));
        json_object_object_add(o, "passwordChanged", json_object_new_boolean(1));
    }
    rc = cli_json_print(o);
done:
    OPENSSL_cleanse(hash, sizeof hash);
    return rc;
}

static int account_list(struct store *st)
{
    struct store_account *rows = calloc(LIST_PAGE, sizeof *rows);
    struct json_object *arr = NULL;
    struct json_object *o = cli_json_list_new("accounts", &arr);
    char after[STORE_NAME_MAX + 1] = "";
    int n = 0;
    int rc;

    if (rows == NULL || o == NULL) {
        rc = cli_json_print(NULL);
        goto done;
    }
    do {
        if ((rc = store_account_list(st, after, LIST_PAGE, rows, &n)) != 0) {
            rc = cli_store_failure(rc, "could not list the accounts");
            goto done;
        }
        for (int i = 0; i < n; i++) {
            struct json_object *e = json_object_new_object();
            if (e == NULL)
                continue;
            json_object_object_add(e, "name", json_object_new_string(rows[i].name));
            cli_json_add_time(e, "createdAt", rows[i].created_ms);
            cli_json_add_time(e, "updatedAt", rows[i].updated_ms);
            json_object_array_add(arr, e);
        }
        if (n > 0)
            buf_copy_str(after, sizeof after, rows[n - 1].name);
        OPENSSL_cleanse(rows, LIST_PAGE * sizeof *rows);
    } while (n == LIST_PAGE);
    rc = cli_json_print(o);
    o = NULL;
done:
    json_object_put(o);
    free(rows);
    return rc;
}

static int account_remove(struct store *st, const char *name)
{
    char msg[160];
    int rc;

    if ((rc = store_account_delete(st, name)) != 0) {
        if (rc == TV_ERR_NOT_FOUND)
            snprintf(msg, sizeof msg, "no account named '%s'", name);
        else
            snprintf(msg, sizeof msg, "could not remove the account '%s'", name);
        return cli_store_failure(rc, msg);
    }
    refresh_drop(st, name);
    cli_audit_add(st, "account_remove", name, "", "ok", "");
    struct json_object *o = json_object_new_object();
    if (o != NULL) {
        json_object_object_add(o, "name", json_object_new_string(name));
        json_object_object_add(o, "removed", json_object_new_boolean(1));
    }
    return cli_json_print(o);
}

static int account_logout(struct store *st, const char *name)
{
    char msg[160];
    int rc;

    if ((rc = store_account_logout(st, name)) != 0) {
        if (rc == TV_ERR_NOT_FOUND)
            snprintf(msg, sizeof msg, "no account named '%s'", name);
        else
            snprintf(msg, sizeof msg, "could not end the sessions of '%s'", name);
        return cli_store_failure(rc, msg);
    }
    refresh_drop(st, name);
    cli_audit_add(st, "account_logout", name, "", "ok", "sessions ended");
    struct json_object *o = json_object_new_object();
    if (o != NULL) {
        json_object_object_add(o, "name", json_object_new_string(name));
        json_object_object_add(o, "loggedOut", json_object_new_boolean(1));
    }
    return cli_json_print(o);
}

static const struct cli_admin_spec account_spec = {
    "account",
    {"add", "passwd", "list", "remove", "logout"},
    account_opts,
    sizeof account_opts / sizeof account_opts[0],
    cli_account_usage_print,
};

int cli_account_main(int argc, char **argv)
{
    struct cli_args a;
    struct config cfg = {0};
    struct store *st = NULL;
    char *file_pw = NULL;
    char line[PASSWORD_MAX_LEN + 2];
    const char *pw = NULL;
    size_t pwlen = 0;
    const char *sub;
    char cmd[32];
    char why[256];
    int rc;

    rc = cli_admin_parse(&account_spec, argc, argv, &a, cmd, sizeof cmd, &sub);
    if (rc != CLI_EXIT_OK || sub == NULL)
        return rc;
    int wants_pw = strcmp(sub, "add") == 0 || strcmp(sub, "passwd") == 0;
    if (a.values[OPT_PASSWORD_FILE] != NULL && !wants_pw)
        return cli_usage_error("%s: --password-file applies to 'account add' and 'account "
                               "passwd' only",
                               cmd);
    if (strcmp(sub, "list") == 0) {
        if (a.npos != 0)
            return cli_usage_error("account list takes no arguments");
    } else {
        if (a.npos != 1)
            return cli_usage_error("%s: expects one NAME", cmd);
        if (!cli_name_valid(a.pos[0], 1))
            return cli_usage_error("%s: NAME must be 1..64 characters of [A-Za-z0-9._@-]", cmd);
    }
    /* Read the password before touching the database, so that a missing password changes
     * nothing. */
    if (wants_pw) {
        const char *path = a.values[OPT_PASSWORD_FILE];
        if (path != NULL) {
            rc = config_read_value_file(path, PASSWORD_MAX_LEN, &file_pw, why, sizeof why);
            if (rc != 0) {
                rc = cli_usage_error("%s: --password-file: %s", cmd, why);
                goto done;
            }
            pw = file_pw;
            pwlen = strlen(file_pw);
            if (pwlen == 0 || strchr(file_pw, '\n') != NULL) {
                rc = cli_usage_error("%s: --password-file must hold one non-empty line", cmd);
                goto done;
            }
        } else {
            rc = password_read_stdin(cmd, a.pos[0], line, sizeof line, &pwlen);
            if (rc != CLI_EXIT_OK)
                goto done;
            pw = line;
        }
    }
    if ((rc = cli_config_load(&a, &cfg)) != CLI_EXIT_OK)
        goto done;
    /* The length rule before the database is touched: a refused password changes nothing. */
    if (wants_pw && password_length_chars(pw, pwlen) < (size_t)cfg.password_min_length) {
        rc = cli_usage_error("%s: the password is too short: at least %ld characters "
                             "(password_min_length)",
                             cmd, cfg.password_min_length);
        goto done;
    }
    if ((rc = cli_store_open(&cfg, STORE_MIGRATE_YES, &st)) != CLI_EXIT_OK)
        goto done;
    (void)fsperm_warn_config(&cfg);
    if (strcmp(sub, "add") == 0)
        rc = account_add(st, a.pos[0], pw, pwlen);
    else if (strcmp(sub, "passwd") == 0)
        rc = account_passwd(st, a.pos[0], pw, pwlen);
    else if (strcmp(sub, "list") == 0)
        rc = account_list(st);
    else if (strcmp(sub, "logout") == 0)
        rc = account_logout(st, a.pos[0]);
    else
        rc = account_remove(st, a.pos[0]);
done:
    OPENSSL_cleanse(line, sizeof line);
    if (file_pw != NULL) {
        OPENSSL_cleanse(file_pw, strlen(file_pw));
        free(file_pw);
    }
    store_close(st);
    config_release(&cfg);
    return rc;
}
