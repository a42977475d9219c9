/* query_hours.h - reads the hourly rows of docs/KEYS.md ("hb:<dim>" and
 * "hu:<dim>:<HH>:<row>") back for one site, one hourly dimension
 * (hourly.h) and a range of days: per local hour, page views, visits and
 * events summed over the rows a predicate accepts, visitors the
 * HyperLogLog union of those rows' sets of that hour (one PFCOUNT per
 * hour), never a sum of uniques.
 *
 * Synchronous hiredis, for the stats API's thread. It only reads. */
#ifndef VEIL_QUERY_HOURS_H
#define VEIL_QUERY_HOURS_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "period.h"
#include "query.h"

/* Whether the stored row value[0..len) is one the caller wants. */
typedef bool (*query_row_match_fn)(void *arg, const char *value, size_t len);

/* Totals of every local hour of the days of `range` (at most
 * PERIOD_MAX_HOURLY_DAYS) restricted to the rows of `dim` that `match`
 * accepts: out[d * 24 + h] for day range->first + d, hour h (out holds
 * period_range_days(range) * 24 entries; bounces, durations and scroll
 * depth stay 0). Returns 0; 1 with a reason in err when the answer could
 * be wrong (an hour counted before hourly rows were kept, or an "(other)"
 * row that may hide matching values: the caller answers 400); -1 on a
 * Redis error (reason in err). `property` names the filter in reasons.
 * `values` (nvalues, at most 16), when not NULL, are the exact values
 * `match` accepts: only their fields (and "(other)"'s) are read, with one
 * HMGET of at most 24 x 3 x 17 fields per day, instead of the day's whole
 * hash (at most 24 x 3 x (breakdown_cap + 1) fields). */
int query_hours_rows(redisContext *rc, const char *site, const char *dim, const char *property,
                     const struct period_range *range, const char *const *values,
                     size_t nvalues, query_row_match_fn match, void *arg,
                     struct query_totals *out, char *err, size_t errlen);

#endif
