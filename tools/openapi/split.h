/* One listener's part of the OpenAPI document (tools/openapi): the paths whose servers name
 * that listener (x-tokenvend-listener), that listener's servers entries, the tags its
 * operations use and the components they reference, directly or through other components.
 * Pure functions over json-c trees; reentrant. */
#ifndef TV_TOOLS_OPENAPI_SPLIT_H
#define TV_TOOLS_OPENAPI_SPLIT_H

#include <stddef.h>

struct json_object;

/* The server-object key that names the listener serving a server entry. */
#define OPENAPI_LISTENER_KEY "x-tokenvend-listener"

/* The info key mapping each listener to the introduction only its document carries. */
#define OPENAPI_DESCRIPTION_KEY "x-tokenvend-description"

/* Builds listener's document from doc (which it does not change): every top-level member in
 * doc's order, with "info" carrying as its "description" the listener's entry of
 * info.x-tokenvend-description, a blank line and the common info.description (the map itself
 * left out), "servers" cut to that listener's entries, "paths" to the path items that
 * listener serves (each path item's own "servers" cut the same way; a path item without
 * "servers" is served wherever the top-level servers say), "tags" to the tags its operations
 * use, and "components" to the ones reached from the kept paths and top-level members ($ref
 * "#/components/<section>/<name>", and security requirements naming securitySchemes).
 * Refused with a message in err (errcap bytes): doc is not an object with "openapi", "info",
 * "paths" and "servers"; a server entry without the listener key or naming a listener that no
 * top-level entry names; an operation with its own "servers" (listeners are chosen per path);
 * an info.x-tokenvend-description that is not a mapping of known listeners to strings;
 * listener not among them; a $ref that is not a local component or does
 * not resolve; a security requirement naming an undefined scheme. 0 and *out (a new tree the
 * caller frees with json_object_put), or -1 with *out untouched. */
int openapi_split(struct json_object *doc, const char *listener, struct json_object **out,
                  char *err, size_t errcap);

#endif
