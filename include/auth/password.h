/* Local-account passwords: Argon2id hashes in the PHC encoded form ("$argon2id$v=19$m=...") via
 * libargon2, random 16-byte salts, constant-time verification. Not a policy module (no strength
 * rules beyond a length of 1..1024 bytes). Thread-safe once the parameters are settled (the
 * first call settles them; password_params_set must precede any concurrent use). */
#ifndef TV_AUTH_PASSWORD_H
#define TV_AUTH_PASSWORD_H

#include <stddef.h>
#include <stdint.h>

#define PASSWORD_MIN_LEN 1
#define PASSWORD_MAX_LEN 1024
/* Room for an encoded hash with a 16-byte salt and a 32-byte tag at any sane parameters;
 * equals the store's accounts.password_hash capacity. */
#define PASSWORD_HASH_MAX 256
/* Environment variable that overrides the cost parameters: "t=N,m=KIB,p=N" (any subset, e.g.
 * "t=1,m=1024" for fast tests). Read once, on first use. */
#define PASSWORD_ENV_PARAMS "TOKENVEND_ARGON2"

/* Argon2id cost: t passes over m KiB of memory with p lanes. */
struct password_params {
    uint32_t t_cost;
    uint32_t m_cost_kib;
    uint32_t parallelism;
};

/* The production default: t=3, m=32768 KiB (32 MiB), p=1: about 90-110 ms per hash or
 * verification on the 2-core build machine (why: see password.c). */
void password_params_default(struct password_params *out);
/* The parameters new hashes use: the default, overridden by PASSWORD_ENV_PARAMS or by
 * password_params_set. */
void password_params_get(struct password_params *out);
/* Parses "t=N,m=KIB,p=N" (any subset; blanks not allowed) over *inout. 0 or TV_ERR_INVALID
 * (t 1..10, m 8*p..1048576, p 1..8). */
int password_params_parse(const char *s, struct password_params *inout);
/* Sets the parameters for new hashes (verification always uses those inside the hash). Call
 * before threads use this module. 0 or TV_ERR_INVALID. */
int password_params_set(const struct password_params *p);

/* Hashes pw[0..len) (1..PASSWORD_MAX_LEN bytes, any bytes) into out as a NUL-terminated
 * encoded string (cap >= PASSWORD_HASH_MAX is always enough). Blocks for the Argon2 cost.
 * 0, TV_ERR_INVALID (length), TV_ERR_TOO_LARGE (cap), TV_ERR_NOMEM or TV_ERR_CRYPTO; out is
 * untouched on failure. Never logs the password. */
int password_hash(const char *pw, size_t len, char *out, size_t cap);
/* Checks pw[0..len) against an encoded Argon2id hash (constant-time compare of the tags).
 * 0 when it matches; TV_ERR_UNAUTHORIZED for a wrong password, a bad length, or an encoded
 * string that is not a valid argon2id hash. Blocks for the hash's cost. */
int password_verify(const char *encoded, const char *pw, size_t len);
/* Spends what a password_verify of a hash made with the current parameters spends (it
 * verifies against such a hash of a random password, made once per parameter set) and
 * always returns TV_ERR_UNAUTHORIZED: call it for an unknown user name so that the response
 * time does not tell which account names exist. The first call (or password_dummy_prepare)
 * pays one extra hash. */
int password_verify_dummy(const char *pw, size_t len);
/* How many dummy verifications password_verify_dummy has run since the process started (a
 * count tests read instead of timing logins). */
unsigned long long password_dummy_count(void);
/* Makes the dummy hash now (at start, so no login pays for it). 0 or an error of
 * password_hash. */
int password_dummy_prepare(void);
/* 1 when the encoded hash was not made with the current parameters (another t, m, p or
 * Argon2 version, or not parsable), so a successful login should store a fresh hash; else 0. */
int password_needs_rehash(const char *encoded);
/* For a failed password_verify of encoded that began at started_ms (clock_mono_ms): when
 * encoded was made with other parameters than the current ones, blocks until the failure has
 * taken as long as a check at the current parameters last took (a cheaper, older hash would
 * otherwise fail faster than an unknown name or a current hash, and single out the account).
 * A hash dearer than the current parameters fails slower and is not evened out; the account's
 * next successful login rehashes it. Returns at once for a current hash. */
void password_pad_failure(const char *encoded, int64_t started_ms);
/* How many failures password_pad_failure has padded since the process started. */
unsigned long long password_pad_count(void);
/* Counts pw[0..len) in characters: Unicode code points when it is valid UTF-8, else bytes
 * (for the minimum-length rule). */
size_t password_length_chars(const char *pw, size_t len);

#endif
