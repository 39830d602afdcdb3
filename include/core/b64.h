/* Base64 (RFC 4648 section 4, padded) and base64url (section 5, unpadded) codecs. Decoding is
 * strict: no whitespace, no stray characters, correct padding and zero trailing bits.
 * Thread-safe. */
#ifndef TV_CORE_B64_H
#define TV_CORE_B64_H

#include <stddef.h>
#include <stdint.h>

/* Encoded length of n bytes including the NUL. */
size_t b64_encoded_size(size_t n);
/* Writes the padded encoding of in[0..n) and a NUL into out (b64_encoded_size(n) bytes). */
void b64_encode(const uint8_t *in, size_t n, char *out);
/* Writes the unpadded base64url encoding and a NUL into out (b64_encoded_size(n) bytes). */
void b64url_encode(const uint8_t *in, size_t n, char *out);
/* Decodes len characters of in into *out (malloc'd, caller frees; wipe it if secret) and sets
 * *out_len. 0, TV_ERR_PARSE or TV_ERR_NOMEM; outputs untouched on failure. */
int b64_decode(const char *in, size_t len, uint8_t **out, size_t *out_len);
int b64url_decode(const char *in, size_t len, uint8_t **out, size_t *out_len);

#endif
