/* The id rule and the UTF-8 decoder. Ids end up in JSON replies, audit rows, log lines and
 * terminals: bytes that are not UTF-8 make strict JSON parsers reject a whole page, and control
 * characters forge log lines or terminal output, so both are refused where an id enters. */
#include "core/ident.h"

#include <stdio.h>
#include <string.h>

/* U+FFFD REPLACEMENT CHARACTER in UTF-8. */
static const char ident_fffd[] = "\xEF\xBF\xBD";

size_t ident_utf8_decode(const unsigned char *s, size_t left, uint32_t *cp)
{
    uint32_t v;
    size_t n;

    if (left == 0)
        return 0;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    /* 0xC0 and 0xC1 could only start overlong two-byte forms; 0xF5.. would exceed U+10FFFF. */
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        n = 2;
        v = s[0] & 0x1Fu;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        n = 3;
        v = s[0] & 0x0Fu;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        n = 4;
        v = s[0] & 0x07u;
    } else {
        return 0;
    }
    if (left < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3Fu);
    }
    if ((n == 3 && v < 0x800) || (n == 4 && (v < 0x10000 || v > 0x10FFFF)) ||
        (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

static int ident_is_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

enum ident_fault ident_check(const char *s, size_t len, size_t max)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;

    if (s == NULL || len == 0)
        return IDENT_EMPTY;
    if (len > max)
        return IDENT_TOO_LONG;
    while (i < len) {
        uint32_t cp = 0;
        size_t n = ident_utf8_decode(u + i, len - i, &cp);
        if (n == 0)
            return IDENT_BAD_UTF8;
        if (ident_is_control(cp))
            return IDENT_CONTROL;
        i += n;
    }
    return IDENT_OK;
}

enum ident_fault ident_check_str(const char *s, size_t max)
{
    return ident_check(s, s != NULL ? strnlen(s, max + 1) : 0, max);
}

const char *ident_explain(enum ident_fault f, const char *what, size_t max, char *out, size_t cap)
{
    if (cap == 0)
        return out;
    switch (f) {
    case IDENT_OK:
        snprintf(out, cap, "%s is valid", what);
        break;
    case IDENT_EMPTY:
    case IDENT_TOO_LONG:
        snprintf(out, cap, "%s must be 1..%zu bytes", what, max);
        break;
    case IDENT_BAD_UTF8:
        snprintf(out, cap, "%s is not valid UTF-8", what);
        break;
    case IDENT_CONTROL:
        snprintf(out, cap, "%s must not contain control characters", what);
        break;
    }
    return out;
}

int ident_sanitize(const char *s, char *out, size_t cap)
{
    const unsigned char *u = (const unsigned char *)(s != NULL ? s : "");
    size_t len = strlen((const char *)u), i = 0, o = 0;
    int changed = 0;

    if (cap == 0)
        return 1;
    while (i < len) {
        uint32_t cp = 0;
        size_t n = ident_utf8_decode(u + i, len - i, &cp);
        const char *piece = (const char *)u + i;
        size_t plen = n;

        if (n == 0 || ident_is_control(cp)) {
            piece = ident_fffd;
            plen = sizeof ident_fffd - 1;
            changed = 1;
            n = n == 0 ? 1 : n; /* a bad byte is replaced alone; a control as a whole */
        }
        if (o + plen >= cap) {
            changed = 1;
            break;
        }
        memcpy(out + o, piece, plen);
        o += plen;
        i += n;
    }
    out[o] = '\0';
    return changed;
}

int ident_local_user(const char *name, char *out, size_t cap)
{
    if (cap > 0)
        out[0] = '\0';
    if (cap < IDENT_LOCAL_ID_CAP || ident_check_str(name, IDENT_NAME_MAX) != IDENT_OK)
        return -1;
    snprintf(out, cap, "%s%s", IDENT_LOCAL_PREFIX, name);
    return 0;
}

size_t ident_utf8_cut(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t start = len, need;

    if (len == 0)
        return 0;
    /* Step back over continuation bytes to the lead byte of the last sequence. */
    while (start > 0 && (u[start - 1] & 0xC0) == 0x80 && len - start < 3)
        start--;
    if (start == 0)
        return len;
    need = u[start - 1] >= 0xF0 ? 4 : u[start - 1] >= 0xE0 ? 3 : u[start - 1] >= 0xC0 ? 2 : 1;
    /* The lead byte is u[start - 1]: keep its sequence only when it is complete. */
    return len - (start - 1) >= need ? len : start - 1;
}

size_t ident_utf8_prefix(const char *s, size_t max)
{
    return ident_utf8_cut(s, strnlen(s, max));
}
