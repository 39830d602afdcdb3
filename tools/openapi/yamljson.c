/* Strict YAML to json-c over libyaml's event parser. Strict because the output is served as
 * the API's contract: anything the JavaScript test's parser and this one could read differently
 * (anchors, tags, duplicate keys, non-string keys) fails the build instead. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <yaml.h>

#include "yamljson.h"

struct yj {
    yaml_parser_t parser;
    char *err;
    size_t errcap;
};

/* Writes "line L, column C: <message>" (1-based, as editors count). Always returns -1. */
static int yj_fail(struct yj *y, const yaml_mark_t *mark, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(y->err, y->errcap, "line %zu, column %zu: ", mark->line + 1, mark->column + 1);

    if (n >= 0 && (size_t)n < y->errcap) {
        va_start(ap, fmt);
        vsnprintf(y->err + n, y->errcap - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* The next event into ev; -1 with libyaml's own problem text on a syntax error. */
static int yj_next(struct yj *y, yaml_event_t *ev)
{
    if (yaml_parser_parse(&y->parser, ev))
        return 0;
    return yj_fail(y, &y->parser.problem_mark, "%s%s%s",
                   y->parser.problem ? y->parser.problem : "YAML syntax error",
                   y->parser.context ? " " : "", y->parser.context ? y->parser.context : "");
}

static int yj_in(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (strcmp(s, *set) == 0)
            return 1;
    return 0;
}

/* Only digits of the base (at least one) in s. */
static int yj_digits(const char *s, int base)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++) {
        int ok = base == 16  ? ((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') ||
                               (*s >= 'A' && *s <= 'F'))
                 : base == 8 ? (*s >= '0' && *s <= '7')
                             : (*s >= '0' && *s <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

/* The core schema's float: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static int yj_is_float(const char *s)
{
    size_t lead = 0, frac = 0;

    if (*s == '-' || *s == '+')
        s++;
    while (*s >= '0' && *s <= '9')
        s++, lead++;
    if (*s == '.') {
        s++;
        while (*s >= '0' && *s <= '9')
            s++, frac++;
        if (lead == 0 && frac == 0)
            return 0;
    } else if (lead == 0) {
        return 0;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '-' || *s == '+')
            s++;
        if (!yj_digits(s, 10))
            return 0;
        return 1;
    }
    return *s == '\0';
}

static int yj_int(struct yj *y, const yaml_mark_t *m, const char *digits, int base,
                  struct json_object **out)
{
    char *end = NULL;
    long long v;

    errno = 0;
    v = strtoll(digits, &end, base);
    if (errno == ERANGE || end == digits || *end != '\0')
        return yj_fail(y, m, "integer %s is outside the 64-bit range", digits);
    *out = json_object_new_int64(v);
    return 0;
}

/* A core-schema float literal as a double. Beyond double's range strtod gives HUGE_VAL, which
 * json-c would write as the bare word Infinity (not JSON): refused like .inf. Below it
 * (underflow: ERANGE with 0 or a subnormal) the value served would not be the one written, and
 * a reader could round it differently: refused too, asking for a representable number. */
static int yj_float(struct yj *y, const yaml_mark_t *m, const char *s, struct json_object **out)
{
    double v;

    errno = 0;
    v = strtod(s, NULL);
    if (isinf(v) || isnan(v))
        return yj_fail(y, m, "%s has no JSON form (infinity and NaN are not JSON numbers)", s);
    if (errno == ERANGE)
        return yj_fail(y, m,
                       "%s is below a double's normal range (it would read as %g): write 0 "
                       "or a number of magnitude at least 1e-307",
                       s, v);
    *out = json_object_new_double(v);
    return 0;
}

/* Whether a plain scalar (body: s past its sign) is one of the core schema's typed forms. */
static int yj_plain_typed(const char *s, const char *body)
{
    static const char *const words[] = {"",      "~",     "null",  "Null",  "NULL",  "true",
                                        "True",  "TRUE",  "false", "False", "FALSE", ".inf",
                                        ".Inf",  ".INF",  "+.inf", "+.Inf", "+.INF", "-.inf",
                                        "-.Inf", "-.INF", ".nan",  ".NaN",  ".NAN",  NULL};

    return yj_in(s, words) || yj_digits(body, 10) ||
           (strncmp(s, "0o", 2) == 0 && yj_digits(s + 2, 8)) ||
           (strncmp(s, "0x", 2) == 0 && yj_digits(s + 2, 16)) || yj_is_float(s);
}

/* A plain scalar's JSON value by the YAML 1.2 core schema (section 10.3.2); a plain scalar
 * that is none of null, bool, int or float is a string. */
static int yj_plain(struct yj *y, const yaml_mark_t *m, const char *s, size_t len,
                    struct json_object **out)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", NULL};
    static const char *const special[] = {".inf",  ".Inf",  ".INF",  "+.inf", "+.Inf",
                                          "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
                                          ".NaN",  ".NAN",  NULL};
    const char *body = s + (s[0] == '-' || s[0] == '+');
    int rc = 0;

    /* A plain scalar with a NUL inside is no typed value (libyaml refuses raw NULs anyway). */
    if (strlen(s) != len || !yj_plain_typed(s, body))
        *out = json_object_new_string_len(s, (int)len);
    else if (yj_in(s, nulls))
        *out = NULL;
    else if (yj_in(s, trues))
        *out = json_object_new_boolean(1);
    else if (yj_in(s, falses))
        *out = json_object_new_boolean(0);
    else if (yj_in(s, special))
        rc = yj_fail(y, m, "%s has no JSON form (infinity and NaN are not JSON numbers)", s);
    else if (yj_digits(body, 10))
        rc = yj_int(y, m, s, 10, out);
    else if (strncmp(s, "0o", 2) == 0 && yj_digits(s + 2, 8))
        rc = yj_int(y, m, s + 2, 8, out);
    else if (strncmp(s, "0x", 2) == 0 && yj_digits(s + 2, 16))
        rc = yj_int(y, m, s + 2, 16, out);
    else
        rc = yj_float(y, m, s, out);
    return rc;
}

/* Anchors, aliases and tags are refused: the output has no way to keep them, and a merge key
 * or a custom tag would be resolved differently by different parsers. */
static int yj_plain_node_check(struct yj *y, const yaml_event_t *ev, const yaml_char_t *anchor,
                               const yaml_char_t *tag)
{
    if (anchor)
        return yj_fail(y, &ev->start_mark, "anchor &%s: anchors and aliases are not supported",
                       (const char *)anchor);
    if (tag)
        return yj_fail(y, &ev->start_mark, "tag %s: tags are not supported", (const char *)tag);
    return 0;
}

static int yj_node(struct yj *y, yaml_event_t *ev, int depth, struct json_object **out);

/* The members of a mapping whose start event was just read, up to its end event. */
static int yj_mapping(struct yj *y, int depth, struct json_object *obj)
{
    yaml_event_t key, val;
    struct json_object *v = NULL;
    int rc = -1;

    for (;;) {
        if (yj_next(y, &key) != 0)
            goto out;
        if (key.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&key);
            rc = 0;
            goto out;
        }
        if (key.type != YAML_SCALAR_EVENT) {
            yj_fail(y, &key.start_mark, "a mapping key must be a string, not a %s",
                    key.type == YAML_ALIAS_EVENT ? "alias" : "collection");
            goto key_free;
        }
        if (yj_plain_node_check(y, &key, key.data.scalar.anchor, key.data.scalar.tag) != 0)
            goto key_free;
        if (key.data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
            struct json_object *k = NULL;

            if (yj_plain(y, &key.start_mark, (const char *)key.data.scalar.value,
                         key.data.scalar.length, &k) != 0)
                goto key_free;
            /* json_type_to_name gives "null" for NULL's type too, and a static string. */
            const char *kind = json_type_to_name(json_object_get_type(k));
            int is_string = json_object_is_type(k, json_type_string);

            json_object_put(k);
            if (!is_string) {
                yj_fail(y, &key.start_mark,
                        "key %s reads as %s, not a string (quote it to mean the string)",
                        (const char *)key.data.scalar.value, kind);
                goto key_free;
            }
        }
        if (strlen((const char *)key.data.scalar.value) != key.data.scalar.length) {
            yj_fail(y, &key.start_mark, "a mapping key holds a NUL character");
            goto key_free;
        }
        if (json_object_object_get_ex(obj, (const char *)key.data.scalar.value, NULL)) {
            yj_fail(y, &key.start_mark, "duplicate key \"%s\"",
                    (const char *)key.data.scalar.value);
            goto key_free;
        }
        if (yj_next(y, &val) != 0)
            goto key_free;
        v = NULL;
        if (yj_node(y, &val, depth + 1, &v) != 0)
            goto key_free;
        if (json_object_object_add(obj, (const char *)key.data.scalar.value, v) != 0) {
            json_object_put(v);
            yj_fail(y, &key.start_mark, "out of memory");
            goto key_free;
        }
        yaml_event_delete(&key);
    }
key_free:
    yaml_event_delete(&key);
out:
    return rc;
}

/* The items of a sequence whose start event was just read, up to its end event. */
static int yj_sequence(struct yj *y, int depth, struct json_object *arr)
{
    yaml_event_t item;
    struct json_object *v;
    int rc = -1;

    for (;;) {
        if (yj_next(y, &item) != 0)
            goto out;
        if (item.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&item);
            rc = 0;
            goto out;
        }
        v = NULL;
        if (yj_node(y, &item, depth + 1, &v) != 0)
            goto out;
        if (json_object_array_add(arr, v) != 0) {
            json_object_put(v);
            yj_fail(y, &y->parser.mark, "out of memory");
            goto out;
        }
    }
out:
    return rc;
}

/* Converts the node starting with ev (consumed: deleted here in every case). */
static int yj_node(struct yj *y, yaml_event_t *ev, int depth, struct json_object **out)
{
    struct json_object *o = NULL;
    int rc = -1;

    if (depth > YAMLJSON_DEPTH_MAX) {
        yj_fail(y, &ev->start_mark, "nested deeper than %d levels", YAMLJSON_DEPTH_MAX);
        goto out;
    }
    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        yj_fail(y, &ev->start_mark, "alias *%s: anchors and aliases are not supported",
                (const char *)ev->data.alias.anchor);
        goto out;
    case YAML_SCALAR_EVENT:
        if (yj_plain_node_check(y, ev, ev->data.scalar.anchor, ev->data.scalar.tag) != 0)
            goto out;
        if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
            if (yj_plain(y, &ev->start_mark, (const char *)ev->data.scalar.value,
                         ev->data.scalar.length, &o) != 0)
                goto out;
        } else {
            o = json_object_new_string_len((const char *)ev->data.scalar.value,
                                           (int)ev->data.scalar.length);
        }
        break;
    case YAML_SEQUENCE_START_EVENT:
        if (yj_plain_node_check(y, ev, ev->data.sequence_start.anchor,
                                ev->data.sequence_start.tag) != 0)
            goto out;
        o = json_object_new_array();
        if (yj_sequence(y, depth, o) != 0)
            goto out;
        break;
    case YAML_MAPPING_START_EVENT:
        if (yj_plain_node_check(y, ev, ev->data.mapping_start.anchor, ev->data.mapping_start.tag) !=
            0)
            goto out;
        o = json_object_new_object();
        if (yj_mapping(y, depth, o) != 0)
            goto out;
        break;
    default:
        yj_fail(y, &ev->start_mark, "unexpected YAML event %d", (int)ev->type);
        goto out;
    }
    *out = o;
    o = NULL;
    rc = 0;
out:
    json_object_put(o);
    yaml_event_delete(ev);
    return rc;
}

/* Expects an event of type want, else fails with what. */
static int yj_expect(struct yj *y, yaml_event_type_t want, const char *what, yaml_event_t *ev)
{
    if (yj_next(y, ev) != 0)
        return -1;
    if (ev->type == want)
        return 0;
    yj_fail(y, &ev->start_mark, "%s", what);
    yaml_event_delete(ev);
    return -1;
}

/* The document's start: a %YAML other than 1.2 would change how plain scalars resolve (1.1
 * reads yes/no/on/off as booleans), and %TAG only serves tags, which are refused. */
static int yj_doc_start(struct yj *y, yaml_event_t *ev)
{
    const yaml_version_directive_t *v = ev->data.document_start.version_directive;

    if (v && !(v->major == 1 && v->minor == 2))
        return yj_fail(y, &ev->start_mark, "%%YAML %d.%d: only YAML 1.2 is read", v->major,
                       v->minor);
    if (ev->data.document_start.tag_directives.start != ev->data.document_start.tag_directives.end)
        return yj_fail(y, &ev->start_mark, "%%TAG directives are not supported");
    return 0;
}

int yamljson_parse(const char *text, size_t len, struct json_object **out, char *err, size_t errcap)
{
    struct yj y = {.err = err, .errcap = errcap};
    yaml_event_t ev;
    struct json_object *root = NULL;
    int rc = -1;

    if (errcap > 0)
        err[0] = '\0';
    if (!yaml_parser_initialize(&y.parser)) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    yaml_parser_set_input_string(&y.parser, (const unsigned char *)text, len);
    if (yj_expect(&y, YAML_STREAM_START_EVENT, "no YAML stream", &ev) != 0)
        goto parser_free;
    yaml_event_delete(&ev);
    if (yj_expect(&y, YAML_DOCUMENT_START_EVENT, "no YAML document (the input is empty)", &ev) != 0)
        goto parser_free;
    rc = yj_doc_start(&y, &ev);
    yaml_event_delete(&ev);
    if (rc != 0)
        goto parser_free;
    rc = -1;
    if (yj_next(&y, &ev) != 0)
        goto parser_free;
    if (yj_node(&y, &ev, 1, &root) != 0)
        goto parser_free;
    if (yj_expect(&y, YAML_DOCUMENT_END_EVENT, "the document does not end here", &ev) != 0)
        goto root_free;
    yaml_event_delete(&ev);
    if (yj_expect(&y, YAML_STREAM_END_EVENT, "a second YAML document: only one is read", &ev) != 0)
        goto root_free;
    yaml_event_delete(&ev);
    *out = root;
    root = NULL;
    rc = 0;
root_free:
    json_object_put(root);
parser_free:
    yaml_parser_delete(&y.parser);
    return rc;
}
