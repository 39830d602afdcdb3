/* Retry policy of the ACS client (see retry_int.h). Pure functions, thread-safe. */
#include "retry_int.h"

#include <ctype.h>
#include <curl/curl.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/err.h"

/* Transport failures that say nothing reached the server: safe to retry for every operation. */
static int curl_code_not_sent(int code)
{
    return code == CURLE_COULDNT_RESOLVE_HOST || code == CURLE_COULDNT_RESOLVE_PROXY ||
           code == CURLE_COULDNT_CONNECT;
}

/* Transport failures worth another attempt: the network or the peer may recover. */
static int curl_code_transient(int code)
{
    switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return 1;
    default:
        return 0;
    }
}

static int status_rc(long s)
{
    if (s == 400)
        return TV_ERR_ACS_BAD_REQUEST;
    if (s == 401 || s == 403)
        return TV_ERR_ACS_DENIED;
    if (s == 404)
        return TV_ERR_ACS_NOT_FOUND;
    if (s == 408)
        return TV_ERR_UPSTREAM_TIMEOUT;
    if (s == 429)
        return TV_ERR_ACS_THROTTLED;
    if (s >= 500 && s <= 599)
        return TV_ERR_ACS_UNAVAILABLE;
    return TV_ERR_ACS_STATUS;
}

int acs_retry_classify(enum acs_op op, const struct acs_attempt *a, int *retryable)
{
    /* A create with a customId is answered with the same identity when repeated. */
    int create = op == ACS_OP_CREATE && !a->idempotent;
    int rc;

    *retryable = 0;
    if (a->curl_code == CURLE_OK) {
        long s = a->http_status;
        if (s >= 200 && s <= 299)
            return 0;
        rc = status_rc(s);
        /* 408, 429 and 503 mean the server did not act on the request, so even a create may
         * go again. 500, 502 and 504 may come after the work was done. */
        if (s == 408 || s == 429 || s == 503)
            *retryable = 1;
        else if (s == 500 || s == 502 || s == 504) {
            if (create)
                rc = TV_ERR_UPSTREAM_UNKNOWN;
            else
                *retryable = 1;
        }
        return rc;
    }
    if (a->curl_code == CURLE_WRITE_ERROR || a->curl_code == CURLE_WEIRD_SERVER_REPLY ||
        a->curl_code == CURLE_BAD_CONTENT_ENCODING || a->curl_code == CURLE_FILESIZE_EXCEEDED)
        rc = TV_ERR_UPSTREAM_PROTOCOL;
    else if (a->curl_code == CURLE_OPERATION_TIMEDOUT)
        rc = TV_ERR_UPSTREAM_TIMEOUT;
    else
        rc = TV_ERR_UPSTREAM_NETWORK;
    /* A create sent and not answered in time stays a timeout (504: ACS did not answer), not
     * retried; acs_retry_outcome_unknown tells that its effect is unknown. */
    if (create && a->request_sent && !curl_code_not_sent(a->curl_code))
        return rc == TV_ERR_UPSTREAM_TIMEOUT ? rc : TV_ERR_UPSTREAM_UNKNOWN;
    *retryable = curl_code_transient(a->curl_code);
    return rc;
}

int acs_retry_outcome_unknown(enum acs_op op, const struct acs_attempt *a)
{
    if (op != ACS_OP_CREATE)
        return 0;
    if (a->curl_code == CURLE_OK)
        return a->http_status == 500 || a->http_status == 502 || a->http_status == 504;
    return a->request_sent && !curl_code_not_sent(a->curl_code);
}

/* Copies value without surrounding blanks into out (cap bytes). 0 or TV_ERR_PARSE. */
static int trim_copy(const char *value, char *out, size_t cap)
{
    size_t n;

    if (value == NULL)
        return TV_ERR_PARSE;
    while (*value == ' ' || *value == '\t')
        value++;
    n = strlen(value);
    while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t' || value[n - 1] == '\r' ||
                     value[n - 1] == '\n'))
        n--;
    if (n == 0 || n >= cap)
        return TV_ERR_PARSE;
    memcpy(out, value, n);
    out[n] = '\0';
    return 0;
}

/* Parses a run of decimal digits (nothing else), saturating at limit. */
static int parse_digits(const char *s, int64_t limit, int64_t *out)
{
    int64_t v = 0;

    if (*s == '\0')
        return TV_ERR_PARSE;
    for (; *s != '\0'; s++) {
        if (!isdigit((unsigned char)*s))
            return TV_ERR_PARSE;
        if (v < limit)
            v = v * 10 + (*s - '0');
        if (v > limit)
            v = limit;
    }
    *out = v;
    return 0;
}

int acs_retry_parse_ms(const char *value, int64_t *out_ms)
{
    char tmp[64];
    int64_t v;

    if (trim_copy(value, tmp, sizeof(tmp)) != 0 || parse_digits(tmp, ACS_RETRY_AFTER_MAX_MS, &v))
        return TV_ERR_PARSE;
    *out_ms = v;
    return 0;
}

int acs_retry_parse_retry_after(const char *value, int64_t now_wall_ms, int64_t *out_ms)
{
    char tmp[64];
    int64_t v;
    time_t t;

    if (trim_copy(value, tmp, sizeof(tmp)) != 0)
        return TV_ERR_PARSE;
    if (parse_digits(tmp, ACS_RETRY_AFTER_MAX_MS / 1000, &v) == 0) {
        *out_ms = v * 1000;
        return 0;
    }
    if (clock_parse_http_date(tmp, &t) != 0)
        return TV_ERR_PARSE;
    v = (int64_t)t * 1000 - now_wall_ms;
    if (v < 0)
        v = 0;
    if (v > ACS_RETRY_AFTER_MAX_MS)
        v = ACS_RETRY_AFTER_MAX_MS;
    *out_ms = v;
    return 0;
}

int64_t acs_retry_backoff_ms(int retry, int64_t base_ms, int64_t max_ms, uint64_t rnd)
{
    int64_t cap = base_ms < 0 ? 0 : base_ms;

    if (max_ms < 0)
        max_ms = 0;
    /* Doubling stops at the ceiling, so no shift can overflow. */
    for (int i = 0; i < retry && cap < max_ms; i++)
        cap *= 2;
    if (cap > max_ms)
        cap = max_ms;
    return (int64_t)(rnd % (uint64_t)(cap + 1));
}

int64_t acs_retry_wait_ms(int64_t backoff_ms, int64_t server_ms)
{
    int64_t wait = backoff_ms;

    if (server_ms > wait)
        wait = server_ms;
    return wait < 0 ? 0 : wait;
}
