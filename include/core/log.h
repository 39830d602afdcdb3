/* JSON-lines logging: one object per line on stderr (or a chosen fd) with ts, level, msg,
 * request_id and any extra fields. Each line is written with a single write(2), so threads may
 * log concurrently. Never pass a secret or a token to any of these functions. */
#ifndef TV_CORE_LOG_H
#define TV_CORE_LOG_H

#include <stdarg.h>
#include <stddef.h>

struct json_object;

enum log_level { LOGL_DEBUG, LOGL_INFO, LOGL_WARN, LOGL_ERROR, LOGL_OFF };

/* Sets the minimum level and the output descriptor (2 by default). Call before threads start. */
void log_setup(enum log_level min, int fd);
/* Parses "debug", "info", "warn"/"warning", "error", "off". 0 or TV_ERR_INVALID. */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level l);
/* True when a line at level l would be written. */
int log_enabled(enum log_level l);
/* Logs a formatted message; request_id may be NULL. */
void log_msg(enum log_level l, const char *request_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Logs msg with the members of `fields` (a JSON object, may be NULL; not consumed) merged into
 * the line. */
void log_fields(enum log_level l, const char *request_id, const char *msg,
                struct json_object *fields);
/* The last step before a line is written: copies the JSON text in[0..len) into out[cap] (never
 * more than cap bytes, no terminator) with every byte sequence that is not well-formed UTF-8
 * replaced by the escape \ufffd (one per offending byte) and DEL and the C1 controls escaped as
 * \u00XX, json-c having escaped the C0 ones, so every line is strict UTF-8 JSON whatever bytes a
 * client put into a logged string (a request target, a header). Returns the length of the full
 * result, which may exceed cap (call with cap 0 to measure). */
size_t log_json_clean(const char *in, size_t len, char *out, size_t cap);

#endif
