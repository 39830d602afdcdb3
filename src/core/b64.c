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

static int b64_value(char c, int url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    if (c == (url ? '_' : '/'))
        return 63;
    return -1;
}

/* padded: standard alphabet, length a multiple of 4 with 0-2 '='; else url alphabet, no '='. */
static int b64_decode_with(int url, const char *in, size_t len, uint8_t **out, size_t *out_len)
{
    size_t body = len, rem, olen, i, o = 0;
    uint8_t *buf;
    uint32_t acc = 0;
    int bits = 0;

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
    for (i = 0; i < body; i++) {
        int v = b64_value(in[i], url);
        if (v < 0)
            goto fail;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* Leftover bits must be zero, otherwise two encodings would decode alike. */
    if (acc != 0)
        goto fail;
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
