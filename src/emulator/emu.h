/* Shared vocabulary of acs-emulator: the ACS operations it serves, the api-versions it accepts,
 * ceilings, and small helpers (UUIDs, the process-wide PRNG). Thread-safe. */
#ifndef TV_EMULATOR_EMU_H
#define TV_EMULATOR_EMU_H

#include <stddef.h>
#include <stdint.h>

#define EMU_UUID_LEN 37 /* 36 characters + NUL */
#define EMU_ID_MAX 128  /* "8:acs:<36>_<36>" and "8:orgid:<oid>" fit with room */
#define EMU_BODY_MAX (64 * 1024)

enum emu_op {
    EMU_OP_CREATE,
    EMU_OP_ISSUE,
    EMU_OP_REVOKE,
    EMU_OP_DELETE,
    EMU_OP_TEAMS_EXCHANGE,
    EMU_OP__COUNT
};

/* Accepted api-versions, oldest first, so features can be gated with >=. */
enum emu_apiver {
    EMU_API_2021_03_07,
    EMU_API_2022_06_01,
    EMU_API_2022_10_01,
    EMU_API_2023_10_01,
    EMU_API_2025_06_30,
    EMU_API__COUNT
};

/* "create", "issue", "revoke", "delete", "teams_exchange" (the stats and faults names). */
const char *emu_op_name(enum emu_op op);
/* Parses one of the names above. 0 or TV_ERR_INVALID. */
int emu_op_parse(const char *s, enum emu_op *out);
/* Parses an api-version string exactly. 0 or TV_ERR_INVALID. */
int emu_apiver_parse(const char *s, enum emu_apiver *out);
/* The api-versions as one comma-separated list, for error messages. */
const char *emu_apiver_list(void);

/* Uniform 64-bit value from a per-thread xoshiro256** generator seeded from the OS CSPRNG.
 * Good statistical quality, not for secrets. */
uint64_t emu_rand_u64(void);
/* Uniform double in [0, 1). */
double emu_rand_unit(void);
/* Writes a random (version 4) lowercase UUID from the OS CSPRNG. 0 or TV_ERR_CRYPTO. */
int emu_uuid_random(char out[EMU_UUID_LEN]);
/* Formats 16 bytes as a lowercase UUID, forcing the given version nibble (4 or 5). */
void emu_uuid_format(const uint8_t b[16], int version, char out[EMU_UUID_LEN]);

#endif
