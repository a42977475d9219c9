/* api_hourly.c - hourly timeseries, filtered or not (see api_hourly.h).
 * It never logs a value. */
#include "api_hourly.h"

#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "hourly.h"
#include "kanon.h"
#include "query_hours.h"
#include "util.h"

bool api_hourly_filter_ok(const struct api_filter *f, char *err, size_t errlen)
{
    if (!f->set || hourly_dim_name(f->dim))
        return true;
    str_format(err, errlen,
               "filters: %s has daily counts only, not hourly ones (hourly rows are kept for "
               "%s); ask interval=day (time:day) with this filter",
               f->property, hourly_properties());
    return false;
}

static bool filter_match(void *arg, const char *value, size_t len)
{
    return api_filter_matches(arg, value, len);
}

bool api_load_hours(struct api_request *rq, const struct api_params *p, redisContext *rc,
                    struct query_totals *t, size_t n)
{
    char err[500];
    if (n == 0)
        return true;
    if (!p->filter.set) {
        if (query_hours(rc, p->site_id, &p->range, t, err, sizeof err) != 0) {
            api_redis_error(rq, err);
            return false;
        }
        return true;
    }
    if (!api_hourly_filter_ok(&p->filter, err, sizeof err)) {
        api_set_error(rq, 400, err);
        return false;
    }
    /* one value or a set: read just those fields */
    const char *values[API_FILTER_VALUES_MAX];
    size_t nvalues = 0;
    bool exact = p->filter.op == AF_IS;
    for (size_t i = 0; exact && i < p->filter.nvalues && i < API_FILTER_VALUES_MAX; i++)
        values[nvalues++] = p->filter.values[i];
    int s = query_hours_rows(rc, p->site_id, p->filter.dim, p->filter.property, &p->range,
                             exact ? values : NULL, nvalues, filter_match,
                             (void *)(uintptr_t)&p->filter, t, err, sizeof err);
    if (s != 0) {
        if (s > 0)
            api_set_error(rq, 400, err);
        else
            api_redis_error(rq, err);
        return false;
    }
    rq->filtered = true;
    bool rate = false;
    for (size_t i = 0; i < p->nmetrics; i++)
        rate = rate || p->metrics[i] == API_METRIC_CONVERSION_RATE;
    if (rate) { /* the whole site's visitors of each hour */
        struct query_totals *all = xcalloc(n, sizeof *all);
        if (query_hours(rc, p->site_id, &p->range, all, err, sizeof err) != 0) {
            free(all);
            api_redis_error(rq, err);
            return false;
        }
        for (size_t b = 0; b < n; b++)
            t[b].all_visitors = all[b].visitors;
        free(all);
    }
    for (size_t b = 0; b < n; b++) {
        if (!kanon_publishable(t[b].visitors, rq->api->k_anonymity) &&
            (t[b].visitors || t[b].c[QC_PAGEVIEWS] || t[b].c[QC_EVENTS] || t[b].c[QC_VISITS])) {
            long long all = t[b].all_visitors;
            memset(&t[b], 0, sizeof t[b]);
            t[b].all_visitors = all;
            rq->k_withheld++;
        }
    }
    return true;
}
