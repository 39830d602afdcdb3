/* libFuzzer harness for the configuration file parser (src/core/config.c): the input is the
 * text of a config file, read through config_load as `tokenvend --config FILE` would.
 * Properties: it loads or fails with TV_ERR_CONFIG and a one-line reason, leaving the struct
 * zeroed; what loads prints, and the printed file loads again to the very same values (so
 * config_print's quoting reads back).
 * The file is a memfd, so nothing touches the disk; the environment is cleared once, so that
 * TOKENVEND_* variables of the runner cannot mask the file. A value file named in the input
 * (secret_key_file = ...) is read as the service would read it; stdin is /dev/null (fuzz.sh).
 * Linked with fuzz.sh's default sources (src/core, src/acs): config.c uses much of core. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/config.h"
#include "core/err.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ERR_MAX 512

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    clearenv();
    return 0;
}

/* Loads text[0..len) as a config file. */
static int load_text(const char *text, size_t len, struct config *cfg, char *err)
{
    struct config_overrides ov;
    char path[64];
    int fd = memfd_create("fuzz-config", 0), rc;

    if (fd < 0)
        abort();
    if (len > 0 && write(fd, text, len) != (ssize_t)len)
        abort();
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    memset(&ov, 0, sizeof ov);
    ov.config_path = path;
    ov.default_path = "";
    rc = config_load(&ov, cfg, err, ERR_MAX);
    close(fd);
    return rc;
}

/* config_print's text without the "  # source" comments, which name the file and its lines. */
static char *print_values(const struct config *cfg)
{
    char *text = NULL, *line, *next, *mark;
    size_t len = 0, w = 0;
    FILE *f = open_memstream(&text, &len);

    if (f == NULL)
        abort();
    config_print(cfg, f, 0);
    fclose(f);
    for (line = text; *line; line = next) {
        next = strchr(line, '\n');
        next = next ? next + 1 : line + strlen(line);
        mark = NULL;
        for (char *q = line; q + 4 <= next; q++)
            if (memcmp(q, "  # ", 4) == 0)
                mark = q;
        if (mark == NULL)
            abort(); /* every line ends in its source */
        memmove(text + w, line, (size_t)(mark - line));
        w += (size_t)(mark - line);
        text[w++] = '\n';
    }
    text[w] = '\0';
    return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config cfg, again;
    char err[ERR_MAX];
    char *first, *second;
    int rc;

    rc = load_text((const char *)data, size, &cfg, err);
    if (rc != 0) {
        static const struct config zero;
        if ((rc != TV_ERR_CONFIG && rc != TV_ERR_NOMEM) || err[0] == '\0' ||
            strchr(err, '\n') != NULL || memcmp(&cfg, &zero, sizeof cfg) != 0)
            abort();
        return 0;
    }
    first = print_values(&cfg);
    rc = load_text(first, strlen(first), &again, err);
    if (rc != 0) {
        fprintf(stderr, "printed config does not load: %s\n%s", err, first);
        abort();
    }
    second = print_values(&again);
    if (strcmp(first, second) != 0) {
        fprintf(stderr, "printed config reads back otherwise:\n%s----\n%s", first, second);
        abort();
    }
    free(first);
    free(second);
    config_release(&again);
    config_release(&cfg);
    return 0;
}
