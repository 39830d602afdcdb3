/* Fault decisions and rate limits of acs-emulator. A rate r fires when a uniform draw in [0, 1)
 * is below r, so 0 never fires and 1 always does. */
#include "faults.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/jsonx.h"

struct emu_faults {
    pthread_mutex_t mu;
    struct emu_fault_set set;
};

struct emu_ratelimit {
    pthread_mutex_t mu;
    int64_t window_ms;
    int64_t limit[EMU_OP__COUNT];
    int64_t window_start[EMU_OP__COUNT];
    int64_t used[EMU_OP__COUNT];
};

void emu_fault_set_clear(struct emu_fault_set *fs)
{
    memset(fs, 0, sizeof(*fs));
    fs->retry_after_ms = 1000;
    fs->error_status = 503;
    fs->ops = EMU_FAULT_OPS_ALL;
    fs->count = -1;
}

static void faults_why(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void faults_why(char *why, size_t why_len, const char *fmt, ...)
{
    va_list ap;

    if (why_len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
}

static int faults_get_rate(struct json_object *o, const char *key, double *out, char *why,
                           size_t why_len)
{
    struct json_object *v;
    double d;

    if (!json_object_object_get_ex(o, key, &v))
        return 0;
    if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int)) {
        faults_why(why, why_len, "%s must be a number between 0 and 1.", key);
        return TV_ERR_INVALID;
    }
    d = json_object_get_double(v);
    if (!(d >= 0.0 && d <= 1.0)) {
        faults_why(why, why_len, "%s must be a number between 0 and 1.", key);
        return TV_ERR_INVALID;
    }
    *out = d;
    return 0;
}

static int faults_get_int(struct json_object *o, const char *key, int64_t min, int64_t max,
                          int64_t *out, char *why, size_t why_len)
{
    int rc = jsonx_get_int(o, key, min, max, out);

    if (rc == TV_ERR_NOT_FOUND)
        return 0;
    if (rc != 0) {
        if (why_len > 0)
            snprintf(why, why_len, "%s must be an integer in %lld..%lld.", key, (long long)min,
                     (long long)max);
        return TV_ERR_INVALID;
    }
    return 0;
}

/* error_message: kept to characters that need no JSON escaping, so GET can echo it as is; ""
 * (what GET shows for the default) is the default. */
static int faults_get_message(struct json_object *o, char out[EMU_FAULT_MESSAGE_MAX + 1], char *why,
                              size_t why_len)
{
    struct json_object *v;
    const char *m;
    int rc = jsonx_get_string(o, "error_message", EMU_FAULT_MESSAGE_MAX, &m);

    if (rc == TV_ERR_NOT_FOUND)
        return 0;
    if (rc != 0 && json_object_object_get_ex(o, "error_message", &v) &&
        json_object_is_type(v, json_type_string) && json_object_get_string_len(v) == 0) {
        out[0] = '\0';
        return 0;
    }
    for (size_t i = 0; rc == 0 && m[i] != '\0'; i++) {
        if (m[i] < 0x20 || m[i] > 0x7e || m[i] == '"' || m[i] == '\\')
            rc = TV_ERR_INVALID;
    }
    if (rc != 0) {
        faults_why(why, why_len,
                   "error_message must be 0..%d characters of printable ASCII without '\"' and "
                   "'\\'.",
                   EMU_FAULT_MESSAGE_MAX);
        return TV_ERR_INVALID;
    }
    (void)buf_copy_str(out, EMU_FAULT_MESSAGE_MAX + 1, m);
    return 0;
}

static int faults_parse_ops(struct json_object *o, unsigned *out, char *why, size_t why_len)
{
    struct json_object *arr;
    unsigned ops = 0;
    size_t n;
    int rc = jsonx_get_array(o, "ops", &arr);

    if (rc == TV_ERR_NOT_FOUND)
        return 0;
    if (rc != 0)
        goto bad;
    n = json_object_array_length(arr);
    for (size_t i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(arr, i);
        enum emu_op op;
        if (!json_object_is_type(e, json_type_string) ||
            emu_op_parse(json_object_get_string(e), &op) != 0)
            goto bad;
        ops |= 1u << op;
    }
    *out = ops;
    return 0;
bad:
    faults_why(why, why_len,
               "%s must be an array of create, issue, revoke, delete, teams_exchange.", "ops");
    return TV_ERR_INVALID;
}

int emu_fault_set_parse(const char *body, size_t len, struct emu_fault_set *out, char *why,
                        size_t why_len)
{
    static const char *const known[] = {"latency_ms", "throttle_rate", "retry_after_ms",
                                        "error_rate", "error_status",  "drop_rate",
                                        "ops",        "count",         "error_message"};
    int rc = TV_ERR_INVALID;
    struct json_object *o = NULL;
    struct emu_fault_set fs;
    struct json_object *v;
    int64_t status;

    emu_fault_set_clear(&fs);
    if (len == 0) {
        *out = fs; /* an empty body is the empty set */
        return 0;
    }
    if (jsonx_parse(body, len, 16 * 1024, &o) != 0 || !json_object_is_type(o, json_type_object)) {
        faults_why(why, why_len, "%s", "The body must be a JSON object.");
        goto out;
    }
    json_object_object_foreach(o, key, val)
    {
        size_t i;
        (void)val;
        for (i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
            if (strcmp(key, known[i]) == 0)
                break;
        }
        if (i == sizeof(known) / sizeof(known[0])) {
            faults_why(why, why_len, "Unknown member \"%.64s\".", key);
            goto out;
        }
    }
    status = fs.error_status;
    if (faults_get_int(o, "latency_ms", 0, EMU_FAULT_LATENCY_MAX_MS, &fs.latency_ms, why,
                       why_len) ||
        faults_get_rate(o, "throttle_rate", &fs.throttle_rate, why, why_len) ||
        faults_get_int(o, "retry_after_ms", 0, 3600 * 1000, &fs.retry_after_ms, why, why_len) ||
        faults_get_rate(o, "error_rate", &fs.error_rate, why, why_len) ||
        faults_get_int(o, "error_status", 500, 599, &status, why, why_len) ||
        faults_get_message(o, fs.error_message, why, why_len) ||
        faults_get_rate(o, "drop_rate", &fs.drop_rate, why, why_len) ||
        faults_parse_ops(o, &fs.ops, why, why_len))
        goto out;
    /* GET shows an unlimited count as null; accept it back. */
    if (!(json_object_object_get_ex(o, "count", &v) && v == NULL) &&
        faults_get_int(o, "count", 0, INT32_MAX, &fs.count, why, why_len))
        goto out;
    fs.error_status = (int)status;
    *out = fs;
    rc = 0;
out:
    json_object_put(o);
    return rc;
}

int emu_fault_set_json(const struct emu_fault_set *fs, char **out)
{
    int rc;
    struct buf b;
    int first = 1;

    buf_init(&b, 2048);
    rc = buf_printf(&b,
                    "{\"latency_ms\":%lld,\"throttle_rate\":%.17g,\"retry_after_ms\":%lld,"
                    "\"error_rate\":%.17g,\"error_status\":%d,\"error_message\":\"%s\","
                    "\"drop_rate\":%.17g,\"ops\":[",
                    (long long)fs->latency_ms, fs->throttle_rate, (long long)fs->retry_after_ms,
                    fs->error_rate, fs->error_status, fs->error_message, fs->drop_rate);
    for (int i = 0; rc == 0 && i < EMU_OP__COUNT; i++) {
        if (fs->ops & (1u << i)) {
            rc = buf_printf(&b, "%s\"%s\"", first ? "" : ",", emu_op_name((enum emu_op)i));
            first = 0;
        }
    }
    if (rc == 0) {
        if (fs->count < 0)
            rc = buf_append_str(&b, "],\"count\":null}");
        else
            rc = buf_printf(&b, "],\"count\":%lld}", (long long)fs->count);
    }
    if (rc == 0) {
        *out = buf_take(&b);
        rc = *out ? 0 : TV_ERR_NOMEM;
    }
    buf_release(&b);
    return rc;
}

int emu_faults_new(const struct emu_fault_set *initial, struct emu_faults **out)
{
    struct emu_faults *f = calloc(1, sizeof(*f));

    if (!f)
        return TV_ERR_NOMEM;
    pthread_mutex_init(&f->mu, NULL);
    f->set = *initial;
    *out = f;
    return 0;
}

void emu_faults_free(struct emu_faults *f)
{
    if (!f)
        return;
    pthread_mutex_destroy(&f->mu);
    free(f);
}

void emu_faults_set(struct emu_faults *f, const struct emu_fault_set *fs)
{
    pthread_mutex_lock(&f->mu);
    f->set = *fs;
    pthread_mutex_unlock(&f->mu);
}

void emu_faults_get(struct emu_faults *f, struct emu_fault_set *out)
{
    pthread_mutex_lock(&f->mu);
    *out = f->set;
    pthread_mutex_unlock(&f->mu);
}

static int faults_roll(double rate)
{
    return rate > 0.0 && emu_rand_unit() < rate;
}

int emu_faults_decide(struct emu_faults *f, enum emu_op op, struct emu_fault_decision *out)
{
    struct emu_fault_set fs;
    int matched = 0;

    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&f->mu);
    if ((unsigned)op < EMU_OP__COUNT && (f->set.ops & (1u << op)) && f->set.count != 0) {
        fs = f->set;
        /* A matching request uses up one unit of count whether or not a roll fires. */
        if (f->set.count > 0)
            f->set.count--;
        matched = 1;
    }
    pthread_mutex_unlock(&f->mu);
    if (!matched)
        return 0;
    out->latency_ms = fs.latency_ms;
    if (faults_roll(fs.drop_rate)) {
        out->kind = EMU_FAULT_DROP;
    } else if (faults_roll(fs.throttle_rate)) {
        out->kind = EMU_FAULT_THROTTLE;
        out->status = 429;
        out->retry_after_ms = fs.retry_after_ms;
    } else if (faults_roll(fs.error_rate)) {
        out->kind = EMU_FAULT_ERROR;
        out->status = fs.error_status;
        memcpy(out->message, fs.error_message, sizeof out->message);
    }
    return out->latency_ms > 0 || out->kind != EMU_FAULT_NONE;
}

int emu_ratelimit_new(const int64_t limits[EMU_OP__COUNT], int64_t window_ms,
                      struct emu_ratelimit **out)
{
    struct emu_ratelimit *rl = calloc(1, sizeof(*rl));

    if (!rl)
        return TV_ERR_NOMEM;
    pthread_mutex_init(&rl->mu, NULL);
    rl->window_ms = window_ms > 0 ? window_ms : 1;
    for (int i = 0; i < EMU_OP__COUNT; i++) {
        rl->limit[i] = limits[i];
        rl->window_start[i] = INT64_MIN;
    }
    *out = rl;
    return 0;
}

void emu_ratelimit_free(struct emu_ratelimit *rl)
{
    if (!rl)
        return;
    pthread_mutex_destroy(&rl->mu);
    free(rl);
}

int emu_ratelimit_take(struct emu_ratelimit *rl, enum emu_op op, int64_t now_ms,
                       int64_t *retry_after_ms)
{
    int rc = 0;

    if ((unsigned)op >= EMU_OP__COUNT || rl->limit[op] <= 0)
        return 0;
    pthread_mutex_lock(&rl->mu);
    if (rl->window_start[op] == INT64_MIN || now_ms - rl->window_start[op] >= rl->window_ms) {
        rl->window_start[op] = now_ms;
        rl->used[op] = 0;
    }
    if (rl->used[op] >= rl->limit[op]) {
        *retry_after_ms = rl->window_start[op] + rl->window_ms - now_ms;
        if (*retry_after_ms < 1)
            *retry_after_ms = 1;
        rc = TV_ERR_RATE_LIMITED;
    } else {
        rl->used[op]++;
    }
    pthread_mutex_unlock(&rl->mu);
    return rc;
}
