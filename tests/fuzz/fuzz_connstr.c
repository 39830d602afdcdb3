/* libFuzzer harness for the ACS connection-string parser. Besides memory safety it checks that a
 * parsed result is self-consistent and that the normalised endpoint parses back to itself. */
/* clang-format off */
/* fuzz-sources: src/core/b64.c src/core/buf.c src/core/err.c src/core/log.c src/core/ident.c src/core/clock.c src/acs/connstr.c */
/* clang-format on */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "acs/connstr.h"
#include "core/b64.h"
#include "core/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* Every rejection logs a line; silence keeps the fuzzer fast and its output readable. */
    log_setup(LOGL_OFF, 2);
    return 0;
}

/* A parsed result must parse again, from its own normalised form, to the same fields. */
static void check_round_trip(const struct acs_connstr *cs)
{
    char *again, *key64;
    size_t n;
    struct acs_connstr cs2 = {0};

    key64 = malloc(b64_encoded_size(cs->key_len));
    if (!key64)
        return;
    b64_encode(cs->key, cs->key_len, key64);
    n = strlen(cs->endpoint) + strlen(key64) + 32;
    again = malloc(n);
    if (!again) {
        free(key64);
        return;
    }
    memcpy(again, "accesskey=", 10);
    strcpy(again + 10, key64);
    strcat(again, ";endpoint=");
    strcat(again, cs->endpoint);
    strcat(again, "/");
    if (strlen(again) <= ACS_CONNSTR_MAX) {
        if (acs_connstr_parse(again, &cs2) != 0)
            abort();
        if (strcmp(cs2.endpoint, cs->endpoint) || strcmp(cs2.host_signed, cs->host_signed) ||
            strcmp(cs2.host, cs->host) || strcmp(cs2.scheme, cs->scheme) || cs2.port != cs->port ||
            cs2.key_len != cs->key_len || memcmp(cs2.key, cs->key, cs->key_len) != 0)
            abort();
        acs_connstr_release(&cs2);
    }
    free(again);
    free(key64);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    struct acs_connstr cs = {0};

    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (acs_connstr_parse(s, &cs) == 0) {
        if (!cs.key || cs.key_len == 0 || !cs.host_signed[0] || !cs.host[0] || cs.port < 1 ||
            cs.port > 65535 || strncmp(cs.endpoint, cs.scheme, strlen(cs.scheme)) != 0)
            abort();
        check_round_trip(&cs);
        acs_connstr_release(&cs);
    }
    free(s);
    return 0;
}
