/* store_copy (store/copy.h): a check pass over every source row against the destination, then
 * one write transaction on the destination for the rows it lacks. The rows travel as generic
 * column values (copy_rows.h), so one loop serves every table on both backends. */
#include "store/copy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "copy_rows.h"
#include "core/err.h"
#include "core/ident.h"
#include "core/log.h"

#define COPY_PAGE 256 /* source rows held at once */

struct copy_run {
    struct store *from, *to;
    struct store_copy_report *rep;
    char *err;
    size_t errcap;
    struct copy_row *page; /* COPY_PAGE rows */
    int checking;          /* the check pass (repairs are counted once, there) */
};

/* Whether v's text is well-formed UTF-8 with no NUL: what PostgreSQL's text accepts. */
static int text_ok(const struct copy_val *v)
{
    for (size_t i = 0; i < v->len;) {
        uint32_t cp = 0;
        size_t n = ident_utf8_decode(v->p + i, v->len - i, &cp);
        if (n == 0 || cp == 0)
            return 0;
        i += n;
    }
    return 1;
}

/* Replaces every byte of v that does not start a well-formed sequence (and every NUL) with
 * U+FFFD. 0 or TV_ERR_NOMEM. */
static int text_repair(struct copy_val *v)
{
    static const unsigned char fffd[] = {0xEF, 0xBF, 0xBD};
    unsigned char *out = malloc(v->len * 3 + 1);
    size_t o = 0;
    int rc;

    if (out == NULL)
        return TV_ERR_NOMEM;
    for (size_t i = 0; i < v->len;) {
        uint32_t cp = 0;
        size_t n = ident_utf8_decode(v->p + i, v->len - i, &cp);
        if (n == 0 || cp == 0) {
            memcpy(out + o, fffd, sizeof fffd);
            o += sizeof fffd;
            i++;
        } else {
            memcpy(out + o, v->p + i, n);
            o += n;
            i += n;
        }
    }
    out[o] = '\0';
    rc = copy_val_set(v, out, o);
    OPENSSL_cleanse(out, o);
    free(out);
    return rc;
}

/* A SQLite store may hold text PostgreSQL refuses (an audit detail cut inside a character by
 * an older tokenvend). Into PostgreSQL: free text of the audit trail is repaired (U+FFFD, counted
 * in the report); anything else (an id, a name) stops the copy, naming the row. */
static int row_fit(struct copy_run *run, struct copy_row *r)
{
    char what[320];

    if (!store_is_pg(run->to))
        return 0;
    for (int c = 0; c < r->t->ncols; c++) {
        struct copy_val *v = &r->v[c];
        int key = 0;
        if ((r->t->types[c] != COPY_TEXT && r->t->types[c] != COPY_TEXT_NULL) || v->null ||
            v->p == NULL || text_ok(v))
            continue;
        for (int k = 0; k < r->t->nkeys; k++)
            key |= r->t->keys[k] == c;
        if (r->t->tab == COPY_AUDIT && !key) {
            int rc = text_repair(v);
            if (rc != 0)
                return rc;
            if (run->checking)
                run->rep->repaired++;
            continue;
        }
        copy_key_describe(r, r->t->keys[0], what, sizeof(what));
        snprintf(run->err, run->errcap,
                 "table %s: the row with %s holds text that is not UTF-8 in column %s, which "
                 "PostgreSQL cannot store; nothing was written",
                 r->t->name, what, r->t->cols[c]);
        return TV_ERR_INVALID;
    }
    return 0;
}

/* Called for each source row of a table; ctx is the caller's. */
typedef int (*row_fn)(struct copy_run *run, const struct copy_row *r, void *ctx);

/* Pages through table t of the source in key order, calling fn on each row. */
static int each_row(struct copy_run *run, const struct copy_table *t, row_fn fn, void *ctx)
{
    struct copy_row cursor = {.t = t};
    int key = t->keys[0];
    int n = COPY_PAGE;
    int rc = 0;
    int first = 1;

    while (rc == 0 && n == COPY_PAGE) {
        rc = copy_rows_page(run->from, t, first ? NULL : &cursor.v[key], COPY_PAGE, run->page, &n);
        for (int i = 0; rc == 0 && i < n; i++)
            if ((rc = row_fit(run, &run->page[i])) == 0)
                rc = fn(run, &run->page[i], ctx);
        if (rc == 0 && n > 0) {
            /* The cursor owns its copy of the last key: the page is reused. */
            copy_row_clear(&cursor);
            cursor.v[key] = run->page[n - 1].v[key];
            if (t->types[key] != COPY_INT)
                rc = copy_val_set(&cursor.v[key], run->page[n - 1].v[key].p,
                                  run->page[n - 1].v[key].len);
        }
        for (int i = 0; i < n; i++)
            copy_row_clear(&run->page[i]);
        first = 0;
    }
    copy_row_clear(&cursor);
    return rc;
}

/* Check pass context of one table. */
struct check_ctx {
    struct store_copy_count *count;
    int dest_empty; /* nothing to look up: every row is missing */
};

/* Where r stands in the destination: present (same values under its key), missing, or a
 * conflict (its key or another unique column taken by a row with other values). */
static int check_row(struct copy_run *run, const struct copy_row *r, void *arg)
{
    struct check_ctx *ctx = arg;
    struct copy_row found;
    char what[320];

    for (int k = 0; !ctx->dest_empty && k < r->t->nkeys; k++) {
        int rc, same;
        if (r->v[r->t->keys[k]].null)
            continue; /* a standalone identity has no app user: nothing to collide with */
        rc = copy_rows_find(run->to, r, k, &found);
        if (rc == TV_ERR_NOT_FOUND)
            continue;
        if (rc != 0) {
            snprintf(run->err, run->errcap, "cannot read table %s of the destination: %s",
                     r->t->name, err_message(rc));
            return rc;
        }
        /* Found by its primary key with every value equal: this very row. Found by another
         * unique column, it is a row with another key, so never the same. */
        same = k == 0 && copy_row_equal(r, &found);
        copy_row_clear(&found);
        if (same) {
            ctx->count->present++;
            return 0;
        }
        copy_key_describe(r, r->t->keys[k], what, sizeof(what));
        snprintf(run->err, run->errcap,
                 "table %s: the destination already has a row with %s whose values differ from "
                 "the source's; nothing was written",
                 r->t->name, what);
        return TV_ERR_CONFLICT;
    }
    ctx->count->copied++;
    return 0;
}

static int check_all(struct copy_run *run)
{
    int rc = 0;

    for (int i = 0; rc == 0 && i < COPY_TABLES; i++) {
        const struct copy_table *t = &copy_tables[i];
        struct check_ctx ctx = {&run->rep->tables[i], 0};
        int64_t held = 0;
        rc = copy_rows_count(run->to, t, &held);
        if (rc != 0) {
            snprintf(run->err, run->errcap, "cannot read table %s of the destination: %s", t->name,
                     err_message(rc));
            break;
        }
        ctx.dest_empty = held == 0;
        rc = each_row(run, t, check_row, &ctx);
        if (rc != 0 && run->err[0] == '\0')
            snprintf(run->err, run->errcap, "cannot read table %s of the source: %s", t->name,
                     err_message(rc));
        run->rep->copied += ctx.count->copied;
        run->rep->present += ctx.count->present;
    }
    return rc;
}

/* Write pass context of one table. */
struct write_ctx {
    struct copy_writer *w;
    int64_t inserted;
};

static int write_row(struct copy_run *run, const struct copy_row *r, void *arg)
{
    struct write_ctx *ctx = arg;
    int ins = 0;
    int rc = copy_rows_insert(ctx->w, r, &ins);

    if (rc != 0)
        snprintf(run->err, run->errcap, "cannot write table %s of the destination: %s", r->t->name,
                 err_message(rc));
    ctx->inserted += ins;
    return rc;
}

/* A copy_write_fn: every table's missing rows in the destination's one transaction. It may run
 * twice (PostgreSQL, connection lost before COMMIT), so it keeps no state across runs. */
static int write_all(struct copy_writer *w, void *arg)
{
    struct copy_run *run = arg;
    int rc = 0;

    for (int i = 0; rc == 0 && i < COPY_TABLES; i++) {
        const struct copy_table *t = &copy_tables[i];
        struct write_ctx ctx = {w, 0};
        int64_t want = run->rep->tables[i].copied;
        run->err[0] = '\0';
        rc = each_row(run, t, write_row, &ctx);
        if (rc != 0 && run->err[0] == '\0')
            snprintf(run->err, run->errcap, "cannot read table %s of the source: %s", t->name,
                     err_message(rc));
        if (rc == 0 && ctx.inserted != want) {
            snprintf(run->err, run->errcap,
                     "table %s changed during the copy (%lld rows to copy, %lld went in); nothing "
                     "was written: stop the services on both stores and run it again",
                     t->name, (long long)want, (long long)ctx.inserted);
            rc = TV_ERR_CONFLICT;
        }
        if (rc == 0 && want > 0 && (rc = copy_rows_fix_ids(w, t)) != 0)
            snprintf(run->err, run->errcap, "cannot move the id sequence of table %s: %s", t->name,
                     err_message(rc));
    }
    return rc;
}

/* 0 when s is at this binary's latest schema, else TV_ERR_CONFIG (or a store error). */
static int schema_check(struct store *s, const char *which, char *err, size_t errcap)
{
    int cur = 0, latest = 0;
    int rc = store_schema_version(s, &cur, &latest);

    if (rc != 0)
        snprintf(err, errcap, "cannot read the schema version of the %s: %s", which,
                 err_message(rc));
    else if (cur > latest)
        snprintf(err, errcap,
                 "the %s is at schema version %d, newer than this tokenvend's %d: use the "
                 "tokenvend that wrote it",
                 which, cur, latest);
    else if (cur < latest)
        snprintf(err, errcap,
                 "the %s is at schema version %d, this tokenvend's is %d: run 'tokenvend "
                 "migrate' on it first",
                 which, cur, latest);
    return rc != 0 ? rc : cur != latest ? TV_ERR_CONFIG : 0;
}

int store_copy(struct store *from, struct store *to, int mode, struct store_copy_report *rep,
               char *err, size_t errcap)
{
    struct copy_run run = {from, to, rep, err, errcap, NULL, 0};
    int rc;

    if (err == NULL || errcap == 0)
        return TV_ERR_INVALID;
    err[0] = '\0';
    if (from == NULL || to == NULL || rep == NULL) {
        snprintf(err, errcap, "store_copy: a store or the report is missing");
        return TV_ERR_INVALID;
    }
    memset(rep, 0, sizeof(*rep));
    for (int i = 0; i < COPY_TABLES; i++)
        rep->tables[i].table = copy_tables[i].name;
    rep->ntables = COPY_TABLES;
    if ((rc = schema_check(from, "source", err, errcap)) != 0 ||
        (rc = schema_check(to, "destination", err, errcap)) != 0)
        return rc;
    if ((run.page = calloc(COPY_PAGE, sizeof(*run.page))) == NULL) {
        snprintf(err, errcap, "out of memory");
        return TV_ERR_NOMEM;
    }
    run.checking = 1;
    rc = check_all(&run);
    run.checking = 0;
    if (rc == 0 && mode != STORE_COPY_CHECK && rep->copied > 0) {
        rc = copy_rows_write(to, write_all, &run);
        if (rc != 0 && err[0] == '\0')
            snprintf(err, errcap, "the destination's transaction failed: %s", err_message(rc));
        rep->written = rc == 0;
    }
    if (rc == 0)
        log_msg(LOGL_INFO, NULL, "store copy: %lld rows %s, %lld already present",
                (long long)rep->copied, mode == STORE_COPY_CHECK ? "to copy" : "copied",
                (long long)rep->present);
    free(run.page);
    return rc;
}
