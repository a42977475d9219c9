/* api_params.c - parsing and validation of the stats API's query
 * parameters (see api_params.h). Never echoes a parameter value into an
 * error reason. */
#include "api_params.h"
#include "api_pairs.h"
#include "api_visit_rows.h"

#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "schema.h"
#include "util.h"

static const char *const metric_names[API_METRIC__COUNT] = {
    [API_METRIC_VISITORS] = "visitors",       [API_METRIC_PAGEVIEWS] = "pageviews",
    [API_METRIC_VISITS] = "visits",           [API_METRIC_BOUNCE_RATE] = "bounce_rate",
    [API_METRIC_VISIT_DURATION] = "visit_duration", [API_METRIC_EVENTS] = "events",
    [API_METRIC_SCROLL_DEPTH] = "scroll_depth",
    [API_METRIC_CONVERSION_RATE] = "conversion_rate",
    [API_METRIC_VIEWS_PER_VISIT] = "views_per_visit",
};

const char *api_metric_name(enum api_metric m)
{
    return m < API_METRIC__COUNT ? metric_names[m] : "";
}

/* Breakdown properties: the stats API property of each dimension of the
 * schema table (schema.h); its output column is the dimension's name. */
#define PROPS_PREFIX "event:props:" /* schema_dim(SD_PROP)->property */

enum param {
    P_SITE_ID, P_PERIOD, P_DATE, P_METRICS, P_INTERVAL, P_PROPERTY, P_LIMIT, P_PAGE,
    P_FORMAT, P_COMPARE, P_FILTERS, P__COUNT
};

static const char *const param_names[P__COUNT] = {
    "site_id", "period", "date", "metrics", "interval", "property", "limit", "page", "format",
    "compare", "filters",
};

/* Which parameters each endpoint takes (bit per enum param). */
static unsigned endpoint_params(enum api_endpoint ep)
{
    const unsigned range = 1u << P_SITE_ID | 1u << P_PERIOD | 1u << P_DATE | 1u << P_METRICS |
                           1u << P_FORMAT | 1u << P_FILTERS;
    switch (ep) {
    case API_EP_AGGREGATE: return range | 1u << P_COMPARE;
    case API_EP_TIMESERIES: return range | 1u << P_INTERVAL;
    case API_EP_BREAKDOWN: return range | 1u << P_PROPERTY | 1u << P_LIMIT | 1u << P_PAGE;
    case API_EP_REALTIME: return 1u << P_SITE_ID;
    case API_EP_SITES: return 1u << P_FORMAT;
    }
    return 0;
}

/* A value may be any UTF-8 without control characters. */
static bool value_ok(const char *v)
{
    size_t len = strlen(v);
    if (!utf8_valid(v, len))
        return false;
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7F)
            return false;
    }
    return true;
}

static bool parse_site(const char *v, struct api_params *out, char *err, size_t errlen)
{
    size_t len = strlen(v);
    if (len == 0 || len >= API_SITE_MAX || strchr(v, ' ')) {
        str_format(err, errlen, "site_id: expected a site id of 1 to %d bytes without spaces",
                   API_SITE_MAX - 1);
        return false;
    }
    str_copy(out->site_id, sizeof out->site_id, v, len);
    return true;
}

static bool metric_allowed(enum api_endpoint ep, enum api_metric m)
{
    if (ep != API_EP_BREAKDOWN)
        return true; /* conversion_rate: checked with the filters */
    return m == API_METRIC_VISITORS || m == API_METRIC_PAGEVIEWS || m == API_METRIC_VISITS ||
           m == API_METRIC_EVENTS || m == API_METRIC_CONVERSION_RATE ||
           /* judged per property once it is known (api_visit_rows_metric_ok) */
           m == API_METRIC_BOUNCE_RATE || m == API_METRIC_VISIT_DURATION ||
           m == API_METRIC_SCROLL_DEPTH || m == API_METRIC_VIEWS_PER_VISIT;
    /* views_per_visit: pageviews of a visit dimension's row count per event, its visits
       per visit (internal navigation is Direct): no exact ratio per row */
}

static bool parse_metrics(enum api_endpoint ep, const char *v, struct api_params *out,
                          char *err, size_t errlen)
{
    out->nmetrics = 0;
    const char *p = v;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        int found = -1;
        for (int m = 0; m < API_METRIC__COUNT; m++) {
            if (strlen(metric_names[m]) == len && memcmp(metric_names[m], p, len) == 0)
                found = m;
        }
        if (found < 0) {
            str_format(err, errlen, "metrics: expected a comma-separated list of visitors, "
                                    "pageviews, visits, bounce_rate, visit_duration, events, "
                                    "scroll_depth, conversion_rate, views_per_visit");
            return false;
        }
        if (!metric_allowed(ep, (enum api_metric)found)) {
            str_format(err, errlen,
                       "metrics: %s is not available for breakdown (use visitors, pageviews, "
                       "visits, events; bounce_rate, visit_duration for visit:* properties)",
                       metric_names[found]);
            return false;
        }
        for (size_t i = 0; i < out->nmetrics; i++) {
            if ((int)out->metrics[i] == found) {
                str_format(err, errlen, "metrics: %s is listed twice", metric_names[found]);
                return false;
            }
        }
        out->metrics[out->nmetrics++] = (enum api_metric)found;
        if (!comma)
            return true;
        p = comma + 1;
    }
}

static bool parse_property(const char *v, struct api_params *out, char *err, size_t errlen)
{
    for (int i = 0; i < SD__COUNT; i++) {
        const struct schema_dim *d = schema_dim((enum schema_dim_id)i);
        if (i != SD_PROP && d->property && strcmp(v, d->property) == 0) {
            str_copy(out->property, sizeof out->property, v, strlen(v));
            str_copy(out->dim, sizeof out->dim, d->name, strlen(d->name));
            str_copy(out->column, sizeof out->column, d->name, strlen(d->name));
            return true;
        }
    }
    size_t plen = sizeof PROPS_PREFIX - 1;
    if (strncmp(v, PROPS_PREFIX, plen) == 0) {
        const char *key = v + plen;
        size_t klen = strlen(key);
        if (klen == 0 || klen >= API_PROP_KEY_MAX) {
            str_format(err, errlen, "property: a custom property key has 1 to %d bytes",
                       API_PROP_KEY_MAX - 1);
            return false;
        }
        str_copy(out->property, sizeof out->property, v, strlen(v));
        str_format(out->dim, sizeof out->dim, "prop:%s", key);
        str_copy(out->column, sizeof out->column, key, klen);
        return true;
    }
    str_format(err, errlen,
               "property: expected event:page, event:name, event:goal, event:props:<key>, "
               "visit:entry_page, visit:source, visit:channel, visit:referrer, "
               "visit:utm_source, visit:utm_medium, visit:utm_term, visit:utm_content, "
               "visit:utm_campaign, visit:country, visit:region, visit:city, visit:browser, "
               "visit:os, visit:device or visit:screen");
    return false;
}

bool api_params_parse(enum api_endpoint ep, const char *query, const char *accept,
                      period_day today, long long retention_days, struct api_params *out,
                      char *err, size_t errlen)
{
    const char *given[P__COUNT] = {0};
    struct evkeyvalq kv;
    bool ok = false;

    memset(out, 0, sizeof *out);
    out->limit = API_LIMIT_DEFAULT;
    out->page = 1;
    out->format = accept && strcasestr(accept, "text/csv") ? OUTPUT_CSV : OUTPUT_JSON;

    TAILQ_INIT(&kv);
    if (query && query[0] && evhttp_parse_query_str(query, &kv) != 0) {
        str_format(err, errlen, "query: malformed query string (expected name=value&...)");
        goto done;
    }

    unsigned allowed = endpoint_params(ep);
    for (struct evkeyval *e = kv.tqh_first; e; e = e->next.tqe_next) {
        int p = -1;
        for (int i = 0; i < P__COUNT; i++) {
            if (strcmp(e->key, param_names[i]) == 0)
                p = i;
        }
        if (p < 0 || !(allowed & (1u << p))) {
            /* The name only, cut short; the JSON writer escapes it. */
            char name[33];
            size_t nlen = strlen(e->key);
            if (value_ok(e->key))
                str_copy(name, sizeof name, e->key, nlen < sizeof name ? nlen : sizeof name - 1);
            else
                str_copy(name, sizeof name, "?", 1);
            if (p < 0)
                str_format(err, errlen, "%s: unknown parameter", name);
            else
                str_format(err, errlen, "%s: not supported by this endpoint", name);
            goto done;
        }
        if (given[p]) {
            str_format(err, errlen, "%s: given more than once", param_names[p]);
            goto done;
        }
        if (!value_ok(e->value)) {
            str_format(err, errlen, "%s: expected UTF-8 text without control characters", param_names[p]);
            goto done;
        }
        given[p] = e->value;
    }

    if (given[P_SITE_ID]) {
        if (!parse_site(given[P_SITE_ID], out, err, errlen))
            goto done;
    } else if (ep != API_EP_SITES) {
        str_format(err, errlen, "site_id: required");
        goto done;
    }

    if (ep == API_EP_REALTIME || ep == API_EP_SITES)
        goto format;

    if (!period_resolve(given[P_PERIOD], given[P_DATE], today, retention_days, &out->range,
                        &out->clipped, err, errlen))
        goto done;

    out->metrics[0] = API_METRIC_VISITORS;
    out->nmetrics = 1;
    if (given[P_METRICS] && !parse_metrics(ep, given[P_METRICS], out, err, errlen))
        goto done;

    const char *period = given[P_PERIOD] ? given[P_PERIOD] : "30d";
    out->interval = strcmp(period, "6mo") == 0 || strcmp(period, "12mo") == 0
                        ? PERIOD_INTERVAL_MONTH
                        : PERIOD_INTERVAL_DAY;
    if (given[P_INTERVAL]) {
        const char *v = given[P_INTERVAL];
        if (strcmp(v, "day") == 0 || strcmp(v, "date") == 0) {
            out->interval = PERIOD_INTERVAL_DAY;
        } else if (strcmp(v, "month") == 0) {
            out->interval = PERIOD_INTERVAL_MONTH;
        } else if (strcmp(v, "hour") == 0) {
            out->interval = PERIOD_INTERVAL_HOUR;
        } else if (strcmp(v, "week") == 0) {
            out->interval = PERIOD_INTERVAL_WEEK;
        } else {
            str_format(err, errlen, "interval: expected hour, day, week or month");
            goto done;
        }
        if (out->interval == PERIOD_INTERVAL_HOUR &&
            period_range_days(&out->range) > PERIOD_MAX_HOURLY_DAYS) {
            str_format(err, errlen, "interval: hour covers at most 31 days");
            goto done;
        }
    }

    if (ep == API_EP_BREAKDOWN) {
        if (!given[P_PROPERTY]) {
            str_format(err, errlen, "property: required");
            goto done;
        }
        if (!parse_property(given[P_PROPERTY], out, err, errlen))
            goto done;
        for (size_t i = 0; i < out->nmetrics; i++)
            if (!api_visit_rows_metric_ok(out->dim, out->property, out->metrics[i], err, errlen))
                goto done;
        for (size_t i = 0; i < out->nmetrics; i++)
            if (out->metrics[i] == API_METRIC_CONVERSION_RATE &&
                strcmp(out->property, "event:goal") != 0) {
                str_format(err, errlen,
                           "metrics: conversion_rate needs a breakdown by event:goal");
                goto done;
            }
        if (given[P_LIMIT] && !safe_strtoll(given[P_LIMIT], 1, API_LIMIT_MAX, &out->limit)) {
            str_format(err, errlen, "limit: expected an integer from 1 to %d", API_LIMIT_MAX);
            goto done;
        }
        if (given[P_PAGE] && !safe_strtoll(given[P_PAGE], 1, API_PAGE_MAX, &out->page)) {
            str_format(err, errlen, "page: expected an integer from 1 to %d", API_PAGE_MAX);
            goto done;
        }
    }

    if (given[P_COMPARE]) {
        if (strcmp(given[P_COMPARE], "previous_period") != 0) {
            str_format(err, errlen, "compare: expected previous_period");
            goto done;
        }
        out->compare = true;
    }
    if (given[P_FILTERS]) {
        const char *names[API_METRIC__COUNT];
        size_t nnames = api_visit_rows_filter_metrics(ep == API_EP_BREAKDOWN, out->metrics,
                                                      out->nmetrics, names);
        if (!api_pairs_parse_v1(given[P_FILTERS], ep == API_EP_BREAKDOWN ? out->property : NULL,
                                names, nnames, &out->filter, &out->filter2, err, errlen))
            goto done;
        /* a breakdown by another property: every metric must be kept per pair
         * (per-row bounce_rate and visit_duration are not) */
        const char *all[API_METRIC__COUNT];
        for (size_t i = 0; i < out->nmetrics; i++)
            all[i] = metric_names[out->metrics[i]];
        const char *bdim = ep == API_EP_BREAKDOWN ? out->dim : NULL;
        if (api_pairs_needed(&out->filter, &out->filter2, bdim) &&
            !api_pairs_check(&out->filter, &out->filter2, bdim, out->property, all,
                             out->nmetrics, err, errlen))
            goto done;
    }
    for (size_t i = 0; i < out->nmetrics; i++)
        if (out->metrics[i] == API_METRIC_CONVERSION_RATE && ep != API_EP_BREAKDOWN &&
            !(out->filter.set && strcmp(out->filter.property, "event:goal") == 0)) {
            str_format(err, errlen, "metrics: conversion_rate needs a breakdown by event:goal "
                                    "or a filter on event:goal");
            goto done;
        }

format:
    if (given[P_FORMAT]) {
        if (strcmp(given[P_FORMAT], "json") == 0) {
            out->format = OUTPUT_JSON;
        } else if (strcmp(given[P_FORMAT], "csv") == 0) {
            out->format = OUTPUT_CSV;
        } else {
            str_format(err, errlen, "format: expected json or csv");
            goto done;
        }
    }
    ok = true;
done:
    evhttp_clear_headers(&kv);
    return ok;
}
