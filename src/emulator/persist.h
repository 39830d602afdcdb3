/* Optional SQLite persistence of acs-emulator (--db FILE): identities with their revocation
 * state, and small named values (signing key, access key, resource id). WAL mode; one
 * connection guarded by an internal mutex, so every function is thread-safe and blocking. The
 * file holds secrets and is created mode 0600. */
#ifndef TV_EMULATOR_PERSIST_H
#define TV_EMULATOR_PERSIST_H

#include <stdint.h>

#include "emu.h"

struct emu_persist;

struct emu_identity_rec {
    char id[EMU_ID_MAX];
    int64_t created_ms;
    uint64_t gen;       /* revocation generation: tokens minted with an older one are revoked */
    int64_t revoked_ms; /* last revoke, 0 if never */
    int64_t deleted_ms; /* 0 while the identity lives */
    /* customId the identity was created with, NULL for none. Borrowed: points into the
     * registry's or the loader's memory, valid for the call it is handed to. */
    const char *custom_id;
};

typedef int (*emu_persist_identity_fn)(void *arg, const struct emu_identity_rec *rec);

/* Opens or creates the database and its schema. 0 or TV_ERR_IO (logged). */
int emu_persist_open(const char *path, struct emu_persist **out);
/* Closes the database. NULL is a no-op. */
void emu_persist_close(struct emu_persist *p);
/* Value of key into *out (malloc'd; wipe it if secret). 0, TV_ERR_NOT_FOUND, TV_ERR_IO or
 * TV_ERR_NOMEM. */
int emu_persist_meta_get(struct emu_persist *p, const char *key, char **out);
/* Stores key = value, replacing any earlier value. 0 or TV_ERR_IO. */
int emu_persist_meta_put(struct emu_persist *p, const char *key, const char *value);
/* Inserts or replaces the row of rec->id. 0 or TV_ERR_IO. */
int emu_persist_identity_put(struct emu_persist *p, const struct emu_identity_rec *rec);
/* Calls fn for every stored identity; stops early (and returns that code) when fn returns
 * non-zero. 0 or TV_ERR_IO. */
int emu_persist_identity_each(struct emu_persist *p, emu_persist_identity_fn fn, void *arg);

#endif
