/* Strict base64 and base64url. Hand-written rather than EVP_DecodeBlock because that one
 * accepts whitespace, ignores trailing garbage after padding and cannot say how many bytes
 * padding removed. */
#include "core/b64.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t b64_encoded_size(size_t n)
{
    return (n + 2) / 3 * 4 + 1;
}

static void b64_encode_with(const char *alpha, int pad, const uint8_t *in, size_t n, char *out)
{
    size_t i = 0;
    char *o = out;

    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = alpha[v >> 18];
        *o++ = alpha[(v >> 12) & 63];
        *o++ = alpha[(v >> 6) & 63];
        *o++ = alpha[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *o++ = alpha[v >> 18];
        *o++ = alpha[(v >> 12) & 63];
        if (pad) {
            *o++ = '=';
            *o++ = '=';
        }
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *o++ = alpha[v >> 18];
        *o++ = alpha[(v >> 12) & 63];
        *o++ = alpha[(v >> 6) & 63];
        if (pad)
            *o++ = '=';
    }
    *o = '\0';
}

void b64_encode(const uint8_t *in, size_t n, char *out)
{
    b64_encode_with(b64_std, 1, in, n, out);
}

void b64url_encode(const uint8_t *in, size_t n, char *out)
{
    b64_encode_with(b64_url, 0, in, n, out);
}

/* Character -> 6-bit value, -1 for anything outside the alphabet (padding, whitespace, NUL
 * and bytes >= 0x80 included). One load per character instead of a chain of range tests. */
static const int8_t b64_dec_std[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1, -1, 63,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1, -1, 0,  1,  2,  3,  4,  5,  6,
    7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, -1,
    -1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48,
    49, 50, 51, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};
static const int8_t b64_dec_url[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1, -1, 0,  1,  2,  3,  4,  5,  6,
    7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, 63,
    -1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48,
    49, 50, 51, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

/* padded: standard alphabet, length a multiple of 4 with 0-2 '='; else url alphabet, no '='. */
static int b64_decode_with(int url, const char *in, size_t len, uint8_t **out, size_t *out_len)
{
    const int8_t *dec = url ? b64_dec_url : b64_dec_std;
    const unsigned char *p = (const unsigned char *)in;
    size_t body = len, rem, olen, i, o = 0;
    uint8_t *buf;
    int32_t a, b, c, d;

    if (!url) {
        if (len % 4)
            return TV_ERR_PARSE;
        if (len && in[len - 1] == '=')
            body--;
        if (len > 1 && in[len - 2] == '=')
            body--;
    }
    rem = body % 4;
    if (rem == 1)
        return TV_ERR_PARSE;
    olen = body / 4 * 3 + (rem ? rem - 1 : 0);
    buf = malloc(olen ? olen : 1);
    if (!buf)
        return TV_ERR_NOMEM;
    for (i = 0; i + 4 <= body; i += 4) {
        a = dec[p[i]];
        b = dec[p[i + 1]];
        c = dec[p[i + 2]];
        d = dec[p[i + 3]];
        if ((a | b | c | d) < 0)
            goto fail;
        buf[o++] = (uint8_t)(a << 2 | b >> 4);
        buf[o++] = (uint8_t)(b << 4 | c >> 2);
        buf[o++] = (uint8_t)(c << 6 | d);
    }
    /* The last 2 or 3 characters: their leftover bits must be zero, otherwise two encodings
     * would decode alike. */
    if (rem >= 2) {
        a = dec[p[i]];
        b = dec[p[i + 1]];
        c = rem == 3 ? dec[p[i + 2]] : 0;
        if ((a | b | c) < 0)
            goto fail;
        buf[o++] = (uint8_t)(a << 2 | b >> 4);
        if (rem == 2 && (b & 0x0f) != 0)
            goto fail;
        if (rem == 3) {
            buf[o++] = (uint8_t)(b << 4 | c >> 2);
            if ((c & 0x03) != 0)
                goto fail;
        }
    }
    *out = buf;
    *out_len = olen;
    return 0;
fail:
    free(buf);
    return TV_ERR_PARSE;
}

int b64_decode(const char *in, size_t len, uint8_t **out, size_t *out_len)
{
    return b64_decode_with(0, in, len, out, out_len);
}

int b64url_decode(const char *in, size_t len, uint8_t **out, size_t *out_len)
{
    return b64_decode_with(1, in, len, out, out_len);
}
