/* The long-lived objects of one acs-emulator instance (signing key, identity registry, fault
 * injector, rate limiter, optional database) and its configuration. emu_app_init wires them
 * once; afterwards every member is read-only or internally synchronised, so request threads
 * share one struct emu_app without further locking. */
#ifndef TV_EMULATOR_APP_H
#define TV_EMULATOR_APP_H

#include <stddef.h>
#include <stdint.h>

#include "emu.h"
#include "faults.h"

#define EMU_KEY_MAX 256 /* decoded access key bytes */

struct emu_config {
    const char *listen;        /* "HOST:PORT" ("[v6]:PORT"); port 0 picks a free one */
    const uint8_t *access_key; /* NULL: from the database, else 64 random bytes */
    size_t access_key_len;
    const char *db_path; /* NULL: memory only */
    int64_t token_ttl_s; /* > 0: every token lives this long (tests) */
    struct emu_fault_set faults;
    int64_t rate_limits[EMU_OP__COUNT]; /* per window; 0 = unlimited */
    int64_t rate_window_s;
    int no_rate_limits;
    int64_t max_skew_s;
    unsigned threads;             /* MHD thread pool size; 0 picks */
    int64_t reuse_signed_token_s; /* > 0: benchmarks only, see emulator/reuse.h */
    const char *entra_jwks;       /* NULL, or a JWKS URL or file: Entra bearer tokens accepted */
    const char *entra_issuer;     /* NULL: any iss (with entra_jwks only) */
    int entra_only;               /* with entra_jwks: the HMAC signature is refused */
};

struct emu_app {
    struct emu_keys *keys;
    struct emu_state *state;
    struct emu_faults *faults;
    struct emu_ratelimit *ratelimit; /* NULL with --no-rate-limits */
    struct emu_persist *db;          /* NULL without --db */
    struct emu_reuse *reuse;         /* NULL unless --reuse-signed-token-s */
    struct emu_bearer *bearer;       /* NULL unless --entra-jwks */
    int entra_only;                  /* --entra-only: bearer tokens only, no HMAC */
    uint8_t access_key[EMU_KEY_MAX]; /* secret */
    size_t access_key_len;
    char resource_id[EMU_UUID_LEN];
    int64_t token_ttl_s;
    int64_t max_skew_s;
};

/* Fills cfg with the documented defaults (limits 1000/1000/500/500 per 30 s, skew 600 s). */
void emu_config_defaults(struct emu_config *cfg);
/* Creates every object of app from cfg: opens the database, loads or generates and stores the
 * signing key, access key and resource id, loads identities. 0 or a TV_ERR_* code (logged). */
int emu_app_init(struct emu_app *app, const struct emu_config *cfg);
/* Frees what emu_app_init made and wipes the access key. Safe on a zeroed struct. */
void emu_app_release(struct emu_app *app);

#endif
