/* Parses an ACS connection string: "endpoint=https://host[:port][/];accesskey=BASE64", keys
 * case-insensitive, in any order, values kept verbatim (the key's '=' padding included).
 * Thread-safe; the result owns its memory. */
#ifndef TV_ACS_CONNSTR_H
#define TV_ACS_CONNSTR_H

#include <stddef.h>
#include <stdint.h>

#define ACS_CONNSTR_MAX 4096

struct acs_connstr {
    char *endpoint;    /* "scheme://host[:port]" without path or trailing slash */
    char *scheme;      /* "https" or "http" */
    char *host;        /* host name or address, lower-cased (IPv6 without brackets) */
    int port;          /* explicit port, or the scheme's default */
    char *host_signed; /* "host" or "host:port" as the SDK signs it: default port dropped,
                        * IPv6 in brackets ("[::1]:8090") */
    uint8_t *key;      /* decoded access key (secret: wiped on release) */
    size_t key_len;
};

/* Parses s (at most ACS_CONNSTR_MAX bytes). 0, TV_ERR_PARSE (the reason, never the text, is
 * logged at warn level) or TV_ERR_NOMEM; *out untouched on failure.
 * Accepted: ';'-separated parts "endpoint=URL" and "accesskey=BASE64", each exactly once, keys
 * case-insensitive, any order, one optional trailing ';'. Each part is split on its first '='
 * and may be surrounded by spaces, tabs, CR or LF, which are ignored (as around the '='); other
 * control bytes and unknown keys are refused. URL: scheme http or https (any case), a host of
 * [A-Za-z0-9._-] or a bracketed IPv6 literal, an optional port 1..65535 (1-5 digits), then
 * nothing or "/". Refused: userinfo, any other path, query, fragment, empty host or port.
 * The key must be strict padded base64 of at least one byte.
 * Normalised as the SDK's WHATWG URL parser does: scheme and host lower-cased, IPv6 in RFC 5952
 * form, numeric hosts ("127.1") as dotted quads, so host_signed is what the SDK signs. */
int acs_connstr_parse(const char *s, struct acs_connstr *out);
/* Parses an ACS endpoint URL alone (COMMUNICATION_SERVICES_ENDPOINT, for the keyless mode), with
 * the rules and normalisation of the connection string's endpoint, and https only (plain http
 * to a loopback host alone), since a bearer token travels on it; out->key stays NULL.
 * 0, TV_ERR_PARSE or TV_ERR_NOMEM; *out untouched on failure. */
int acs_endpoint_parse(const char *s, struct acs_connstr *out);
/* acs_endpoint_parse for a check alone (config check, start-up before anything else runs).
 * 0 or TV_ERR_PARSE / TV_ERR_NOMEM. */
int acs_endpoint_check(const char *s);
/* What to tell an operator whose keyless endpoint acs_endpoint_check refused. */
#define ACS_ENDPOINT_KEYLESS_HELP                                                                  \
    "acs_endpoint (COMMUNICATION_SERVICES_ENDPOINT): malformed; expected https://HOST[:PORT]/ "    \
    "with no path, query or user information (plain http:// only to loopback)"
/* Frees what acs_connstr_parse allocated, wiping the key. Safe on a zeroed struct. */
void acs_connstr_release(struct acs_connstr *cs);

#endif
