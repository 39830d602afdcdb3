/* Building responses and the reply state machine: a reply may come from the handler itself, from
 * another thread while the handler still runs, or after the connection was suspended; each case
 * is decided under the request's lock, so exactly one thread queues the response. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>
#include <microhttpd.h>
#include <openssl/crypto.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "http_int.h"

static void http_req_free(struct http_req *req)
{
    size_t i;

    if (req->data_free && req->data)
        req->data_free(req->data);
    if (req->resp)
        MHD_destroy_response(req->resp);
    for (i = 0; i < req->nparams; i++)
        free(req->params[i]);
    buf_release(&req->body);
    buf_release_wipe(&req->hdrs); /* may hold a Set-Cookie with a refresh token */
    free(req->target);
    pthread_mutex_destroy(&req->mu);
    free(req);
}

void http_req_unref(struct http_req *req)
{
    if (atomic_fetch_sub(&req->refs, 1) == 1)
        http_req_free(req);
}

char *http_error_body(const char *code, const char *message, size_t *len)
{
    struct json_object *root = json_object_new_object();
    struct json_object *err = json_object_new_object();
    char *out = NULL;

    if (!root || !err) {
        json_object_put(root);
        json_object_put(err);
        return NULL;
    }
    json_object_object_add(err, "code", json_object_new_string(code ? code : "internal_error"));
    json_object_object_add(err, "message", json_object_new_string(message ? message : ""));
    json_object_object_add(root, "error", err);
    out = strdup(jsonx_compact(root));
    json_object_put(root);
    if (out)
        *len = strlen(out);
    return out;
}

/* A reply body that holds a secret (a token): libmicrohttpd sends straight from it (it copies
 * no body in 0.9.75) and, when the response is destroyed, hands it to http_secret_free, which
 * overwrites it before freeing. */
struct http_secret_body {
    char *data;
    size_t len;
};

static void http_secret_free(void *cls)
{
    struct http_secret_body *sb = cls;

    OPENSSL_cleanse(sb->data, sb->len);
    free(sb->data);
    free(sb);
}

/* True when the reply headers set so far hold header `name` whose value contains `needle`
 * ("" matches any value). */
static int http_reply_has(const struct http_req *req, const char *name, const char *needle)
{
    const char *p = req->hdrs.data;
    size_t i;

    for (i = 0; p && i < req->nhdrs; i++) {
        const char *n = p;
        const char *value = n + strlen(n) + 1;
        if (strcasecmp(n, name) == 0 && strcasestr(value, needle) != NULL)
            return 1;
        p = value + strlen(value) + 1;
    }
    return 0;
}

/* True when the reply headers set so far carry Cache-Control: no-store, the mark of a reply
 * whose body is a secret (tokens, sessions): such a body must not linger in freed memory. */
static int http_reply_is_secret(const struct http_req *req)
{
    return http_reply_has(req, "Cache-Control", "no-store");
}

/* The response over body[0..len) (len > 0), which it takes: a secret one through a callback that
 * wipes it, any other freed plainly. NULL when out of memory (body is then freed, wiped if
 * secret). */
static struct MHD_Response *http_resp_body(char *body, size_t len, int secret)
{
    struct MHD_Response *resp = NULL;
    struct http_secret_body *sb = NULL;

    if (!secret) {
        resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
        if (!resp)
            free(body);
        goto out;
    }
    sb = malloc(sizeof *sb);
    if (!sb) {
        OPENSSL_cleanse(body, len);
        free(body);
        goto out;
    }
    sb->data = body;
    sb->len = len;
    resp = MHD_create_response_from_buffer_with_free_callback_cls(len, body, http_secret_free, sb);
    if (!resp)
        http_secret_free(sb);
out:
    return resp;
}

struct MHD_Response *http_resp_build(struct http_req *req, int status, const char *ctype,
                                     char *body, size_t len)
{
    struct MHD_Response *resp;
    const char *p;
    size_t i;

    if (body && len > 0) {
        resp = http_resp_body(body, len, http_reply_is_secret(req));
    } else {
        free(body);
        resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        len = 0;
    }
    if (!resp)
        return NULL;
    if (ctype && len > 0)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, "X-Request-Id", req->id);
    if (req->cors_vary) {
        /* The answer depends on Origin whenever CORS is configured, allowed or not. */
        MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Origin");
        if (req->cors_origin[0]) {
            MHD_add_response_header(resp, "Access-Control-Allow-Origin", req->cors_origin);
            MHD_add_response_header(resp, "Access-Control-Expose-Headers",
                                    "X-Request-Id, Retry-After");
            /* A listed origin may send credentials (the session refresh cookie); "*" never can,
             * browsers refuse credentials with a wildcard. */
            if (strcmp(req->cors_origin, "*") != 0)
                MHD_add_response_header(resp, "Access-Control-Allow-Credentials", "true");
        }
    }
    p = req->hdrs.data;
    for (i = 0; p && i < req->nhdrs; i++) {
        const char *name = p;
        const char *value = name + strlen(name) + 1;
        MHD_add_response_header(resp, name, value);
        p = value + strlen(value) + 1;
    }
    /* Every overload answer tells the client when to come back, so clients can pace
     * themselves: a path that knows a better wait set its own header above; any other (the
     * shutdown 503, a store or queue that cannot take more, a path added later) gets this. */
    if ((status == 429 || status == 503) && !http_reply_has(req, "Retry-After", ""))
        MHD_add_response_header(resp, "Retry-After", HTTP_RETRY_AFTER_DEFAULT_S);
    req->bytes_out = len;
    return resp;
}

void http_reply_header(struct http_req *req, const char *name, const char *value)
{
    size_t old;

    if (!name || !value)
        return;
    /* Header injection guard: a CR or LF would let a value start a new header. */
    if (strpbrk(name, "\r\n: ") || strpbrk(value, "\r\n"))
        return;
    /* Locked because a shutdown may build its 503 from this list at the same moment. */
    pthread_mutex_lock(&req->mu);
    old = req->hdrs.len;
    if (req->nhdrs < HTTP_MAX_REPLY_HEADERS) {
        if (buf_append(&req->hdrs, name, strlen(name) + 1) == 0 &&
            buf_append(&req->hdrs, value, strlen(value) + 1) == 0)
            req->nhdrs++;
        else
            req->hdrs.len = old;
    }
    pthread_mutex_unlock(&req->mu);
}

/* The one path every public reply takes. body (malloc'd or NULL) is consumed. */
static void http_reply_finish(struct http_req *req, int status, const char *ctype, char *body,
                              size_t len)
{
    struct MHD_Response *resp, *discard = NULL;
    struct http_server *srv;
    int drop = 0;

    if (status < 100 || status > 599)
        status = 500;
    resp = http_resp_build(req, status, ctype, body, len);
    pthread_mutex_lock(&req->mu);
    switch (req->state) {
    case HTTP_ST_HANDLER:
    case HTTP_ST_SUSPENDED:
        req->resp = resp; /* NULL when out of memory: the server thread then drops the line */
        req->status = resp ? status : 500;
        srv = req->l->srv; /* alive: the server waits for or abandons requests before freeing */
        atomic_fetch_sub(&srv->in_flight, 1);
        if (req->state == HTTP_ST_SUSPENDED) {
            pthread_mutex_lock(&srv->mu);
            if (req->prev)
                req->prev->next = req->next;
            else
                srv->suspended = req->next;
            if (req->next)
                req->next->prev = req->prev;
            req->prev = req->next = NULL;
            pthread_mutex_unlock(&srv->mu);
            req->state = HTTP_ST_REPLIED;
            /* Still suspended, so the connection cannot be gone: resuming is safe here. */
            MHD_resume_connection(req->conn);
        } else {
            req->state = HTTP_ST_REPLIED;
        }
        break;
    case HTTP_ST_ABANDONED:
        discard = resp; /* answered 503 at shutdown; the server may be gone: touch nothing */
        break;
    default:
        discard = resp;
        log_msg(LOGL_ERROR, req->id, "http: second reply to one request ignored");
        break;
    }
    if (req->owed) {
        req->owed = 0;
        drop = 1;
    }
    pthread_mutex_unlock(&req->mu);
    if (discard)
        MHD_destroy_response(discard);
    if (drop)
        http_req_unref(req);
}

/* Overwrites every string value in the tree under o (its keys are names, not secrets), for a
 * secret reply whose json-c objects are about to be freed: json-c frees without wiping. */
static void http_json_wipe(struct json_object *o, int depth)
{
    size_t i, n;

    if (depth > JSONX_MAX_DEPTH)
        return;
    switch (json_object_get_type(o)) {
    case json_type_string:
        buf_wipe_const(json_object_get_string(o), (size_t)json_object_get_string_len(o));
        break;
    case json_type_array:
        n = json_object_array_length(o);
        for (i = 0; i < n; i++)
            http_json_wipe(json_object_array_get_idx(o, i), depth + 1);
        break;
    case json_type_object: {
        json_object_object_foreach(o, key, child)
        {
            (void)key;
            http_json_wipe(child, depth + 1);
        }
        break;
    }
    default:
        break;
    }
}

void http_reply_json(struct http_req *req, int status, struct json_object *body)
{
    char *s = NULL;
    size_t len = 0;

    if (body == NULL) {
        http_reply_finish(req, status, "application/json", NULL, 0);
        return;
    }
    if (http_reply_is_secret(req)) {
        /* Not json-c's serialiser: its buffer moves as it grows, leaving unwiped copies. */
        if (http_json_text(body, &s, &len) != 0)
            s = NULL;
        http_json_wipe(body, 0);
    } else {
        s = strdup(jsonx_compact(body));
        len = s != NULL ? strlen(s) : 0;
    }
    json_object_put(body);
    if (s == NULL) {
        status = 500;
        s = http_error_body(err_name(TV_ERR_NOMEM), err_message(TV_ERR_NOMEM), &len);
    }
    http_reply_finish(req, status, "application/json", s, len);
}

void http_reply_data(struct http_req *req, int status, const char *content_type, const void *data,
                     size_t len)
{
    char *copy = NULL;

    if (data && len > 0) {
        copy = malloc(len);
        if (!copy) {
            http_reply_error(req, TV_ERR_NOMEM, NULL);
            return;
        }
        memcpy(copy, data, len);
    }
    http_reply_finish(req, status, content_type, copy, copy ? len : 0);
}

void http_reply_empty(struct http_req *req, int status)
{
    http_reply_finish(req, status, NULL, NULL, 0);
}

void http_reply_error_status(struct http_req *req, int status, const char *code,
                             const char *message)
{
    size_t len = 0;
    char *s = http_error_body(code, message, &len);

    http_reply_finish(req, status, "application/json", s, s ? len : 0);
}

void http_reply_error(struct http_req *req, int rc, const char *message)
{
    http_reply_error_status(req, err_http_status(rc), err_name(rc),
                            message ? message : err_message(rc));
}
