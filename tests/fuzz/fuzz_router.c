/* libFuzzer harness for the http router's pure parts (src/http/router.c): route patterns, path
 * matching, the percent-decoder of path parameters, request ids and the CORS origin list.
 * Properties: a match's parameters are the path's own non-empty, slash-free segments and
 * putting them back into the pattern gives the path again; a path built from the pattern and
 * any such segments matches with exactly those parameters; the decoder agrees with a plain
 * reference decoder; request ids follow their rule; every parsed origin is allowed.
 * Input: pattern (or origin list), a newline, then the path (or the segments, '/'-separated).
 * fuzz-sources: src/http/router.c */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "http/http_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define IN_MAX 4096

/* The reference decoder: "%" and two hex digits is one byte, anything else itself; an escape
 * cut short, a bad digit, a NUL byte or more than HTTP_PARAM_MAX input bytes is an error. */
static int ref_decode(const char *s, size_t len, char *out, size_t *out_len)
{
    static const char hexd[] = "0123456789abcdef0123456789ABCDEF";
    size_t i, j = 0;

    if (len > HTTP_PARAM_MAX)
        return -1;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            const char *h, *l;
            if (len - i < 3 || s[i + 1] == '\0' || s[i + 2] == '\0')
                return -1;
            h = strchr(hexd, s[i + 1]);
            l = strchr(hexd, s[i + 2]);
            if (h == NULL || l == NULL)
                return -1;
            c = (unsigned char)((((h - hexd) % 16) << 4) | ((l - hexd) % 16));
            i += 2;
        }
        if (c == 0)
            return -1;
        out[j++] = (char)c;
    }
    *out_len = j;
    return 0;
}

/* s[0..len) is copied to a buffer of exactly len bytes, so that ASan sees any read past it. */
static void check_decode(const char *text, size_t len)
{
    char want[IN_MAX];
    size_t want_len = 0;
    char *got = NULL, *s = malloc(len > 0 ? len : 1);
    int rc, ref;

    if (s == NULL)
        return;
    memcpy(s, text, len);
    rc = http_percent_decode(s, len, &got);
    ref = ref_decode(s, len, want, &want_len);

    if ((rc == 0) != (ref == 0) || (rc != 0 && rc != TV_ERR_PARSE))
        abort();
    if (rc == 0 && (strlen(got) != want_len || memcmp(got, want, want_len) != 0))
        abort();
    free(got);
    free(s);
}

static void check_req_id(const char *s)
{
    size_t n = strlen(s);
    int want = n >= 1 && n <= HTTP_REQ_ID_MAX &&
               strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;

    if (http_req_id_valid(s) != want)
        abort();
}

/* Matches path against pattern (already checked) and verifies what a match returns. */
static void check_match(const char *pattern, const char *path, size_t len)
{
    struct http_span params[HTTP_MAX_PARAMS];
    char back[IN_MAX];
    size_t n = 99, i, k = 0, pos = 0;
    const char *p;

    if (!http_pattern_match(pattern, path, len, params, &n))
        return;
    if (n > HTTP_MAX_PARAMS)
        abort();
    for (i = 0; i < n; i++) {
        if (params[i].len == 0 || params[i].off + params[i].len > len ||
            memchr(path + params[i].off, '/', params[i].len) != NULL)
            abort();
        check_decode(path + params[i].off, params[i].len);
    }
    /* Substitute the parameters back into the pattern: it must spell the path. */
    for (p = pattern; *p && pos < sizeof back; p++) {
        if (p[0] == '{' && p[1] == '}') {
            if (k >= n || pos + params[k].len > sizeof back)
                abort();
            memcpy(back + pos, path + params[k].off, params[k].len);
            pos += params[k].len;
            k++;
            p++;
        } else {
            back[pos++] = *p;
        }
    }
    if (k != n || pos != len || memcmp(back, path, len) != 0)
        abort();
}

/* Builds a path from pattern with each "{}" replaced by the next non-empty '/'-free piece of
 * segs; it must match, with exactly those pieces as parameters. */
static void check_synth(const char *pattern, const char *segs)
{
    struct http_span params[HTTP_MAX_PARAMS], want[HTTP_MAX_PARAMS];
    char path[IN_MAX];
    size_t pos = 0, k = 0, n = 0, i;
    const char *p, *s = segs;

    for (p = pattern; *p; p++) {
        if (p[0] == '{' && p[1] == '}') {
            size_t l;
            while (*s == '/')
                s++;
            l = strcspn(s, "/");
            if (l == 0)
                return; /* not enough pieces in this input */
            if (pos + l >= sizeof path || k >= HTTP_MAX_PARAMS)
                return;
            want[k].off = pos;
            want[k].len = l;
            memcpy(path + pos, s, l);
            pos += l;
            s += l;
            k++;
            p++;
        } else {
            if (pos + 1 >= sizeof path)
                return;
            path[pos++] = *p;
        }
    }
    if (!http_pattern_match(pattern, path, pos, params, &n) || n != k)
        abort();
    for (i = 0; i < k; i++)
        if (params[i].off != want[i].off || params[i].len != want[i].len)
            abort();
}

static void check_cors(const char *list)
{
    struct http_listener l;
    size_t i;

    memset(&l, 0, sizeof l);
    if (http_cors_parse(&l, list) == 0) {
        for (i = 0; i < l.norigins; i++)
            if (strlen(l.origins[i]) == 0 || !http_cors_allowed(&l, l.origins[i]))
                abort();
    }
    for (i = 0; i < l.norigins; i++)
        free(l.origins[i]);
    free(l.origins);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char in[IN_MAX + 1];
    char *nl, *pattern, *path;
    size_t path_len;

    if (size > IN_MAX)
        return 0;
    memcpy(in, data, size);
    in[size] = '\0';
    nl = memchr(in, '\n', size);
    pattern = in;
    path = nl != NULL ? nl + 1 : in + size;
    path_len = size - (size_t)(path - in);
    if (nl != NULL)
        *nl = '\0';

    check_decode(path, path_len);
    check_req_id(path);
    check_cors(pattern);
    if (strlen(pattern) == (size_t)(nl != NULL ? nl - in : (ptrdiff_t)size) &&
        http_pattern_check(pattern) == 0) {
        check_match(pattern, path, strnlen(path, path_len));
        check_synth(pattern, path);
    }
    return 0;
}
