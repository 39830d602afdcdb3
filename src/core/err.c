/* The error table's lookups. */
#include "core/err.h"

struct err_row {
    const char *name;
    int status;
    const char *message;
};

static const struct err_row err_rows[] = {
#define TV_ERR_ROW(code, name, status, msg) {name, status, msg},
    TV_ERR_TABLE(TV_ERR_ROW)
#undef TV_ERR_ROW
};

static const struct err_row *err_row_of(int rc)
{
    if (rc < 0 || rc >= TV_ERR__COUNT)
        return &err_rows[TV_ERR_INTERNAL];
    return &err_rows[rc];
}

const char *err_name(int rc)
{
    return err_row_of(rc)->name;
}

int err_http_status(int rc)
{
    return err_row_of(rc)->status;
}

const char *err_message(int rc)
{
    return err_row_of(rc)->message;
}
