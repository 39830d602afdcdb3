/* Identifiers: the one rule every id must pass where it enters tokenvend (app user ids, ACS ids,
 * account and API key names, from the APIs, the CLI and token claims), and the project's one
 * UTF-8 decoder, which the strict JSON scanner (core/jsonx.c) uses too. Pure functions over
 * their arguments; thread-safe. */
#ifndef TV_CORE_IDENT_H
#define TV_CORE_IDENT_H

#include <stddef.h>
#include <stdint.h>

#define IDENT_MAX 256     /* app user ids and ACS ids, in bytes */
#define IDENT_NAME_MAX 64 /* account and API key names, in bytes */

/* The namespace of local accounts: account NAME is app user id "local:NAME". OIDC user claims
 * that start with it are refused, so no OIDC subject can name a local account's user. */
#define IDENT_LOCAL_PREFIX "local:"
#define IDENT_LOCAL_PREFIX_LEN (sizeof IDENT_LOCAL_PREFIX - 1)
/* Room for "local:" + an account name + NUL. */
#define IDENT_LOCAL_ID_CAP (IDENT_LOCAL_PREFIX_LEN + IDENT_NAME_MAX + 1)

/* Why an id fails the rule (IDENT_OK when it passes). */
enum ident_fault {
    IDENT_OK = 0,
    IDENT_EMPTY,
    IDENT_TOO_LONG,
    IDENT_BAD_UTF8, /* not well-formed UTF-8: stray or missing continuation bytes, overlong
                       forms, surrogates, code points above U+10FFFF */
    IDENT_CONTROL,  /* a C0 control (NUL included), DEL or a C1 control (U+0080..U+009F) */
};

/* Decodes the UTF-8 sequence starting at s (left bytes available, left > 0): returns its length
 * (1..4) and stores the code point in *cp, or returns 0 when the bytes there are not one
 * well-formed sequence (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF, no
 * truncated sequence). */
size_t ident_utf8_decode(const unsigned char *s, size_t left, uint32_t *cp);

/* The id rule: s[0..len) is 1..max bytes of well-formed UTF-8 holding no control character
 * (C0 including NUL, DEL, C1). */
enum ident_fault ident_check(const char *s, size_t len, size_t max);
/* ident_check over a NUL-terminated string; NULL counts as empty. Only the first max + 1 bytes
 * are looked at, so an unterminated over-long input is not read past that. */
enum ident_fault ident_check_str(const char *s, size_t max);

/* Writes "<what> <reason>" for a fault into out[cap] (e.g. "userId is not valid UTF-8", "userId
 * must be 1..256 bytes"), never quoting the offending bytes; returns out. */
const char *ident_explain(enum ident_fault f, const char *what, size_t max, char *out, size_t cap);

/* Copies s into out[cap] for display: every byte that does not start a well-formed sequence and
 * every control character becomes U+FFFD, and the copy ends on a character boundary when it
 * must be cut. Returns 1 when anything was replaced or cut, else 0. */
int ident_sanitize(const char *s, char *out, size_t cap);

/* The app user id of local account name (which must pass the id rule within IDENT_NAME_MAX):
 * "local:" + name into out[cap] (cap >= IDENT_LOCAL_ID_CAP). 0, or -1 when name fails the rule
 * (out is then ""). */
int ident_local_user(const char *name, char *out, size_t cap);

/* Length of the longest prefix of s[0..len) that does not end inside a multi-byte sequence, for
 * cutting an id (already known to be well-formed) at a character boundary. */
size_t ident_utf8_cut(const char *s, size_t len);
/* Length of the longest prefix of the string s of at most max bytes that ends on a character
 * boundary: what "%.*s" may print of a well-formed id without cutting a character in two. */
size_t ident_utf8_prefix(const char *s, size_t max);

#endif
