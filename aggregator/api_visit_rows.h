/* api_visit_rows.h - the stats API's side of per-row bounce rate, visit
 * duration and exit pages (docs/API.md "Bounce rate and visit duration per
 * row", "Exit pages"), shared by the v1 and v2 breakdowns: which metrics a
 * dimension offers per row, loading the per-row counts, and the meta note
 * on days without them. Never logs a row value. */
#ifndef VEIL_API_VISIT_ROWS_H
#define VEIL_API_VISIT_ROWS_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "api_params.h"
#include "query.h"

struct api_request;

/* Whether metric m is answered per row of the breakdown dimension `dim`
 * (a KEYS.md <dim>); when not, a 400 reason naming `property` in err.
 * Only bounce_rate, visit_duration, scroll_depth and views_per_visit are
 * judged here (true for the others). */
bool api_visit_rows_metric_ok(const char *dim, const char *property, enum api_metric m,
                              char *err, size_t errlen);

/* When the breakdown needs them (bounce_rate or visit_duration asked, or
 * dim is exit_page): add the per-row counts to rows and note the days
 * without them in rq (meta "visit_rows_missing_days"). False when rq was
 * answered with an error. */
bool api_visit_rows_load(struct api_request *rq, redisContext *rc, const char *site,
                         const char *dim,
                         const struct period_range *range, const enum api_metric *metrics,
                         size_t nmetrics, struct stats_rows *rows);

/* Whether totals (aggregate, timeseries) can be filtered by f's property:
 * not by visit:exit_page (an exit row's visitors are an upper bound and its
 * visits move between rows, so filtered totals would not be exact); a 400
 * reason in err when not. */
struct api_filter;
bool api_visit_rows_filter_ok(const struct api_filter *f, char *err, size_t errlen);

/* The names of metrics[0..n) that a filter must find kept per value of
 * its property, into names (n entries); their count. In a breakdown
 * filtered by its own property (`breakdown`) the per-row bounce_rate and
 * visit_duration are the kept rows' own, so they are left out. */
size_t api_visit_rows_filter_metrics(bool breakdown, const enum api_metric *metrics, size_t n,
                                     const char **names);

/* The folded "(other)" row of `dim` after its visitors were counted: an
 * exit page row's visitors are at most its visits. */
void api_visit_rows_other(const char *dim, struct stats_row *other);

#endif
