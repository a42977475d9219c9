/* api_filter.h - the stats API's filters on the daily counts (docs/API.md
 * "Filters"). A struct api_filter is ONE property's condition (a visit
 * dimension, a page, a goal, a custom property...): an expression over
 * that property's values, built of conditions (is, contains, a v1 glob, a
 * regular expression, each possibly negated: is_not, contains_not,
 * matches_not) combined by and/or/not. Whatever its shape, it reduces to
 * "which stored row values match", so it is answered exactly from that
 * property's breakdown rows: counters are sums over the matching rows,
 * visitors the HyperLogLog union of their row sets. The folded "(other)"
 * row is included when the expression is known to be true for every
 * value folded into it, excluded when known false, and otherwise the
 * filter is refused with a reason, never answered with a number that
 * could be wrong. Conditions on two properties at once need counts per
 * pair of values and are not this module's (the parsers refuse them).
 *
 * Pure parsing and matching (PCRE2 for regular expressions, with bounded
 * patterns and match limits); the query is in api_filter_totals. It never
 * logs a value. */
#ifndef VEIL_API_FILTER_H
#define VEIL_API_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "period.h"
#include "query.h"

#define API_FILTER_VALUES_MAX 16   /* values of all conditions of one filter together */
#define API_FILTER_VALUE_MAX 512   /* bytes of one value */
#define API_FILTER_NODES_MAX 16    /* conditions and and/or/not of one filter together */
#define API_FILTER_DEPTH_MAX 4     /* and/or/not nested at most this deep */
#define API_FILTER_REGEX_MAX 256   /* bytes of one regular expression */
#define API_FILTER_MATCH_LIMIT 10000  /* PCRE2 match limit per value (backtracking steps) */
#define API_FILTER_HEAP_LIMIT_KIB 256 /* PCRE2 heap limit per match */
#define API_FILTER_REGEX_VALUES 100000 /* distinct values matched per request */

enum api_filter_op {
    AF_IS = 0,      /* equal to one of the values */
    AF_CONTAINS,    /* contains one of the texts */
    AF_MATCHES,     /* v1 glob: '*' (and "**") any run, else literal */
    AF_REGEX,       /* v2 matches: a PCRE2 regular expression, unanchored */
    AF_AND,         /* every child */
    AF_OR,          /* any child */
    AF_NOT,         /* its one child is false */
};

/* The values a property's conditions see: the stored value, or for a
 * `_name` variant the name of the stored ISO code (geo_names.h). */
enum api_value_names { AF_NAMES_NONE = 0, AF_NAMES_COUNTRY, AF_NAMES_REGION };

/* One node of the expression, in prefix order: a leaf (AF_IS ..
 * AF_REGEX) takes values[first .. first + n); AF_AND/AF_OR/AF_NOT have n
 * children, the first at the next index, each following the previous
 * child's subtree. */
struct api_filter_node {
    enum api_filter_op op;
    bool negate;                /* leaves: is_not, contains_not, matches_not */
    bool caseless;              /* leaves: v2's {"case_sensitive": false} */
    unsigned char first, n;
    unsigned char span;         /* nodes of this subtree, itself included */
};

struct api_filter {
    bool set;
    char property[96];          /* "visit:source", "visit:country_name" */
    char dim[96];               /* KEYS.md <dim>: "source", "prop:plan", "country" */
    unsigned dim_metrics;       /* schema metrics of dim (SCHEMA_PV|EV|VIS) */
    bool dim_visitors;          /* rows have visitor HyperLogLogs */
    enum api_value_names names; /* a _name variant: conditions see names */
    size_t nnodes;              /* nodes[0] is the root */
    struct api_filter_node nodes[API_FILTER_NODES_MAX];
    size_t nvalues;
    char values[API_FILTER_VALUES_MAX][API_FILTER_VALUE_MAX];
};

/* The schema dimension of a stats API property ("visit:source",
 * "event:props:plan", "visit:country_name"): its <dim> into dim; false
 * when unknown. A _name variant names its code's dimension. */
bool api_property_dim(const char *property, char *dim, size_t dimlen, unsigned *metrics,
                      bool *visitors);

/* Which names a property's values are shown and matched as. */
enum api_value_names api_property_names(const char *property);

/* How a stored value value[0..len) of a property with `names` reads:
 * the country's or region's name, or the value itself (also for
 * "(other)" and codes iso-codes does not name). *outlen gets its length. */
const char *api_value_label(enum api_value_names names, const char *value, size_t len,
                            size_t *outlen);

/* Check that metric names (api_metric_name) can be answered under the
 * filter: true, or false with "filters: ..." in err. */
bool api_filter_check_metrics(const struct api_filter *f, const char *const *metrics,
                              size_t n, char *err, size_t errlen);

/* Parse Plausible v1's `filters`: one condition ("visit:source==Google",
 * "visit:country==DE|FR", "event:page==/blog/" followed by two stars,
 * "event:page~blog", "visit:source!=Google", "event:page!~blog") or
 * several joined by ';' (all of them: an and) on one property.
 * breakdown_property is the breakdown's property (NULL for aggregate and
 * timeseries): a filter on another property is refused. True, or false
 * with "filters: <reason>" in err. */
bool api_filter_parse_v1(const char *s, const char *breakdown_property,
                         const char *const *metrics, size_t nmetrics, struct api_filter *out,
                         char *err, size_t errlen);

/* ---- building an expression (the v1 and v2 parsers) ---- */

/* Start or check the filter's property: the first condition sets it, a
 * condition on another property is refused ("filters: only one property
 * ..."). True, or false with a reason in err. */
bool api_filter_use_property(struct api_filter *f, const char *property, char *err,
                             size_t errlen);

/* Append a node; returns its index, or -1 with a reason in err when the
 * expression would pass API_FILTER_NODES_MAX. The caller sets n (and
 * span, through api_filter_close) of and/or/not nodes. */
int api_filter_add_node(struct api_filter *f, enum api_filter_op op, bool negate, char *err,
                        size_t errlen);

/* Add value v[0..len) to leaf node `node` (values must follow their
 * leaf). A regular expression is compiled here to check it. True, or
 * false with a reason in err. */
bool api_filter_add_value(struct api_filter *f, int node, const char *v, size_t len, char *err,
                          size_t errlen);

/* Node `node`'s subtree ends here: sets its span. */
void api_filter_close(struct api_filter *f, int node);

/* ---- matching ---- */

/* Compiled regular expressions of one filter, for one evaluation. */
struct api_filter_code;

/* Compile f's regular expressions (NULL when it has none, which is fine:
 * the matching functions take NULL then). Returns false with a reason
 * when a pattern does not compile. Free with api_filter_code_free. */
bool api_filter_compile(const struct api_filter *f, struct api_filter_code **code, char *err,
                        size_t errlen);
void api_filter_code_free(struct api_filter_code *code);

/* 1 when stored value value[0..len) passes f, 0 when not, -1 when a
 * regular expression hit its match limit or the request its
 * API_FILTER_REGEX_VALUES (reason in err). code is from api_filter_compile
 * (NULL when f has no regular expression); it remembers each distinct
 * value's answer. */
int api_filter_eval(const struct api_filter *f, struct api_filter_code *code,
                    const char *value, size_t len, char *err, size_t errlen);

/* True when a stored value value[0..len) passes the filter (compiles
 * regular expressions on each call; a match-limit hit counts as no). */
bool api_filter_matches(const struct api_filter *f, const char *value, size_t len);

/* Keep in rows (a breakdown of f->dim over a range) the rows matching f,
 * freeing the others; the "(other)" row is kept when f is known true for
 * every value folded into it on each of its days, dropped when known
 * false. Returns 0; 1 with a "filters: ..." reason in err when the answer
 * could be wrong (f may be true for some folded values and not others)
 * or a regular expression hit its limit: the caller answers 400. */
int api_filter_select(const struct api_filter *f, struct api_filter_code *code,
                      struct stats_rows *rows, char *err, size_t errlen);

/* Totals of each bucket restricted by f: pageviews/visits/events summed
 * over the matching rows of f->dim, visitors their union. Returns 0; 1
 * with a reason in err when the answer could be wrong (api_filter_select:
 * the caller answers 400); -1 on a Redis error (reason in err). */
int api_filter_totals(redisContext *rc, const char *site, const struct api_filter *f,
                      const struct period_range *buckets, size_t nbuckets,
                      struct query_totals *out, char *err, size_t errlen);

/* ---- v2 (api_filter_json.c) ---- */

struct cJSON;
struct evbuffer;

/* Parse v2's `filters` array into out: [] / absent (out->set false), or
 * filters on one property, several meaning all of them: ["is" |
 * "is_not" | "contains" | "contains_not" | "matches" | "matches_not",
 * dimension, [values], optional {"case_sensitive": false}], ["and",
 * [filters]], ["or", [filters]], ["not", filter]. True, or false with
 * "filters: <reason>" in err. Metrics and the query's dimension are the
 * caller's to check. */
bool api_filter_parse_v2(const struct cJSON *filters, struct api_filter *out, char *err,
                         size_t errlen);

/* f as v2's filters array (the response's query.filters): "[]" when unset. */
void api_filter_write_v2(struct evbuffer *b, const struct api_filter *f);

#endif
