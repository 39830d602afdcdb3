/* JSON-lines logger. Lines are built with json-c, so any message text is escaped, then written
 * with one write(2) so concurrent lines never interleave. */
#include "core/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/clock.h"
#include "core/err.h"

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

static void log_emit(enum log_level l, const char *request_id, const char *msg,
                     struct json_object *fields)
{
    struct json_object *line = json_object_new_object();
    char ts[CLOCK_ISO_LEN];
    const char *text;
    size_t len;
    ssize_t w;

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
    len = strlen(text);
    {
        /* One write for line and newline keeps concurrent lines whole. */
        char stackbuf[LOG_MSG_MAX * 2];
        if (len + 1 <= sizeof(stackbuf)) {
            memcpy(stackbuf, text, len);
            stackbuf[len] = '\n';
            w = write(atomic_load(&log_fd), stackbuf, len + 1);
        } else {
            w = write(atomic_load(&log_fd), text, len);
            if (w >= 0)
                w = write(atomic_load(&log_fd), "\n", 1);
        }
    }
    (void)w;
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
