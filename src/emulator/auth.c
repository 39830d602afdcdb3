/* HMAC request authentication for acs-emulator. The SDKs sign "x-ms-date;host;x-ms-content-
 * sha256"; the ACS service also accepts the standard Date header in place of x-ms-date, so a
 * signature naming "date" is verified against that header instead. */
#include "auth.h"

#include <stdio.h>
#include <string.h>

#include "acs/signer.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"

#define AUTH_PREFIX_XMS "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature="
#define AUTH_PREFIX_DATE "HMAC-SHA256 SignedHeaders=date;host;x-ms-content-sha256&Signature="

static void auth_why(char *why, size_t why_len, const char *msg)
{
    if (why_len > 0)
        (void)buf_copy_str(why, why_len, msg);
}

int emu_auth_check(const uint8_t *key, size_t key_len, const struct emu_auth_input *in,
                   int64_t now_s, int64_t max_skew_s, char *why, size_t why_len)
{
    int rc = TV_ERR_UNAUTHORIZED;
    char rewritten[ACS_AUTH_MAX];
    const char *auth = in->authorization;
    const char *date;
    time_t signed_at;
    int64_t skew;

    if (!in->method || !in->path_and_query || !in->host || !*in->host) {
        auth_why(why, why_len, "The request has no Host header.");
        goto out;
    }
    if (!auth || !*auth) {
        auth_why(why, why_len, "The Authorization header is missing.");
        goto out;
    }
    if (!in->content_sha256) {
        auth_why(why, why_len, "The x-ms-content-sha256 header is missing.");
        goto out;
    }
    if (strncmp(auth, AUTH_PREFIX_XMS, sizeof(AUTH_PREFIX_XMS) - 1) == 0) {
        /* A client that sends only Date signs that value under the x-ms-date name. */
        date = in->x_ms_date ? in->x_ms_date : in->date;
    } else if (strncmp(auth, AUTH_PREFIX_DATE, sizeof(AUTH_PREFIX_DATE) - 1) == 0) {
        /* Same string-to-sign with the Date value; the verifier only knows the x-ms-date form,
         * so hand it the equivalent header. */
        const char *sig = auth + sizeof(AUTH_PREFIX_DATE) - 1;
        if (strlen(sig) >= sizeof(rewritten) - (sizeof(AUTH_PREFIX_XMS) - 1)) {
            auth_why(why, why_len, "The Authorization header is malformed.");
            goto out;
        }
        snprintf(rewritten, sizeof(rewritten), "%s%s", AUTH_PREFIX_XMS, sig);
        auth = rewritten;
        date = in->date;
    } else {
        auth_why(why, why_len,
                 "The Authorization header is not HMAC-SHA256 over x-ms-date;host;"
                 "x-ms-content-sha256.");
        goto out;
    }
    if (!date || !*date) {
        auth_why(why, why_len, "The signed date header is missing.");
        goto out;
    }
    if (clock_parse_http_date(date, &signed_at) != 0) {
        auth_why(why, why_len, "The signed date is not an RFC 1123 date.");
        goto out;
    }
    skew = (int64_t)signed_at - now_s;
    if (skew > max_skew_s || skew < -max_skew_s) {
        auth_why(why, why_len, "The signed date is outside the allowed clock skew.");
        goto out;
    }
    if (acs_sign_verify(key, key_len, in->method, in->path_and_query, in->host, date, in->body,
                        in->body_len, in->content_sha256, auth) != 0) {
        auth_why(why, why_len, "The request signature or content hash is invalid.");
        goto out;
    }
    rc = 0;
out:
    return rc;
}
