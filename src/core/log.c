/* JSON-lines logger. Lines are built with json-c, so any message text is escaped, then made
 * plain ASCII-safe JSON (log_json_clean) and written with one write(2) so concurrent lines never
 * interleave. */
#include "core/log.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/ident.h"

#define LOG_MSG_MAX 2048

static atomic_int log_min = LOGL_INFO;
static atomic_int log_fd = 2;

static const char *const log_names[] = {"debug", "info", "warn", "error", "off"};

void log_setup(enum log_level min, int fd)
{
    atomic_store(&log_min, (int)min);
    atomic_store(&log_fd, fd);
}

int log_level_parse(const char *s, enum log_level *out)
{
    static const struct {
        const char *name;
        enum log_level level;
    } names[] = {{"debug", LOGL_DEBUG},  {"info", LOGL_INFO},   {"warn", LOGL_WARN},
                 {"warning", LOGL_WARN}, {"error", LOGL_ERROR}, {"off", LOGL_OFF}};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return TV_ERR_INVALID;
}

const char *log_level_name(enum log_level l)
{
    if ((int)l < 0 || l > LOGL_OFF)
        return "info";
    return log_names[l];
}

int log_enabled(enum log_level l)
{
    return l != LOGL_OFF && (int)l >= atomic_load(&log_min);
}

/* Appends the six-byte escape \u00XX (or \uXXXX) for cp at out[pos..], within cap. */
static size_t log_put_escape(char *out, size_t cap, size_t pos, uint32_t cp)
{
    static const char hex[] = "0123456789abcdef";
    char e[6] = {'\\',        'u', hex[(cp >> 12) & 15], hex[(cp >> 8) & 15], hex[(cp >> 4) & 15],
                 hex[cp & 15]};

    for (size_t i = 0; i < sizeof(e); i++, pos++) {
        if (pos < cap)
            out[pos] = e[i];
    }
    return pos;
}

size_t log_json_clean(const char *in, size_t len, char *out, size_t cap)
{
    const unsigned char *u = (const unsigned char *)in;
    size_t pos = 0, i = 0;

    while (i < len) {
        uint32_t cp = u[i];
        size_t n = 1;

        if (u[i] >= 0x80)
            n = ident_utf8_decode(u + i, len - i, &cp);
        if (n == 0) {
            /* Not well-formed UTF-8 (request targets and headers carry any bytes): one
             * replacement character per byte that starts no well-formed sequence, as a strict
             * consumer would otherwise reject the whole line. */
            pos = log_put_escape(out, cap, pos, 0xFFFDu);
            i++;
            continue;
        }
        /* json-c already escapes C0 controls inside strings (and none occur outside one); DEL
         * and the C1 controls it passes raw are escaped too, so no log byte can drive a
         * terminal or be mistaken for a line break by a lax reader. */
        if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
            pos = log_put_escape(out, cap, pos, cp);
        } else {
            for (size_t k = 0; k < n; k++, pos++) {
                if (pos < cap)
                    out[pos] = (char)u[i + k];
            }
        }
        i += n;
    }
    return pos;
}

/* Writes text (len bytes of json-c output) cleaned, plus a newline, with one write(2). */
static void log_write_line(const char *text, size_t len)
{
    /* Lines are short but for the odd long message or target; those take the heap. */
    char stackbuf[LOG_MSG_MAX * 2];
    char *p = stackbuf;
    size_t need = log_json_clean(text, len, NULL, 0) + 1;
    ssize_t w;

    if (need > sizeof(stackbuf)) {
        p = malloc(need);
        if (!p)
            return;
    }
    log_json_clean(text, len, p, need - 1);
    p[need - 1] = '\n';
    w = write(atomic_load(&log_fd), p, need);
    (void)w;
    if (p != stackbuf)
        free(p);
}

static void log_emit(enum log_level l, const char *request_id, const char *msg,
                     struct json_object *fields)
{
    struct json_object *line = json_object_new_object();
    char ts[CLOCK_ISO_LEN];
    const char *text;

    if (!line)
        return;
    clock_iso8601(clock_wall_ms(), ts);
    json_object_object_add(line, "ts", json_object_new_string(ts));
    json_object_object_add(line, "level", json_object_new_string(log_level_name(l)));
    json_object_object_add(line, "msg", json_object_new_string(msg));
    if (request_id && *request_id)
        json_object_object_add(line, "request_id", json_object_new_string(request_id));
    if (fields && json_object_is_type(fields, json_type_object)) {
        json_object_object_foreach(fields, key, val)
        {
            /* The fixed members above win over a field of the same name. */
            if (!json_object_object_get_ex(line, key, NULL))
                json_object_object_add(line, key, json_object_get(val));
        }
    }
    text = json_object_to_json_string_ext(line,
                                          JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    if (text)
        log_write_line(text, strlen(text));
    json_object_put(line);
}

void log_msg(enum log_level l, const char *request_id, const char *fmt, ...)
{
    char msg[LOG_MSG_MAX];
    va_list ap;

    if (!log_enabled(l))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_emit(l, request_id, msg, NULL);
}

void log_fields(enum log_level l, const char *request_id, const char *msg,
                struct json_object *fields)
{
    if (!log_enabled(l))
        return;
    log_emit(l, request_id, msg, fields);
}
