/* Strict YAML to json-c, for the build-time OpenAPI generator (tools/openapi): one document,
 * mappings with unique plain-string keys, no anchors, aliases or tags, and plain scalars typed
 * by the YAML 1.2 core schema. Not part of the service: only this tool links libyaml.
 * Reentrant (no global state). */
#ifndef TV_TOOLS_OPENAPI_YAMLJSON_H
#define TV_TOOLS_OPENAPI_YAMLJSON_H

#include <stddef.h>

struct json_object;

/* Deepest nesting accepted; the OpenAPI document needs about a dozen levels. */
#define YAMLJSON_DEPTH_MAX 64

/* Parses text[0..len) (UTF-8 YAML) into a json-c tree. Plain scalars become JSON types as the
 * YAML 1.2 core schema resolves them (null, true/false, integers in base 10, 0o and 0x, floats);
 * quoted and block scalars stay strings. Refused with a message naming the line and column
 * (written to err, errcap bytes): a syntax error, more or less than one document, an anchor, an
 * alias, a tag or %TAG directive, a %YAML version other than 1.2, a key that is not a string
 * scalar (a collection, or a plain null, boolean or number), a duplicate key, an integer outside
 * int64, .inf/.nan (JSON has neither), or nesting past YAMLJSON_DEPTH_MAX. On success *out is a
 * new tree the caller frees with json_object_put, and 0 is returned; else -1 and *out is
 * untouched. */
int yamljson_parse(const char *text, size_t len, struct json_object **out, char *err,
                   size_t errcap);

#endif
