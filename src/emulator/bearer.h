/* Microsoft Entra bearer tokens on acs-emulator's ACS routes (`--entra-jwks URL|FILE`): the
 * keyless mode's alternative to the HMAC signature. Keys come from the project's JWKS code
 * (auth/jwks.h: fetched in the background from a URL, or loaded once from a file); a token must
 * be RS256, signed by one of them, for the audience https://communication.azure.com, within its
 * exp/nbf give or take EMU_BEARER_LEEWAY_S, no longer-lived than EMU_BEARER_LIFETIME_MAX_S, and
 * from the configured issuer when one is set. Thread-safe after creation. */
#ifndef TV_EMULATOR_BEARER_H
#define TV_EMULATOR_BEARER_H

#include <stddef.h>
#include <stdint.h>

struct emu_bearer;

#define EMU_BEARER_AUD "https://communication.azure.com" /* or with a trailing "/" (v1 tokens) */
/* Clock skew allowed on exp/nbf (the smaller of this and the emulator's --max-clock-skew-s), and
 * the longest exp - iat accepted: Entra access tokens live 1-24 hours. */
#define EMU_BEARER_LEEWAY_S 300
#define EMU_BEARER_LIFETIME_MAX_S (2 * 86400)

/* source is an http(s) URL (fetched now and refreshed in the background; waits up to 5 s for the
 * first key set, then serves anyway and logs a warning) or a file holding a JWKS or one JWK.
 * issuer may be NULL (any iss). 0, TV_ERR_CONFIG (unreadable file, no usable key, bad URL;
 * logged) or TV_ERR_NOMEM. */
int emu_bearer_new(const char *source, const char *issuer, struct emu_bearer **out);
void emu_bearer_free(struct emu_bearer *b);
/* Whether authorization (the header value, may be NULL) uses the Bearer scheme. */
int emu_bearer_is_bearer(const char *authorization);
/* Verifies "Bearer <jwt>" as described above at wall-clock now. On failure a short reason (no
 * token bytes) goes to why[why_len]. 0 or TV_ERR_UNAUTHORIZED. */
int emu_bearer_check(struct emu_bearer *b, const char *authorization, int64_t skew_s, char *why,
                     size_t why_len);

#endif
