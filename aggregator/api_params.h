/* api_params.h - the query parameters of the stats API (Plausible Stats
 * API v1 names: site_id, period, date, metrics, interval, property, limit,
 * page; plus format), parsed and validated into one struct.
 *
 * Pure: no Redis, no clock (the caller passes today). Every rejection names
 * the parameter at fault ("metrics: ..."). It never echoes a parameter
 * value back in a reason, only parameter names (cut to a safe length). */
#ifndef VEIL_API_PARAMS_H
#define VEIL_API_PARAMS_H

#include <stdbool.h>
#include <stddef.h>

#include "output.h"
#include "period.h"

enum api_endpoint {
    API_EP_AGGREGATE = 0,
    API_EP_TIMESERIES,
    API_EP_BREAKDOWN,
    API_EP_REALTIME,
    API_EP_SITES,
};

enum api_metric {
    API_METRIC_VISITORS = 0,
    API_METRIC_PAGEVIEWS,
    API_METRIC_VISITS,
    API_METRIC_BOUNCE_RATE,
    API_METRIC_VISIT_DURATION,
    API_METRIC_EVENTS,
    API_METRIC_SCROLL_DEPTH,
    API_METRIC_CONVERSION_RATE, /* breakdown by event:goal: % of the range's visitors */
    API_METRIC_VIEWS_PER_VISIT, /* pageviews / visits, two decimals */
    API_METRIC__COUNT
};

/* "visitors", "pageviews", ... */
const char *api_metric_name(enum api_metric m);

#include "api_filter.h"

#define API_SITE_MAX 254
#define API_PROP_KEY_MAX 65
#define API_LIMIT_DEFAULT 100
#define API_LIMIT_MAX 1000
#define API_PAGE_MAX 1000000

struct api_params {
    char site_id[API_SITE_MAX];            /* "" when not given */
    struct period_range range;             /* resolved, clipped to retention */
    bool clipped;                          /* the start was moved by retention */
    enum api_metric metrics[API_METRIC__COUNT];
    size_t nmetrics;                       /* in the order asked, no duplicates */
    enum period_interval interval;
    char property[API_PROP_KEY_MAX + 16];  /* e.g. "visit:source" */
    char dim[API_PROP_KEY_MAX + 8];        /* KEYS.md <dim>: "source", "prop:plan" */
    char column[API_PROP_KEY_MAX];         /* output column: "source", "plan" */
    long long limit;
    long long page;
    enum output_format format;
    bool compare;                          /* compare=previous_period (aggregate) */
    struct api_filter filter;              /* filters= (one property, see api_filter.h) */
    struct api_filter filter2;             /* a second property's (api_pairs.h), or unset */
};

/* Parse the raw URI query (NULL or "" = no parameters) of endpoint `ep`.
 * `accept` is the Accept header (NULL if absent): "text/csv" selects CSV
 * unless format= says otherwise. site_id is required except for
 * API_EP_SITES. Unknown and repeated parameters are rejected.
 * Returns true, or false with "<parameter>: <reason>" in err. */
bool api_params_parse(enum api_endpoint ep, const char *query, const char *accept,
                      period_day today, long long retention_days, struct api_params *out,
                      char *err, size_t errlen);

#endif
