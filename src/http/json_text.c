/* Compact JSON text of a json-c tree, written into one buffer sized in advance, for replies that
 * hold a secret. json-c's own serialiser grows its buffer by realloc while it writes, and each
 * move leaves a copy of what was written so far (a token, say) in freed memory that nobody
 * wipes; here the text is measured first, so the only copy is the one the caller wipes. Strings
 * and names are escaped as json-c 0.16 escapes them with JSON_C_TO_STRING_PLAIN and
 * JSON_C_TO_STRING_NOSLASHESCAPE (tests/fuzz/fuzz_token_json.c compares the two); numbers and
 * booleans, never secret, are json-c's own text. Thread-safe. */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/err.h"
#include "core/jsonx.h"
#include "http_int.h"

/* Where the text goes: out NULL only measures. */
struct json_text {
    char *out;
    size_t pos;
};

static void jt_put(struct json_text *t, const char *s, size_t n)
{
    if (t->out != NULL)
        memcpy(t->out + t->pos, s, n);
    t->pos += n;
}

static void jt_string(struct json_text *t, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, start = 0;

    jt_put(t, "\"", 1);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc;
        char u[6] = {'\\', 'u', '0', '0', 0, 0};

        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            if (c >= 0x20)
                continue;
            esc = NULL;
            break;
        }
        jt_put(t, s + start, i - start);
        if (esc != NULL) {
            jt_put(t, esc, 2);
        } else {
            u[4] = hex[c >> 4];
            u[5] = hex[c & 15];
            jt_put(t, u, sizeof u);
        }
        start = i + 1;
    }
    jt_put(t, s + start, n - start);
    jt_put(t, "\"", 1);
}

static int jt_value(struct json_text *t, struct json_object *o, int depth)
{
    const char *text;
    size_t i, n;
    int first = 1;

    if (depth > JSONX_MAX_DEPTH)
        return TV_ERR_INVALID;
    switch (json_object_get_type(o)) {
    case json_type_string:
        jt_string(t, json_object_get_string(o), (size_t)json_object_get_string_len(o));
        return 0;
    case json_type_array:
        jt_put(t, "[", 1);
        n = json_object_array_length(o);
        for (i = 0; i < n; i++) {
            if (i > 0)
                jt_put(t, ",", 1);
            if (jt_value(t, json_object_array_get_idx(o, i), depth + 1) != 0)
                return TV_ERR_INVALID;
        }
        jt_put(t, "]", 1);
        return 0;
    case json_type_object:
        jt_put(t, "{", 1);
        json_object_object_foreach(o, key, child)
        {
            if (!first)
                jt_put(t, ",", 1);
            first = 0;
            jt_string(t, key, strlen(key));
            jt_put(t, ":", 1);
            if (jt_value(t, child, depth + 1) != 0)
                return TV_ERR_INVALID;
        }
        jt_put(t, "}", 1);
        return 0;
    case json_type_null:
        jt_put(t, "null", 4);
        return 0;
    default: /* numbers and booleans: json-c's text, in the child's own buffer */
        text = jsonx_compact(o);
        if (text == NULL)
            return TV_ERR_NOMEM;
        jt_put(t, text, strlen(text));
        return 0;
    }
}

int http_json_text(struct json_object *o, char **out, size_t *len)
{
    struct json_text t = {NULL, 0};
    int rc;

    if ((rc = jt_value(&t, o, 0)) != 0)
        return rc;
    t.out = malloc(t.pos + 1);
    if (t.out == NULL)
        return TV_ERR_NOMEM;
    *len = t.pos;
    t.pos = 0;
    if ((rc = jt_value(&t, o, 0)) != 0 || t.pos != *len) {
        free(t.out); /* cannot happen: the tree did not change between the passes */
        return rc != 0 ? rc : TV_ERR_INTERNAL;
    }
    t.out[t.pos] = '\0';
    *out = t.out;
    return 0;
}
