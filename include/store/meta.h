/* Small key/value blobs the service keeps in the database, e.g. its session signing key (the
 * auth module converts keys to bytes, so the store stays unaware of their format). Values may
 * be secrets: callers wipe their copies. Thread-safe. */
#ifndef TV_STORE_META_H
#define TV_STORE_META_H

#include <stddef.h>

#include "store/store.h"

#define STORE_META_KEY_MAX 64
#define STORE_META_VALUE_MAX 65536

/* Copies the value of key into buf (cap bytes) and sets *len. 0, TV_ERR_NOT_FOUND,
 * TV_ERR_TOO_LARGE (cap too small; *len then receives the size needed), TV_ERR_INVALID (empty or
 * over-long key). */
int store_meta_get(struct store *s, const char *key, void *buf, size_t cap, size_t *len);

/* Sets key to data (len 0..STORE_META_VALUE_MAX bytes), replacing any value. */
int store_meta_put(struct store *s, const char *key, const void *data, size_t len);

/* Sets key to data only when key has no value yet: *inserted = 1 if this call stored it, 0 if
 * a value existed (then read it with store_meta_get). Lets two processes that start at once
 * agree on one generated key. */
int store_meta_put_if_absent(struct store *s, const char *key, const void *data, size_t len,
                             int *inserted);

/* Removes key. 0 or TV_ERR_NOT_FOUND. */
int store_meta_delete(struct store *s, const char *key);

#endif
