/* Growable byte buffer with a hard ceiling: appends past `max` fail with TV_ERR_TOO_LARGE and
 * leave the contents unchanged. The data is always NUL-terminated. Not thread-safe. */
#ifndef TV_CORE_BUF_H
#define TV_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data; /* NULL until the first append; then NUL-terminated */
    size_t len;
    size_t cap;
    size_t max; /* ceiling on len */
};

/* Embeds an empty buffer that may grow to max bytes. Allocates nothing. */
void buf_init(struct buf *b, size_t max);
/* Frees the storage and re-initialises b (keeping max). */
void buf_release(struct buf *b);
/* As buf_release, but first overwrites the whole allocation (for secrets). */
void buf_release_wipe(struct buf *b);
/* Drops the contents, keeps the storage. */
void buf_reset(struct buf *b);
/* Appends n bytes. 0, TV_ERR_TOO_LARGE or TV_ERR_NOMEM. */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_append_str(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Overwrites n bytes at p with zeros the compiler cannot drop (OPENSSL_cleanse), for heap memory
 * the caller may write but reaches through a const pointer: a string json-c holds, a request body
 * libmicrohttpd handed over. Only for writable memory that nobody reads afterwards; the one place
 * that drops the const, so -Wcast-qual stays on everywhere else. NULL or n == 0 does nothing. */
void buf_wipe_const(const void *p, size_t n);
/* Copies the C string src (NULL: "") into dst[cap], cut to cap - 1 bytes, always terminated
 * when cap > 0: the one bounded string copy (no formatting machinery, so fit for hot paths).
 * 0, or TV_ERR_TOO_LARGE when src was cut (or cap is 0). */
int buf_copy_str(char *dst, size_t cap, const char *src);
/* Percent-decodes in[0..len) ("%2F" -> "/"; '+' stays '+') into dst[cap], terminated.
 * 0, TV_ERR_INVALID (an escape without two hex digits, or one that decodes to NUL, which C
 * strings downstream would cut silently) or TV_ERR_TOO_LARGE (no room; cap >= len + 1 always
 * suffices). dst is unspecified on failure. */
int buf_pct_decode(const char *in, size_t len, char *dst, size_t cap);
/* Contents as a C string ("" when empty); valid until the next append or release. */
const char *buf_cstr(const struct buf *b);
/* Hands the storage to the caller (free() it) and re-initialises b; "" for an empty buffer.
 * NULL only when out of memory. */
char *buf_take(struct buf *b);

#endif
