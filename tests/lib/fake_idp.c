/* See fake_idp.h. */
#include "fake_idp.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>

struct fake_idp fake_idp;

static void copy_arg(struct MHD_Connection *c, enum MHD_ValueKind kind, const char *key, char *out,
                     size_t cap)
{
    const char *v = MHD_lookup_connection_value(c, kind, key);
    snprintf(out, cap, "%s", v ? v : "");
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    struct MHD_Response *resp;
    enum MHD_Result ret;
    int status;
    unsigned delay;
    char answer[sizeof(fake_idp.answer)];
    if (*con_cls == NULL) {
        *con_cls = &fake_idp;
        pthread_mutex_lock(&fake_idp.mu);
        fake_idp.body_len = 0;
        fake_idp.body[0] = '\0';
        pthread_mutex_unlock(&fake_idp.mu);
        return MHD_YES;
    }
    if (*upload_size > 0) {
        pthread_mutex_lock(&fake_idp.mu);
        size_t n = *upload_size;
        if (fake_idp.body_len + n >= sizeof(fake_idp.body))
            n = sizeof(fake_idp.body) - 1 - fake_idp.body_len;
        memcpy(fake_idp.body + fake_idp.body_len, upload, n);
        fake_idp.body_len += n;
        fake_idp.body[fake_idp.body_len] = '\0';
        pthread_mutex_unlock(&fake_idp.mu);
        *upload_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&fake_idp.mu);
    fake_idp.requests++;
    snprintf(fake_idp.method, sizeof(fake_idp.method), "%s", method);
    snprintf(fake_idp.path, sizeof(fake_idp.path), "%s", url);
    copy_arg(c, MHD_GET_ARGUMENT_KIND, "api-version", fake_idp.api_version,
             sizeof(fake_idp.api_version));
    copy_arg(c, MHD_GET_ARGUMENT_KIND, "resource", fake_idp.resource, sizeof(fake_idp.resource));
    copy_arg(c, MHD_GET_ARGUMENT_KIND, "client_id", fake_idp.client_id, sizeof(fake_idp.client_id));
    copy_arg(c, MHD_HEADER_KIND, "X-IDENTITY-HEADER", fake_idp.identity_header,
             sizeof(fake_idp.identity_header));
    copy_arg(c, MHD_HEADER_KIND, "Metadata", fake_idp.metadata, sizeof(fake_idp.metadata));
    status = fake_idp.status;
    delay = fake_idp.delay_ms;
    snprintf(answer, sizeof(answer), "%s", fake_idp.answer);
    if (strcmp(url, "/identities") == 0) {
        /* The ACS side of the keyless test: a create answered as ACS does (other ACS routes
         * get the set answer, as the credential check's test wants). */
        fake_idp.acs_requests++;
        copy_arg(c, MHD_HEADER_KIND, "Authorization", fake_idp.authorization,
                 sizeof(fake_idp.authorization));
        copy_arg(c, MHD_HEADER_KIND, "x-ms-content-sha256", fake_idp.content_sha,
                 sizeof(fake_idp.content_sha));
        status = 201;
        snprintf(answer, sizeof(answer), "{\"identity\":{\"id\":\"8:acs:r_u1\"}}");
        delay = 0;
    }
    pthread_mutex_unlock(&fake_idp.mu);
    if (delay > 0)
        usleep(delay * 1000u);
    resp = MHD_create_response_from_buffer(strlen(answer), answer, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

void fake_idp_answer(int status, const char *body)
{
    pthread_mutex_lock(&fake_idp.mu);
    fake_idp.status = status;
    snprintf(fake_idp.answer, sizeof(fake_idp.answer), "%s", body);
    pthread_mutex_unlock(&fake_idp.mu);
}

int fake_idp_start(void)
{
    memset(&fake_idp, 0, sizeof(fake_idp));
    pthread_mutex_init(&fake_idp.mu, NULL);
    fake_idp.d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, handler,
        NULL, MHD_OPTION_SOCK_ADDR,
        &(struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)},
        MHD_OPTION_END);
    if (fake_idp.d == NULL)
        return -1;
    fake_idp.port = MHD_get_daemon_info(fake_idp.d, MHD_DAEMON_INFO_BIND_PORT)->port;
    fake_idp_answer(
        200, "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_token\":\"eyJ0.e30.sig\"}");
    return 0;
}

void fake_idp_stop(void)
{
    MHD_stop_daemon(fake_idp.d);
    pthread_mutex_destroy(&fake_idp.mu);
}

void fake_idp_delay(unsigned ms)
{
    pthread_mutex_lock(&fake_idp.mu);
    fake_idp.delay_ms = ms;
    pthread_mutex_unlock(&fake_idp.mu);
}

int fake_idp_requests(void)
{
    pthread_mutex_lock(&fake_idp.mu);
    int n = fake_idp.requests;
    pthread_mutex_unlock(&fake_idp.mu);
    return n;
}

void fake_idp_base_url(char *out, size_t cap)
{
    snprintf(out, cap, "http://127.0.0.1:%d", fake_idp.port);
}
