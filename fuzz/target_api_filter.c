/* target_api_filter.c - fuzz target api_filter: the stats API's filter
 * parsers (api_filter_parse_v1 on v1's `filters=`, api_filter_parse_v2 on
 * v2's JSON `filters`) and matching on the expressions they build.
 *
 * Checks: a refusal is a "filters: " reason ending in its buffer; an
 * accepted filter is one property's well-formed expression within the
 * documented bounds (nodes, depth, values, value bytes), its regular
 * expressions compile, every evaluation answers 1, 0 or -1 (a match
 * limit), and v2's JSON written back parses to an expression that answers
 * the same on every sample value. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>

#include "api_filter.h"
#include "check.h"
#include "geo_names.h"
#include "harness.h"
#include "paths.h"

#define FILTER_REASON 600

static const char *const samples[] = {"/",   "/blog/one", "Google", "DE", "DE-BY", "(other)",
                                      "a|b", "x;y",       "\xff\xfe", ""};

/* Node i's subtree is well formed; returns its depth of and/or/not. */
static int check_node(const char *t, const struct api_filter *f, size_t i, size_t *values)
{
    CHECK(t, i < f->nnodes);
    const struct api_filter_node *n = &f->nodes[i];
    CHECK(t, n->span >= 1 && i + n->span <= f->nnodes);
    if (n->op == AF_AND || n->op == AF_OR || n->op == AF_NOT) {
        CHECK(t, n->n >= 1 && (n->op != AF_NOT || n->n == 1));
        size_t child = i + 1;
        int depth = 0;
        for (unsigned k = 0; k < n->n; k++) {
            int d = check_node(t, f, child, values);
            depth = d > depth ? d : depth;
            child += f->nodes[child].span;
        }
        CHECK(t, child == i + n->span);
        return depth + 1;
    }
    CHECK(t, n->op <= AF_REGEX && n->span == 1 && n->n >= 1);
    CHECK(t, n->first == *values && (size_t)n->first + n->n <= f->nvalues);
    for (size_t v = n->first; v < (size_t)n->first + n->n; v++) {
        size_t len = strnlen(f->values[v], API_FILTER_VALUE_MAX);
        CHECK(t, (len > 0 || n->op == AF_IS || n->op == AF_MATCHES) && len < API_FILTER_VALUE_MAX);
        CHECK(t, n->op != AF_REGEX || len <= API_FILTER_REGEX_MAX);
    }
    *values += n->n;
    return 0;
}

static void check_filter(const char *t, const struct api_filter *f, int answers[])
{
    CHECK(t, f->set && f->nnodes >= 1 && f->nnodes <= API_FILTER_NODES_MAX);
    CHECK(t, f->nvalues >= 1 && f->nvalues <= API_FILTER_VALUES_MAX);
    CHECK(t, f->property[0] && f->dim[0]);
    size_t values = 0;
    int depth = check_node(t, f, 0, &values);
    CHECK(t, f->nodes[0].span == f->nnodes && values == f->nvalues);
    CHECK(t, depth <= API_FILTER_DEPTH_MAX + 1); /* + the implicit and of a list */
    char reason[FILTER_REASON];
    struct api_filter_code *code;
    CHECKF(t, api_filter_compile(f, &code, reason, sizeof reason),
           "a parsed regular expression does not compile");
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        int r = api_filter_eval(f, code, samples[i], strlen(samples[i]), reason, sizeof reason);
        CHECK(t, r == 0 || r == 1 || r == -1);
        CHECK(t, r != -1 || strncmp(reason, "filters: ", 9) == 0);
        answers[i] = r;
    }
    api_filter_code_free(code);
}

static void check_refusal(const char *t, const char *reason)
{
    CHECK(t, memchr(reason, '\0', FILTER_REASON - 1) != NULL);
    CHECKF(t, strncmp(reason, "filters: ", 9) == 0, "a refusal without \"filters: \"");
    CHECK(t, reason[FILTER_REASON - 1] == 0x5a);
}

int fuzz_api_filter(const uint8_t *data, size_t size)
{
    static const char t[] = "api_filter";
    static struct api_filter f, again;
    static const char *const metrics[] = {"visitors"};
    static bool names_tried;
    char reason[FILTER_REASON];
    int answers[sizeof samples / sizeof samples[0]];
    int answers_again[sizeof samples / sizeof samples[0]];

    if (size == 0)
        return 0;
    if (!names_tried) { /* the _name variants when iso-codes is installed */
        names_tried = true;
        geo_names_load(veil_default_iso_codes_dir, reason, sizeof reason);
    }
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    memset(reason, 0x5a, sizeof reason);
    if ((data[0] & 1) == 0) {
        if (strlen(text) != size - 1) { /* a NUL inside: not a query parameter */
            free(text);
            return 0;
        }
        if (api_filter_parse_v1(text, NULL, metrics, 1, &f, reason, sizeof reason - 1))
            check_filter(t, &f, answers);
        else
            check_refusal(t, reason);
        free(text);
        return 0;
    }
    cJSON *doc = cJSON_ParseWithLength((const char *)data + 1, size - 1);
    free(text);
    if (!doc)
        return 0;
    bool ok = api_filter_parse_v2(doc, &f, reason, sizeof reason - 1);
    cJSON_Delete(doc);
    if (!ok) {
        check_refusal(t, reason);
        return 0;
    }
    if (!f.set)
        return 0;
    check_filter(t, &f, answers);
    /* written back, it parses to the same answers */
    struct evbuffer *b = evbuffer_new();
    api_filter_write_v2(b, &f);
    size_t len = evbuffer_get_length(b);
    char *json = malloc(len + 1);
    evbuffer_remove(b, json, len);
    json[len] = '\0';
    evbuffer_free(b);
    doc = cJSON_Parse(json);
    free(json);
    CHECKF(t, doc != NULL, "api_filter_write_v2 wrote text that is not JSON");
    ok = api_filter_parse_v2(doc, &again, reason, sizeof reason - 1);
    cJSON_Delete(doc);
    CHECKF(t, ok, "a written filter does not parse again");
    check_filter(t, &again, answers_again);
    for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++)
        CHECKF(t, answers[i] == answers_again[i] || answers[i] < 0 || answers_again[i] < 0,
               "a written filter answers differently");
    return 0;
}
