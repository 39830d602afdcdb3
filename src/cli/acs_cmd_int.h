/* Helpers shared by the ACS subcommands (acs_cmd.c) and the quickstart (quickstart.c): client
 * set-up from the configuration and uniform reporting of ACS outcomes. Single-threaded. */
#ifndef TV_CLI_ACS_CMD_INT_H
#define TV_CLI_ACS_CMD_INT_H

#include "acs/client.h"
#include "core/clock.h"
#include "core/config.h"

/* Creates the ACS client from cfg. CLI_EXIT_OK, or after printing the error CLI_EXIT_USAGE
 * (no or malformed connection string) or CLI_EXIT_UPSTREAM. Free *out with acs_client_free. */
int cli_acs_client_open(const struct config *cfg, struct acs_client **out);
/* Prints the JSON error line for a failed call and returns its exit code (CLI_EXIT_UPSTREAM,
 * or CLI_EXIT_USAGE when the client refused the request as invalid before sending it). */
int cli_acs_report_failure(const struct acs_result *res);
/* The token expiry as ACS sent it, or formatted from expires_on_ms. */
void cli_acs_expiry(const struct acs_result *res, char out[CLOCK_ISO_LEN + 8]);
/* Parses --minutes (NULL: 0, meaning ACS's default). CLI_EXIT_OK or CLI_EXIT_USAGE (reported). */
int cli_minutes_parse(const char *s, int *out);

#endif
