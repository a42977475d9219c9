/* api_visit_rows.c - per-row bounce rate, visit duration and exit pages in
 * the stats API (see api_visit_rows.h). Never logs a row value. */
#include "api_visit_rows.h"

#include <string.h>

#include "api_internal.h"
#include "query_visit_rows.h"
#include "schema.h"
#include "util.h"

bool api_visit_rows_metric_ok(const char *dim, const char *property, enum api_metric m,
                              char *err, size_t errlen)
{
    const struct schema_dim *d = schema_find(dim);
    switch (m) {
    case API_METRIC_BOUNCE_RATE:
    case API_METRIC_VISIT_DURATION:
        if (d && (d->metrics & SCHEMA_VIS))
            return true;
        str_format(err, errlen,
                   "metrics: %s is kept per row of the visit properties (visit:*) only; a "
                   "%.60s value is counted per event, not per visit",
                   api_metric_name(m), property);
        return false;
    case API_METRIC_SCROLL_DEPTH:
        str_format(err, errlen, "metrics: scroll_depth is not kept per %.60s value (the daily "
                                "counts hold it per site-day only)",
                   property);
        return false;
    case API_METRIC_VIEWS_PER_VISIT:
        str_format(err, errlen,
                   "metrics: views_per_visit is not kept per %.60s value (page views of a row "
                   "are counted per event, its visits per visit: no exact ratio per row)",
                   property);
        return false;
    default:
        return true;
    }
}

bool api_visit_rows_load(struct api_request *rq, redisContext *rc, const char *site,
                         const char *dim,
                         const struct period_range *range, const enum api_metric *metrics,
                         size_t nmetrics, struct stats_rows *rows)
{
    bool needed = strcmp(dim, "exit_page") == 0;
    for (size_t i = 0; i < nmetrics; i++)
        needed = needed || metrics[i] == API_METRIC_BOUNCE_RATE ||
                 metrics[i] == API_METRIC_VISIT_DURATION;
    if (!needed)
        return true;
    rq->visit_rows_used = true;
    rq->visit_rows_missing = 0;
    if (range->first > range->last)
        return true;
    char err[300];
    if (query_visit_rows(rc, site, dim, range, rows, &rq->visit_rows_missing,
                         err, sizeof err) != 0) {
        api_redis_error(rq, err);
        return false;
    }
    return true;
}

bool api_visit_rows_filter_ok(const struct api_filter *f, char *err, size_t errlen)
{
    if (!f->set || strcmp(f->dim, "exit_page") != 0)
        return true;
    str_format(err, errlen, "filters: totals filtered by visit:exit_page are not kept (a "
                            "visit's exit moves between rows as it goes on, and an exit row's "
                            "visitors are an upper bound); ask the visit:exit_page breakdown");
    return false;
}

size_t api_visit_rows_filter_metrics(bool breakdown, const enum api_metric *metrics, size_t n,
                                     const char **names)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!breakdown ||
            (metrics[i] != API_METRIC_BOUNCE_RATE && metrics[i] != API_METRIC_VISIT_DURATION))
            names[k++] = api_metric_name(metrics[i]);
    return k;
}

void api_visit_rows_other(const char *dim, struct stats_row *other)
{
    if (strcmp(dim, "exit_page") == 0 && other->visitors > other->visits)
        other->visitors = other->visits;
}
