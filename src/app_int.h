/* What src/app.c and src/app_check.c share: the session key's place and sealing, and the
 * room for a listener address as text. Private to those two files. */
#ifndef TV_APP_INT_H
#define TV_APP_INT_H

/* The meta row that holds the session signing key. */
#define SESSION_META_KEY "session_signing_key"
/* Associated data of the sealed session key: a blob sealed for another purpose never opens
 * as this one. */
#define SESSION_KEY_AD "tokenvend/session-key/v1"
enum { ADDR_MAX = 300 }; /* a listener address as host:port text, NUL included */

#endif
