/* Strict JSON front end for json-c. A small RFC 8259 scanner checks the text first (grammar,
 * UTF-8, escapes, NUL, integer range, depth) and counts object members; json-c then builds the
 * tree, and a member count lower than the scanner's reveals a duplicate key that json-c merged. */
#include "core/jsonx.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <json-c/printbuf.h>
#include <openssl/crypto.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/ident.h"

struct jsonx_scan {
    const char *p;
    const char *end;
    size_t members;
    int depth;
};

static int jsonx_scan_value(struct jsonx_scan *s);

static void jsonx_skip_ws(struct jsonx_scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int jsonx_hex4(const char *p, unsigned *out)
{
    unsigned v = 0;

    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return TV_ERR_PARSE;
    }
    *out = v;
    return 0;
}

/* Validates one UTF-8 sequence starting at s->p (a byte >= 0x80) and steps over it. The rules
 * are core/ident.c's, so a string the scanner accepts is one the id rule calls UTF-8. */
static int jsonx_utf8(struct jsonx_scan *s)
{
    uint32_t cp;
    size_t n = ident_utf8_decode((const unsigned char *)s->p, (size_t)(s->end - s->p), &cp);

    if (n == 0)
        return TV_ERR_PARSE;
    s->p += n;
    return 0;
}

static int jsonx_scan_string(struct jsonx_scan *s)
{
    if (s->p >= s->end || *s->p != '"')
        return TV_ERR_PARSE;
    s->p++;
    while (s->p < s->end) {
        unsigned char c = (unsigned char)*s->p;
        if (c == '"') {
            s->p++;
            return 0;
        }
        if (c < 0x20)
            return TV_ERR_PARSE;
        if (c >= 0x80) {
            if (jsonx_utf8(s))
                return TV_ERR_PARSE;
            continue;
        }
        if (c != '\\') {
            s->p++;
            continue;
        }
        if (s->end - s->p < 2)
            return TV_ERR_PARSE;
        c = (unsigned char)s->p[1];
        if (strchr("\"\\/bfnrt", c) && c) {
            s->p += 2;
            continue;
        }
        if (c != 'u' || s->end - s->p < 6)
            return TV_ERR_PARSE;
        {
            unsigned cp, lo;
            if (jsonx_hex4(s->p + 2, &cp) || cp == 0)
                return TV_ERR_PARSE;
            s->p += 6;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return TV_ERR_PARSE;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u' ||
                    jsonx_hex4(s->p + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    return TV_ERR_PARSE;
                s->p += 6;
            }
        }
    }
    return TV_ERR_PARSE;
}

static int jsonx_scan_number(struct jsonx_scan *s)
{
    const char *start = s->p;
    int integral = 1;
    char tmp[64];
    size_t n;

    if (s->p < s->end && *s->p == '-')
        s->p++;
    if (s->p >= s->end)
        return TV_ERR_PARSE;
    if (*s->p == '0') {
        s->p++;
    } else if (*s->p >= '1' && *s->p <= '9') {
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
    } else {
        return TV_ERR_PARSE;
    }
    if (s->p < s->end && *s->p == '.') {
        integral = 0;
        s->p++;
        if (s->p >= s->end || *s->p < '0' || *s->p > '9')
            return TV_ERR_PARSE;
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        integral = 0;
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (s->p >= s->end || *s->p < '0' || *s->p > '9')
            return TV_ERR_PARSE;
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
    }
    /* Refuse what json-c would silently saturate or round to infinity. */
    n = (size_t)(s->p - start);
    if (n >= sizeof(tmp))
        return TV_ERR_PARSE;
    memcpy(tmp, start, n);
    tmp[n] = '\0';
    errno = 0;
    if (integral)
        (void)strtoll(tmp, NULL, 10);
    else
        (void)strtod(tmp, NULL);
    return errno == ERANGE ? TV_ERR_PARSE : 0;
}

static int jsonx_scan_literal(struct jsonx_scan *s, const char *lit)
{
    size_t n = strlen(lit);

    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
        return TV_ERR_PARSE;
    s->p += n;
    return 0;
}

static int jsonx_scan_container(struct jsonx_scan *s, char close)
{
    int first = 1;

    if (++s->depth > JSONX_MAX_DEPTH)
        return TV_ERR_PARSE;
    s->p++;
    for (;;) {
        jsonx_skip_ws(s);
        if (s->p >= s->end)
            return TV_ERR_PARSE;
        if (*s->p == close && first)
            break;
        if (!first) {
            if (*s->p == close)
                break;
            if (*s->p != ',')
                return TV_ERR_PARSE;
            s->p++;
            jsonx_skip_ws(s);
        }
        first = 0;
        if (close == '}') {
            if (jsonx_scan_string(s))
                return TV_ERR_PARSE;
            jsonx_skip_ws(s);
            if (s->p >= s->end || *s->p != ':')
                return TV_ERR_PARSE;
            s->p++;
            s->members++;
        }
        if (jsonx_scan_value(s))
            return TV_ERR_PARSE;
    }
    s->p++;
    s->depth--;
    return 0;
}

static int jsonx_scan_value(struct jsonx_scan *s)
{
    jsonx_skip_ws(s);
    if (s->p >= s->end)
        return TV_ERR_PARSE;
    switch (*s->p) {
    case '{':
        return jsonx_scan_container(s, '}');
    case '[':
        return jsonx_scan_container(s, ']');
    case '"':
        return jsonx_scan_string(s);
    case 't':
        return jsonx_scan_literal(s, "true");
    case 'f':
        return jsonx_scan_literal(s, "false");
    case 'n':
        return jsonx_scan_literal(s, "null");
    default:
        return jsonx_scan_number(s);
    }
}

static size_t jsonx_count_members(struct json_object *o)
{
    size_t n = 0;

    if (json_object_is_type(o, json_type_object)) {
        json_object_object_foreach(o, key, val)
        {
            (void)key;
            n += 1 + jsonx_count_members(val);
        }
    } else if (json_object_is_type(o, json_type_array)) {
        size_t len = json_object_array_length(o);
        for (size_t i = 0; i < len; i++)
            n += jsonx_count_members(json_object_array_get_idx(o, i));
    }
    return n;
}

/* The tokener copies every string and number it reads into a scratch buffer (its printbuf) that
 * grows by realloc and is freed unwiped, so a secret in a body (a password, an access token)
 * would stay behind in freed memory. The scratch buffer is sized once, before parsing, to hold
 * the longest value the text can contain (no decoded value is longer than the text), so it never
 * moves, and it is wiped before it is freed. json-c 0.16 publishes struct json_tokener and
 * struct printbuf (marked "do not access"); there is no API for either step, and Debian 12 pins
 * the version, whose layout test_jsonx_wipe checks by observing the frees. */
static int tokener_scratch_reserve(struct json_tokener *tok, size_t len)
{
    struct printbuf *pb = tok->pb;
    if (pb == NULL || printbuf_memset(pb, 0, 0, (int)len + 1) < 0)
        return TV_ERR_NOMEM;
    printbuf_reset(pb);
    return 0;
}

static void tokener_scratch_wipe(struct json_tokener *tok)
{
    if (tok->pb != NULL && tok->pb->buf != NULL && tok->pb->size > 0)
        OPENSSL_cleanse(tok->pb->buf, (size_t)tok->pb->size);
}

/* Wipes the bytes of every string value under o (keys are names, never secrets). */
static void wipe_strings(struct json_object *o)
{
    if (o == NULL)
        return;
    if (json_object_is_type(o, json_type_string)) {
        buf_wipe_const(json_object_get_string(o), (size_t)json_object_get_string_len(o));
    } else if (json_object_is_type(o, json_type_object)) {
        json_object_object_foreach(o, key, v)
        {
            (void)key;
            wipe_strings(v);
        }
    } else if (json_object_is_type(o, json_type_array)) {
        size_t n = json_object_array_length(o);
        for (size_t i = 0; i < n; i++)
            wipe_strings(json_object_array_get_idx(o, i));
    }
}

void jsonx_put_wiped(struct json_object *o)
{
    wipe_strings(o);
    json_object_put(o);
}

int jsonx_parse(const char *text, size_t len, size_t max_len, struct json_object **out)
{
    struct jsonx_scan s = {.p = text, .end = text + len};
    struct json_tokener *tok;
    struct json_object *obj;

    if (len > max_len || len >= INT32_MAX)
        return TV_ERR_TOO_LARGE;
    if (jsonx_scan_value(&s))
        return TV_ERR_PARSE;
    jsonx_skip_ws(&s);
    if (s.p != s.end)
        return TV_ERR_PARSE;
    tok = json_tokener_new_ex(JSONX_MAX_DEPTH + 1);
    if (!tok || tokener_scratch_reserve(tok, len) != 0) {
        if (tok)
            json_tokener_free(tok);
        return TV_ERR_NOMEM;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    obj = json_tokener_parse_ex(tok, text, (int)len);
    if (!obj && json_tokener_get_error(tok) == json_tokener_continue)
        obj = json_tokener_parse_ex(tok, "", 1); /* a bare number needs a terminator */
    tokener_scratch_wipe(tok);
    json_tokener_free(tok);
    /* json-c represents a top-level null as NULL; no caller wants one, so it is refused. */
    if (!obj)
        return TV_ERR_PARSE;
    if (jsonx_count_members(obj) != s.members) {
        jsonx_put_wiped(obj);
        return TV_ERR_PARSE;
    }
    *out = obj;
    return 0;
}

int jsonx_get_string(struct json_object *obj, const char *key, size_t max_len, const char **out)
{
    struct json_object *v;
    int len;

    if (!obj || !json_object_is_type(obj, json_type_object))
        return TV_ERR_INVALID;
    if (!json_object_object_get_ex(obj, key, &v))
        return TV_ERR_NOT_FOUND;
    if (!json_object_is_type(v, json_type_string))
        return TV_ERR_INVALID;
    len = json_object_get_string_len(v);
    if (len <= 0 || (size_t)len > max_len)
        return TV_ERR_INVALID;
    *out = json_object_get_string(v);
    return 0;
}

int jsonx_get_int(struct json_object *obj, const char *key, int64_t min, int64_t max, int64_t *out)
{
    struct json_object *v;
    int64_t n;

    if (!obj || !json_object_is_type(obj, json_type_object))
        return TV_ERR_INVALID;
    if (!json_object_object_get_ex(obj, key, &v))
        return TV_ERR_NOT_FOUND;
    if (!json_object_is_type(v, json_type_int))
        return TV_ERR_INVALID;
    n = json_object_get_int64(v);
    if (n < min || n > max)
        return TV_ERR_INVALID;
    *out = n;
    return 0;
}

int jsonx_get_array(struct json_object *obj, const char *key, struct json_object **out)
{
    struct json_object *v;

    if (!obj || !json_object_is_type(obj, json_type_object))
        return TV_ERR_INVALID;
    if (!json_object_object_get_ex(obj, key, &v))
        return TV_ERR_NOT_FOUND;
    if (!json_object_is_type(v, json_type_array))
        return TV_ERR_INVALID;
    *out = v;
    return 0;
}

const char *jsonx_compact(struct json_object *obj)
{
    return json_object_to_json_string_ext(obj,
                                          JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

void jsonx_excerpt(const char *s, size_t max, char *out, size_t cap)
{
    size_t n = 0, i;

    if (cap == 0)
        return;
    /* Room for "..." and the NUL: the cut is marked rather than silent. */
    for (i = 0; i < max && s[i] != '\0' && n + 4 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        out[n++] = ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\' ? (char)ch : '?';
    }
    if (s[i] != '\0' && n + 4 <= cap) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}

#define JSONX_HINT_MAX 40 /* longer names get no "did you mean" */

/* Edit distance (insert, delete, substitute; ASCII case ignored) between a and b, both at most
 * JSONX_HINT_MAX bytes; a larger value for longer names. Two rows suffice. */
static size_t jsonx_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), prev[JSONX_HINT_MAX + 1], cur[JSONX_HINT_MAX + 1];

    if (la > JSONX_HINT_MAX || lb > JSONX_HINT_MAX)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] +
                         (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (lb + 1) * sizeof prev[0]);
    }
    return prev[lb];
}

int jsonx_check_members(struct json_object *obj, const char *const known[], char *msg, size_t cap)
{
    char name[JSONX_HINT_MAX + 4];

    if (!obj || !json_object_is_type(obj, json_type_object))
        return TV_ERR_INVALID;
    /* json-c keeps members in document order, so "first" means the caller's first. */
    json_object_object_foreach(obj, key, val)
    {
        const char *hint = NULL;
        size_t best = 3; /* a hint only within two edits */
        int ok = 0;

        (void)val;
        for (size_t i = 0; known[i] != NULL && !ok; i++) {
            size_t d = jsonx_distance(key, known[i]);
            ok = strcmp(key, known[i]) == 0;
            if (!ok && d < best) {
                best = d;
                hint = known[i];
            }
        }
        if (ok)
            continue;
        if (msg != NULL && cap > 0) {
            jsonx_excerpt(key, JSONX_HINT_MAX, name, sizeof name);
            if (hint != NULL)
                snprintf(msg, cap, "unknown field \"%s\"; did you mean \"%s\"?", name, hint);
            else
                snprintf(msg, cap, "unknown field \"%s\"", name);
        }
        return TV_ERR_INVALID;
    }
    return 0;
}
