/* RS256 signing key, JWT minting and verification, and the JWKS of acs-emulator. A key is
 * immutable after creation and may be shared by all threads (OpenSSL 3 signs concurrently with
 * one EVP_PKEY and per-call contexts). Never log a token or a key. */
#ifndef TV_EMULATOR_TOKENS_H
#define TV_EMULATOR_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#include "emu.h"

struct emu_keys;

#define EMU_SKYPEID_MAX 128
#define EMU_SCOPE_STR_MAX 96
#define EMU_JTI_MAX 40
#define EMU_TOKEN_MAX 4096

/* Claims of one emulator token. skypeid is the identity without its "8:" prefix
 * ("acs:<resource>_<uuid>" or "orgid:<oid>"); gen is the identity's revocation generation when
 * the token was minted. */
struct emu_claims {
    char skypeid[EMU_SKYPEID_MAX];
    int64_t scp;
    char acs_scope[EMU_SCOPE_STR_MAX];
    char resource_id[EMU_UUID_LEN];
    int64_t iat; /* seconds */
    int64_t exp; /* seconds */
    uint64_t gen;
    char jti[EMU_JTI_MAX];
};

enum emu_token_reason {
    EMU_TOKEN_OK,
    EMU_TOKEN_MALFORMED,
    EMU_TOKEN_BAD_SIGNATURE,
    EMU_TOKEN_EXPIRED,
    EMU_TOKEN_REVOKED,
    EMU_TOKEN_DELETED
};

/* Generates an RSA-2048 key. 0, TV_ERR_CRYPTO or TV_ERR_NOMEM. */
int emu_keys_generate(struct emu_keys **out);
/* Loads a PKCS#8 PEM private RSA key of pem_len bytes. 0, TV_ERR_CRYPTO or TV_ERR_NOMEM. */
int emu_keys_from_pem(const char *pem, size_t pem_len, struct emu_keys **out);
/* Exports the private key as PKCS#8 PEM into *out (malloc'd; wipe with OPENSSL_cleanse and free).
 * 0, TV_ERR_CRYPTO or TV_ERR_NOMEM. */
int emu_keys_to_pem(const struct emu_keys *k, char **out);
void emu_keys_free(struct emu_keys *k);
/* The key id: uppercase hex SHA-1 of the DER public key (also the x5t, base64url). */
const char *emu_keys_kid(const struct emu_keys *k);
/* {"keys":[{"kty":"RSA","kid","alg":"RS256","use":"sig","n","e","x5t"}]} into *out (malloc'd).
 * 0, TV_ERR_CRYPTO or TV_ERR_NOMEM. */
int emu_keys_jwks(const struct emu_keys *k, char **out);

/* Signs payload (a JSON object's text) with k's fixed RS256 header into a compact JWT in *out
 * (malloc'd; the caller wipes and frees it). Used by the stand-in Entra endpoint (entra.h).
 * 0, TV_ERR_CRYPTO or TV_ERR_NOMEM. */
int emu_keys_sign_json(const struct emu_keys *k, const char *payload, char **out);
/* Mints a compact RS256 JWT for c into *out (malloc'd; the caller wipes and frees it). The
 * payload holds skypeid, scp, csi, iat, exp, acsScope, resourceId, resourceLocation, rgn, jti
 * and gen. 0, TV_ERR_CRYPTO or TV_ERR_NOMEM. */
int emu_token_mint(const struct emu_keys *k, const struct emu_claims *c, char **out);
/* Parses and checks the signature of a token minted by k (expiry and revocation are the
 * caller's). Returns EMU_TOKEN_OK (and fills *out), EMU_TOKEN_MALFORMED or
 * EMU_TOKEN_BAD_SIGNATURE; *out is filled as far as the payload could be read otherwise. */
enum emu_token_reason emu_token_verify(const struct emu_keys *k, const char *token, size_t len,
                                       struct emu_claims *out);
/* "ok", "malformed", "bad_signature", "expired", "revoked", "deleted". */
const char *emu_token_reason_name(enum emu_token_reason r);

#endif
