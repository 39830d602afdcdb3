/* The listeners' OpenAPI documents: docs/openapi.yaml cut per listener and turned into JSON at
 * build time by tools/openapi (into build/gen/openapi.c), so what GET /openapi.json serves
 * cannot drift from the file. Constant data; thread-safe. */
#ifndef TV_API_OPENAPI_H
#define TV_API_OPENAPI_H

#include <stddef.h>

/* Each document's bytes (compact JSON, UTF-8), followed by a NUL that _len does not count. */
extern const unsigned char api_openapi_public_json[];
extern const size_t api_openapi_public_json_len;
extern const unsigned char api_openapi_internal_json[];
extern const size_t api_openapi_internal_json_len;

#endif
