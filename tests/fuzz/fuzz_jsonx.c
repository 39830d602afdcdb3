/* libFuzzer harness for the strict JSON front end. Properties: no crash or leak on any input;
 * whatever is accepted re-serialises to text that is accepted again and yields the same
 * serialisation (so json-c and the scanner agree on what a document means); and a document
 * accepted by jsonx_parse is also accepted by json-c alone.
 * fuzz-sources: src/core/jsonx.c src/core/ident.c src/core/err.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/err.h"
#include "core/jsonx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct json_object *obj = NULL, *again = NULL;
    const char *text;
    char *copy;
    int rc = jsonx_parse((const char *)data, size, 65536, &obj);

    if (rc != 0) {
        if ((rc != TV_ERR_PARSE && rc != TV_ERR_TOO_LARGE) || obj != NULL)
            abort();
        return 0;
    }
    text = jsonx_compact(obj);
    copy = strdup(text);
    if (!copy)
        abort();
    if (jsonx_parse(copy, strlen(copy), 65536 * 8, &again) != 0)
        abort();
    if (strcmp(jsonx_compact(again), copy) != 0)
        abort();
    json_object_put(again);
    json_object_put(obj);
    free(copy);
    return 0;
}
