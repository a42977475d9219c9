/* api_filter.c - one property's filter expression, answered exactly from
 * its breakdown rows (see api_filter.h): the model and its builder, v1's
 * syntax, matching (PCRE2 for regular expressions, bounded), and the
 * selection of rows, "(other)" included only when the expression is known
 * for every value folded into it. It never logs a value. */
#include "api_filter.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdlib.h>
#include <string.h>

#include "geo_names.h"
#include "schema.h"
#include "strmap.h"
#include "util.h"

#define PROPS_PREFIX "event:props:"
#define NAME_SUFFIX "_name"
#define REGEX_PARENS_MAX 32

static const struct {
    const char *property, *base;
    enum api_value_names names;
} name_variants[] = {
    {"visit:country_name", "visit:country", AF_NAMES_COUNTRY},
    {"visit:region_name", "visit:region", AF_NAMES_REGION},
    {"visit:city_name", "visit:city", AF_NAMES_NONE}, /* cities are stored as names */
};

enum api_value_names api_property_names(const char *property)
{
    for (size_t i = 0; i < ARRAY_LEN(name_variants); i++)
        if (strcmp(property, name_variants[i].property) == 0)
            return name_variants[i].names;
    return AF_NAMES_NONE;
}

const char *api_value_label(enum api_value_names names, const char *value, size_t len,
                            size_t *outlen)
{
    const char *name = names == AF_NAMES_COUNTRY  ? geo_names_country(value, len)
                       : names == AF_NAMES_REGION ? geo_names_region(value, len)
                                                  : NULL;
    *outlen = name ? strlen(name) : len;
    return name ? name : value;
}

bool api_property_dim(const char *property, char *dim, size_t dimlen, unsigned *metrics,
                      bool *visitors)
{
    for (size_t i = 0; i < ARRAY_LEN(name_variants); i++)
        if (strcmp(property, name_variants[i].property) == 0)
            property = name_variants[i].base;
    for (int i = 0; i < SD__COUNT; i++) {
        const struct schema_dim *d = schema_dim((enum schema_dim_id)i);
        if (i != SD_PROP && d->property && strcmp(property, d->property) == 0) {
            *metrics = d->metrics;
            *visitors = d->visitors != SCHEMA_U_NONE;
            return str_copy(dim, dimlen, d->name, strlen(d->name));
        }
    }
    size_t plen = sizeof PROPS_PREFIX - 1;
    if (strncmp(property, PROPS_PREFIX, plen) == 0 && property[plen] &&
        strlen(property + plen) < 65) {
        const struct schema_dim *d = schema_dim(SD_PROP);
        *metrics = d->metrics;
        *visitors = true;
        return str_format(dim, dimlen, "prop:%s", property + plen);
    }
    return false;
}

bool api_filter_check_metrics(const struct api_filter *f, const char *const *metrics,
                              size_t n, char *err, size_t errlen)
{
    if (!f->set)
        return true;
    for (size_t i = 0; i < n; i++) {
        const char *m = metrics[i];
        bool ok = (strcmp(m, "visitors") == 0 && f->dim_visitors) ||
                  (strcmp(m, "pageviews") == 0 && (f->dim_metrics & SCHEMA_PV)) ||
                  (strcmp(m, "visits") == 0 && (f->dim_metrics & SCHEMA_VIS)) ||
                  (strcmp(m, "events") == 0 && (f->dim_metrics & SCHEMA_EV)) ||
                  strcmp(m, "conversion_rate") == 0;
        if (!ok) {
            str_format(err, errlen,
                       "filters: %s is not kept per %s value (the daily counts hold "
                       "visitors, pageviews, visits or events per value only where "
                       "docs/KEYS.md lists them), so it cannot be filtered exactly",
                       m, f->property);
            return false;
        }
    }
    return true;
}

/* ---- building ---- */

bool api_filter_use_property(struct api_filter *f, const char *property, char *err,
                             size_t errlen)
{
    if (f->property[0]) {
        if (strcmp(f->property, property) == 0)
            return true;
        str_format(err, errlen,
                   "filters: only one property can be filtered at a time: conditions on "
                   "%.60s and %.60s together need counts per combination of values, which "
                   "Veil does not keep (and/or/not and several conditions on one property "
                   "are fine)",
                   f->property, property);
        return false;
    }
    if (strlen(property) >= sizeof f->property || !utf8_valid(property, strlen(property)) ||
        !api_property_dim(property, f->dim, sizeof f->dim, &f->dim_metrics, &f->dim_visitors)) {
        str_format(err, errlen, "filters: unknown property (expected one of the breakdown "
                                "properties, e.g. visit:source, event:page, event:goal, "
                                "visit:country_name)");
        return false;
    }
    f->names = api_property_names(property);
    if (f->names != AF_NAMES_NONE && !geo_names_loaded()) {
        str_format(err, errlen, "filters: %s needs the names of iso-codes, and this server "
                                "runs without them (iso_codes_dir is empty)", property);
        return false;
    }
    str_copy(f->property, sizeof f->property, property, strlen(property));
    return true;
}

int api_filter_add_node(struct api_filter *f, enum api_filter_op op, bool negate, char *err,
                        size_t errlen)
{
    if (f->nnodes == API_FILTER_NODES_MAX) {
        str_format(err, errlen, "filters: at most %d conditions and and/or/not in one filter",
                   API_FILTER_NODES_MAX);
        return -1;
    }
    struct api_filter_node *n = &f->nodes[f->nnodes];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->negate = negate;
    n->first = (unsigned char)f->nvalues;
    n->span = 1;
    return (int)f->nnodes++;
}

void api_filter_close(struct api_filter *f, int node)
{
    f->nodes[node].span = (unsigned char)(f->nnodes - (size_t)node);
}

/* A compile context that bounds pattern length and nesting. */
static pcre2_code *regex_compile(const char *property, const char *v, size_t len,
                                 bool caseless, char *err, size_t errlen)
{
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    if (!cc) {
        str_format(err, errlen, "filters: out of memory");
        return NULL;
    }
    pcre2_set_max_pattern_length(cc, API_FILTER_REGEX_MAX);
    pcre2_set_parens_nest_limit(cc, REGEX_PARENS_MAX);
    int ec;
    PCRE2_SIZE off;
    uint32_t opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_NEVER_BACKSLASH_C |
                    (caseless ? PCRE2_CASELESS : 0);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)v, len, opts, &ec, &off, cc);
    pcre2_compile_context_free(cc);
    if (!re) {
        PCRE2_UCHAR msg[160];
        if (pcre2_get_error_message(ec, msg, sizeof msg) < 0)
            str_copy((char *)msg, sizeof msg, "unknown error", 13);
        str_format(err, errlen,
                   "filters: matches on %.60s: not a valid regular expression (PCRE2: %s at "
                   "offset %zu)",
                   property, (const char *)msg, (size_t)off);
    }
    return re;
}

bool api_filter_add_value(struct api_filter *f, int node, const char *v, size_t len, char *err,
                          size_t errlen)
{
    struct api_filter_node *n = &f->nodes[node];
    /* "" only for is / is_not: no stored value is empty (Plausible's
     * ["is_not", "visit:country_name", [""]] is "has a country") */
    if ((len == 0 && n->op != AF_IS) || len >= API_FILTER_VALUE_MAX) {
        str_format(err, errlen, "filters: a value has 1 to %d bytes (\"\" only with is and "
                                "is_not)", API_FILTER_VALUE_MAX - 1);
        return false;
    }
    if (f->nvalues == API_FILTER_VALUES_MAX) {
        str_format(err, errlen, "filters: at most %d values in one filter (all its conditions "
                                "together)", API_FILTER_VALUES_MAX);
        return false;
    }
    if (!utf8_valid(v, len)) {
        str_format(err, errlen, "filters: a value is UTF-8 text without NUL bytes");
        return false;
    }
    if (n->op == AF_REGEX) {
        if (len > API_FILTER_REGEX_MAX) {
            str_format(err, errlen, "filters: a matches pattern has at most %d bytes",
                       API_FILTER_REGEX_MAX);
            return false;
        }
        pcre2_code *re = regex_compile(f->property, v, len, n->caseless, err, errlen);
        if (!re)
            return false;
        pcre2_code_free(re);
    }
    memcpy(f->values[f->nvalues], v, len);
    f->values[f->nvalues][len] = '\0';
    f->nvalues++;
    n->n++;
    return true;
}

/* ---- v1 ---- */

/* One condition "<property><op><value>" of a v1 filter, added to f. */
static bool parse_v1_condition(const char *s, size_t len, struct api_filter *f, char *err,
                               size_t errlen)
{
    size_t i = 0;
    while (i < len && s[i] != '=' && s[i] != '!' && s[i] != '~')
        i++;
    enum api_filter_op op;
    bool negate = false;
    size_t oplen = 2;
    if (i + 1 < len && s[i] == '=' && s[i + 1] == '=') {
        op = AF_IS;
    } else if (i + 1 < len && s[i] == '!' && s[i + 1] == '=') {
        op = AF_IS;
        negate = true;
    } else if (i + 1 < len && s[i] == '!' && s[i + 1] == '~') {
        op = AF_CONTAINS;
        negate = true;
    } else if (i < len && s[i] == '~') {
        op = AF_CONTAINS;
        oplen = 1;
    } else {
        i = 0;
    }
    if (i == 0) {
        str_format(err, errlen, "filters: expected <property>==<value>, <property>==a|b, "
                                "<property>~<text>, != or !~, joined by ;");
        return false;
    }
    char property[96];
    if (i >= sizeof property) {
        str_format(err, errlen, "filters: unknown property");
        return false;
    }
    memcpy(property, s, i);
    property[i] = '\0';
    if (!api_filter_use_property(f, property, err, errlen))
        return false;
    int node = api_filter_add_node(f, op, negate, err, errlen);
    if (node < 0)
        return false;
    const char *v = s + i + oplen, *end = s + len;
    if (op == AF_CONTAINS) {
        if (!api_filter_add_value(f, node, v, (size_t)(end - v), err, errlen))
            return false;
    } else {
        for (;;) {
            const char *bar = memchr(v, '|', (size_t)(end - v));
            size_t vl = bar ? (size_t)(bar - v) : (size_t)(end - v);
            if (!api_filter_add_value(f, node, v, vl, err, errlen))
                return false;
            if (memchr(v, '*', vl))
                f->nodes[node].op = AF_MATCHES;
            if (!bar)
                break;
            v = bar + 1;
        }
    }
    api_filter_close(f, node);
    return true;
}

bool api_filter_parse_v1(const char *s, const char *breakdown_property,
                         const char *const *metrics, size_t nmetrics, struct api_filter *out,
                         char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int root = -1;
    if (strchr(s, ';') && (root = api_filter_add_node(out, AF_AND, false, err, errlen)) < 0)
        return false;
    for (const char *c = s;;) {
        const char *semi = strchr(c, ';');
        size_t len = semi ? (size_t)(semi - c) : strlen(c);
        if (!parse_v1_condition(c, len, out, err, errlen))
            return false;
        if (root >= 0)
            out->nodes[root].n++;
        if (!semi)
            break;
        c = semi + 1;
    }
    if (root >= 0)
        api_filter_close(out, root);
    char bdim[96];
    unsigned bmetrics;
    bool bvisitors;
    if (breakdown_property &&
        (!api_property_dim(breakdown_property, bdim, sizeof bdim, &bmetrics, &bvisitors) ||
         strcmp(bdim, out->dim) != 0)) {
        str_format(err, errlen,
                   "filters: a breakdown by %s filtered by %s needs counts per pair of values "
                   "(two-dimensional counts), which Veil does not keep yet; filter a breakdown "
                   "by its own property, or ask aggregate/timeseries with this filter",
                   breakdown_property, out->property);
        return false;
    }
    out->set = true;
    return api_filter_check_metrics(out, metrics, nmetrics, err, errlen);
}

/* ---- matching ---- */

struct api_filter_code {
    pcre2_code *re[API_FILTER_VALUES_MAX];
    pcre2_match_data *md;
    pcre2_match_context *mc;
    /* each distinct value is matched once per request (timeseries buckets
     * see the same values again), and at most API_FILTER_REGEX_VALUES */
    struct smap memo;
    struct arena_chunk *arena;
    size_t matched;
};

void api_filter_code_free(struct api_filter_code *code)
{
    if (!code)
        return;
    for (size_t i = 0; i < API_FILTER_VALUES_MAX; i++)
        pcre2_code_free(code->re[i]);
    pcre2_match_data_free(code->md);
    pcre2_match_context_free(code->mc);
    smap_free(&code->memo);
    arena_free(&code->arena);
    free(code);
}

bool api_filter_compile(const struct api_filter *f, struct api_filter_code **code, char *err,
                        size_t errlen)
{
    *code = NULL;
    for (size_t i = 0; i < f->nnodes; i++) {
        const struct api_filter_node *n = &f->nodes[i];
        if (n->op != AF_REGEX)
            continue;
        if (!*code) {
            *code = xcalloc(1, sizeof **code);
            (*code)->md = pcre2_match_data_create(1, NULL);
            (*code)->mc = pcre2_match_context_create(NULL);
            if (!(*code)->md || !(*code)->mc) {
                api_filter_code_free(*code);
                *code = NULL;
                str_format(err, errlen, "filters: out of memory");
                return false;
            }
            pcre2_set_match_limit((*code)->mc, API_FILTER_MATCH_LIMIT);
            pcre2_set_depth_limit((*code)->mc, API_FILTER_MATCH_LIMIT);
            pcre2_set_heap_limit((*code)->mc, API_FILTER_HEAP_LIMIT_KIB);
        }
        for (size_t v = n->first; v < (size_t)n->first + n->n; v++) {
            (*code)->re[v] = regex_compile(f->property, f->values[v], strlen(f->values[v]),
                                           n->caseless, err, errlen);
            if (!(*code)->re[v]) {
                api_filter_code_free(*code);
                *code = NULL;
                return false;
            }
        }
    }
    return true;
}

/* '*' matches any run (also "**", Plausible's path glob); else literal. */
static bool glob(const char *p, const char *s, size_t slen)
{
    const char *star = NULL;
    size_t i = 0, resume = 0;
    while (i < slen) {
        if (*p == '*') {
            star = p++;
            resume = i;
        } else if (*p && *p == s[i]) {
            p++;
            i++;
        } else if (star) {
            p = star + 1;
            i = ++resume;
        } else {
            return false;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static bool equal_ci(const char *a, const char *b, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

static bool contains(const char *hay, size_t hl, const char *needle, size_t nl, bool caseless)
{
    if (nl > hl)
        return false;
    if (!caseless)
        return memmem(hay, hl, needle, nl) != NULL;
    for (size_t i = 0; i + nl <= hl; i++)
        if (equal_ci(hay + i, needle, nl))
            return true;
    return false;
}

/* A leaf on value[0..len): 1, 0, or -1 (a regex limit). */
static int eval_leaf(const struct api_filter *f, const struct api_filter_code *code,
                     const struct api_filter_node *n, const char *value, size_t len, char *err,
                     size_t errlen)
{
    int hit = 0;
    for (size_t i = n->first; i < (size_t)n->first + n->n && !hit; i++) {
        const char *v = f->values[i];
        size_t vl = strlen(v);
        switch (n->op) {
        case AF_IS:
            hit = vl == len && (n->caseless ? equal_ci(v, value, len) : memcmp(v, value, len) == 0);
            break;
        case AF_CONTAINS:
            hit = contains(value, len, v, vl, n->caseless);
            break;
        case AF_MATCHES:
            hit = glob(v, value, len);
            break;
        case AF_REGEX: {
            if (!code || !code->re[i])
                return -1; /* not compiled: the caller's bug, refused */
            int rc = pcre2_match(code->re[i], (PCRE2_SPTR)value, len, 0, 0, code->md, code->mc);
            if (rc >= 0) {
                hit = 1;
            } else if (rc != PCRE2_ERROR_NOMATCH) {
                str_format(err, errlen,
                           "filters: matches on %s: a regular expression hit its match limit "
                           "(%d steps, %d KiB per value); simplify it",
                           f->property, API_FILTER_MATCH_LIMIT, API_FILTER_HEAP_LIMIT_KIB);
                return -1;
            }
            break;
        }
        default:
            return -1;
        }
    }
    return n->negate ? !hit : hit;
}

/* Node i on the value: 1, 0 or -1. */
static int eval_node(const struct api_filter *f, const struct api_filter_code *code, size_t i,
                     const char *value, size_t len, char *err, size_t errlen)
{
    const struct api_filter_node *n = &f->nodes[i];
    if (n->op != AF_AND && n->op != AF_OR && n->op != AF_NOT)
        return eval_leaf(f, code, n, value, len, err, errlen);
    int result = n->op == AF_AND;
    size_t child = i + 1;
    for (unsigned k = 0; k < n->n; k++) {
        int r = eval_node(f, code, child, value, len, err, errlen);
        if (r < 0)
            return -1;
        if (n->op == AF_NOT)
            return !r;
        if (n->op == AF_AND && !r)
            result = 0;
        if (n->op == AF_OR && r)
            result = 1;
        child += f->nodes[child].span;
    }
    return result;
}

int api_filter_eval(const struct api_filter *f, struct api_filter_code *code,
                    const char *value, size_t len, char *err, size_t errlen)
{
    if (!f->nnodes)
        return 1;
    size_t ll;
    const char *label = api_value_label(f->names, value, len, &ll);
    if (!code)
        return eval_node(f, code, 0, label, ll, err, errlen);
    uint32_t known;
    if (smap_find(&code->memo, label, ll, &known))
        return (int)known;
    if (++code->matched > API_FILTER_REGEX_VALUES) {
        str_format(err, errlen,
                   "filters: matches on %s: more than %d distinct values in this range; "
                   "narrow the range or use contains",
                   f->property, API_FILTER_REGEX_VALUES);
        return -1;
    }
    int r = eval_node(f, code, 0, label, ll, err, errlen);
    bool created;
    if (r >= 0)
        smap_intern(&code->memo, &code->arena, label, ll, (uint32_t)r, &created, NULL);
    return r;
}

bool api_filter_matches(const struct api_filter *f, const char *value, size_t len)
{
    char err[300];
    struct api_filter_code *code;
    if (!api_filter_compile(f, &code, err, sizeof err))
        return false;
    int r = api_filter_eval(f, code, value, len, err, sizeof err);
    api_filter_code_free(code);
    return r == 1;
}

/* ---- "(other)": the expression on every value folded into it ---- */

enum tri { TRI_FALSE = 0, TRI_TRUE = 1, TRI_UNKNOWN = 2 };

static bool is_other(const struct stats_row *r)
{
    return r->value_len == sizeof QUERY_OTHER - 1 &&
           memcmp(r->value, QUERY_OTHER, sizeof QUERY_OTHER - 1) == 0;
}

/* Whether rows hold a row equal to v with counts on `day` ("(other)" is
 * not a value: a literal "(other)" may be anything folded). */
static bool row_on_day(const struct stats_rows *rows, const char *v, period_day day)
{
    size_t vl = strlen(v);
    for (size_t i = 0; i < rows->n; i++) {
        const struct stats_row *r = &rows->rows[i];
        if (r->value_len != vl || memcmp(r->value, v, vl) != 0 || is_other(r))
            continue;
        for (size_t d = 0; d < r->ndays; d++)
            if (r->days[d] == day)
                return true;
        return false;
    }
    return false;
}

/* Node i on every value folded into (other) on `day`. A value counted in
 * its own row on a day is never in that day's (other) (values past
 * breakdown_cap are new values), so an `is` condition whose values all
 * have rows on the day is false for each folded value; any other
 * condition may be true for some and false for others. */
static enum tri tri_node(const struct api_filter *f, size_t i, const struct stats_rows *rows,
                         period_day day)
{
    const struct api_filter_node *n = &f->nodes[i];
    if (n->op == AF_IS || n->op == AF_MATCHES) {
        for (size_t v = n->first; v < (size_t)n->first + n->n; v++) {
            if (f->values[v][0] == '\0')
                continue; /* empty values are never counted, not even in (other) */
            if (f->names != AF_NAMES_NONE || n->caseless)
                return TRI_UNKNOWN; /* several stored values may read the same */
            if ((n->op == AF_MATCHES && strchr(f->values[v], '*')) ||
                !row_on_day(rows, f->values[v], day))
                return TRI_UNKNOWN;
        }
        return n->negate ? TRI_TRUE : TRI_FALSE;
    }
    if (n->op == AF_CONTAINS || n->op == AF_REGEX)
        return TRI_UNKNOWN;
    enum tri result = n->op == AF_AND ? TRI_TRUE : TRI_FALSE;
    size_t child = i + 1;
    for (unsigned k = 0; k < n->n; k++) {
        enum tri r = tri_node(f, child, rows, day);
        if (n->op == AF_NOT)
            return r == TRI_UNKNOWN ? r : (r == TRI_TRUE ? TRI_FALSE : TRI_TRUE);
        if (n->op == AF_AND)
            result = r == TRI_FALSE || result == TRI_FALSE ? TRI_FALSE
                     : r == TRI_UNKNOWN                     ? TRI_UNKNOWN
                                                            : result;
        else
            result = r == TRI_TRUE || result == TRI_TRUE ? TRI_TRUE
                     : r == TRI_UNKNOWN                   ? TRI_UNKNOWN
                                                          : result;
        child += f->nodes[child].span;
    }
    return result;
}

int api_filter_select(const struct api_filter *f, struct api_filter_code *code,
                      struct stats_rows *rows, char *err, size_t errlen)
{
    /* (other) first, while every row is still there to look days up in */
    enum tri other = TRI_FALSE;
    for (size_t i = 0; i < rows->n; i++) {
        const struct stats_row *r = &rows->rows[i];
        if (!is_other(r) || !(r->pageviews || r->visits || r->events || r->visitors))
            continue;
        for (size_t d = 0; d < r->ndays; d++) {
            enum tri t = f->nnodes ? tri_node(f, 0, rows, r->days[d]) : TRI_TRUE;
            if (d > 0 && t != other)
                t = TRI_UNKNOWN; /* true on some days, false on others */
            other = t;
            if (t == TRI_UNKNOWN)
                break;
        }
    }
    if (other == TRI_UNKNOWN) {
        str_format(err, errlen,
                   "filters: on some days of this range values of %s past breakdown_cap "
                   "were counted together as (other), and the filter may match some of "
                   "them: it cannot be answered exactly",
                   f->property);
        return 1;
    }
    size_t n = 0;
    int status = 0;
    for (size_t i = 0; i < rows->n; i++) {
        struct stats_row *r = &rows->rows[i];
        int keep = is_other(r) ? other == TRI_TRUE
                   : status    ? 0
                               : api_filter_eval(f, code, r->value, r->value_len, err, errlen);
        if (keep < 0)
            status = 1;
        if (keep > 0) {
            rows->rows[n++] = *r;
        } else {
            free(r->value);
            free(r->days);
        }
    }
    rows->n = n;
    return status;
}

int api_filter_totals(redisContext *rc, const char *site, const struct api_filter *f,
                      const struct period_range *buckets, size_t nbuckets,
                      struct query_totals *out, char *err, size_t errlen)
{
    struct api_filter_code *code;
    if (!api_filter_compile(f, &code, err, errlen))
        return 1;
    int status = 0;
    for (size_t b = 0; b < nbuckets && status == 0; b++) {
        memset(&out[b], 0, sizeof out[b]);
        if (buckets[b].first > buckets[b].last)
            continue;
        struct stats_rows rows = {0};
        if (query_breakdown(rc, site, f->dim, &buckets[b], &rows, err, errlen) != 0) {
            status = -1;
            break;
        }
        status = api_filter_select(f, code, &rows, err, errlen);
        for (size_t i = 0; status == 0 && i < rows.n; i++) {
            out[b].c[QC_PAGEVIEWS] += rows.rows[i].pageviews;
            out[b].c[QC_VISITS] += rows.rows[i].visits;
            out[b].c[QC_EVENTS] += rows.rows[i].events;
        }
        if (status == 0 && rows.n == 1)
            out[b].visitors = rows.rows[0].visitors;
        else if (status == 0 && rows.n > 1 &&
                 query_rows_union_visitors(rc, site, f->dim, rows.rows, rows.n,
                                           &out[b].visitors, err, errlen) != 0)
            status = -1;
        query_rows_free(&rows);
    }
    api_filter_code_free(code);
    return status;
}
