/* Strict parsing of what ACS clients send to acs-emulator: the token request bodies of create
 * and issue, the Teams exchange body (with the unverified Entra token inside), query parameters
 * and percent-encoded path segments. Pure functions; thread-safe. */
#ifndef TV_EMULATOR_REQPARSE_H
#define TV_EMULATOR_REQPARSE_H

#include <stddef.h>
#include <stdint.h>

#include "emu.h"
#include "tokens.h"

/* Scope bits, in the order acsScope lists them. */
#define EMU_SCOPE_CHAT 0x01u
#define EMU_SCOPE_VOIP 0x02u
#define EMU_SCOPE_CHAT_JOIN 0x04u
#define EMU_SCOPE_CHAT_JOIN_LIMITED 0x08u
#define EMU_SCOPE_VOIP_JOIN 0x10u

#define EMU_EXPIRES_MIN 60
#define EMU_EXPIRES_MAX 1440
#define EMU_OID_MAX 64
/* Longest customId accepted. ACS documents no limit; 256 characters is the emulator's own rule
 * (README: acs-emulator), roomy for e-mail addresses and hashes. */
#define EMU_CUSTOM_ID_MAX 256

struct emu_token_req {
    int want_token;             /* create: createTokenWithScopes given; issue: always 1 */
    unsigned scopes;            /* EMU_SCOPE_* bits, non-zero when want_token */
    int64_t expires_in_minutes; /* 60..1440; EMU_EXPIRES_MAX when not given */
    /* create: the customId (api-version 2025-03-02-preview only), "" when not given */
    char custom_id[EMU_CUSTOM_ID_MAX + 1];
};

struct emu_teams_req {
    char oid[EMU_OID_MAX + 1]; /* lowercased object id of the Teams user */
    int64_t exp_s;             /* exp of the Entra token */
};

/* Body of POST /identities (empty, {} or {"createTokenWithScopes":[...],"expiresInMinutes":N,
 * "customId":"..."}). customId is only taken with api-version 2025-03-02-preview: another
 * version, an empty, non-string or too long value is refused. 0 or TV_ERR_INVALID with a reason
 * in why (ACS ValidationError). */
int emu_req_create(const char *body, size_t len, enum emu_apiver v, struct emu_token_req *out,
                   char *why, size_t why_len);
/* Body of :issueAccessToken ({"scopes":[...],"expiresInMinutes":N}). 0 or TV_ERR_INVALID. */
int emu_req_issue(const char *body, size_t len, enum emu_apiver v, struct emu_token_req *out,
                  char *why, size_t why_len);
/* Body of /teamsUser/:exchangeAccessToken. The Entra token's signature is not checked; its
 * payload must hold oid == userId, appid (or azp) == appId and exp after now_s.
 * 0; TV_ERR_INVALID (400: bad body or mismatched ids) or TV_ERR_UNAUTHORIZED (401: malformed
 * or expired token), with a reason in why. */
int emu_req_teams(const char *body, size_t len, int64_t now_s, struct emu_teams_req *out, char *why,
                  size_t why_len);
/* acsScope text of a scope set ("chat,voip"). */
void emu_scopes_str(unsigned scopes, char out[EMU_SCOPE_STR_MAX]);

/* Value of query parameter name in query (the part after '?', may be NULL), percent-decoded into
 * out. 0, TV_ERR_NOT_FOUND, or TV_ERR_INVALID (bad escape, too long, or given twice). */
int emu_query_param(const char *query, const char *name, char *out, size_t out_len);
/* Percent-decodes in[0..len) into out. 0 or TV_ERR_INVALID (bad escape, NUL, too long). */
int emu_pct_decode(const char *in, size_t len, char *out, size_t out_len);

#endif
