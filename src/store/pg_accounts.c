/* Local accounts table on PostgreSQL (accounts.c is the SQLite sibling; the public functions
 * there check their arguments and call these). */
#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>

#include "core/err.h"
#include "pg_int.h"
#include "pg_tables.h"
#include "store/accounts.h"

#define ACCOUNT_COLS "name, password_hash, created_ms, updated_ms, session_epoch"

/* PostgreSQL's random() is a double in [0, 1): the new session epoch is drawn here instead, 64
 * bits from OpenSSL's generator, and bound ($n) like every other value. */
static const char SQL_INSERT_NEW[] =
    "INSERT INTO accounts (name, password_hash, created_ms, updated_ms, session_epoch)"
    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING";
/* A new session epoch or a removed account ends the account's sessions on every replica: the
 * statement also notifies (pg_listen.c reads "a:<seq>:<length>:<name>") and advances the
 * counter a reconnecting watch checks, delivered on commit only (see pg_users.c). */
#define NOTIFY_ACCOUNT                                                                             \
    "pg_notify('tokenvend_invalidate', 'a:' || nextval('invalidation_seq') || ':' ||"              \
    " octet_length(a.name) || ':' || a.name)"
static const char SQL_PASSWD[] = "WITH a AS (UPDATE accounts SET password_hash = $2,"
                                 " updated_ms = $3, session_epoch = $4 WHERE name = $1"
                                 " RETURNING name) SELECT " NOTIFY_ACCOUNT " FROM a";
static const char SQL_LOGOUT[] = "WITH a AS (UPDATE accounts SET session_epoch = $2 WHERE name = $1"
                                 " RETURNING name) SELECT " NOTIFY_ACCOUNT " FROM a";
static const char SQL_REHASH[] =
    "UPDATE accounts SET password_hash = $3 WHERE name = $1 AND password_hash = $2";
static const char SQL_EPOCH[] = "SELECT session_epoch FROM accounts WHERE name = $1";
static const char SQL_GET[] = "SELECT " ACCOUNT_COLS " FROM accounts WHERE name = $1";
static const char SQL_DELETE[] = "WITH a AS (DELETE FROM accounts WHERE name = $1 RETURNING name)"
                                 " SELECT " NOTIFY_ACCOUNT " FROM a";
/* Byte order, as on SQLite (see pg_users.c). */
static const char SQL_LIST[] = "SELECT " ACCOUNT_COLS " FROM accounts WHERE name COLLATE \"C\" > $1"
                               " ORDER BY name COLLATE \"C\" LIMIT $2";

/* A new session epoch: 64 random bits, need not be secret (tokens carry it, signed), only new. */
static int new_epoch(int64_t *epoch)
{
    return RAND_bytes((unsigned char *)epoch, sizeof(*epoch)) == 1 ? 0 : TV_ERR_CRYPTO;
}

static int account_row(const PGresult *r, int row, void *out)
{
    struct store_account *a = out;
    int rc = pgs_col_text(r, row, 0, a->name, sizeof(a->name));

    if (rc == 0)
        rc = pgs_col_text(r, row, 1, a->password_hash, sizeof(a->password_hash));
    a->created_ms = pgs_col_int64(r, row, 2);
    a->updated_ms = pgs_col_int64(r, row, 3);
    a->session_epoch = pgs_col_int64(r, row, 4);
    return rc;
}

struct upsert_arg {
    const struct store_account *a;
    int64_t epoch;
    int created;
};

/* Insert unless present, else replace: one of the two changes a row. A row deleted between
 * them (the UPDATE finds none) is inserted on the next turn, so the loop ends. Sets created on
 * every run (the body may run twice). */
static int upsert_tx(struct pgpool_tx *tx, void *arg)
{
    struct upsert_arg *u = arg;
    struct store_param ins[] = {STORE_TEXT(u->a->name),        STORE_TEXT(u->a->password_hash),
                                STORE_INT64(u->a->created_ms), STORE_INT64(u->a->updated_ms),
                                STORE_INT64(u->epoch),         STORE_END};
    /* The replace is store_account_passwd's statement: created_ms stays. */
    struct store_param upd[] = {STORE_TEXT(u->a->name), STORE_TEXT(u->a->password_hash),
                                STORE_INT64(u->a->updated_ms), STORE_INT64(u->epoch), STORE_END};
    int rc = 0;

    u->created = 0;
    for (int turn = 0; turn < 3; turn++) {
        PGresult *r = NULL;
        int64_t changed = 0;
        int insert = turn % 2 == 0;
        rc = pgs_tx_exec(tx, insert ? SQL_INSERT_NEW : SQL_PASSWD, insert ? ins : upd, &r);
        if (rc == 0)
            changed = pgs_changes(r);
        PQclear(r);
        if (rc != 0 || changed > 0) {
            u->created = rc == 0 && insert;
            return rc;
        }
    }
    return TV_ERR_CONFLICT; /* inserted and deleted by others turn after turn */
}

int pgstore_account_upsert(struct store *s, const struct store_account *a, int *created)
{
    struct upsert_arg u = {.a = a};
    int rc = new_epoch(&u.epoch);

    if (rc == 0)
        rc = pgpool_tx_run(s->pg, upsert_tx, &u);
    if (rc == 0 && created != NULL)
        *created = u.created;
    return rc;
}

int pgstore_account_get(struct store *s, const char *name, struct store_account *out)
{
    struct store_account a;

    return pgs_get_by_key(s, SQL_GET, name, STORE_NAME_MAX, account_row, &a, out, sizeof a);
}

int pgstore_account_passwd(struct store *s, const char *name, const char *password_hash,
                           int64_t updated_ms)
{
    int64_t epoch = 0;
    int rc = new_epoch(&epoch);
    struct store_param p[] = {STORE_TEXT(name), STORE_TEXT(password_hash), STORE_INT64(updated_ms),
                              STORE_INT64(epoch), STORE_END};

    return rc != 0 ? rc : pgs_write_one(s, SQL_PASSWD, p);
}

int pgstore_account_logout(struct store *s, const char *name)
{
    int64_t epoch = 0;
    int rc = new_epoch(&epoch);
    struct store_param p[] = {STORE_TEXT(name), STORE_INT64(epoch), STORE_END};

    return rc != 0 ? rc : pgs_write_one(s, SQL_LOGOUT, p);
}

int pgstore_account_rehash(struct store *s, const char *name, const char *old_hash,
                           const char *new_hash)
{
    struct store_param p[] = {STORE_TEXT(name), STORE_TEXT(old_hash), STORE_TEXT(new_hash),
                              STORE_END};

    return pgs_write_one(s, SQL_REHASH, p);
}

int pgstore_account_epoch(struct store *s, const char *name, int64_t *epoch, int *has)
{
    return pgs_query_int64(s, SQL_EPOCH, name, epoch, has);
}

int pgstore_account_delete(struct store *s, const char *name)
{
    struct store_param p[] = {STORE_TEXT(name), STORE_END};

    return pgs_write_one(s, SQL_DELETE, p);
}

int pgstore_account_list(struct store *s, const char *after, int limit, struct store_account *out,
                         int *n)
{
    struct store_param p[] = {STORE_TEXT(after != NULL ? after : ""), STORE_INT64(limit),
                              STORE_END};

    return pgs_list_rows(s, SQL_LIST, p, limit, out, sizeof(*out), account_row, n);
}
