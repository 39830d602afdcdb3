/* acs-emulator shared helpers: operation and api-version names, the per-thread PRNG, UUIDs. */
#include "emu.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "core/acsnames.h"
#include "core/err.h"

static const char *const emu_op_names[EMU_OP__COUNT] = {ACS_OPS(ACS_NAME_ITEM, )};

static const char *const emu_apiver_names[EMU_API__COUNT] = {ACS_API_VERSIONS(ACS_NAME_ITEM, )};

const char *emu_op_name(enum emu_op op)
{
    if ((unsigned)op >= EMU_OP__COUNT)
        return "unknown";
    return emu_op_names[op];
}

int emu_op_parse(const char *s, enum emu_op *out)
{
    for (int i = 0; i < EMU_OP__COUNT; i++) {
        if (strcmp(s, emu_op_names[i]) == 0) {
            *out = (enum emu_op)i;
            return 0;
        }
    }
    return TV_ERR_INVALID;
}

int emu_apiver_parse(const char *s, enum emu_apiver *out)
{
    for (int i = 0; i < EMU_API__COUNT; i++) {
        if (strcmp(s, emu_apiver_names[i]) == 0) {
            *out = (enum emu_apiver)i;
            return 0;
        }
    }
    return TV_ERR_INVALID;
}

const char *emu_apiver_list(void)
{
    return ACS_API_VERSION_LIST;
}

/* xoshiro256** state per thread: no lock on the hot path, and each thread seeds itself from the
 * OS generator on first use, so streams of different threads are independent. */
static _Thread_local uint64_t emu_rng_s[4];
static _Thread_local int emu_rng_seeded;

static uint64_t emu_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static void emu_rng_seed(void)
{
    uint64_t seed[4] = {0, 0, 0, 0};

    if (RAND_bytes((unsigned char *)seed, (int)sizeof(seed)) != 1) {
        /* The OS generator failing is not fatal for fault decisions; fall back to an address
         * and time mix so threads still differ. */
        seed[0] = (uint64_t)(uintptr_t)&emu_rng_s ^ 0x9e3779b97f4a7c15ULL;
        seed[1] = (uint64_t)time(NULL) * 0xbf58476d1ce4e5b9ULL;
    }
    if ((seed[0] | seed[1] | seed[2] | seed[3]) == 0)
        seed[0] = 1; /* the all-zero state is a fixed point */
    memcpy(emu_rng_s, seed, sizeof(seed));
    emu_rng_seeded = 1;
}

uint64_t emu_rand_u64(void)
{
    uint64_t *s = emu_rng_s;
    uint64_t result, t;

    if (!emu_rng_seeded)
        emu_rng_seed();
    result = emu_rotl(s[1] * 5, 7) * 9;
    t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = emu_rotl(s[3], 45);
    return result;
}

double emu_rand_unit(void)
{
    /* The top 53 bits give every representable multiple of 2^-53 in [0, 1). */
    return (double)(emu_rand_u64() >> 11) * 0x1.0p-53;
}

void emu_uuid_format(const uint8_t in[16], int version, char out[EMU_UUID_LEN])
{
    uint8_t b[16];

    memcpy(b, in, sizeof(b));
    b[6] = (uint8_t)((b[6] & 0x0f) | ((version & 0x0f) << 4));
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, EMU_UUID_LEN,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

int emu_uuid_random(char out[EMU_UUID_LEN])
{
    uint8_t b[16];

    if (RAND_bytes(b, (int)sizeof(b)) != 1)
        return TV_ERR_CRYPTO;
    emu_uuid_format(b, 4, out);
    return 0;
}
