/* api_pairs.h - the stats API's queries that need two-dimensional counts
 * (pairs.h, docs/API.md "Filters"): a breakdown by one property filtered
 * by another, and two filters on different properties at once (with or
 * without a breakdown by one of them). Each filter stays one property's
 * condition (struct api_filter, api_filter.h); this module combines two
 * of them through the pair counts of their properties. Answers are exact
 * or refused: a third property, a pair the roll-up does not count, a
 * metric the pair does not keep, a day counted without pairs, or a pair
 * overflowed into "(other)" is a 400 with the reason. It never logs a
 * value. */
#ifndef VEIL_API_PAIRS_H
#define VEIL_API_PAIRS_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "api_filter.h"
#include "period.h"
#include "query.h"

/* Parse v1's `filters` ("visit:source==Google;event:page==/x"): the
 * conditions on one property (joined with ';' again when several) into
 * *f1, those on a second property into *f2 (f2->set false when there is
 * none), each by api_filter_parse_v1. breakdown_property is the
 * breakdown's (NULL for aggregate and timeseries). Then api_pairs_check.
 * True, or false with "filters: <reason>" in err. */
bool api_pairs_parse_v1(const char *s, const char *breakdown_property,
                        const char *const *metrics, size_t nmetrics, struct api_filter *f1,
                        struct api_filter *f2, char *err, size_t errlen);

/* Whether the query needs pair counts: a second filter, or a breakdown
 * (bdim, its <dim>; NULL for none) filtered by another property. */
bool api_pairs_needed(const struct api_filter *f1, const struct api_filter *f2,
                      const char *bdim);

/* Whether the pair counts can answer it (when api_pairs_needed): the
 * properties form a counted pair and every metric is kept per pair. True,
 * or false with "filters: <reason>" in err. */
bool api_pairs_check(const struct api_filter *f1, const struct api_filter *f2,
                     const char *bdim, const char *bproperty, const char *const *metrics,
                     size_t nmetrics, char *err, size_t errlen);

/* Totals of each bucket under both filters (f1 and f2 set, different
 * properties): counters summed over the matching pair cells, visitors
 * their HyperLogLog union. Returns 0; 1 with a reason in err when the
 * counts cannot answer it exactly (the caller answers 400); -1 on a Redis
 * error. */
int api_pairs_totals(redisContext *rc, const char *site, const struct api_filter *f1,
                     const struct api_filter *f2, const struct period_range *buckets,
                     size_t nbuckets, struct query_totals *out, char *err, size_t errlen);

/* Breakdown rows of bdim over range under f1 (and f2 when set): one row
 * per value of bdim among the matching cells. *out as query_breakdown
 * fills it (caller frees with query_rows_free); *cells keeps what
 * api_pairs_union needs (free with api_pairs_free). Returns as
 * api_pairs_totals. */
struct api_pair_cells;
int api_pairs_breakdown(redisContext *rc, const char *site, const struct api_filter *f1,
                        const struct api_filter *f2, const char *bdim,
                        const struct period_range *range, struct stats_rows *out,
                        struct api_pair_cells **cells, char *err, size_t errlen);

/* Visitors of the union of rows[0..n) of such a breakdown (the folded
 * "(other)" row). Returns 0, or -1 with a reason in err. */
int api_pairs_union(redisContext *rc, const char *site, const struct api_pair_cells *cells,
                    const struct stats_row *rows, size_t n, long long *visitors, char *err,
                    size_t errlen);

void api_pairs_free(struct api_pair_cells *cells);

#endif
