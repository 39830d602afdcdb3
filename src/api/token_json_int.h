/* The token reply bodies of the api module (token_json.c): one shape, two builders that must
 * agree byte for byte. Private to src/api (and its fuzz harness). Thread-safe. */
#ifndef TV_API_TOKEN_JSON_INT_H
#define TV_API_TOKEN_JSON_INT_H

#include <stddef.h>

struct json_object;

/* {"communicationUserId": acs_id} (new reference). */
struct json_object *api_comm_user_json(const char *acs_id);
/* {"token","expiresOn"} and, when acs_id is not NULL, "user":{"communicationUserId"} (new
 * reference). expires_on NULL stands for "". */
struct json_object *api_token_json(const char *token, const char *expires_on, const char *acs_id);
/* Writes the same bytes as jsonx_compact(api_token_json(token, expires_on, acs_id)) into
 * out[0..cap) and returns their length (no NUL is written), or 0 when a value needs escaping or
 * the body does not fit: the caller then takes the json-c path. */
size_t api_token_json_fast(const char *token, const char *expires_on, const char *acs_id, char *out,
                           size_t cap);

#endif
