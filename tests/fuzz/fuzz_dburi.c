/* libFuzzer harness for the database URI helpers (core/dburi.h). Besides memory safety it checks
 * the one promise that matters: whatever the input, the redacted form never holds the password
 * libpq itself reads from it (nor the client key's password). */
/* clang-format off */
/* fuzz-sources: src/core/dburi.c src/core/err.c */
/* clang-format on */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "core/dburi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether secret could appear in a redaction without leaking: the redaction is made only of its
 * fixed words, libpq's keywords, the values that are not secrets and separators, so a secret
 * with a byte found in none of them can only show by a leak; one made wholly of such bytes may
 * show by coincidence (a password "tgres" in "postgresql://"), and is not judged. */
static int shown_anyway(const PQconninfoOption *info, const char *secret)
{
    static const char fixed[] = "postgresql://(not shown: more than one '@'; write '@' in a "
                                "password as %40 a connection string libpq reads URI)*:/@?&= ";
    unsigned char seen[256] = {0};

    for (const char *p = fixed; *p != '\0'; p++)
        seen[(unsigned char)*p] = 1;
    for (const PQconninfoOption *o = info; o->keyword != NULL; o++) {
        for (const char *p = o->keyword; *p != '\0'; p++)
            seen[(unsigned char)*p] = 1;
        if (o->val == NULL || strcmp(o->keyword, "password") == 0 ||
            strcmp(o->keyword, "sslpassword") == 0)
            continue;
        for (const char *p = o->val; *p != '\0'; p++)
            seen[(unsigned char)*p] = 1;
    }
    for (const char *p = secret; *p != '\0'; p++)
        if (!seen[(unsigned char)*p])
            return 0;
    return 1;
}

/* Aborts when a secret libpq parsed from s shows in shown. */
static void check_hidden(const char *s, const char *shown)
{
    char *err = NULL;
    PQconninfoOption *info = PQconninfoParse(s, &err);

    PQfreemem(err);
    if (info == NULL)
        return;
    for (PQconninfoOption *o = info; o->keyword != NULL; o++) {
        int secret = strcmp(o->keyword, "password") == 0 || strcmp(o->keyword, "sslpassword") == 0;
        if (secret && o->val != NULL && strlen(o->val) >= 4 && strstr(shown, o->val) != NULL &&
            !shown_anyway(info, o->val))
            abort();
    }
    PQconninfoFree(info);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char out[512], shown[512];
    char *s;

    if (size > 4096)
        return 0;
    s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    (void)dburi_is_pg(s);
    (void)dburi_is_conninfo(s);
    (void)dburi_has_secret(s);
    if (dburi_redact(s, out, sizeof out) == 0) {
        if (memchr(out, '\0', sizeof out) == NULL)
            abort();
        check_hidden(s, out);
    }
    dburi_display(s, shown, sizeof shown);
    if (memchr(shown, '\0', sizeof shown) == NULL)
        abort();
    if (dburi_is_pg(s) || dburi_is_conninfo(s))
        check_hidden(s, shown);
    free(s);
    return 0;
}
