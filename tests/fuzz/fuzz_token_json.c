/* libFuzzer harness for the token reply serialisers (src/api/token_json.c) and the secret-reply
 * serialiser of the http module (src/http/json_text.c). Properties: whenever
 * api_token_json_fast produces a body it is byte for byte the json-c one, and it declines only
 * when it must (a value needs escaping, or the body does not fit the buffer); http_json_text
 * always produces json-c's bytes, escapes included.
 * Input: a flags byte, then token, expiresOn and the ACS id separated by NUL bytes. Flags: bit 0
 * leaves out the user, bit 1 makes expiresOn NULL, bits 2-7 shrink the output buffer.
 * fuzz-sources: src/api/token_json.c src/http/json_text.c src/core/jsonx.c src/core/ident.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "api/token_json_int.h"
#include "core/jsonx.h"
#include "http/http_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OUT_MAX 4096 /* the size api/common.c gives it */

/* True when s needs no JSON escaping: printable ASCII but the quote and the backslash. */
static int plain(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e || *s == '"' || *s == '\\')
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in, *p, *end, *text = NULL;
    const char *field[3] = {"", "", ""};
    char out[OUT_MAX];
    const char *ref, *expires, *acs_id;
    struct json_object *o;
    size_t cap, got, want, i, text_len = 0;
    unsigned flags;

    if (size < 1)
        return 0;
    flags = data[0];
    in = malloc(size);
    if (in == NULL)
        return 0;
    memcpy(in, data + 1, size - 1);
    in[size - 1] = '\0';
    /* Up to three NUL-separated fields; the rest of the input, if any, is ignored. */
    p = in;
    end = in + size - 1;
    for (i = 0; i < 3 && p <= end; i++) {
        field[i] = p;
        p += strlen(p) + 1;
    }
    expires = (flags & 2) ? NULL : field[1];
    acs_id = (flags & 1) ? NULL : field[2];
    cap = OUT_MAX - (size_t)(flags >> 2) * 64;

    o = api_token_json(field[0], expires, acs_id);
    ref = jsonx_compact(o);
    if (ref == NULL)
        abort();
    want = strlen(ref);
    got = api_token_json_fast(field[0], expires, acs_id, out, cap);
    if (got > 0 && (got != want || memcmp(out, ref, want) != 0))
        abort(); /* the fast path wrote other bytes than json-c */
    if (got == 0 && plain(field[0]) && (expires == NULL || plain(expires)) &&
        (acs_id == NULL || plain(acs_id)) && want <= cap)
        abort(); /* it declined a body it could have written */
    if (http_json_text(o, &text, &text_len) != 0 || text_len != want ||
        memcmp(text, ref, want) != 0 || text[text_len] != '\0')
        abort(); /* the secret-reply serialiser wrote other bytes than json-c */
    free(text);
    json_object_put(o);
    free(in);
    return 0;
}
