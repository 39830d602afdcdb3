/* libFuzzer harness for the strict base64 codecs. Properties: decoding is exact (whatever
 * decodes re-encodes to the very same text, because decoding is strict), and encoding
 * round-trips (whatever is encoded decodes back to the same bytes), in both alphabets.
 * fuzz-sources: src/core/b64.c src/core/err.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/b64.h"
#include "core/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef int (*b64_decode_fn)(const char *in, size_t len, uint8_t **out, size_t *out_len);
typedef void (*b64_encode_fn)(const uint8_t *in, size_t n, char *out);

static void check_decode_exact(const uint8_t *data, size_t size, b64_decode_fn dec,
                               b64_encode_fn enc)
{
    uint8_t *out = NULL;
    size_t out_len = 12345;
    char *text;
    int rc = dec((const char *)data, size, &out, &out_len);

    if (rc != 0) {
        /* Failure leaves the outputs alone and is only ever a parse error here. */
        if (rc != TV_ERR_PARSE || out != NULL || out_len != 12345)
            abort();
        return;
    }
    text = malloc(b64_encoded_size(out_len));
    if (!text)
        abort();
    enc(out, out_len, text);
    if (strlen(text) != size || memcmp(text, data, size) != 0)
        abort();
    free(text);
    free(out);
}

static void check_encode_round_trip(const uint8_t *data, size_t size, b64_decode_fn dec,
                                    b64_encode_fn enc)
{
    char *text = malloc(b64_encoded_size(size));
    uint8_t *back = NULL;
    size_t back_len = 0;

    if (!text)
        abort();
    enc(data, size, text);
    if (strlen(text) + 1 > b64_encoded_size(size))
        abort();
    if (dec(text, strlen(text), &back, &back_len) != 0)
        abort();
    if (back_len != size || (size && memcmp(back, data, size) != 0))
        abort();
    free(back);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_decode_exact(data, size, b64_decode, b64_encode);
    check_decode_exact(data, size, b64url_decode, b64url_encode);
    check_encode_round_trip(data, size, b64_decode, b64_encode);
    check_encode_round_trip(data, size, b64url_decode, b64url_encode);
    return 0;
}
