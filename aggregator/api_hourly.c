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

/* The filter's expression on stored values, its regular expressions
 * compiled once; a match-limit hit is remembered (the answer is a 400). */
struct hour_match {
    const struct api_filter *f;
    struct api_filter_code *code;
    bool failed;
    char err[300];
};

static bool filter_match(void *arg, const char *value, size_t len)
{
    struct hour_match *m = arg;
    int r = api_filter_eval(m->f, m->code, value, len, m->err, sizeof m->err);
    if (r < 0)
        m->failed = true;
    return r > 0;
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
    if (p->filter2.set) {
        api_set_error(rq, 400,
                      "filters: hourly rows are kept per property, not per pair of properties; "
                      "use interval=day with filters on two properties");
        return false;
    }
    if (!api_hourly_filter_ok(&p->filter, err, sizeof err)) {
        api_set_error(rq, 400, err);
        return false;
    }
    /* `is` one value or a set (of stored values, not names): read just
     * those fields */
    const struct api_filter *f = &p->filter;
    const struct api_filter_node *root = &f->nodes[0];
    const char *values[API_FILTER_VALUES_MAX];
    size_t nvalues = 0;
    bool exact = f->nnodes == 1 && root->op == AF_IS && !root->negate && !root->caseless &&
                 f->names == AF_NAMES_NONE;
    for (size_t i = root->first; exact && i < (size_t)root->first + root->n &&
                                 i < API_FILTER_VALUES_MAX;
         i++)
        values[nvalues++] = f->values[i];
    struct hour_match m = {.f = f};
    if (!api_filter_compile(f, &m.code, err, sizeof err)) {
        api_set_error(rq, 400, err);
        return false;
    }
    int s = query_hours_rows(rc, p->site_id, f->dim, f->property, &p->range,
                             exact ? values : NULL, nvalues, filter_match, &m, t, err,
                             sizeof err);
    api_filter_code_free(m.code);
    if (s == 0 && m.failed) {
        str_copy(err, sizeof err, m.err, strlen(m.err));
        s = 1;
    }
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
