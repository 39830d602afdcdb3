/* The stand-in Microsoft Entra ID endpoint of acs-emulator (`acs-emulator entra ...` or
 * `acs-emulator --entra ...`): OAuth 2.0 client credentials (client secret or federated client
 * assertion), the App Service / Container Apps and IMDS managed-identity routes, the issuer's
 * JWKS and OpenID metadata, a log of the requests it saw (secrets as lengths) and injected
 * faults. Offline and for tests only: it checks what a test needs to check, not what Entra
 * enforces. */
#ifndef TV_EMULATOR_ENTRA_H
#define TV_EMULATOR_ENTRA_H

#include <stdint.h>

struct emu_entra;

struct emu_entra_opts {
    const char *listen;           /* "HOST:PORT"; port 0 picks a free one */
    const char *tenant;           /* the one tenant served */
    const char *client_id;        /* NULL: any client id is accepted */
    const char *client_secret;    /* NULL: any non-empty secret is accepted */
    const char *federated_issuer; /* NULL: any iss in a client assertion */
    const char *identity_header;  /* X-IDENTITY-HEADER for /msi/token; NULL: that route is 401 */
    int64_t ttl_s;                /* lifetime of the access tokens */
    const char *fault;            /* NULL or "none", "error", "hang", "slow" at start */
    int64_t fault_delay_ms;       /* for "slow" */
};

/* Starts serving o (its strings must outlive the stand-in). 0, TV_ERR_CONFIG (bad listen
 * address or fault), TV_ERR_IO (bind failed), TV_ERR_CRYPTO or TV_ERR_NOMEM; logged. */
int emu_entra_start(const struct emu_entra_opts *o, struct emu_entra **out);
/* "http://HOST:PORT", the authority host to configure clients with. */
const char *emu_entra_base(const struct emu_entra *e);
/* Ends held requests, stops the daemon (joining its threads) and frees. NULL is a no-op. */
void emu_entra_stop(struct emu_entra *e);

/* Runs the stand-in with argv (argv[0] is the program, "entra" and "--entra" are skipped):
 * prints "authority=http://HOST:PORT/" on stdout once listening and serves until SIGTERM or
 * SIGINT. Returns the process exit status (0 clean stop, 1 failure, 2 bad usage). */
int emu_entra_main(int argc, char **argv);

#endif
