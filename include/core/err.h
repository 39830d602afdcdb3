/* One error table for the whole project: every fallible function returns 0 or one of these
 * codes; the table gives each a stable name (used in JSON error bodies) and the HTTP status
 * the service answers with. Pure data, thread-safe. */
#ifndef TV_CORE_ERR_H
#define TV_CORE_ERR_H

/* X(code, name, http_status, message) */
#define TV_ERR_TABLE(X)                                                                            \
    X(TV_OK, "ok", 200, "success")                                                                 \
    X(TV_ERR_NOMEM, "out_of_memory", 500, "out of memory")                                         \
    X(TV_ERR_INVALID, "invalid_request", 400, "invalid request")                                   \
    X(TV_ERR_TOO_LARGE, "too_large", 413, "input exceeds its size limit")                          \
    X(TV_ERR_PARSE, "malformed", 400, "malformed input")                                           \
    X(TV_ERR_CONFIG, "config_error", 500, "invalid configuration")                                 \
    X(TV_ERR_IO, "io_error", 500, "input/output error")                                            \
    X(TV_ERR_CRYPTO, "crypto_error", 500, "cryptographic operation failed")                        \
    X(TV_ERR_INTERNAL, "internal_error", 500, "internal error")                                    \
    X(TV_ERR_UNAUTHORIZED, "unauthorized", 401, "authentication required or failed")               \
    X(TV_ERR_FORBIDDEN, "forbidden", 403, "not allowed")                                           \
    X(TV_ERR_NOT_FOUND, "not_found", 404, "not found")                                             \
    X(TV_ERR_METHOD, "method_not_allowed", 405, "method not allowed")                              \
    X(TV_ERR_CONFLICT, "conflict", 409, "conflict")                                                \
    X(TV_ERR_MEDIA_TYPE, "unsupported_media_type", 415, "unsupported content type")                \
    X(TV_ERR_RATE_LIMITED, "rate_limited", 429, "too many requests")                               \
    X(TV_ERR_UNAVAILABLE, "unavailable", 503, "service unavailable")                               \
    X(TV_ERR_ACS_BAD_REQUEST, "acs_bad_request", 400, "ACS rejected the request")                  \
    X(TV_ERR_ACS_DENIED, "acs_denied", 502, "ACS denied the credentials")                          \
    X(TV_ERR_ACS_NOT_FOUND, "acs_not_found", 404, "ACS does not know the identity")                \
    X(TV_ERR_ACS_THROTTLED, "acs_throttled", 503, "ACS is throttling requests")                    \
    X(TV_ERR_ACS_UNAVAILABLE, "acs_unavailable", 503, "ACS is failing")                            \
    X(TV_ERR_ACS_STATUS, "acs_error", 502, "ACS answered with an unexpected status")               \
    X(TV_ERR_UPSTREAM_NETWORK, "upstream_network", 502, "could not reach ACS")                     \
    X(TV_ERR_UPSTREAM_TIMEOUT, "upstream_timeout", 504, "ACS did not answer in time")              \
    X(TV_ERR_UPSTREAM_UNKNOWN, "upstream_outcome_unknown", 502,                                    \
      "the ACS call may or may not have taken effect")                                             \
    X(TV_ERR_UPSTREAM_PROTOCOL, "upstream_protocol", 502, "ACS sent a malformed response")         \
    X(TV_ERR_SHUTDOWN, "shutting_down", 503, "shutting down")

enum tv_err {
#define TV_ERR_ENUM(code, name, status, msg) code,
    TV_ERR_TABLE(TV_ERR_ENUM)
#undef TV_ERR_ENUM
        TV_ERR__COUNT
};

/* Stable snake_case name of rc ("internal_error" for an unknown code). */
const char *err_name(int rc);
/* HTTP status the service answers rc with (500 for an unknown code). */
int err_http_status(int rc);
/* One-sentence English description of rc, without a trailing period. */
const char *err_message(int rc);

#endif
