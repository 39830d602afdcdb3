/* Strict, bounded JSON helpers over json-c. json_tokener alone accepts trailing bytes, keeps the
 * last of duplicate keys, converts strings to numbers on request and saturates huge integers;
 * these wrappers refuse all of that. Thread-safe. */
#ifndef TV_CORE_JSONX_H
#define TV_CORE_JSONX_H

#include <stddef.h>
#include <stdint.h>

struct json_object;

#define JSONX_MAX_DEPTH 16

/* Parses exactly len bytes as one JSON value (trailing whitespace allowed, nothing else), at
 * most max_len bytes and JSONX_MAX_DEPTH deep, rejecting duplicate object keys and strings
 * holding NUL; a bare top-level `null` is refused too. On success *out is a new reference
 * (json_object_put it). 0, TV_ERR_TOO_LARGE or TV_ERR_PARSE. */
int jsonx_parse(const char *s, size_t len, size_t max_len, struct json_object **out);
/* Wipes every string value in o's tree (OPENSSL_cleanse), then drops the reference: for a tree
 * that held a secret (a password, an access token). The caller must hold the only reference.
 * NULL is ignored. jsonx_parse itself leaves no copy of the text behind in freed memory. */
void jsonx_put_wiped(struct json_object *o);
/* Member `key` of obj as a string of 1..max_len bytes; *out borrows from obj.
 * 0, TV_ERR_NOT_FOUND when absent, TV_ERR_INVALID when of another type or length. */
int jsonx_get_string(struct json_object *obj, const char *key, size_t max_len, const char **out);
/* Member `key` as an integer (a JSON number without fraction or exponent) within [min, max].
 * 0, TV_ERR_NOT_FOUND when absent, TV_ERR_INVALID otherwise. */
int jsonx_get_int(struct json_object *obj, const char *key, int64_t min, int64_t max, int64_t *out);
/* Member `key` as an array; *out borrows. 0, TV_ERR_NOT_FOUND, TV_ERR_INVALID. */
int jsonx_get_array(struct json_object *obj, const char *key, struct json_object **out);
/* Checks that every member of object obj is named in known[] (NULL-terminated). 0, or
 * TV_ERR_INVALID with one sentence for the caller in msg (cap bytes, may be NULL) naming the
 * first member in document order that is not: `unknown field "expiresInMinute"; did you mean
 * "expiresInMinutes"?` (the hint when a known name is within two edits, ignoring case). The
 * name is shown with anything but printable ASCII as '?' and cut at 40 bytes, since it is the
 * caller's text going into a reply. */
int jsonx_check_members(struct json_object *obj, const char *const known[], char *msg, size_t cap);
/* Writes s into out (cap >= 1 bytes) as a quotable excerpt of at most max bytes: printable ASCII
 * kept except '"' and '\\', everything else as '?', "..." appended when cut. For echoing a caller's
 * text (a field or scope name) in an error message. */
void jsonx_excerpt(const char *s, size_t max, char *out, size_t cap);
/* Serialises obj compactly, without escaping '/'. The string borrows from obj. */
const char *jsonx_compact(struct json_object *obj);

#endif
