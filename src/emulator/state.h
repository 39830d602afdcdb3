/* Identity registry and counters of acs-emulator: which identities exist, their revocation
 * generation, which were deleted, and the per-operation statistics. A hash map behind one mutex
 * (constant time per call); counters are atomics. Thread-safe. When a persistence handle is
 * given, every change is written through before the call returns. */
#ifndef TV_EMULATOR_STATE_H
#define TV_EMULATOR_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "emu.h"
#include "tokens.h"

struct emu_state;
struct emu_persist;

/* Creates the registry; db (may be NULL, borrowed, must outlive the state) is loaded from and
 * written to. 0, TV_ERR_NOMEM or TV_ERR_IO. */
int emu_state_new(struct emu_persist *db, struct emu_state **out);
void emu_state_free(struct emu_state *st);

/* Creates "8:acs:<resource_id>_<random uuid>" and writes it into id. 0, TV_ERR_CRYPTO,
 * TV_ERR_NOMEM or TV_ERR_IO. */
int emu_state_create(struct emu_state *st, const char *resource_id, int64_t now_ms,
                     char id[EMU_ID_MAX]);
/* Create with a customId (api-version 2025-03-02-preview): while an identity made with the same
 * custom_id lives, its id (and its revocation generation in *gen) is written and *existed set to
 * 1; otherwise, also after that identity was deleted, a new one is made, bound to custom_id, and
 * *existed is 0 (*gen 0). One lock covers the look-up and the create, so concurrent creates with
 * one customId all get one identity. custom_id NULL or "" is a plain create.
 * 0, TV_ERR_CRYPTO, TV_ERR_NOMEM or TV_ERR_IO. */
int emu_state_create_custom(struct emu_state *st, const char *resource_id, const char *custom_id,
                            int64_t now_ms, char id[EMU_ID_MAX], uint64_t *gen, int *existed);
/* Current revocation generation of a live identity (what a new token must carry).
 * 0 or TV_ERR_NOT_FOUND (unknown or deleted). */
int emu_state_issue(struct emu_state *st, const char *id, uint64_t *gen);
/* Revokes every token minted so far for id. 0, TV_ERR_NOT_FOUND or TV_ERR_IO. */
int emu_state_revoke(struct emu_state *st, const char *id, int64_t now_ms);
/* Deletes id (its tokens then validate as "deleted"). 0, TV_ERR_NOT_FOUND or TV_ERR_IO. */
int emu_state_delete(struct emu_state *st, const char *id, int64_t now_ms);
/* Revocation status of a token minted for id at generation gen: EMU_TOKEN_OK, _REVOKED, or
 * _DELETED (also for an identity this emulator never created). */
enum emu_token_reason emu_state_check(struct emu_state *st, const char *id, uint64_t gen);
/* Number of identities that exist and are not deleted. */
size_t emu_state_live(struct emu_state *st);

/* Counters (lock-free). */
void emu_state_count_request(struct emu_state *st, enum emu_op op);
void emu_state_count_success(struct emu_state *st, enum emu_op op);
void emu_state_count_token(struct emu_state *st);
/* A token answered from the --reuse-signed-token-s cache (also counted as a token). */
void emu_state_count_reused(struct emu_state *st);
void emu_state_count_fault(struct emu_state *st);
/* The /emulator/stats document into *out (malloc'd). 0 or TV_ERR_NOMEM. */
int emu_state_stats_json(struct emu_state *st, char **out);
/* Zeroes every counter (identities_live is a gauge and stays). */
void emu_state_stats_reset(struct emu_state *st);

#endif
