/* api_rates.h - the stats API's conversion rates beside a goal filter
 * (docs/API.md "Goals"): when v2's group_conversion_rate (and
 * conversion_rate in a breakdown) can be answered, and each breakdown row's
 * visitors of reference for group_conversion_rate. It only reads counts
 * (the plain breakdown of the same range); it never logs a value. */
#ifndef VEIL_API_RATES_H
#define VEIL_API_RATES_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "api_internal.h"

/* Whether p filters on event:goal (as its first or second property). */
bool api_rate_goal_filter(const struct api_params *p);

/* Whether a conversion rate (metric: its name; group: group_conversion_rate)
 * can be answered: group needs a dimension (dimensioned); by the dimension
 * event:goal (by_goal) always; otherwise under a filter on event:goal
 * alone. True, or false with "metrics: <reason>" in err. */
bool api_rate_check(const struct api_params *p, const char *metric, bool group,
                    bool dimensioned, bool by_goal, char *err, size_t errlen);

/* group_conversion_rate of a breakdown by p->dim (not event:goal) under a
 * goal filter: the visitors without the filter of each published row
 * rows->rows[0..kept), from the plain breakdown over p->range (published
 * as that breakdown publishes them), into all[0..kept), and, when
 * have_other, the union of the folded rows' (rows->rows[kept..n)) into
 * all[kept]. A value without a plain row gets 0. False when rq was
 * answered with an error. */
bool api_rate_row_visitors(struct api_request *rq, const struct api_params *p,
                           redisContext *rc, const struct stats_rows *rows, size_t kept,
                           bool have_other, long long *all);

#endif
