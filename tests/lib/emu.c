/* Test helper: acs-emulator as a child process plus its control plane (see emu.h). */
#include "emu.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/b64.h"
#include "core/clock.h"

#define TEMU_MAX_ARGS 64
#define TEMU_START_WAIT_MS 10000
#define TEMU_BODY_MAX (1024 * 1024)

const char *temu_binary(void)
{
    static char path[512];
    const char *b = getenv("TV_BUILD");

    snprintf(path, sizeof(path), "%s/bin/acs-emulator", b != NULL && *b ? b : "build");
    return path;
}

int temu_available(void)
{
    return access(temu_binary(), X_OK) == 0;
}

/* Reads the first stdout line of the child (bounded by time and size). */
static int read_line(int fd, char *out, size_t cap)
{
    size_t n = 0;
    int64_t end = clock_mono_ms() + TEMU_START_WAIT_MS;

    while (n + 1 < cap) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int64_t left = end - clock_mono_ms();
        ssize_t r;
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return -1;
        r = read(fd, out + n, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        if (out[n] == '\n') {
            out[n] = '\0';
            if (n > 0 && out[n - 1] == '\r')
                out[n - 1] = '\0';
            return 0;
        }
        n++;
    }
    return -1;
}

int temu_start(struct temu *e, const char *const *extra_args)
{
    const char *argv[TEMU_MAX_ARGS + 4];
    size_t argc = 0;
    int pipefd[2];
    const char *p;
    char *end;
    long port;
    pid_t pid;

    memset(e, 0, sizeof(*e));
    e->pid = -1;
    e->out_fd = -1;
    argv[argc++] = temu_binary();
    argv[argc++] = "--listen";
    argv[argc++] = "127.0.0.1:0";
    for (size_t i = 0; extra_args != NULL && extra_args[i] != NULL && i < TEMU_MAX_ARGS; i++)
        argv[argc++] = extra_args[i];
    argv[argc] = NULL;
    if (pipe2(pipefd, O_CLOEXEC) != 0)
        return -1;
    pid = fork();
    if (pid < 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(pipefd[1], 1);
        if (getenv("TV_EMU_VERBOSE") == NULL) {
            int dn = open("/dev/null", O_WRONLY);
            if (dn >= 0)
                dup2(dn, 2);
        }
        /* execv's prototype predates const; POSIX states it does not modify argv. The union
         * reads the same pointer as execv's type without a cast that drops the const. */
        union {
            const char *const *c;
            char *const *m;
        } args = {.c = argv};
        execv(argv[0], args.m);
        _exit(127);
    }
    close(pipefd[1]);
    e->pid = pid;
    e->out_fd = pipefd[0];
    if (read_line(e->out_fd, e->connstr, sizeof(e->connstr)) != 0)
        goto fail;
    /* endpoint=http://127.0.0.1:PORT/;accesskey=... */
    p = strstr(e->connstr, "127.0.0.1:");
    if (p == NULL)
        goto fail;
    errno = 0;
    port = strtol(p + strlen("127.0.0.1:"), &end, 10);
    if (errno != 0 || *end != '/' || port <= 0 || port > 65535)
        goto fail;
    e->port = (int)port;
    snprintf(e->base_url, sizeof(e->base_url), "http://127.0.0.1:%d", e->port);
    return 0;
fail:
    fprintf(stderr, "temu_start: %s did not print a connection string\n", argv[0]);
    temu_stop(e);
    return -1;
}

int temu_stop(struct temu *e)
{
    int status = 0, rc = -1;

    if (e->pid > 0) {
        kill(e->pid, SIGTERM);
        while (waitpid(e->pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (WIFEXITED(status))
            rc = WEXITSTATUS(status);
        e->pid = -1;
    }
    if (e->out_fd >= 0) {
        close(e->out_fd);
        e->out_fd = -1;
    }
    return rc;
}

size_t temu_body_write(char *d, size_t size, size_t nmemb, void *userp)
{
    struct temu_body *b = userp;
    size_t n = size * nmemb;
    char *p;

    if (b->len + n > TEMU_BODY_MAX)
        return 0;
    p = realloc(b->data, b->len + n + 1);
    if (p == NULL)
        return 0;
    memcpy(p + b->len, d, n);
    b->len += n;
    p[b->len] = '\0';
    b->data = p;
    return n;
}

int temu_http(const struct temu *e, const char *method, const char *path, const char *json,
              long *status, char **body)
{
    char url[TEMU_URL_MAX + 256];
    struct temu_body acc = {NULL, 0};
    struct curl_slist *h = NULL;
    CURL *c = curl_easy_init();
    int rc = -1;

    if (c == NULL)
        return -1;
    snprintf(url, sizeof(url), "%s%s", e->base_url, path);
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, temu_body_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, (void *)&acc);
    if (json != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(json));
    }
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        rc = 0;
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (rc == 0 && body != NULL) {
        *body = acc.data != NULL ? acc.data : strdup("");
        acc.data = NULL;
    }
    free(acc.data);
    return rc;
}

static int http_2xx(const struct temu *e, const char *method, const char *path, const char *json)
{
    long status = 0;

    if (temu_http(e, method, path, json, &status, NULL) != 0)
        return -1;
    return status >= 200 && status <= 299 ? 0 : -1;
}

int temu_faults_set(const struct temu *e, const char *json)
{
    return http_2xx(e, "PUT", "/emulator/faults", json);
}

int temu_faults_clear(const struct temu *e)
{
    return http_2xx(e, "DELETE", "/emulator/faults", NULL);
}

int temu_stats_reset(const struct temu *e)
{
    return http_2xx(e, "POST", "/emulator/stats/reset", NULL);
}

long temu_stats_get(const struct temu *e, const char *group, const char *op)
{
    char *body = NULL;
    long status = 0, v = -1;
    struct json_object *root, *g, *n;

    if (temu_http(e, "GET", "/emulator/stats", NULL, &status, &body) != 0 || status != 200) {
        free(body);
        return -1;
    }
    root = json_tokener_parse(body);
    if (root != NULL && json_object_object_get_ex(root, group, &g)) {
        if (op == NULL && json_object_is_type(g, json_type_int))
            v = (long)json_object_get_int64(g);
        else if (op != NULL && json_object_object_get_ex(g, op, &n) &&
                 json_object_is_type(n, json_type_int))
            v = (long)json_object_get_int64(n);
    }
    json_object_put(root);
    free(body);
    return v;
}

int temu_closed_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;

    if (fd < 0)
        return 0;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

char *temu_fake_jwt(const char *payload_json)
{
    static const char header[] = "{\"alg\":\"none\",\"typ\":\"JWT\"}";
    size_t plen = strlen(payload_json);
    char *h = malloc(b64_encoded_size(sizeof(header) - 1));
    char *p = malloc(b64_encoded_size(plen));
    char *out = NULL;

    if (h != NULL && p != NULL) {
        b64url_encode((const uint8_t *)header, sizeof(header) - 1, h);
        b64url_encode((const uint8_t *)payload_json, plen, p);
        size_t n = strlen(h) + strlen(p) + 4;
        out = malloc(n);
        if (out != NULL)
            snprintf(out, n, "%s.%s.x", h, p);
    }
    free(h);
    free(p);
    return out;
}
