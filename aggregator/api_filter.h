/* api_filter.h - the stats API's filters on the daily counts (docs/API.md
 * "Filters"): one property (a visit dimension, a page, a goal, a custom
 * property...) equal to one value, a set of values, or values that
 * contain a text or match a pattern. Such a filter is answered exactly
 * from that property's breakdown rows: counters are sums over the
 * matching rows, visitors the HyperLogLog union of their row sets.
 * Anything that needs counts the roll-up does not keep (two filters at
 * once, a breakdown by another property, bounce rate per value, values
 * folded into "(other)") is refused with a reason, never answered with a
 * number that could be wrong. Pure parsing and matching; the query is in
 * api_filter_totals. It never logs a value. */
#ifndef VEIL_API_FILTER_H
#define VEIL_API_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "period.h"
#include "query.h"

#define API_FILTER_VALUES_MAX 16   /* values of one a|b|c set */
#define API_FILTER_VALUE_MAX 512   /* bytes of one value */

enum api_filter_op { AF_IS = 0, AF_CONTAINS, AF_MATCHES };

struct api_filter {
    bool set;
    enum api_filter_op op;      /* AF_MATCHES: '*' globs (any run) */
    char property[96];          /* "visit:source" */
    char dim[96];               /* KEYS.md <dim>: "source", "prop:plan" */
    unsigned dim_metrics;       /* schema metrics of dim (SCHEMA_PV|EV|VIS) */
    bool dim_visitors;          /* rows have visitor HyperLogLogs */
    size_t nvalues;
    char values[API_FILTER_VALUES_MAX][API_FILTER_VALUE_MAX];
};

/* The schema dimension of a stats API property ("visit:source",
 * "event:props:plan"): its <dim> into dim; false when unknown. */
bool api_property_dim(const char *property, char *dim, size_t dimlen, unsigned *metrics,
                      bool *visitors);

/* Check that metric names (api_metric_name) can be answered under the
 * filter: true, or false with "filters: ..." in err. */
bool api_filter_check_metrics(const struct api_filter *f, const char *const *metrics,
                              size_t n, char *err, size_t errlen);

/* Parse Plausible v1's `filters` ("visit:source==Google",
 * "event:page==/blog/ followed by two stars", "visit:country==DE|FR",
 * "event:page~blog").
 * breakdown_property is the breakdown's property (NULL for aggregate and
 * timeseries): a filter on another property is refused. True, or false
 * with "filters: <reason>" in err. */
bool api_filter_parse_v1(const char *s, const char *breakdown_property,
                         const char *const *metrics, size_t nmetrics, struct api_filter *out,
                         char *err, size_t errlen);

/* True when a stored value value[0..len) passes the filter. */
bool api_filter_matches(const struct api_filter *f, const char *value, size_t len);

/* api_filter_matches as a query_row_keep (query.h): filter is the
 * struct api_filter. */
bool api_filter_keep(const char *value, size_t len, void *filter);

/* The values of an exact-value filter (`is`: one value or a set), without
 * repeats, into values[] and lens[] (API_FILTER_VALUES_MAX each; they point
 * into f); their number, or 0 when f is not such a filter. The rows they
 * name are then read alone (query_breakdown_values). */
size_t api_filter_values(const struct api_filter *f, const char **values, size_t *lens);

/* The row filter of a breakdown of dim under filter f: api_filter_keep
 * when f is set and on dim itself (the rows api_filter_rows keeps), else
 * NULL (every row). */
query_row_keep api_breakdown_keep(const struct api_filter *f, const char *dim);

/* Totals of each bucket restricted by f: pageviews/visits/events summed
 * over the matching rows of f->dim, visitors their union. Returns 0; 1
 * with a reason in err when the answer could be wrong (a bucket has an
 * "(other)" row that may hide matching values: the caller answers 400);
 * -1 on a Redis error (reason in err). */
int api_filter_totals(redisContext *rc, const char *site, const struct api_filter *f,
                      const struct period_range *buckets, size_t nbuckets,
                      struct query_totals *out, char *err, size_t errlen);

#endif
