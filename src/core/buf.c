/* Bounded growable buffer. */
#include "core/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/err.h"

void buf_init(struct buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void buf_release(struct buf *b)
{
    free(b->data);
    buf_init(b, b->max);
}

void buf_release_wipe(struct buf *b)
{
    if (b->data)
        OPENSSL_cleanse(b->data, b->cap);
    buf_release(b);
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

/* Makes room for `extra` more bytes plus the terminating NUL. */
static int buf_reserve(struct buf *b, size_t extra)
{
    size_t need, cap;
    char *p;

    if (extra > b->max || b->len > b->max - extra)
        return TV_ERR_TOO_LARGE;
    need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    p = realloc(b->data, cap);
    if (!p)
        return TV_ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
    int rc = buf_reserve(b, n);

    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int buf_append_str(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
    va_list copy;
    int n, rc;

    va_copy(copy, ap);
    n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0)
        return TV_ERR_INVALID;
    rc = buf_reserve(b, (size_t)n);
    if (rc)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

const char *buf_cstr(const struct buf *b)
{
    return b->data ? b->data : "";
}

char *buf_take(struct buf *b)
{
    char *p = b->data;

    if (!p)
        p = calloc(1, 1);
    buf_init(b, b->max);
    return p;
}

void buf_wipe_const(const void *p, size_t n)
{
    /* Through uintptr_t: the caller vouches that the memory is writable (see the header). */
    if (p != NULL && n > 0)
        OPENSSL_cleanse((void *)(uintptr_t)p, n);
}

int buf_copy_str(char *dst, size_t cap, const char *src)
{
    size_t n;

    if (cap == 0)
        return TV_ERR_TOO_LARGE;
    n = src != NULL ? strnlen(src, cap) : 0;
    if (n == cap) {
        memcpy(dst, src, cap - 1);
        dst[cap - 1] = '\0';
        return TV_ERR_TOO_LARGE;
    }
    if (n > 0)
        memcpy(dst, src, n);
    dst[n] = '\0';
    return 0;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int buf_pct_decode(const char *in, size_t len, char *dst, size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '%') {
            int hi = i + 2 < len ? hex_digit(in[i + 1]) : -1;
            int lo = i + 2 < len ? hex_digit(in[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return TV_ERR_INVALID;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0')
            return TV_ERR_INVALID;
        if (o + 1 >= cap)
            return TV_ERR_TOO_LARGE;
        dst[o++] = c;
    }
    if (cap == 0)
        return TV_ERR_TOO_LARGE;
    dst[o] = '\0';
    return 0;
}
