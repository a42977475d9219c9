/* api_filter_json.c - Stats API v2's `filters` (JSON) into the one
 * property's expression of api_filter.h, and back into JSON for the
 * response's query.filters. The same model as v1's syntax, so v1 and v2
 * are answered by one code path. It never logs a value. */
#include "api_filter.h"

#include <string.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>

#include "output.h"
#include "util.h"

static bool fail(char *err, size_t errlen, const char *reason)
{
    str_copy(err, errlen, reason, strlen(reason));
    return false;
}

static const struct {
    const char *name;
    enum api_filter_op op;
    bool negate;
} leaf_ops[] = {
    {"is", AF_IS, false},          {"is_not", AF_IS, true},
    {"contains", AF_CONTAINS, false}, {"contains_not", AF_CONTAINS, true},
    {"matches", AF_REGEX, false},  {"matches_not", AF_REGEX, true},
};

/* The 4th member of a condition: {"case_sensitive": true|false}. */
static bool parse_modifiers(const cJSON *mods, bool *caseless, char *err, size_t errlen)
{
    if (!mods)
        return true;
    if (!cJSON_IsObject(mods))
        return fail(err, errlen, "filters: a condition's 4th member is {\"case_sensitive\": "
                                 "true|false}");
    for (const cJSON *m = mods->child; m; m = m->next) {
        if (strcmp(m->string, "case_sensitive") != 0 || !cJSON_IsBool(m))
            return fail(err, errlen, "filters: the only modifier is \"case_sensitive\": "
                                     "true|false");
        *caseless = cJSON_IsFalse(m);
    }
    return true;
}

static bool parse_condition(const cJSON *j, int depth, struct api_filter *f, char *err,
                            size_t errlen)
{
    const cJSON *op = cJSON_GetArrayItem(j, 0);
    if (!cJSON_IsArray(j) || !cJSON_IsString(op))
        return fail(err, errlen, "filters: expected [operator, dimension, [values]], "
                                 "[\"and\"|\"or\", [filters]] or [\"not\", filter]");
    const char *o = op->valuestring;
    int size = cJSON_GetArraySize(j);
    bool group = !strcmp(o, "and") || !strcmp(o, "or");
    if (group || !strcmp(o, "not")) {
        if (depth >= API_FILTER_DEPTH_MAX) {
            str_format(err, errlen, "filters: and/or/not nest at most %d deep",
                       API_FILTER_DEPTH_MAX);
            return false;
        }
        const cJSON *arg = cJSON_GetArrayItem(j, 1);
        if (size != 2 || (group && (!cJSON_IsArray(arg) || cJSON_GetArraySize(arg) < 1)))
            return fail(err, errlen, "filters: expected [\"and\"|\"or\", [filters]] or "
                                     "[\"not\", filter]");
        int node = api_filter_add_node(f, group ? (!strcmp(o, "and") ? AF_AND : AF_OR) : AF_NOT,
                                       false, err, errlen);
        if (node < 0)
            return false;
        if (group) {
            const cJSON *child;
            cJSON_ArrayForEach(child, arg) {
                if (!parse_condition(child, depth + 1, f, err, errlen))
                    return false;
                f->nodes[node].n++;
            }
        } else {
            if (!parse_condition(arg, depth + 1, f, err, errlen))
                return false;
            f->nodes[node].n = 1;
        }
        api_filter_close(f, node);
        return true;
    }
    size_t k = 0;
    while (k < ARRAY_LEN(leaf_ops) && strcmp(o, leaf_ops[k].name) != 0)
        k++;
    if (k == ARRAY_LEN(leaf_ops)) {
        if (!strcmp(o, "has_done") || !strcmp(o, "has_not_done"))
            return fail(err, errlen, "filters: has_done and has_not_done need each visitor's "
                                     "events, which the daily counts do not keep");
        return fail(err, errlen, "filters: unknown operator (expected is, is_not, contains, "
                                 "contains_not, matches, matches_not, and, or, not)");
    }
    const cJSON *dim = cJSON_GetArrayItem(j, 1), *vals = cJSON_GetArrayItem(j, 2);
    if ((size != 3 && size != 4) || !cJSON_IsString(dim) || !cJSON_IsArray(vals) ||
        cJSON_GetArraySize(vals) < 1 || cJSON_GetArraySize(vals) > API_FILTER_VALUES_MAX)
        return fail(err, errlen, "filters: expected [operator, dimension, [1 to 16 values]]");
    bool caseless = false;
    if (!parse_modifiers(cJSON_GetArrayItem(j, 3), &caseless, err, errlen))
        return false;
    if (!api_filter_use_property(f, dim->valuestring, err, errlen))
        return false;
    int node = api_filter_add_node(f, leaf_ops[k].op, leaf_ops[k].negate, err, errlen);
    if (node < 0)
        return false;
    f->nodes[node].caseless = caseless;
    const cJSON *v;
    cJSON_ArrayForEach(v, vals) {
        if (!cJSON_IsString(v))
            return fail(err, errlen, "filters: values are strings");
        if (!api_filter_add_value(f, node, v->valuestring, strlen(v->valuestring), err, errlen))
            return false;
    }
    api_filter_close(f, node);
    return true;
}

bool api_filter_parse_v2(const cJSON *filters, struct api_filter *out, char *err,
                         size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!filters || (cJSON_IsArray(filters) && cJSON_GetArraySize(filters) == 0))
        return true;
    if (!cJSON_IsArray(filters))
        return fail(err, errlen, "filters: expected an array");
    int root = -1;
    if (cJSON_GetArraySize(filters) > 1 &&
        (root = api_filter_add_node(out, AF_AND, false, err, errlen)) < 0)
        return false;
    const cJSON *f;
    cJSON_ArrayForEach(f, filters) {
        if (!parse_condition(f, 0, out, err, errlen))
            return false;
        if (root >= 0)
            out->nodes[root].n++;
    }
    if (root >= 0)
        api_filter_close(out, root);
    out->set = true;
    return true;
}

/* Node i as JSON; returns the index after its subtree. */
static size_t write_node(struct evbuffer *b, const struct api_filter *f, size_t i)
{
    const struct api_filter_node *n = &f->nodes[i];
    if (n->op == AF_AND || n->op == AF_OR || n->op == AF_NOT) {
        evbuffer_add_printf(b, "[\"%s\", %s", n->op == AF_AND ? "and" : n->op == AF_OR ? "or" : "not",
                            n->op == AF_NOT ? "" : "[");
        size_t child = i + 1;
        for (unsigned k = 0; k < n->n; k++) {
            if (k)
                evbuffer_add(b, ", ", 2);
            child = write_node(b, f, child);
        }
        evbuffer_add_printf(b, "%s]", n->op == AF_NOT ? "" : "]");
        return i + n->span;
    }
    const char *name = n->op == AF_CONTAINS ? "contains" : n->op == AF_REGEX ? "matches" : "is";
    evbuffer_add_printf(b, "[\"%s%s\", ", name, n->negate ? "_not" : "");
    output_json_string(b, f->property, strlen(f->property));
    evbuffer_add(b, ", [", 3);
    for (size_t v = n->first; v < (size_t)n->first + n->n; v++) {
        if (v > n->first)
            evbuffer_add(b, ", ", 2);
        output_json_string(b, f->values[v], strlen(f->values[v]));
    }
    evbuffer_add(b, "]", 1);
    if (n->caseless)
        evbuffer_add_printf(b, ", {\"case_sensitive\": false}");
    evbuffer_add(b, "]", 1);
    return i + n->span;
}

void api_filter_write_v2(struct evbuffer *b, const struct api_filter *f)
{
    evbuffer_add(b, "[", 1);
    if (f->set && f->nnodes) {
        /* the implicit and of the top-level list is written back as a list */
        const struct api_filter_node *root = &f->nodes[0];
        bool list = root->op == AF_AND && f->nodes[0].span == f->nnodes && f->nnodes > 1;
        if (list) {
            size_t child = 1;
            for (unsigned k = 0; k < root->n; k++) {
                if (k)
                    evbuffer_add(b, ", ", 2);
                child = write_node(b, f, child);
            }
        } else {
            write_node(b, f, 0);
        }
    }
    evbuffer_add(b, "]", 1);
}
