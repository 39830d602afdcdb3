/* Shared vocabulary of acs-emulator: the ACS operations it serves, the api-versions it accepts,
 * ceilings, and small helpers (UUIDs, the process-wide PRNG). Thread-safe. */
#ifndef TV_EMULATOR_EMU_H
#define TV_EMULATOR_EMU_H

#include <stddef.h>
#include <stdint.h>

#include "core/acsnames.h"

#define EMU_UUID_LEN 37 /* 36 characters + NUL */
#define EMU_ID_MAX 128  /* "8:acs:<36>_<36>" and "8:orgid:<oid>" fit with room */
#define EMU_BODY_MAX (64 * 1024)

/* EMU_OP_CREATE, ...: the operations of core/acsnames.h's ACS_OPS. */
#define EMU_OP_ITEM(id, name) EMU_OP_##id,
enum emu_op { ACS_OPS(EMU_OP_ITEM, ) EMU_OP__COUNT };
#undef EMU_OP_ITEM

/* Accepted api-versions (EMU_API_2021_03_07, ...: ACS_API_VERSIONS), oldest first, so features
 * can be gated with >=. */
#define EMU_API_ITEM(id, name) EMU_API_##id,
enum emu_apiver { ACS_API_VERSIONS(EMU_API_ITEM, ) EMU_API__COUNT };
#undef EMU_API_ITEM

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
