/* `tokenvend quickstart`: runs the sequence of Microsoft's "Create and manage access tokens"
 * quickstart against the configured ACS resource and prints each step the way that quickstart
 * does. Stops at the first failing step. Single-threaded, blocking. */
#include <stdio.h>
#include <string.h>

#include "acs/client.h"
#include "acs_cmd_int.h"
#include "cli/cli.h"
#include "core/buf.h"

struct qs {
    struct acs_client *client;
    int step;
};

/* Runs one call; on failure names the step on stderr and reports the ACS error. */
static int qs_call(struct qs *q, const char *what, const struct acs_request *req,
                   struct acs_result *res)
{
    q->step++;
    if (acs_client_call_sync(q->client, req, res) == 0)
        return CLI_EXIT_OK;
    fflush(stdout);
    fprintf(stderr, "Quickstart failed at step %d (%s):\n", q->step, what);
    return cli_acs_report_failure(res);
}

/* Prints "<what> that expires at <expiry>:" and the token on the next line. */
static void qs_token_line(const char *what, const struct acs_result *res)
{
    char exp[CLOCK_ISO_LEN + 8];

    cli_acs_expiry(res, exp);
    printf("\n%s that expires at %s:\n%s\n", what, exp, res->token ? res->token : "");
    fflush(stdout);
}

/* The quickstart's seven steps, in order; stops at the first that fails (its exit code). */
static int qs_steps(struct qs *q)
{
    struct acs_result r[7] = {{0}};
    char id[ACS_ID_MAX], id2[ACS_ID_MAX], exp[CLOCK_ISO_LEN + 8];
    size_t i;
    int rc;

    /* 1. Create an identity. */
    struct acs_request create = {.op = ACS_OP_CREATE};
    if ((rc = qs_call(q, "create an identity", &create, &r[0])) != 0)
        goto done;
    buf_copy_str(id, sizeof id, r[0].identity_id);
    printf("\nCreated an identity with ID: %s\n", id);
    fflush(stdout);

    /* 2. Issue an access token with the voip scope. */
    struct acs_request issue = {
        .op = ACS_OP_ISSUE, .identity_id = id, .scopes = {"voip"}, .nscopes = 1};
    if ((rc = qs_call(q, "issue a 'voip' token", &issue, &r[1])) != 0)
        goto done;
    qs_token_line("Issued an access token with 'voip' scope", &r[1]);

    /* 3. Issue a token with a custom expiration of one hour. */
    struct acs_request issue_hour = issue;
    issue_hour.expires_in_minutes = 60;
    if ((rc = qs_call(q, "issue a one-hour 'voip' token", &issue_hour, &r[2])) != 0)
        goto done;
    qs_token_line("Issued an access token with 'voip' scope and custom expiration", &r[2]);

    /* 4. Create an identity and issue a token in one call. */
    struct acs_request create_tok = {.op = ACS_OP_CREATE, .scopes = {"voip"}, .nscopes = 1};
    if ((rc = qs_call(q, "create an identity and a 'voip' token", &create_tok, &r[3])) != 0)
        goto done;
    buf_copy_str(id2, sizeof id2, r[3].identity_id);
    cli_acs_expiry(&r[3], exp);
    printf("\nCreated an identity with ID: %s and issued an access token with 'voip' scope "
           "that expires at %s:\n%s\n",
           id2, exp, r[3].token ? r[3].token : "");
    fflush(stdout);

    /* 5. Refresh: issue a new token for the first identity. */
    if ((rc = qs_call(q, "refresh the access token", &issue, &r[4])) != 0)
        goto done;
    cli_acs_expiry(&r[4], exp);
    printf("\nRefreshed an access token with ID: %s that expires at %s:\n%s\n", id, exp,
           r[4].token ? r[4].token : "");
    fflush(stdout);

    /* 6. Revoke every token of the first identity. */
    struct acs_request revoke = {.op = ACS_OP_REVOKE, .identity_id = id};
    if ((rc = qs_call(q, "revoke the access tokens", &revoke, &r[5])) != 0)
        goto done;
    printf("\nSuccessfully revoked all access tokens for identity with ID: %s\n", id);
    fflush(stdout);

    /* 7. Delete the first identity. */
    struct acs_request del = {.op = ACS_OP_DELETE, .identity_id = id};
    if ((rc = qs_call(q, "delete the identity", &del, &r[6])) != 0)
        goto done;
    printf("\nDeleted the identity with ID: %s\n", id);
    fflush(stdout);
    rc = CLI_EXIT_OK;
done:
    for (i = 0; i < sizeof r / sizeof r[0]; i++)
        acs_result_release(&r[i]);
    return rc;
}

int cli_quickstart_main(int argc, char **argv)
{
    struct cli_args a;
    struct config cfg = {0};
    struct qs q = {0};
    int rc;

    rc = cli_args_parse("quickstart", argc, argv, NULL, 0, 0, &a);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (a.help) {
        fputs("Usage: tokenvend quickstart [FLAGS]\n"
              "\n"
              "Runs the ACS access-tokens quickstart: create an identity, issue a 'voip' token,\n"
              "issue a one-hour 'voip' token, create an identity and a token in one call,\n"
              "refresh, revoke and delete. Exit 0 when every step succeeded, 1 otherwise.\n"
              "\n",
              stdout);
        cli_common_flags_print(stdout);
        return CLI_EXIT_OK;
    }
    if ((rc = cli_config_load(&a, &cfg)) != CLI_EXIT_OK)
        goto done;
    if ((rc = cli_acs_client_open(&cfg, &q.client)) != CLI_EXIT_OK)
        goto done;
    printf("Azure Communication Services - Access Tokens Quickstart\n");
    fflush(stdout);
    rc = qs_steps(&q);
done:
    acs_client_free(q.client);
    config_release(&cfg);
    return rc;
}
