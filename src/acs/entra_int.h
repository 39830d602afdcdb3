/* Private to the Entra credential's files (entra.c, entra_fetch.c). */
#ifndef TV_ACS_ENTRA_INT_H
#define TV_ACS_ENTRA_INT_H

#include <stddef.h>

/* Appends s to buf[*len] percent-encoded (RFC 3986 unreserved characters kept), for a URL's
 * query and a form body alike, keeping buf NUL-terminated. 0, or -1 when cap is too small. */
int entra_pct_append(char *buf, size_t cap, size_t *len, const char *s);

#endif
