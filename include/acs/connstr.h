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
    char *host;        /* host name or address as written (IPv6 without brackets) */
    int port;          /* explicit port, or the scheme's default */
    char *host_signed; /* "host" or "host:port" as the SDK signs it: default port dropped */
    uint8_t *key;      /* decoded access key (secret: wiped on release) */
    size_t key_len;
};

/* Parses s (at most ACS_CONNSTR_MAX bytes). 0, TV_ERR_PARSE (with no secret in any log) or
 * TV_ERR_NOMEM; *out untouched on failure. */
int acs_connstr_parse(const char *s, struct acs_connstr *out);
/* Frees what acs_connstr_parse allocated, wiping the key. Safe on a zeroed struct. */
void acs_connstr_release(struct acs_connstr *cs);

#endif
