/* The token reply bodies of the API, {"token","expiresOn"[,"user":{"communicationUserId"}]}:
 * built by json-c, and by a serialiser of its own that produces the same bytes without json-c
 * (tests/fuzz/fuzz_token_json.c holds it to that). Thread-safe; nothing here keeps state. */
#include <stdint.h>
#include <string.h>

#include <json-c/json.h>

#include "token_json_int.h"

struct json_object *api_comm_user_json(const char *acs_id)
{
    struct json_object *u = json_object_new_object();
    json_object_object_add(u, "communicationUserId", json_object_new_string(acs_id));
    return u;
}

struct json_object *api_token_json(const char *token, const char *expires_on, const char *acs_id)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "token", json_object_new_string(token));
    json_object_object_add(o, "expiresOn",
                           json_object_new_string(expires_on != NULL ? expires_on : ""));
    if (acs_id != NULL)
        json_object_object_add(o, "user", api_comm_user_json(acs_id));
    return o;
}

/* Appends "s" (quoted) at out[*pos] when s needs no JSON escaping (printable ASCII other than
 * the quote and the backslash, as ACS tokens, ids and times always are) and fits before cap;
 * 0 on success. Anything else returns -1 and the caller lets json-c build the reply, so the
 * bytes sent are exactly the ones json-c would produce. */
static int plain_str_put(char *out, size_t cap, size_t *pos, const char *s)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    size_t n = strlen(s), i = 0;

    /* Eight bytes at a time (the token is ~1 KB): a byte is flagged when it is below 0x20, at
     * or above 0x7f, or a quote or backslash. The borrow trick flags exactly the bytes that
     * are zero (after the xor) or below 0x20 when no byte has its high bit set, which the
     * first test rules out. */
    for (; i + 8 <= n; i += 8) {
        uint64_t v, q, b, t;
        memcpy(&v, s + i, 8);
        q = v ^ (ones * '"');
        b = v ^ (ones * '\\');
        t = v + ones; /* 0x7f + 1 sets the high bit */
        if (((v | t) & highs) != 0 || ((v - ones * 0x20) & ~v & highs) != 0 ||
            ((q - ones) & ~q & highs) != 0 || ((b - ones) & ~b & highs) != 0)
            return -1;
    }
    for (; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\')
            return -1;
    }
    if (cap - *pos < n + 2)
        return -1;
    out[(*pos)++] = '"';
    memcpy(out + *pos, s, n);
    *pos += n;
    out[(*pos)++] = '"';
    return 0;
}

static int lit_put(char *out, size_t cap, size_t *pos, const char *lit)
{
    size_t n = strlen(lit);

    if (cap - *pos < n)
        return -1;
    memcpy(out + *pos, lit, n);
    *pos += n;
    return 0;
}

/* The token reply without json-c: serialising through json-c escapes the ~1 KB token byte by
 * byte and allocates an object tree per reply, a large share of a cache hit's CPU. */
size_t api_token_json_fast(const char *token, const char *expires_on, const char *acs_id, char *out,
                           size_t cap)
{
    size_t pos = 0;

    if (lit_put(out, cap, &pos, "{\"token\":") != 0 || plain_str_put(out, cap, &pos, token) != 0 ||
        lit_put(out, cap, &pos, ",\"expiresOn\":") != 0 ||
        plain_str_put(out, cap, &pos, expires_on != NULL ? expires_on : "") != 0)
        return 0;
    if (acs_id != NULL &&
        (lit_put(out, cap, &pos, ",\"user\":{\"communicationUserId\":") != 0 ||
         plain_str_put(out, cap, &pos, acs_id) != 0 || lit_put(out, cap, &pos, "}") != 0))
        return 0;
    if (lit_put(out, cap, &pos, "}") != 0)
        return 0;
    return pos;
}
