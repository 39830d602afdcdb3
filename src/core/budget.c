/* The upstream budget's setting and slot arithmetic (core/budget.h). */
#include "core/budget.h"

#include <stdio.h>
#include <string.h>

#include "core/err.h"

#define PART_MAX 64 /* one "name=N/Ws" part; longer is wrong anyway */

/* The setting's names, in ACS_OPS order: "teams" is shorter than the op's log name. */
static const char *const op_names[ACS_OP_COUNT] = {"create", "issue", "revoke", "delete", "teams"};

const char *budget_op_name(int op)
{
    if (op < 0 || op >= ACS_OP_COUNT)
        return "?";
    return op_names[op];
}

static int op_index(const char *name, size_t len)
{
    for (int i = 0; i < ACS_OP_COUNT; i++)
        if (strlen(op_names[i]) == len && memcmp(op_names[i], name, len) == 0)
            return i;
    if (len == strlen("teams_exchange") && memcmp(name, "teams_exchange", len) == 0)
        return ACS_OP_COUNT - 1;
    return -1;
}

/* Parses "name=N/Ws" or "name=off" of part (len bytes) into cfg, refusing a name seen before. */
static int parse_part(const char *part, size_t len, struct budget_cfg *cfg, int *seen, char *err,
                      size_t errlen)
{
    char buf[PART_MAX + 1], why[160];
    const char *eq;
    int op;

    if (len == 0 || len > PART_MAX) {
        snprintf(err, errlen, "part '%.*s': want name=N/Ws or name=off", (int)(len > 40 ? 40 : len),
                 part);
        return TV_ERR_INVALID;
    }
    memcpy(buf, part, len);
    buf[len] = '\0';
    eq = strchr(buf, '=');
    op = eq != NULL ? op_index(buf, (size_t)(eq - buf)) : -1;
    if (op < 0) {
        snprintf(err, errlen, "part '%s': want name=N/Ws with name one of %s, %s, %s, %s, %s", buf,
                 op_names[0], op_names[1], op_names[2], op_names[3], op_names[4]);
        return TV_ERR_INVALID;
    }
    if (seen[op]) {
        snprintf(err, errlen, "part '%s': %s is named twice", buf, op_names[op]);
        return TV_ERR_INVALID;
    }
    seen[op] = 1;
    if (ratelimit_parse(eq + 1, &cfg->op[op], why, sizeof why) != 0) {
        snprintf(err, errlen, "part '%s': %s", buf, why);
        return TV_ERR_INVALID;
    }
    return 0;
}

/* Parses the list s into cfg (whose entries not named are left as they are). */
static int parse_list(const char *s, struct budget_cfg *cfg, char *err, size_t errlen)
{
    int seen[ACS_OP_COUNT] = {0};
    const char *p = s;

    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        int rc = parse_part(p, len, cfg, seen, err, errlen);
        if (rc != 0)
            return rc;
        if (comma == NULL)
            return 0;
        p = comma + 1;
    }
}

int budget_parse(const char *s, struct budget_cfg *out, char *err, size_t errlen)
{
    struct budget_cfg cfg;
    char scratch[8];
    int rc;

    if (err == NULL || errlen == 0) {
        err = scratch;
        errlen = sizeof scratch;
    }
    err[0] = '\0';
    memset(&cfg, 0, sizeof cfg);
    if (s == NULL || s[0] == '\0') {
        snprintf(err, errlen, "must not be empty (op=N/Ws,... or off)");
        return TV_ERR_INVALID;
    }
    if (strcmp(s, "off") == 0) {
        cfg.off = 1;
        for (int i = 0; i < ACS_OP_COUNT; i++)
            cfg.op[i].off = 1;
        *out = cfg;
        return 0;
    }
    /* The default first, so an operation the setting leaves out keeps ACS's documented limit
     * rather than none: leaving one out by mistake must not let it throttle ACS. */
    rc = parse_list(BUDGET_DEFAULT, &cfg, err, errlen);
    if (rc == 0)
        rc = parse_list(s, &cfg, err, errlen);
    if (rc != 0)
        return rc;
    *out = cfg;
    return 0;
}

int64_t budget_add(int64_t a, int64_t b)
{
    int64_t r;

    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

int64_t budget_slot_stamp(int64_t now_ms, int64_t hold_ms)
{
    return budget_add(now_ms, hold_ms);
}

int64_t budget_slot_normalize(int64_t used_ms, int64_t now_ms, int64_t hold_ms)
{
    int64_t stamp = budget_slot_stamp(now_ms, hold_ms);

    return used_ms > budget_add(stamp, BUDGET_SKEW_MS) ? stamp : used_ms;
}

int budget_slot_free(int64_t used_ms, int64_t now_ms, int64_t window_ms)
{
    /* used + W <= now, written so that neither side can overflow. */
    return used_ms <= budget_add(now_ms, -window_ms);
}

int64_t budget_next_free(int64_t oldest_ms, int64_t window_ms)
{
    return budget_add(oldest_ms, window_ms);
}

int64_t budget_fit_at(int64_t next_free_ms, int64_t now_ms, int64_t ahead,
                      const struct ratelimit *rl, int64_t hold_ms)
{
    int64_t start = next_free_ms > now_ms ? next_free_ms : now_ms;
    int64_t rounds, period, extra;

    if (rl->off || ahead <= 0)
        return start;
    rounds = ahead / rl->burst;
    period = budget_add(rl->window_ms, hold_ms);
    if (__builtin_mul_overflow(rounds, period, &extra))
        return INT64_MAX;
    return budget_add(start, extra);
}
