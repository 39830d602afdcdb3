/* One listener's part of the OpenAPI document. Components are pruned to those the listener's
 * paths reach, so the public document does not describe the internal API's shapes (API keys,
 * mapping listings); tests/e2e/openapi.test.mjs builds the same part on its own and compares. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "split.h"

#define REF_PREFIX "#/components/"
/* Longest component section or name a $ref may hold (bounded copy while decoding). */
#define REF_PART_MAX 256

static const char *const split_methods[] = {"get",     "put",  "post",  "delete",
                                            "options", "head", "patch", "trace"};

struct split {
    struct json_object *comps;  /* doc's "components", or NULL (borrowed) */
    struct json_object *marked; /* {section: {name: true}}: components kept */
    struct json_object *tags;   /* {name: true}: tags the kept operations use */
    char *err;
    size_t errcap;
};

/* A deep copy of src into *dst; a YAML null (NULL) copies as NULL. */
static int split_copy(struct json_object *src, struct json_object **dst)
{
    *dst = NULL;
    return src == NULL ? 0 : json_object_deep_copy(src, dst, NULL);
}

static int split_fail(struct split *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(s->err, s->errcap, fmt, ap);
    va_end(ap);
    return -1;
}

/* A member of obj, or NULL (also when obj is not an object). */
static struct json_object *split_get(struct json_object *obj, const char *key)
{
    struct json_object *v = NULL;

    if (!json_object_is_type(obj, json_type_object) || !json_object_object_get_ex(obj, key, &v))
        return NULL;
    return v;
}

/* The listener a server entry names, or NULL after failing. */
static const char *split_server_listener(struct split *s, struct json_object *server,
                                         const char *where)
{
    struct json_object *l = split_get(server, OPENAPI_LISTENER_KEY);

    if (!json_object_is_type(l, json_type_string)) {
        split_fail(s, "%s: a servers entry without a string \"%s\"", where, OPENAPI_LISTENER_KEY);
        return NULL;
    }
    return json_object_get_string(l);
}

/* The entries of servers (an array) that name listener, as a new array in *out. Every entry
 * must name one of known's listeners (NULL: any, for the top-level list that defines them). */
static int split_servers(struct split *s, struct json_object *servers, const char *listener,
                         struct json_object *known, const char *where, struct json_object **out)
{
    struct json_object *arr = NULL, *copy;
    size_t i, n;
    int rc = -1;

    if (!json_object_is_type(servers, json_type_array)) {
        split_fail(s, "%s: \"servers\" is not a list", where);
        goto out;
    }
    arr = json_object_new_array();
    n = json_object_array_length(servers);
    for (i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(servers, i);
        const char *l = split_server_listener(s, e, where);

        if (l == NULL)
            goto out;
        if (known != NULL && split_get(known, l) == NULL) {
            split_fail(s,
                       "%s: servers entry names listener \"%s\", which no top-level servers "
                       "entry names",
                       where, l);
            goto out;
        }
        if (strcmp(l, listener) != 0)
            continue;
        copy = NULL;
        if (split_copy(e, &copy) != 0 || json_object_array_add(arr, copy) != 0) {
            json_object_put(copy);
            split_fail(s, "out of memory");
            goto out;
        }
    }
    *out = arr;
    arr = NULL;
    rc = 0;
out:
    json_object_put(arr);
    return rc;
}

/* Copies a "#/components/..." part up to the next '/' into out, decoding JSON pointer escapes
 * (~1 is '/', ~0 is '~'); returns the rest, or NULL when malformed or too long. */
static const char *split_ref_part(const char *p, char *out, size_t cap)
{
    size_t n = 0;

    while (*p && *p != '/') {
        char c = *p++;

        if (c == '~') {
            if (*p != '0' && *p != '1')
                return NULL;
            c = *p++ == '1' ? '/' : '~';
        }
        if (n + 1 >= cap)
            return NULL;
        out[n++] = c;
    }
    out[n] = '\0';
    return n > 0 ? p : NULL;
}

static int split_walk(struct split *s, struct json_object *node, const char *where);

/* Keeps the component section/name and whatever it references in turn. */
static int split_keep(struct split *s, const char *section, const char *name, const char *where)
{
    struct json_object *sec = split_get(s->comps, section);
    struct json_object *comp = split_get(sec, name);
    struct json_object *kept = split_get(s->marked, section);
    int rc = -1;

    if (comp == NULL) {
        split_fail(s, "%s: components/%s/%s is not defined", where, section, name);
        goto out;
    }
    if (kept == NULL) {
        kept = json_object_new_object();
        json_object_object_add(s->marked, section, kept);
    }
    if (split_get(kept, name) != NULL) {
        rc = 0; /* already kept, and walked: a cycle or a shared component */
        goto out;
    }
    json_object_object_add(kept, name, json_object_new_boolean(1));
    rc = split_walk(s, comp, where);
out:
    return rc;
}

static int split_ref(struct split *s, const char *ref, const char *where)
{
    char section[REF_PART_MAX], name[REF_PART_MAX];
    const char *p;

    if (strncmp(ref, REF_PREFIX, strlen(REF_PREFIX)) != 0)
        return split_fail(s, "%s: $ref \"%s\" is not a local \"" REF_PREFIX "...\" reference",
                          where, ref);
    p = split_ref_part(ref + strlen(REF_PREFIX), section, sizeof section);
    if (p == NULL || *p != '/' || (p = split_ref_part(p + 1, name, sizeof name)) == NULL ||
        *p != '\0')
        return split_fail(s, "%s: $ref \"%s\" is not \"" REF_PREFIX "<section>/<name>\"", where,
                          ref);
    return split_keep(s, section, name, where);
}

/* Every $ref under node. A "$ref" member that is not a string is a schema property named
 * "$ref", not a reference. */
static int split_walk(struct split *s, struct json_object *node, const char *where)
{
    struct json_object *ref = split_get(node, "$ref");
    size_t i, n;

    if (json_object_is_type(ref, json_type_string) &&
        split_ref(s, json_object_get_string(ref), where) != 0)
        return -1;
    if (json_object_is_type(node, json_type_object)) {
        json_object_object_foreach(node, k, v)
        {
            (void)k;
            if (split_walk(s, v, where) != 0)
                return -1;
        }
    } else if (json_object_is_type(node, json_type_array)) {
        n = json_object_array_length(node);
        for (i = 0; i < n; i++)
            if (split_walk(s, json_object_array_get_idx(node, i), where) != 0)
                return -1;
    }
    return 0;
}

/* A security requirement list names schemes by key, not by $ref. */
static int split_security(struct split *s, struct json_object *reqs, const char *where)
{
    size_t i, n;

    if (reqs == NULL)
        return 0;
    if (!json_object_is_type(reqs, json_type_array))
        return split_fail(s, "%s: \"security\" is not a list", where);
    n = json_object_array_length(reqs);
    for (i = 0; i < n; i++) {
        struct json_object *req = json_object_array_get_idx(reqs, i);

        if (!json_object_is_type(req, json_type_object))
            return split_fail(s, "%s: a security requirement is not a mapping", where);
        json_object_object_foreach(req, scheme, scopes)
        {
            (void)scopes;
            if (split_keep(s, "securitySchemes", scheme, where) != 0)
                return -1;
        }
    }
    return 0;
}

/* The tags and security of a kept path item's operations. */
static int split_operations(struct split *s, struct json_object *item, const char *path)
{
    size_t m, i, n;

    for (m = 0; m < sizeof split_methods / sizeof split_methods[0]; m++) {
        struct json_object *op = split_get(item, split_methods[m]);
        struct json_object *tags = split_get(op, "tags");

        if (op == NULL)
            continue;
        if (split_security(s, split_get(op, "security"), path) != 0)
            return -1;
        n = json_object_is_type(tags, json_type_array) ? json_object_array_length(tags) : 0;
        for (i = 0; i < n; i++) {
            struct json_object *t = json_object_array_get_idx(tags, i);

            if (!json_object_is_type(t, json_type_string))
                return split_fail(s, "%s %s: a tag is not a string", split_methods[m], path);
            json_object_object_add(s->tags, json_object_get_string(t), json_object_new_boolean(1));
        }
    }
    return 0;
}

/* Operation-level "servers" (OpenAPI 3.0 Operation Object) would override the path item's, so
 * one operation could belong to another listener than its path. The cut is per path item, and
 * the route tables and tests/e2e/openapi.test.mjs read servers per path too: refused, whatever
 * the listener, so such a document fails the build instead of leaking an operation into the
 * other listener's document. */
static int split_no_operation_servers(struct split *s, struct json_object *item, const char *path)
{
    size_t m;

    for (m = 0; m < sizeof split_methods / sizeof split_methods[0]; m++)
        if (split_get(split_get(item, split_methods[m]), "servers") != NULL)
            return split_fail(s,
                              "%s %s: operation-level \"servers\" are not supported (the "
                              "listeners are chosen per path): give the operation a path "
                              "whose \"servers\" name its listeners",
                              split_methods[m], path);
    return 0;
}

/* The path items listener serves, each with its servers cut to that listener, into *out. */
static int split_paths(struct split *s, struct json_object *paths, const char *listener,
                       struct json_object *known, struct json_object **out)
{
    struct json_object *res = json_object_new_object(), *copy = NULL, *servers;
    int rc = -1;

    if (!json_object_is_type(paths, json_type_object)) {
        split_fail(s, "\"paths\" is not a mapping");
        goto out;
    }
    json_object_object_foreach(paths, path, item)
    {
        servers = NULL;
        if (!json_object_is_type(item, json_type_object)) {
            split_fail(s, "%s: the path item is not a mapping", path);
            goto out;
        }
        if (split_no_operation_servers(s, item, path) != 0)
            goto out;
        if (split_get(item, "servers") != NULL) {
            if (split_servers(s, split_get(item, "servers"), listener, known, path, &servers) != 0)
                goto out;
            if (json_object_array_length(servers) == 0) {
                json_object_put(servers);
                continue; /* served by the other listener(s) only */
            }
        }
        copy = NULL;
        if (split_copy(item, &copy) != 0) {
            json_object_put(servers);
            split_fail(s, "out of memory");
            goto out;
        }
        if (servers != NULL)
            json_object_object_add(copy, "servers", servers);
        json_object_object_add(res, path, copy);
        if (split_walk(s, copy, path) != 0 || split_operations(s, copy, path) != 0)
            goto out;
    }
    *out = res;
    res = NULL;
    rc = 0;
out:
    json_object_put(res);
    return rc;
}

/* The top-level tags entries (objects with a "name") that kept operations use, in order. */
static struct json_object *split_tags(struct split *s, struct json_object *tags)
{
    struct json_object *res = json_object_new_array(), *copy;
    size_t i, n = json_object_is_type(tags, json_type_array) ? json_object_array_length(tags) : 0;

    for (i = 0; i < n; i++) {
        struct json_object *t = json_object_array_get_idx(tags, i);
        struct json_object *name = split_get(t, "name");

        if (!json_object_is_type(name, json_type_string) ||
            split_get(s->tags, json_object_get_string(name)) == NULL)
            continue;
        copy = NULL;
        if (split_copy(t, &copy) == 0)
            json_object_array_add(res, copy);
    }
    return res;
}

/* The kept components, in the document's order of sections and names. */
static struct json_object *split_components(struct split *s)
{
    struct json_object *res = json_object_new_object(), *sec, *copy;

    if (!json_object_is_type(s->comps, json_type_object))
        return res;
    json_object_object_foreach(s->comps, section, all)
    {
        struct json_object *kept = split_get(s->marked, section);

        if (kept == NULL || !json_object_is_type(all, json_type_object))
            continue;
        sec = json_object_new_object();
        json_object_object_foreach(all, name, comp)
        {
            copy = NULL;
            if (split_get(kept, name) != NULL && split_copy(comp, &copy) == 0)
                json_object_object_add(sec, name, copy);
        }
        json_object_object_add(res, section, sec);
    }
    return res;
}

/* The listeners the top-level servers name, as {name: true}, into *out. */
static int split_known(struct split *s, struct json_object *servers, struct json_object **out)
{
    struct json_object *known = json_object_new_object();
    size_t i, n;
    int rc = -1;

    if (!json_object_is_type(servers, json_type_array)) {
        split_fail(s, "the top-level \"servers\" is missing or not a list");
        goto out;
    }
    n = json_object_array_length(servers);
    for (i = 0; i < n; i++) {
        const char *l =
            split_server_listener(s, json_object_array_get_idx(servers, i), "top-level servers");

        if (l == NULL)
            goto out;
        json_object_object_add(known, l, json_object_new_boolean(1));
    }
    *out = known;
    known = NULL;
    rc = 0;
out:
    json_object_put(known);
    return rc;
}

/* The document's info for listener: info.description becomes that listener's entry of
 * info.x-tokenvend-description, a blank line, then the common info.description (either alone
 * when the other is missing), and the map itself is left out. So what only one listener's
 * callers should read (the internal listener's address, the API key format) stays out of the
 * other's document. The map's keys must be listeners the top-level servers name. */
static int split_info(struct split *s, struct json_object *info, const char *listener,
                      struct json_object *known, struct json_object **out)
{
    struct json_object *res = NULL, *map, *own, *common;
    const char *text;
    char *joined = NULL;
    size_t own_len, common_len;
    int rc = -1;

    if (!json_object_is_type(info, json_type_object)) {
        split_fail(s, "\"info\" is not a mapping");
        goto out;
    }
    map = split_get(info, OPENAPI_DESCRIPTION_KEY);
    common = split_get(info, "description");
    if (common != NULL && !json_object_is_type(common, json_type_string)) {
        split_fail(s, "info.description is not a string");
        goto out;
    }
    if (map != NULL && !json_object_is_type(map, json_type_object)) {
        split_fail(s, "info." OPENAPI_DESCRIPTION_KEY " is not a mapping of listener to text");
        goto out;
    }
    if (map != NULL) {
        json_object_object_foreach(map, l, t)
        {
            if (split_get(known, l) == NULL) {
                split_fail(s,
                           "info." OPENAPI_DESCRIPTION_KEY " names listener \"%s\", which no "
                           "top-level servers entry names",
                           l);
                goto out;
            }
            if (!json_object_is_type(t, json_type_string)) {
                split_fail(s, "info." OPENAPI_DESCRIPTION_KEY ".%s is not a string", l);
                goto out;
            }
        }
    }
    if (split_copy(info, &res) != 0) {
        split_fail(s, "out of memory");
        goto out;
    }
    json_object_object_del(res, OPENAPI_DESCRIPTION_KEY);
    own = split_get(map, listener);
    if (own != NULL) {
        text = json_object_get_string(own);
        own_len = (size_t)json_object_get_string_len(own);
        while (own_len > 0 && text[own_len - 1] == '\n')
            own_len--; /* a YAML block's final newline: the join adds the paragraph break */
        common_len = common != NULL ? (size_t)json_object_get_string_len(common) : 0;
        if ((joined = malloc(own_len + 2 + common_len + 1)) == NULL) {
            split_fail(s, "out of memory");
            goto out;
        }
        memcpy(joined, text, own_len);
        if (common != NULL) {
            memcpy(joined + own_len, "\n\n", 2);
            memcpy(joined + own_len + 2, json_object_get_string(common), common_len);
            own_len += 2 + common_len;
        }
        /* Added in place of an existing description, so info keeps the file's order. */
        if (json_object_object_add(res, "description",
                                   json_object_new_string_len(joined, (int)own_len)) != 0) {
            split_fail(s, "out of memory");
            goto out;
        }
    }
    *out = res;
    res = NULL;
    rc = 0;
out:
    free(joined);
    json_object_put(res);
    return rc;
}

/* Walks the top-level members other than paths and components, for the $refs and security
 * requirements they hold. */
static int split_top(struct split *s, struct json_object *doc)
{
    json_object_object_foreach(doc, key, val)
    {
        if (strcmp(key, "paths") == 0 || strcmp(key, "components") == 0)
            continue;
        if (strcmp(key, "security") == 0 && split_security(s, val, "top-level security") != 0)
            return -1;
        if (split_walk(s, val, key) != 0)
            return -1;
    }
    return 0;
}

int openapi_split(struct json_object *doc, const char *listener, struct json_object **out,
                  char *err, size_t errcap)
{
    struct split s = {.err = err, .errcap = errcap};
    struct json_object *known = NULL, *servers = NULL, *paths = NULL, *res = NULL, *v;
    int rc = -1;

    if (errcap > 0)
        err[0] = '\0';
    if (!json_object_is_type(doc, json_type_object) || split_get(doc, "openapi") == NULL ||
        split_get(doc, "info") == NULL || split_get(doc, "paths") == NULL) {
        split_fail(&s, "not an OpenAPI document (\"openapi\", \"info\" and \"paths\" needed)");
        goto out;
    }
    s.comps = split_get(doc, "components");
    s.marked = json_object_new_object();
    s.tags = json_object_new_object();
    if (split_known(&s, split_get(doc, "servers"), &known) != 0)
        goto out;
    if (split_get(known, listener) == NULL) {
        split_fail(&s, "no top-level servers entry names listener \"%s\"", listener);
        goto out;
    }
    if (split_servers(&s, split_get(doc, "servers"), listener, NULL, "top-level servers",
                      &servers) != 0 ||
        split_paths(&s, split_get(doc, "paths"), listener, known, &paths) != 0 ||
        split_top(&s, doc) != 0)
        goto out;
    /* Assembled in the document's order, so the JSON reads like the YAML. */
    res = json_object_new_object();
    json_object_object_foreach(doc, key, val)
    {
        v = NULL;
        if (strcmp(key, "info") == 0) {
            if (split_info(&s, val, listener, known, &v) != 0)
                goto out;
        } else if (strcmp(key, "servers") == 0) {
            v = json_object_get(servers);
        } else if (strcmp(key, "paths") == 0) {
            v = json_object_get(paths);
        } else if (strcmp(key, "tags") == 0) {
            v = split_tags(&s, val);
            if (json_object_array_length(v) == 0) {
                json_object_put(v);
                continue;
            }
        } else if (strcmp(key, "components") == 0) {
            v = split_components(&s);
            if (json_object_object_length(v) == 0) {
                json_object_put(v);
                continue;
            }
        } else if (split_copy(val, &v) != 0) {
            split_fail(&s, "out of memory");
            goto out;
        }
        json_object_object_add(res, key, v);
    }
    *out = res;
    res = NULL;
    rc = 0;
out:
    json_object_put(res);
    json_object_put(paths);
    json_object_put(servers);
    json_object_put(known);
    json_object_put(s.tags);
    json_object_put(s.marked);
    return rc;
}
