/* query_visit_rows.h - per-row bounces, visit seconds and exit pages read
 * back for a breakdown of a visit dimension (docs/API.md "Bounce rate and
 * visit duration per row"): b:<dim>:vis|nbn|dur of the days whose visits
 * were all counted with their rows (totals `row_visits` equals `visits`).
 * Days counted before per-row counts existed, or by an older aggregator
 * during an upgrade, are left out and counted in *missing_days, never
 * mixed in.
 *
 * Synchronous hiredis on the stats API's thread; reads only. */
#ifndef VEIL_QUERY_VISIT_ROWS_H
#define VEIL_QUERY_VISIT_ROWS_H

#include <hiredis/hiredis.h>

#include "period.h"
#include "query.h"

/* Add to each row of rows (a query_breakdown of `dim` over `range`) its
 * bounces, duration_s and row_visits summed over the range's complete
 * days; *missing_days is the number of days of the range that have visits
 * but not their per-row counts. For dim "exit_page" the rows' visits
 * become row_visits (exits of complete days only) and rows without exits
 * are dropped. Returns 0, or -1 with a reason in err. */
int query_visit_rows(redisContext *rc, const char *site, const char *dim,
                     const struct period_range *range, struct stats_rows *rows,
                     long long *missing_days, char *err, size_t errlen);

#endif
