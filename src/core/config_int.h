/* Internals shared by config.c (settings table, layers, printing) and config_value.c (value
 * parsers). Not part of the public interface. Thread-safe (pure functions). */
#ifndef TV_CORE_CONFIG_INT_H
#define TV_CORE_CONFIG_INT_H

#include <stddef.h>

#include "core/config.h"

/* First character of p that is not a blank or tab. */
const char *config_skip_blank(const char *p);
/* Parses "host:port" or "[v6]:port" (port 0..65535). 0, or -1 with a reason in *why. */
int config_addr_parse(const char *v, struct config_addr *out, const char **why);
/* Whether v is an http(s) URL with a host and no blanks or control characters. */
int config_url_ok(const char *v);
/* Parses a comma-separated CORS origin list ("" gives an empty list). 0; TV_ERR_INVALID with a
 * reason in *bad and the offending item in item[itemsz]; or TV_ERR_NOMEM. */
int config_list_parse(const char *v, struct config_list *out, const char **bad, char *item,
                      size_t itemsz);
/* Frees the items of l and empties it. */
void config_list_release(struct config_list *l);
/* on/off (also true/false, yes/no, 1/0, any case) into 1/0. 0 or -1. */
int config_bool_parse(const char *v, int *out);

/* The settings table's size and the i-th setting's TOKENVEND_ variable (config_env.c reads them
 * to tell known variables from unknown ones). */
size_t config_setting_count(void);
const char *config_setting_env(size_t i);

/* The configuration file config_load reads, as struct config_overrides describes: *path (NULL
 * for none; may point into sys[syscap]) and *via, how it was chosen ("" for none). 0, or
 * TV_ERR_CONFIG with the reason in err (a file named by --config or TOKENVEND_CONFIG that
 * cannot be read). */
int config_file_pick(const struct config_overrides *ov, char *sys, size_t syscap, const char **path,
                     const char **via, char *err, size_t errlen);

#endif
