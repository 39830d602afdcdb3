/* Time helpers: monotonic milliseconds for deadlines, wall-clock seconds, and the two text
 * formats ACS uses (RFC 1123 for x-ms-date, ISO 8601 / RFC 3339 UTC for expiresOn).
 * Thread-safe. */
#ifndef TV_CORE_CLOCK_H
#define TV_CORE_CLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define CLOCK_HTTP_DATE_LEN 30 /* "Fri, 27 Nov 2026 09:44:01 GMT" + NUL */
#define CLOCK_ISO_LEN 32       /* "2026-11-27T09:44:01.000Z" + NUL, with room */

/* Monotonic clock in milliseconds (for deadlines and durations only). */
int64_t clock_mono_ms(void);
/* Wall clock in milliseconds since the epoch. */
int64_t clock_wall_ms(void);
/* Formats t as an RFC 1123 date in GMT ("Fri, 27 Nov 2026 09:44:01 GMT"). */
void clock_http_date(time_t t, char out[CLOCK_HTTP_DATE_LEN]);
/* Parses an RFC 1123 date (GMT only). 0 or TV_ERR_PARSE. */
int clock_parse_http_date(const char *s, time_t *out);
/* Formats ms since the epoch as "2026-11-27T09:44:01.000Z". */
void clock_iso8601(int64_t ms, char out[CLOCK_ISO_LEN]);
/* Parses an RFC 3339 UTC timestamp ("...Z" or "+00:00", optional fraction) into ms since the
 * epoch. 0 or TV_ERR_PARSE. */
int clock_parse_iso8601(const char *s, int64_t *out_ms);
/* Sleeps for ms milliseconds (restarts on EINTR). Blocking: CLI and tests only. */
void clock_sleep_ms(int64_t ms);

#endif
