/* `tokenvend healthcheck`: one HTTP GET to this instance's own /readyz (or to --url), for a
 * container's HEALTHCHECK, so that the runtime image needs no curl and no shell. Exit 0 on a 2xx
 * answer, 1 on anything else with one JSON error line on stderr saying why. Single-threaded. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "cli/cli.h"
#include "core/curlx.h"
#include "core/log.h"

#define HC_URL_MAX 2048
#define HC_EXCERPT_MAX 200 /* bytes of a failing answer's body quoted in the message */
#define HC_TIMEOUT_DEFAULT_MS 2000
#define HC_TIMEOUT_MAX_MS 60000
/* Docker reserves exit status 2 of a health check, so every failure, a usage error included,
 * exits 1 here (the other commands exit 2 for those). */
#define HC_EXIT_UNHEALTHY 1

enum { OPT_URL, OPT_TIMEOUT };
static const struct cli_opt hc_opts[] = {
    [OPT_URL] = {"url", "URL", "probe URL (http or https) instead of this instance's /readyz"},
    [OPT_TIMEOUT] = {"timeout-ms", "N", "give up after N ms, 1..60000 (default 2000)"},
};
#define HC_NOPTS (sizeof hc_opts / sizeof hc_opts[0])

/* What the body callback keeps: the start of the answer, for the message of a failure. */
struct hc_body {
    char excerpt[HC_EXCERPT_MAX + 1];
    size_t len;
};

void cli_healthcheck_usage_print(FILE *f)
{
    fputs("Usage: tokenvend healthcheck [--internal | --url URL] [--timeout-ms N]\n"
          "                             [--config FILE] [--set NAME=VALUE ...]\n"
          "\n"
          "One HTTP GET, for a container's HEALTHCHECK (the image has no curl). By default it\n"
          "asks this instance's public listener for /readyz, at public_addr from the same\n"
          "configuration serve reads (TOKENVEND_PUBLIC_ADDR, config file, --set), with a\n"
          "wildcard address (0.0.0.0, ::) probed on loopback (127.0.0.1, ::1). --internal asks\n"
          "the internal listener (internal_addr) instead; --url asks any http(s) URL, e.g. the\n"
          "emulator's http://127.0.0.1:8090/emulator/jwks, without reading the configuration.\n"
          "No proxy is used and redirects are not followed.\n"
          "Exit status: 0 on a 2xx answer; 1 otherwise (refused, timed out, another status, or\n"
          "a usage or configuration error: Docker reserves 2), with one {\"error\":{...}} line\n"
          "on stderr saying why.\n"
          "\n",
          f);
    cli_opts_print(f, hc_opts, HC_NOPTS);
    fputs("  --internal             probe the internal listener's /readyz\n", f);
    cli_common_flags_print(f);
}

/* Keeps the first HC_EXCERPT_MAX bytes and drops the rest; the answer of a health endpoint is
 * small, and nothing here needs more than its start. */
static size_t hc_body_write(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct hc_body *b = userdata;
    size_t n = size * nmemb;
    size_t room = HC_EXCERPT_MAX - b->len;
    size_t take = n < room ? n : room;

    memcpy(b->excerpt + b->len, data, take);
    b->len += take;
    b->excerpt[b->len] = '\0';
    return n;
}

/* The body quoted in a message must not break the one-line output: control bytes and non-ASCII
 * become '?'. */
static void hc_excerpt_clean(struct hc_body *b)
{
    for (size_t i = 0; i < b->len; i++) {
        unsigned char c = (unsigned char)b->excerpt[i];
        if (c < 0x20 || c > 0x7e)
            b->excerpt[i] = '?';
    }
}

/* The URL of addr's /readyz, a wildcard address replaced by loopback of the same family.
 * 0, or -1 with why set (port 0, or a URL that does not fit). */
static int hc_url_from_addr(const struct config_addr *addr, const char *setting, char *url,
                            size_t cap, char *why, size_t whylen)
{
    struct in_addr v4;
    struct in6_addr v6;
    const char *host = addr->host;
    int n;

    if (addr->port == 0) {
        snprintf(why, whylen, "%s has port 0 (any port): the port is unknown, give --url", setting);
        return -1;
    }
    if (host[0] == '\0' || (inet_pton(AF_INET, host, &v4) == 1 && v4.s_addr == htonl(0)))
        host = "127.0.0.1";
    else if (inet_pton(AF_INET6, host, &v6) == 1 && IN6_IS_ADDR_UNSPECIFIED(&v6))
        host = "::1";
    if (strchr(host, ':') != NULL)
        n = snprintf(url, cap, "http://[%s]:%d/readyz", host, addr->port);
    else
        n = snprintf(url, cap, "http://%s:%d/readyz", host, addr->port);
    if (n < 0 || (size_t)n >= cap) {
        snprintf(why, whylen, "%s: the host name is too long for a URL", setting);
        return -1;
    }
    return 0;
}

/* The GET itself. 0 on a 2xx answer; -1 with why set otherwise. */
static int hc_probe(const char *url, long timeout_ms, char *why, size_t whylen)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    struct hc_body body = {.len = 0};
    CURL *e = NULL;
    CURLcode cc;
    long status = 0;
    int rc = -1;

    if (curlx_init() != 0 || (e = curl_easy_init()) == NULL) {
        snprintf(why, whylen, "cannot initialise libcurl");
        goto done;
    }
    /* The instance's own listener: no proxy from the environment may stand in between, no
     * redirect leads elsewhere, and only http(s) is spoken. */
    if (curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_NOPROXY, "*") != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, hc_body_write) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &body) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_USERAGENT, "tokenvend-healthcheck/" TOKENVEND_VERSION) !=
            CURLE_OK) {
        snprintf(why, whylen, "%s: libcurl refused an option (a malformed URL?)", url);
        goto done;
    }
    if ((cc = curl_easy_perform(e)) != CURLE_OK) {
        snprintf(why, whylen, "%s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(cc));
        goto done;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) {
        hc_excerpt_clean(&body);
        snprintf(why, whylen, "%s answered %ld%s%s", url, status, body.len ? ": " : "",
                 body.excerpt);
        goto done;
    }
    printf("healthcheck: %s answered %ld\n", url, status);
    fflush(stdout);
    rc = 0;
done:
    curl_easy_cleanup(e);
    return rc;
}

int cli_healthcheck_main(int argc, char **argv)
{
    /* --internal takes no value, which the shared parser has no form for: it is taken out
     * here and the rest goes through cli_args_parse like every other command's flags. */
    char *rest[64];
    int nrest = 0, internal = 0;
    struct cli_args a;
    struct config cfg = {0};
    char url[HC_URL_MAX], why[HC_URL_MAX + 512];
    char cfgerr[CONFIG_ERR_MAX];
    long timeout_ms = HC_TIMEOUT_DEFAULT_MS;
    int loaded = 0;
    int rc = HC_EXIT_UNHEALTHY;

    /* A configuration that loads with warnings must not add lines to the one the check prints
     * (Docker keeps the output of every probe). */
    log_setup(LOGL_ERROR, 2);
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--internal") == 0) {
            internal = 1;
        } else if (nrest < (int)(sizeof rest / sizeof rest[0])) {
            rest[nrest++] = argv[i];
        } else {
            (void)cli_usage_error("healthcheck: too many arguments");
            goto done;
        }
    }
    if (cli_args_parse("healthcheck", nrest, rest, hc_opts, HC_NOPTS, 0, &a) != CLI_EXIT_OK)
        goto done;
    if (a.help) {
        cli_healthcheck_usage_print(stdout);
        rc = CLI_EXIT_OK;
        goto done;
    }
    if (a.values[OPT_TIMEOUT] != NULL) {
        char *end;
        timeout_ms = strtol(a.values[OPT_TIMEOUT], &end, 10);
        if (end == a.values[OPT_TIMEOUT] || *end != '\0' || timeout_ms < 1 ||
            timeout_ms > HC_TIMEOUT_MAX_MS) {
            (void)cli_usage_error("healthcheck: --timeout-ms needs an integer in 1..%d",
                                  HC_TIMEOUT_MAX_MS);
            goto done;
        }
    }
    if (a.values[OPT_URL] != NULL) {
        const char *u = a.values[OPT_URL];
        if (internal) {
            (void)cli_usage_error("healthcheck: --url and --internal exclude each other");
            goto done;
        }
        if ((strncasecmp(u, "http://", 7) != 0 && strncasecmp(u, "https://", 8) != 0) ||
            strlen(u) >= sizeof url) {
            (void)cli_usage_error("healthcheck: --url needs an http:// or https:// URL of at "
                                  "most %d bytes",
                                  HC_URL_MAX - 1);
            goto done;
        }
        snprintf(url, sizeof url, "%s", u);
    } else {
        struct config_overrides ov = {
            .config_path = a.config_path,
            .flags = a.cfg_flags,
            .nflags = a.ncfg_flags,
        };
        if (config_load(&ov, &cfg, cfgerr, sizeof cfgerr) != 0) {
            cli_print_error("config_error", cfgerr, 0, NULL);
            goto done;
        }
        loaded = 1;
        if (hc_url_from_addr(internal ? &cfg.internal_addr : &cfg.public_addr,
                             internal ? "internal_addr" : "public_addr", url, sizeof url, why,
                             sizeof why) != 0) {
            cli_print_error("config_error", why, 0, NULL);
            goto done;
        }
    }
    if (hc_probe(url, timeout_ms, why, sizeof why) != 0) {
        cli_print_error("unhealthy", why, 0, NULL);
        goto done;
    }
    rc = CLI_EXIT_OK;
done:
    if (loaded)
        config_release(&cfg);
    return rc;
}
