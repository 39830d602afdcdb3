/* Fault injection and per-operation rate limits of acs-emulator. The fault set can be replaced
 * at run time; each decision is drawn from the per-thread PRNG of emulator/emu.h. Both objects
 * are thread-safe (one mutex each, held for a few instructions). */
#ifndef TV_EMULATOR_FAULTS_H
#define TV_EMULATOR_FAULTS_H

#include <stddef.h>
#include <stdint.h>

#include "emu.h"

#define EMU_FAULT_LATENCY_MAX_MS (10 * 60 * 1000)
#define EMU_FAULT_OPS_ALL ((1u << EMU_OP__COUNT) - 1)
#define EMU_FAULT_MESSAGE_MAX 200 /* error_message: printable ASCII without '"' and '\\' */

/* The whole fault set (PUT /emulator/faults replaces it). */
struct emu_fault_set {
    int64_t latency_ms;     /* added before answering, 0..EMU_FAULT_LATENCY_MAX_MS */
    double throttle_rate;   /* 0..1: answer 429 */
    int64_t retry_after_ms; /* of those 429s; default 1000 */
    double error_rate;      /* 0..1: answer error_status */
    int error_status;       /* 500..599, default 503 */
    double drop_rate;       /* 0..1: close the connection without an answer */
    unsigned ops;           /* bit (1 << enum emu_op) per affected operation */
    int64_t count;          /* matching requests still affected; -1 for unlimited */
    /* error.message of the error_status answers; "" for the default "Injected fault: status
     * N." (tests use it to see where ACS's own words end up). */
    char error_message[EMU_FAULT_MESSAGE_MAX + 1];
};

enum emu_fault_kind { EMU_FAULT_NONE, EMU_FAULT_THROTTLE, EMU_FAULT_ERROR, EMU_FAULT_DROP };

struct emu_fault_decision {
    int64_t latency_ms;
    enum emu_fault_kind kind;
    int status;             /* EMU_FAULT_ERROR: the status; EMU_FAULT_THROTTLE: 429 */
    int64_t retry_after_ms; /* EMU_FAULT_THROTTLE */
    /* EMU_FAULT_ERROR: the set's error_message ("" for the default). */
    char message[EMU_FAULT_MESSAGE_MAX + 1];
};

struct emu_faults;
struct emu_ratelimit;

/* The empty set: no faults, all ops, defaults for retry_after_ms and error_status. */
void emu_fault_set_clear(struct emu_fault_set *fs);
/* Parses a PUT /emulator/faults body strictly (unknown members, wrong types and out-of-range
 * values are refused). 0 or TV_ERR_INVALID with a reason in why. */
int emu_fault_set_parse(const char *body, size_t len, struct emu_fault_set *out, char *why,
                        size_t why_len);
/* The set as JSON (count null when unlimited) into *out (malloc'd). 0 or TV_ERR_NOMEM. */
int emu_fault_set_json(const struct emu_fault_set *fs, char **out);

/* Creates the injector with an initial set (copied). 0 or TV_ERR_NOMEM. */
int emu_faults_new(const struct emu_fault_set *initial, struct emu_faults **out);
void emu_faults_free(struct emu_faults *f);
void emu_faults_set(struct emu_faults *f, const struct emu_fault_set *fs);
void emu_faults_get(struct emu_faults *f, struct emu_fault_set *out);
/* Decides what happens to one request of op: consumes one unit of count when op matches, adds
 * the latency and rolls drop, then throttle, then error. Returns 1 when any fault applies
 * (*out filled), else 0 (*out zeroed). */
int emu_faults_decide(struct emu_faults *f, enum emu_op op, struct emu_fault_decision *out);

/* Fixed-window limiter: limits[op] requests per window_ms (0 = unlimited for that op). 0 or
 * TV_ERR_NOMEM. */
int emu_ratelimit_new(const int64_t limits[EMU_OP__COUNT], int64_t window_ms,
                      struct emu_ratelimit **out);
void emu_ratelimit_free(struct emu_ratelimit *rl);
/* Takes one unit for op at now_ms (a monotonic clock). 0, or TV_ERR_RATE_LIMITED with
 * *retry_after_ms set to the time until the window frees. */
int emu_ratelimit_take(struct emu_ratelimit *rl, enum emu_op op, int64_t now_ms,
                       int64_t *retry_after_ms);

#endif
