/* Pure retry policy of the ACS client: which attempt outcomes may be retried, what they end in,
 * how long to back off, and the retry-after headers. No I/O, no clock reads, no allocation;
 * thread-safe. Split out of client.c so that the rules can be tested as tables. */
#ifndef TV_ACS_RETRY_INT_H
#define TV_ACS_RETRY_INT_H

#include <stdint.h>

#include "acs/client.h"

/* Longest server-given wait we parse (one day); longer values are clamped to this. */
#define ACS_RETRY_AFTER_MAX_MS 86400000LL

/* What one HTTP attempt ended in, as the engine saw it. */
struct acs_attempt {
    int curl_code;    /* CURLcode of the transfer; 0 when a complete answer arrived */
    long http_status; /* status of the answer, 0 when none */
    int request_sent; /* nonzero when the request may have reached the server */
    int idempotent;   /* a CREATE that carries a customId: repeating it is safe */
};

/* Classifies one attempt for operation op. Returns the code the call ends with if no further
 * attempt is made (0 for a 2xx answer) and sets *retryable to 1 when another attempt is safe
 * and useful. A CREATE whose request may have reached the server and whose answer is missing
 * or a 500/502/504 is never retryable and ends in TV_ERR_UPSTREAM_UNKNOWN (TV_ERR_UPSTREAM_TIMEOUT
 * when the attempt timed out after sending), unless it is idempotent (a->idempotent): then it is
 * treated as the other operations are. */
int acs_retry_classify(enum acs_op op, const struct acs_attempt *a, int *retryable);

/* Whether an attempt of op that failed leaves ACS's action unknown: a CREATE (with a customId
 * or not) whose request may have reached ACS and that got no answer (a timeout, a lost
 * connection, a malformed reply) or a 500/502/504. Such a create without a customId ends the
 * call: in TV_ERR_UPSTREAM_TIMEOUT when nothing came back in time (the request was sent to an
 * ACS that did not answer), else in TV_ERR_UPSTREAM_UNKNOWN. 0 for every other op. */
int acs_retry_outcome_unknown(enum acs_op op, const struct acs_attempt *a);

/* Parses a retry-after-ms / x-ms-retry-after-ms value: decimal milliseconds, optional
 * surrounding blanks, clamped to ACS_RETRY_AFTER_MAX_MS. 0 or TV_ERR_PARSE. */
int acs_retry_parse_ms(const char *value, int64_t *out_ms);

/* Parses a Retry-After value: delay-seconds or an RFC 1123 HTTP date, the latter relative to
 * now_wall_ms (a date in the past gives 0). Clamped to ACS_RETRY_AFTER_MAX_MS. 0 or
 * TV_ERR_PARSE. */
int acs_retry_parse_retry_after(const char *value, int64_t now_wall_ms, int64_t *out_ms);

/* Full-jitter backoff before retry number `retry` (0 for the first retry): a value in
 * [0, min(max_ms, base_ms * 2^retry)] chosen by rnd (any 64-bit random number). */
int64_t acs_retry_backoff_ms(int retry, int64_t base_ms, int64_t max_ms, uint64_t rnd);

/* Wait before the next attempt: the jittered backoff, or the server-given wait when that is
 * longer (server_ms < 0 when none was given). A server's wait is honoured in full, never cut
 * short; the caller fails the call instead when the wait would overrun its deadline. */
int64_t acs_retry_wait_ms(int64_t backoff_ms, int64_t server_ms);

#endif
