/* The PostgreSQL store's statement helpers (see pg_int.h). */
#include "pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/err.h"

int pgs_args_from(struct pgs_args *a, const struct store_param *p)
{
    memset(a, 0, sizeof(*a));
    for (; p != NULL && p->type != STORE_P_END; p++) {
        int i = a->n;
        if (i == PGS_PARAMS_MAX)
            return TV_ERR_INTERNAL;
        switch (p->type) {
        case STORE_P_TEXT:
            a->vals[i] = p->p;
            break;
        case STORE_P_TEXT_OR_NULL:
            a->vals[i] = p->p != NULL && ((const char *)p->p)[0] != '\0' ? p->p : NULL;
            break;
        case STORE_P_INT64:
            snprintf(a->num[i], sizeof(a->num[i]), "%lld", (long long)p->n);
            a->vals[i] = a->num[i];
            break;
        case STORE_P_BLOB:
            /* Never NULL: the BYTEA columns are NOT NULL and "" is a valid value. */
            a->vals[i] = p->n > 0 ? p->p : "";
            a->lens[i] = (int)p->n;
            a->fmts[i] = 1;
            break;
        case STORE_P_END:
            break;
        }
        a->n++;
    }
    return 0;
}

int pgs_exec(struct store *s, const char *sql, const struct store_param *p, int flags,
             PGresult **res)
{
    struct pgs_args a;
    int rc = pgs_args_from(&a, p);

    if (rc != 0)
        return rc;
    return pgpool_exec(s->pg, sql, a.n, a.vals, a.lens, a.fmts, flags, res);
}

int pgs_tx_exec(struct pgpool_tx *tx, const char *sql, const struct store_param *p, PGresult **res)
{
    struct pgs_args a;
    int rc = pgs_args_from(&a, p);

    if (rc != 0)
        return rc;
    return pgpool_tx_exec(tx, sql, a.n, a.vals, a.lens, a.fmts, res);
}

int pgs_read_one(struct store *s, const char *sql, const struct store_param *p, pgs_row_fn conv,
                 void *out)
{
    PGresult *r = NULL;
    int rc = pgs_exec(s, sql, p, PGPOOL_RETRY, &r);

    if (rc == 0 && PQntuples(r) == 0)
        rc = TV_ERR_NOT_FOUND;
    if (rc == 0)
        rc = conv(r, 0, out);
    PQclear(r);
    return rc;
}

int pgs_get_by_key(struct store *s, const char *sql, const char *key, size_t max, pgs_row_fn conv,
                   void *tmp, void *out, size_t size)
{
    struct store_param p[] = {STORE_TEXT(key), STORE_END};
    int rc = store_check_str(key, 1, max);

    if (rc != 0 || out == NULL)
        return TV_ERR_INVALID;
    rc = pgs_read_one(s, sql, p, conv, tmp);
    if (rc == 0)
        memcpy(out, tmp, size);
    OPENSSL_cleanse(tmp, size);
    return rc;
}

int pgs_query_int64(struct store *s, const char *sql, const char *arg, int64_t *value,
                    int *has_value)
{
    struct store_param p[] = {STORE_TEXT(arg), STORE_END};
    PGresult *r = NULL;
    int has = 0;
    int rc = pgs_exec(s, sql, arg != NULL ? p : NULL, PGPOOL_RETRY, &r);

    /* No row reads as no value: a count or min() over nothing, or an absent key. */
    if (rc == 0 && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) {
        has = 1;
        *value = pgs_col_int64(r, 0, 0);
    }
    PQclear(r);
    if (has_value != NULL)
        *has_value = has;
    return rc;
}

int pgs_count(struct store *s, const char *sql, int64_t *n)
{
    int64_t v = 0;
    int rc = n == NULL ? TV_ERR_INVALID : pgs_query_int64(s, sql, NULL, &v, NULL);

    if (rc == 0)
        *n = v;
    return rc;
}

int pgs_list_rows(struct store *s, const char *sql, const struct store_param *p, int limit,
                  void *out, size_t size, pgs_row_fn conv, int *n)
{
    PGresult *r = NULL;
    int count = 0;
    int rc = pgs_exec(s, sql, p, PGPOOL_RETRY, &r);

    for (int i = 0; rc == 0 && i < PQntuples(r) && count < limit; i++) {
        rc = conv(r, i, (char *)out + (size_t)count * size);
        if (rc == 0)
            count++;
    }
    PQclear(r);
    if (rc == 0)
        *n = count;
    return rc;
}

int64_t pgs_changes(PGresult *r)
{
    const char *t = PQcmdTuples(r);

    return t != NULL && t[0] != '\0' ? strtoll(t, NULL, 10) : 0;
}

int pgs_write_run(struct store *s, const char *sql, const struct store_param *p, int64_t *changes)
{
    PGresult *r = NULL;
    int rc = pgs_exec(s, sql, p, 0, &r);

    if (rc == 0 && changes != NULL)
        *changes = pgs_changes(r);
    PQclear(r);
    return rc;
}

int pgs_write_one(struct store *s, const char *sql, const struct store_param *p)
{
    int64_t changes = 0;
    int rc = pgs_write_run(s, sql, p, &changes);

    return rc == 0 && changes == 0 ? TV_ERR_NOT_FOUND : rc;
}

int pgs_col_text(const PGresult *r, int row, int col, char *dst, size_t cap)
{
    size_t n = PQgetisnull(r, row, col) ? 0 : (size_t)PQgetlength(r, row, col);

    if (n >= cap) {
        dst[0] = '\0';
        return TV_ERR_INTERNAL;
    }
    if (n > 0)
        memcpy(dst, PQgetvalue(r, row, col), n);
    dst[n] = '\0';
    return 0;
}

int64_t pgs_col_int64(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return 0;
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

int pgs_col_bytea(const PGresult *r, int row, int col, void *dst, size_t cap, size_t *len)
{
    unsigned char *b;
    size_t n = 0;
    int rc = 0;

    if (PQgetisnull(r, row, col))
        return TV_ERR_INTERNAL;
    b = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), &n);
    if (b == NULL)
        return TV_ERR_INTERNAL;
    *len = n;
    if (n > cap)
        rc = TV_ERR_TOO_LARGE;
    else if (n > 0)
        memcpy(dst, b, n);
    OPENSSL_cleanse(b, n);
    PQfreemem(b);
    /* The result's own text copy too: PQclear frees without wiping (meta holds secrets). */
    OPENSSL_cleanse(PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col));
    return rc;
}
