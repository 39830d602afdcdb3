/* Copying every table from one store to another (`tokenvend store copy`): SQLite to
 * PostgreSQL for a node that grows into replicas, and back. Rows are kept as they are: ids,
 * times, hashes, session epochs, revoked marks, outbox attempts and leases, audit rows, and
 * meta (the session signing key, encrypted with secret_key: the destination works with the same
 * secret_key). Not copied: create_claims (a claim means something only while the process that
 * holds it runs), token_cache (kept tokens are a cache, sealed under the source's cache_key: the
 * destination's services issue fresh ones) and schema_migrations (each store records its own).
 * Blocking; run it while no service writes to either store. */
#ifndef TV_STORE_COPY_H
#define TV_STORE_COPY_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define STORE_COPY_TABLES 7

/* What happened to one table's rows. */
struct store_copy_count {
    const char *table; /* a static name: "mappings", "api_keys"... */
    int64_t copied;    /* rows written (STORE_COPY_CHECK: rows that would be) */
    int64_t present;   /* rows the destination already held, identical */
};

struct store_copy_report {
    struct store_copy_count tables[STORE_COPY_TABLES]; /* in copy order */
    int ntables;
    int64_t copied, present; /* the sums */
    int64_t repaired;        /* audit text that was not UTF-8, copied into PostgreSQL with U+FFFD */
    int written;             /* 1 when a transaction wrote the rows (0: checked, or none to copy) */
};

enum store_copy_mode {
    STORE_COPY_WRITE = 0, /* check, then write */
    STORE_COPY_CHECK = 1, /* check only: the report says what a copy would do */
};

/* Copies every table of from into to. Both must be at this binary's latest schema (migrate the
 * destination first: store_open_opts with STORE_MIGRATE_YES). First every source row is looked
 * up in to by each of its unique columns: one that is there with the same values counts as
 * present; one whose key (or another unique column) is taken by a row with other values stops
 * the copy before anything is written, with TV_ERR_CONFLICT and a message naming the table and
 * the key. Then, unless nothing is missing or mode is STORE_COPY_CHECK, the missing rows are
 * inserted in ONE transaction on to, after which PostgreSQL's id sequences are moved past the
 * copied ids; if the stores changed between the two steps (a different number of rows went
 * in), the transaction is rolled back with TV_ERR_CONFLICT. On failure one line in err (errcap
 * bytes; names tables and keys, never a value of a hash or blob) and: TV_ERR_CONFIG (a schema
 * not at the latest version), TV_ERR_CONFLICT, or a store error. *rep is filled as far as the
 * copy got. */
int store_copy(struct store *from, struct store *to, int mode, struct store_copy_report *rep,
               char *err, size_t errcap);

#endif
