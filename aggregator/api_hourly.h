/* api_hourly.h - the hourly timeseries of the stats API (v1
 * `interval=hour`, v2 `time:hour`), with or without a filter: the site's
 * `hours` totals, or under a filter on an hourly property (hourly.h) the
 * hourly rows of that property, with k-anonymity on every filtered hour
 * as for filtered days. A filter on a property without hourly rows, or on
 * hours counted before hourly rows were kept, is a 400 naming why, never
 * a number that could be wrong. Shared by api_v1.c and api_v2.c; it never
 * logs a value. */
#ifndef VEIL_API_HOURLY_H
#define VEIL_API_HOURLY_H

#include <stdbool.h>
#include <stddef.h>

#include "api_internal.h"

/* Whether p's filter (if any) can be answered by the hour: true, or false
 * with a "filters: ..." reason in err. */
bool api_hourly_filter_ok(const struct api_filter *f, char *err, size_t errlen);

/* The hours of p->range: t[d * 24 + h] (n = days * 24 entries), before
 * noise (the caller adds it per hour). Under a filter, k-anonymity per
 * hour (rq->filtered, rq->k_withheld) and, for conversion_rate, the
 * site's visitors of each hour in all_visitors. False when rq was
 * answered with an error (400, 500 or 503). */
bool api_load_hours(struct api_request *rq, const struct api_params *p, redisContext *rc,
                    struct query_totals *t, size_t n);

#endif
